"""Response-generation evaluation on ReDial test (ECR_SPEC §6): Distinct-n, BLEU, length, grounding errors.

    .venv/bin/python benchmarks/generation_eval.py [--model artifacts/generator/smollm2] [--n 200] [--n-plain 100] \\
        [--qwen 0.5b,1.5b] [--extra finetuned_qwen05=artifacts/generator/qwen05]

Samples: recommender turns of the bundled ReDial *test* dialogues that mention at least one catalogue movie; one
sample per turn (its first such movie = the movie to recommend), a seeded random subset of `--n` (CPU time; all
systems see the same subset). Reference = the real recommender reply (movie ids replaced by titles). The user's
emotion = the project's emotion classifier on the last seeker turn (ECR's rule: labels > 0.1, ≤ 3).
Systems (same knowledge and first sentence for every model system):
  reference         the real ReDial reply, scored as a system of its own
  template          "You might like <title>."
  zero-shot         base SmolLM2-135M-Instruct GGUF, ECR prompt, ChatML (and, on the first `--n-plain`
                    samples, the plain-text prompt: which format works for the base model)
  fine-tuned        our LoRA fine-tune served from the Q8_0 GGUF, ECR prompt
  fine-tuned+dialogue  the same model, prompt with the last two turns and the user's emotion
  --extra NAME=DIR  any other fine-tuned generator (the Qwen2.5-0.5B role), ECR prompt
  zero_shot_friend  base SmolLM2, the `friend` prompt (genres, plot, the last two turns, the user's emotion, and a
                    system message saying what a good reply is: `ecrs.inference.prompts`)
  qwen05b_friend, qwen15b_friend  Qwen2.5-Coder-0.5B / 1.5B-Instruct zero-shot, the same prompt (`--qwen`); these
                    three on the random sample only (CPU time)
Decoding: greedy, no repeated 3-gram in the continuation, 60 new tokens (`ecrs serve` cuts replies at 40); the served reply drops
ungrounded and unfinished sentences (grounding repair). Metrics on the served replies: Distinct-1..4 as the true
ratio over the corpus (and the UniCRS/ECR per-sentence variant, distinct n-grams / #replies, named so), corpus BLEU
(sacrebleu) and BLEU-1/2, mean length in words; grounding-error rate = share of replies naming a year or a person /
movie / company absent from the prompt's knowledge, before and after the repair. Split by whether the movie has
reviews in the training data (seen) or not (unseen). Outputs are cached per system under artifacts/generator/eval/.
Writes benchmarks/results/generation.json (benchmarks/judge.py judges the replies it caches).
The pairwise LLM judge is benchmarks/judge.py.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from common import bundled_files

from ecrs.data.bundle import bundled
from ecrs.data.dialogues import load_redial
from ecrs.data.kg import load_redial_kg, redial_movie_entities, redial_titles
from ecrs.data.linking import build_redial_linker
from ecrs.data.reviews import load_review_kb
from ecrs.evaluation.metrics import (
    bleu,
    bleu_n,
    dialogue_use,
    distinct_n,
    distinct_n_per_sentence,
    plot_use,
    repetition_rate,
    stock_phrase_rate,
)
from ecrs.evaluation.results import write_results
from ecrs.inference.grounding import GroundingChecker
from ecrs.inference.model_files import qwen_gguf

RESULTS = Path("benchmarks/results/generation.json")
CACHE = Path("artifacts/generator/eval")
# The judge's summaries of these replies, added to this file by its own scripts


def test_samples(kb, n: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    kg = load_redial_kg()
    candidates = []
    for d in load_redial(bundled("redial/test.jsonl.gz"), redial_movie_entities(kg), redial_titles()):
        for k, t in enumerate(d.turns):
            movies = [m for m in t.movies if m in kb.movies]
            if t.role == "recommender" and k > 0 and movies:
                candidates.append({"id": f"{d.id}/{k}", "movie": movies[0], "reference": t.text,
                                   "context": [(x.role, x.text) for x in d.turns[:k]]})
    return random.Random(seed).sample(candidates, min(n, len(candidates))), candidates


def detect_emotions(samples: list[dict[str, Any]]) -> str:
    from ecrs.training.generator import emotion_detector

    detect, source = emotion_detector()
    texts, contexts = [], []
    for s in samples:
        ctx = s["context"]
        last = max((i for i, (r, _) in enumerate(ctx) if r == "seeker"), default=None)
        texts.append(ctx[last][1] if last is not None else "")
        contexts.append(ctx[last - 1][1] if last and ctx[last - 1][0] == "recommender" else "")
    for s, em in zip(samples, detect(texts, contexts)):
        s["emotion"] = [(label, round(p, 3)) for label, p in em]
    return source


def run_system(name: str, samples, generate) -> tuple[list[dict[str, Any]], int]:
    """Generate (or reuse cached outputs) for every sample; returns the rows and how many were generated now."""
    path = CACHE / f"{name}.jsonl"
    cached = {}
    if path.exists():
        cached = {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}
    rows, t0, fresh = [], time.time(), 0
    with path.open("a") as f:
        for i, s in enumerate(samples):
            if s["id"] in cached:
                rows.append(cached[s["id"]])
                continue
            r = generate(s)
            row = {"id": s["id"], "movie": s["movie"], "reply": r.reply, "raw": r.raw,
                   "violations": [[v.kind, v.surface] for v in r.violations]}
            f.write(json.dumps(row) + "\n")
            f.flush()
            rows.append(row)
            fresh += 1
            if fresh % 20 == 0:
                print(f"  {name}: {i + 1}/{len(samples)} ({(time.time() - t0) / fresh:.1f} s/reply)", flush=True)
    return rows, fresh


def scores(rows: list[dict[str, Any]], refs: dict[str, str], checker, knowledge,
           facts: dict[str, list[str]], said: dict[str, str], titles: dict[str, str],
           plot_of: dict[int, tuple[str, list[str]]]) -> dict[str, Any]:
    if not rows:
        return {"n": 0}
    hyps = [r["reply"] for r in rows]
    references = [refs[r["id"]] for r in rows]
    after = [checker.violations(r["reply"], knowledge[r["id"]]) for r in rows]
    out: dict[str, Any] = {"n": len(rows)}
    for n in (1, 2, 3, 4):
        out[f"distinct_{n}"] = round(distinct_n(hyps, n), 4)
    for n in (1, 2, 3, 4):
        out[f"distinct_{n}_per_reply_unicrs"] = round(distinct_n_per_sentence(hyps, n), 3)
    out["bleu"] = round(bleu(hyps, references), 3)
    out["bleu_1"] = round(bleu_n(hyps, references, 1), 2)
    out["bleu_2"] = round(bleu_n(hyps, references, 2), 2)
    out["length_words"] = round(sum(len(h.split()) for h in hyps) / len(hyps), 2)
    out["grounding_error_rate_before_repair"] = round(sum(bool(r["violations"]) for r in rows) / len(rows), 4)
    out["grounding_error_rate_served"] = round(sum(bool(v) for v in after) / len(rows), 4)
    out["replies_with_violations_before_repair"] = sum(bool(r["violations"]) for r in rows)
    # Informativeness proxy: the reply names at least one of the prompt's related entities or KG-fact entities,
    # or tells something of the movie's plot summary (two of its content words beyond title, genres and seeker's)
    names = [any(f.lower() in r["reply"].lower() for f in facts[r["id"]]) for r in rows]
    plots = [plot_use(r["reply"], plot, [titles[r["id"]], *genres, said[r["id"]]])
             for r in rows for plot, genres in [plot_of[r["movie"]]]]
    out["names_fact_rate"] = round(sum(names) / len(rows), 4)
    out["plot_use_rate"] = round(sum(plots) / len(rows), 4)
    out["knowledge_use_rate"] = round(sum(a or b for a, b in zip(names, plots)) / len(rows), 4)
    # What a reader notices (issue 25): saying a thing twice, a system's stock phrases, ignoring the seeker
    out["repetition_rate"] = round(repetition_rate(hyps), 4)
    out["stock_phrase_rate"] = round(stock_phrase_rate(hyps), 4)
    out["dialogue_use_rate"] = round(sum(dialogue_use(r["reply"], said[r["id"]], [titles[r["id"]]])
                                         for r in rows) / len(rows), 4)
    out["length_15_60_words_rate"] = round(sum(15 <= len(h.split()) <= 60 for h in hyps) / len(hyps), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="artifacts/generator/smollm2")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--n-plain", type=int, default=100)
    ap.add_argument("--n-seen-extra", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads (1 when another job shares 2 cores)")
    ap.add_argument("--qwen", default="0.5b",
                    help="Qwen2.5-Coder sizes scored zero-shot with the `friend` prompt, comma-separated ('' = none); "
                         "SIZE:N shows the model only the last N dialogue turns")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=DIR",
                    help="another fine-tuned generator, scored as system NAME with the ECR prompt "
                         "(e.g. finetuned_qwen05=artifacts/generator/qwen05)")
    args = ap.parse_args()
    extras = dict(e.split("=", 1) for e in args.extra)
    if any(not Path(d, "generator.json").exists() for d in extras.values()):
        ap.error(f"--extra: no trained generator (generator.json) in {', '.join(extras.values())}")
    CACHE.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    from ecrs.inference.generator import GenerationResult, ResponseGenerator

    kb = load_review_kb()
    seen_movies = {m.entity for m in kb.with_reviews()}
    samples, candidates = test_samples(kb, args.n, args.seed)
    n_candidates = len(candidates)
    # Few test turns recommend a movie with training reviews: add a seeded sample of those turns so the
    # seen/unseen split has enough seen samples. "all" stays the unbiased random sample.
    chosen = {s["id"] for s in samples}
    seen_pool = [c for c in candidates if c["movie"] in seen_movies and c["id"] not in chosen]
    extra = random.Random(args.seed + 1).sample(seen_pool, min(args.n_seen_extra, len(seen_pool)))
    random_ids = set(chosen)
    samples = samples + extra
    emotion_source = detect_emotions(samples)
    linker = build_redial_linker()
    checker = GroundingChecker(linker)
    tuned = ResponseGenerator.load(args.model, linker=linker, kb=kb, max_tokens=args.max_tokens, n_threads=args.threads)
    zero = ResponseGenerator.zero_shot(linker=linker, kb=kb, max_tokens=args.max_tokens, n_threads=args.threads)
    zero_plain = ResponseGenerator(zero.engine, kb, checker, type(zero.settings)(
        **{**zero.settings.__dict__, "format": "plain"}), name="zero-shot-plain")

    def template(s):
        reply = f"You might like {kb.movies[s['movie']].title}."
        return GenerationResult(reply=reply, raw=reply, violations=[])

    def reference(s):  # the real ReDial reply, scored like a system (what people wrote)
        return GenerationResult(reply=s["reference"], raw=s["reference"], violations=[])

    systems = {
        "reference": (reference, samples),
        "template": (template, samples),
        "zero_shot_chat": (lambda s: zero.generate_detailed(s["movie"], use_dialogue=False), samples),
        "zero_shot_plain": (lambda s: zero_plain.generate_detailed(s["movie"], use_dialogue=False),
                            samples[:args.n_plain]),  # random-sample turns only
        "finetuned": (lambda s: tuned.generate_detailed(s["movie"], use_dialogue=False), samples),
        "finetuned_dialogue_emotion": (
            lambda s: tuned.generate_detailed(s["movie"], s["context"], s["emotion"], use_dialogue=True), samples),
    }
    for name, directory in extras.items():
        extra_gen = ResponseGenerator.load(directory, linker=linker, kb=kb, max_tokens=args.max_tokens,
                                           n_threads=args.threads)
        systems[name] = (lambda s, g=extra_gen: g.generate_detailed(s["movie"], use_dialogue=False), samples)
    # The friend prompt (genres, plot, what a good reply is, the dialogue and emotion): zero-shot, for models that
    # follow instructions
    # "1.5b:1": the same model shown only the last dialogue turn (the served setting, a shorter prompt)
    friends = {"zero_shot_friend": (None, None)}
    for spec in filter(None, args.qwen.split(",")):
        size, _, turns = spec.partition(":")
        friends[f"qwen{size.replace('.', '')}_friend" + (f"_{turns}turn" if turns else "")] = (
            size, int(turns) if turns else None)
    for name, (size, turns) in friends.items():
        friend = ResponseGenerator.zero_shot(qwen_gguf(size) if size else None, linker=linker, kb=kb,
                                             max_tokens=args.max_tokens, n_threads=args.threads, format="friend",
                                             dialogue=True, **({"n_turns": turns} if turns else {}))
        systems[name] = (lambda s, g=friend: g.generate_detailed(s["movie"], s["context"], s["emotion"],
                                                                 use_dialogue=True), samples[:args.n])
    refs = {s["id"]: s["reference"] for s in samples}
    said = {s["id"]: next((t for r, t in reversed(s["context"]) if r == "seeker"), "") for s in samples}
    titles = {s["id"]: kb.movies[s["movie"]].title for s in samples}
    plot_of = {s["movie"]: (kb.movies[s["movie"]].plot, kb.movies[s["movie"]].genres) for s in samples}
    knowledge = {}
    facts = {}
    for s in samples:  # the ECR prompt's knowledge (the dialogue variant may also draw on the dialogue)
        p, knowledge[s["id"]] = tuned.prompt(s["movie"], use_dialogue=False)
        facts[s["id"]] = [*p.entities, *(e for _, e in p.triples)]
    know_dialogue = {s["id"]: tuned.prompt(s["movie"], s["context"], s["emotion"], use_dialogue=True)[1]
                     for s in samples}
    know_friend = {}  # per number of dialogue turns shown: what each friend system's prompt held
    for turns in {t for _, t in friends.values()}:
        settings = type(tuned.settings)(format="friend", **({"n_turns": turns} if turns else {}))
        friend_prompts = ResponseGenerator(tuned.engine, kb, checker, settings)
        know_friend[turns] = {s["id"]: friend_prompts.prompt(s["movie"], s["context"], s["emotion"],
                                                             use_dialogue=True)[1] for s in samples}
    table, examples = {}, {}
    for name, (fn, subset) in systems.items():
        t0 = time.time()
        rows, fresh = run_system(name, subset, fn)
        know = know_friend[friends[name][1]] if name in friends else know_dialogue if name == "finetuned_dialogue_emotion" \
            else knowledge
        table[name] = {
            "all": scores([r for r in rows if r["id"] in random_ids], refs, checker, know, facts, said, titles,
                          plot_of),
            "seen_movies": scores([r for r in rows if r["movie"] in seen_movies], refs, checker, know, facts, said,
                                  titles, plot_of),
            "unseen_movies": scores([r for r in rows if r["movie"] not in seen_movies], refs, checker, know, facts,
                                    said, titles, plot_of),
            "seconds": round(time.time() - t0, 1),  # this run's; with cached replies, little was generated now
            "replies_generated_now": fresh,
        }
        examples[name] = [{"reference": refs[r["id"]], "reply": r["reply"], "raw": r["raw"]} for r in rows[:3]]
        if name == "finetuned_dialogue_emotion":
            examples["dialogue_context_of_those"] = [next(s for s in samples if s["id"] == r["id"])["context"][-2:]
                                                     for r in rows[:3]]
        a = table[name]["all"]
        print(f"{name:28s} n={a['n']:3d} D1 {a['distinct_1']:.3f} D2 {a['distinct_2']:.3f} BLEU {a['bleu']:.2f} "
              f"len {a['length_words']:.1f} ground-err {a['grounding_error_rate_before_repair']:.3f} -> "
              f"{a['grounding_error_rate_served']:.3f}", flush=True)
    training = {}
    if (Path(args.model) / "train_log.json").exists():
        training["training"] = training_summary(Path(args.model))
    if extras:
        training["training_extra"] = {name: training_summary(Path(d)) for name, d in extras.items()
                                      if (Path(d) / "train_log.json").exists()}
    write_results(RESULTS, "generation", table, data=bundled_files("redial/test.jsonl.gz"), definitions={
        "distinct_n": "true ratio: distinct n-grams / n-grams over all replies (lowercased, whitespace tokens)",
        "distinct_n_per_reply_unicrs": "UniCRS/ECR code's variant: distinct n-grams / number of replies",
        "bleu": "sacrebleu corpus BLEU-4 vs the real recommender reply; bleu_1/2 individual orders",
        "grounding": "share of replies with a year or a linked person/movie/company name absent from the "
                     "prompt's knowledge (genres and lowercase words are not names)",
        "knowledge_use_rate": "share of replies naming >= 1 of the prompt's related entities or KG-fact "
                              "entities (names_fact_rate) or telling something of the movie's plot summary "
                              "(plot_use_rate: metrics.plot_use, >= 2 shared content words beyond the title, "
                              "genres and the seeker's words); an informativeness proxy",
        "repetition_rate": "share of replies repeating a word 3-gram or a sentence (metrics.repeats)",
        "stock_phrase_rate": "share of replies containing a word 4-gram that >= 5 % (and >= 2) of the same system's "
                             "replies contain (metrics.stock_phrases: its stock phrases, found from its replies)",
        "dialogue_use_rate": "share of replies sharing a content word with the seeker's last message, the "
                             "recommended title's words aside (metrics.dialogue_use)",
        "length_15_60_words_rate": "share of replies of 15 to 60 whitespace words",
    }, evaluation={
        "samples": {"split": "ReDial test (bundled official test split)", "n": len(samples),
                    "n_plain_format": min(args.n_plain, len(samples)),
                    "candidates": n_candidates, "seed": args.seed,
                    "definition": "recommender turns mentioning >= 1 catalogue movie; one sample per turn "
                                  "(its first catalogue movie); seeded random subset for CPU time",
                    "seen_in_random_sample": sum(s["movie"] in seen_movies for s in samples if s["id"] in random_ids),
                    "seen_extra": len(extra),
                    "seen_pool": len(seen_pool) + sum(s["movie"] in seen_movies for s in samples
                                                      if s["id"] in random_ids),
                    "split_note": "'all' = the random sample only; 'seen_movies' / 'unseen_movies' also include "
                                  "the extra seeded sample of turns whose movie has training reviews"},
        "emotion_source": emotion_source,
        "decoding": {"greedy": True, "no_repeat_ngram": 3, "max_new_tokens": args.max_tokens,
                     "served_reply": "first sentence + continuation sentences that pass the grounding check; "
                                     "an unfinished last sentence is dropped"},
        "examples": examples,
        "judge": "run separately by benchmarks/judge.py: see the top-level `judge` key and benchmarks/results/judge.json",
        "model": args.model,
        "extra_models": extras,
        "seconds": round(time.time() - t_start, 1),
    }, review_kb=kb.stats, **training)


def training_summary(model_dir: Path) -> dict[str, Any]:
    log = json.loads((model_dir / "train_log.json").read_text())
    last = log["history"][-1] if log["history"] else {}
    return {
        "base": log["config"]["base"], "format": log["config"]["format"], "max_len": log["config"]["max_len"],
        "lora": log["config"]["lora"], "lr": log["config"]["train"]["lr"],
        "batch_size": log["config"]["train"]["batch_size"], "steps": log["steps"],
        "examples_seen": log["steps"] * log["config"]["train"]["batch_size"],
        "train_examples": log["train_examples"], "valid_examples": log["valid_examples"],
        "example_stats": log["examples"], "tokens_per_row": log["tokens_per_row"],
        "emotion_source_in_training": log["emotion_source"],
        "train_seconds": log["train_seconds_total"], "seconds_per_step": log["seconds_per_step"],
        "setup_seconds": log["data_seconds"], "wall_seconds": log["wall_seconds"],
        "valid_loss_base": log.get("valid_loss_base"), "valid_loss_finetuned": last.get("valid_loss"),
        "budget_bar": "<= 60 min on 2 cores for the bundled data",
    }

if __name__ == "__main__":
    main()
