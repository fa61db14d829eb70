"""Entity-linking benchmark on ReDial (ECR_SPEC §3): can the live linker find the movies people type?

Every `@id` of a message is replaced by the title the dialogue's `movieMentions` gives for it, in two variants:
  no_year    the title with its "(Year)" stripped, as people type it ("Super Troopers");
  with_year  the title as given ("Super Troopers (2001)").
Gold for a message: the multiset of graph entity ids of its `@id`s, through `redial_movie_entities` (the bundled
KGSF mapping extended by exact title + year). An `@id` without a graph entity has no gold: its title stays in the
text, and a movie
the linker finds inside that title is *unjudged* (neither right nor wrong: the graph entity it should map to is
unknown). The strict figures count those as false positives too.

Metrics, micro-averaged over messages (all messages, also those without any mention):
  TP = sum over messages of |gold ∩ predicted| (multiset intersection of entity ids),
  precision = TP / sum |predicted|, recall = TP / sum |gold|, F1 = 2PR / (P + R).
Latency: `time.perf_counter()` around each `link()` call, after a warm-up pass, one process.

Run:  .venv/bin/python benchmarks/entity_linking.py [--split test|train] [--out PATH]
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from common import bundled_files

from ecrs.data.bundle import REPO_ROOT, bundled, iter_jsonl
from ecrs.data.kg import load_redial_kg, redial_movie_entities, relation_name
from ecrs.data.linking import EntityLinker, Mention, build_redial_linker, split_title
from ecrs.evaluation.results import write_results

BAR = {"movie_precision": 0.90, "movie_recall": 0.90, "p50_latency_ms": 2.0}
SPLITS = {"test": "redial/test.jsonl.gz", "train": "redial/train_complete.jsonl.gz"}
PERSON_RELATIONS = {"starring", "director", "writer", "producer", "musicComposer", "cinematography", "editing",
                    "narrator", "executiveProducer", "composer", "editor", "author", "person"}
_AT = re.compile(r"@(\d+)")


def substitute(text: str, mentions: dict[str, str], variant: str, ids: dict[str, int]
               ) -> tuple[str, list[tuple[int, int, int | None]], int]:
    """Text with each `@id` replaced by its title; spans (start, end, gold entity or None); ids without a title."""
    out: list[str] = []
    spans: list[tuple[int, int, int | None]] = []
    missing = 0
    pos = 0
    length = 0
    for m in _AT.finditer(text):
        name = mentions.get(m.group(1))
        out.append(text[pos:m.start()])
        length += m.start() - pos
        pos = m.end()
        if name is None or not name.strip():
            missing += 1
            name = "that movie"  # the `@id` would otherwise be linked directly, which is not what we measure
            gold = None
        else:
            name = " ".join(name.split())
            if variant == "no_year":
                name = split_title(name)[0] if re.search(r"\(\s*\d{4}\s*\)$", name) else name
            gold = ids.get(m.group(1))
        spans.append((length, length + len(name), gold))
        out.append(name)
        length += len(name)
    out.append(text[pos:])
    return "".join(out), spans, missing


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def evaluate(linker: EntityLinker, dialogues: list[dict], ids: dict[str, int], variant: str, kinds: dict[int, str],
             names: list[str]) -> dict:
    tp = n_pred = n_gold = strict_pred = unjudged = typed = 0
    n_msgs = n_at = n_at_gold = n_missing = 0
    latencies: list[float] = []
    errors: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list[dict]] = defaultdict(list)
    other: Counter[str] = Counter()
    other_surfaces: dict[str, Counter] = defaultdict(Counter)
    for d in dialogues:
        dialogue_movies = {ids[i] for i in (d.get("movieMentions") or {}) if i in ids}
        for msg in d.get("messages", []):
            text, spans, missing = substitute(msg.get("text", ""), d.get("movieMentions") or {}, variant, ids)
            t0 = time.perf_counter()
            found = linker.link(text)
            latencies.append(time.perf_counter() - t0)
            n_msgs += 1
            n_at += len(spans)
            n_missing += missing
            gold = Counter(g for _, _, g in spans if g is not None)
            n_at_gold += sum(gold.values())
            movies = [m for m in found if m.is_movie]
            for m in found:
                if not m.is_movie:
                    kind = kinds.get(m.entity_id, "other")
                    other[kind] += 1
                    other_surfaces[kind][f"{m.surface.lower()} -> {names[m.entity_id]}"] += 1
            judged: list[Mention] = []
            for m in movies:
                if any(s < m.end and m.start < e and g is None for s, e, g in spans):
                    unjudged += 1
                else:
                    judged.append(m)
            pred = Counter(m.entity_id for m in judged)
            hit = gold & pred
            # Movies of this dialogue typed as plain text (no `@id`, so no gold): very likely right, not counted.
            typed += sum(1 for m in judged if m.entity_id in dialogue_movies and m.entity_id not in gold
                         and not any(s < m.end and m.start < e for s, e, _ in spans))
            tp += sum(hit.values())
            n_pred += sum(pred.values())
            n_gold += sum(gold.values())
            strict_pred += len(movies)
            _categorise(text, spans, judged, dialogue_movies, names, errors, examples)
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    sp = tp / strict_pred if strict_pred else 0.0
    tp_ = tp / (n_pred - typed) if n_pred - typed else 0.0
    ms = [x * 1000 for x in latencies]
    return {
        "messages": n_msgs,
        "at_mentions": n_at,
        "at_mentions_with_graph_entity": n_at_gold,
        "at_mentions_without_graph_entity_excluded_from_gold": n_at - n_at_gold - n_missing,
        "at_mentions_without_title_in_movieMentions": n_missing,
        "true_positives": tp,
        "predicted_movies_judged": n_pred,
        "predicted_movies_unjudged_inside_unmapped_titles": unjudged,
        "gold_movies": n_gold,
        "movie_precision": round(p, 4),
        "movie_recall": round(r, 4),
        "movie_f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
        "strict_movie_precision_unjudged_counted_as_false": round(sp, 4),
        "strict_movie_f1": round(2 * sp * r / (sp + r) if sp + r else 0.0, 4),
        "predicted_movies_typed_as_text_of_a_movie_this_dialogue_mentions": typed,
        "movie_precision_if_those_typed_mentions_are_unjudged": round(tp_, 4),
        "p50_latency_ms": round(percentile(ms, 50), 4),
        "p95_latency_ms": round(percentile(ms, 95), 4),
        "p99_latency_ms": round(percentile(ms, 99), 4),
        "max_latency_ms": round(max(ms), 4),
        "error_categories": dict(errors["counts"]),
        "top_FP_outside_titles": [f"{s} ({n})" for s, n in errors["FP_outside_titles_surfaces"].most_common(40)],
        "top_FN_titles_not_linked": [f"{s} ({n})" for s, n in errors["FN_title_not_linked_titles"].most_common(25)],
        "error_examples": {k: v[:8] for k, v in examples.items()},
        "non_movie_mentions": dict(other),
        "non_movie_examples": {k: [f"{s} ({n})" for s, n in c.most_common(12)] for k, c in other_surfaces.items()},
    }


def _categorise(text: str, spans: list[tuple[int, int, int | None]], judged: list[Mention],
                dialogue_movies: set[int], names: list[str], errors: dict[str, Counter],
                examples: dict[str, list[dict]]) -> None:
    """Sort the misses: no link at a gold title, another movie there, or a movie found outside every title."""
    def note(cat: str, **ex: object) -> None:
        errors["counts"][cat] += 1
        if len(examples[cat]) < 8:
            examples[cat].append({"text": text[:200], **ex})

    for s, e, g in spans:
        if g is None:
            continue
        inside = [m for m in judged if m.start < e and s < m.end]
        if not inside:
            note("FN_title_not_linked", title=text[s:e], gold=names[g])
            errors["FN_title_not_linked_titles"][text[s:e]] += 1
        elif all(m.entity_id != g for m in inside):
            note("FN_FP_other_movie_at_title", title=text[s:e], gold=names[g],
                 predicted=[names[m.entity_id] for m in inside])
    for m in judged:
        if not any(m.start < e and s < m.end for s, e, _ in spans):
            if m.entity_id in dialogue_movies:
                errors["counts"]["FP_outside_titles_of_a_movie_this_dialogue_mentions"] += 1
            note("FP_outside_titles", surface=m.surface, predicted=names[m.entity_id])
            errors["FP_outside_titles_surfaces"][f"{m.surface} -> {names[m.entity_id]}"] += 1


def entity_kinds(kg, genre_ids: set[int]) -> dict[int, str]:
    kinds: dict[int, str] = {}
    for _, r, t in kg.triples:
        rel = relation_name(kg.id2relation[r])
        if rel in PERSON_RELATIONS and t not in kg.item_set:
            kinds.setdefault(t, "person")
    for g in genre_ids:
        kinds[g] = "genre"
    return kinds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=sorted(SPLITS), default="test")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/entity_linking.json")
    args = ap.parse_args(argv)

    t0, c0 = time.perf_counter(), time.process_time()
    kg = load_redial_kg()
    t1, c1 = time.perf_counter(), time.process_time()
    linker = build_redial_linker(kg)
    t2, c2 = time.perf_counter(), time.process_time()
    ids = redial_movie_entities(kg)
    dialogues = [d for _, d in iter_jsonl(bundled(SPLITS[args.split]))]
    kinds = entity_kinds(kg, set(linker.genre_ids))

    for d in dialogues[:100]:  # warm-up: caches, branch predictors, lazily built attributes
        for msg in d.get("messages", []):
            linker.link(msg.get("text", ""))
    variants = {v: evaluate(linker, dialogues, ids, v, kinds, kg.names) for v in ("no_year", "with_year")}
    for res in variants.values():
        res["bar"] = BAR
        res["passes"] = {k: (res[k] >= b if k != "p50_latency_ms" else res[k] <= b) for k, b in BAR.items()}
        res["passes_all"] = all(res["passes"].values())

    files = [SPLITS[args.split], "redial/movies_with_mentions.csv.gz", "kg/redial_movie_info.json.gz",
             "kg/redial_movie_to_dbpedia.json.gz", "kg/entity2id.json.gz", "redial/train_complete.jsonl.gz",
             "redial/train_partial.jsonl.gz", "redial/train_noid.jsonl.gz"]
    result = write_results(
        args.out, "entity_linking", variants, data=bundled_files(*files),
        definition=__doc__.split("Run:")[0].strip(), split=args.split,
        passes_all=all(v["passes_all"] for v in variants.values()),
        build={"kg_load_wall_s": round(t1 - t0, 3), "kg_load_cpu_s": round(c1 - c0, 3),
               "linker_build_wall_s": round(t2 - t1, 3), "linker_build_cpu_s": round(c2 - c1, 3),
               "note": "build_redial_linker(kg): alias tables, train word statistics, automaton; the machine "
                       "is shared (2 cores), so wall time can exceed CPU time",
               "aliases": linker.num_aliases, "common_words": len(linker.common_words),
               "sentence_starters": len(linker.sentence_starters)},
        runtime_s=round(time.perf_counter() - t0, 1),
        data_note=("gold from the bundled KGSF mapping (5,246 of 6,924 ReDial ids); popularity prior from "
                   "ReDial's movies_with_mentions counts (whole corpus); common words learnt from train text only"),
    )
    for v, res in variants.items():
        print(f"{v:10s} P={res['movie_precision']:.4f} R={res['movie_recall']:.4f} F1={res['movie_f1']:.4f} "
              f"strictP={res['strict_movie_precision_unjudged_counted_as_false']:.4f} "
              f"P_typed_unjudged={res['movie_precision_if_those_typed_mentions_are_unjudged']:.4f} "
              f"p50={res['p50_latency_ms']:.3f}ms p95={res['p95_latency_ms']:.3f}ms  pass={res['passes_all']}")
        print("           errors:", res["error_categories"])
    print(f"build {t2 - t1:.2f}s wall, {c2 - c1:.2f}s CPU (kg {t1 - t0:.2f}s), total {result['runtime_s']}s "
          f"-> {args.out}")
    return 0 if result["passes_all"] else 1


if __name__ == "__main__":
    sys.exit(main())
