"""The default generator against others, on all five ECR dimensions, by the judge that passed its fault controls.

    .venv/bin/python benchmarks/judge_systems.py [--turns 20] [--system qwen15b_friend_1turn]
                                                 [--others template,finetuned] [--threads 2]

The replies are generation_eval's (its reply cache, artifacts/generator/eval/NAME.jsonl: run it first) on the first
`--turns` turns of its seeded ReDial test sample that every system covers. Each pair is the system's reply (a)
against another's (b) on the same turn; the judge sees the conversation, the recommended movie and its facts, as
in benchmarks/judge_controls.py, and asks each dimension the way it passed those controls (`Judge.compare`:
lifelikeness each reply alone, yes or no; the other four both replies shown, both orders, position-calibrated;
the fact gate on informativeness and logic persuasiveness). Reported per opponent and dimension: the calibrated
win / loss / tie of the system, and beside it the share of pairs where the two orders agreed (pairwise
dimensions). The fact gate checks each reply against everything the `friend` prompt showed (plot, genres, review
entities, facts), not only what the judge reads. Writes benchmarks/results/judge_systems.json, and a blinded rating form for people (`--form`: the
system against each of the others on 60 turns, shuffled; `ecrs.evaluation.judge.export_form`: CSV, an HTML page,
and the key that says which reply is which).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from generation_eval import CACHE, test_samples

from ecrs.data.linking import build_redial_linker
from ecrs.data.reviews import load_review_kb
from ecrs.evaluation.judge import DIMENSIONS, Judge, PairItem, export_form, render_context, summarize_compare
from ecrs.evaluation.results import write_results
from ecrs.inference.grounding import GroundingChecker
from ecrs.inference.llm import LLMConfig, make_backend
from ecrs.inference.model_files import qwen_gguf

RESULTS = Path("benchmarks/results/judge_systems.json")
SAMPLE_N, SAMPLE_SEED = 200, 0  # generation_eval's defaults: the same random turns


def replies(name: str) -> dict[str, dict]:
    path = CACHE / f"{name}.jsonl"
    if not path.exists():
        raise SystemExit(f"{path}: no replies of {name!r}; run benchmarks/generation_eval.py first")
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--system", default="qwen15b_friend_1turn")
    ap.add_argument("--others", default="template,finetuned")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--form", default="reports/rating_form.csv",
                    help="also export a blinded rating form for people: the system against every system of "
                         "--form-systems, --form-items pairs, shuffled, replies in random order ('' = none)")
    ap.add_argument("--form-systems", default="reference,template,finetuned,zero_shot_friend,qwen05b_friend,"
                                              "qwen15b_friend")
    ap.add_argument("--form-items", type=int, default=60)
    args = ap.parse_args()
    t0 = time.time()
    kb = load_review_kb()
    samples, _ = test_samples(kb, SAMPLE_N, SAMPLE_SEED)
    others = args.others.split(",")
    outputs = {name: replies(name) for name in [args.system, *others]}
    turns = [s for s in samples if all(s["id"] in o for o in outputs.values())][:args.turns]
    if args.form:  # turn i against system i mod k: every system, each on different turns
        form_systems = args.form_systems.split(",")
        form_out = {name: replies(name) for name in form_systems}
        pool = [s for s in samples if s["id"] in outputs[args.system] and all(s["id"] in o for o in form_out.values())]
        form = [PairItem(f"{name}|{s['id']}", render_context(s["context"], max_turns=3),
                         outputs[args.system][s["id"]]["reply"], form_out[name][s["id"]]["reply"], args.system, name)
                for i, s in enumerate(pool[:args.form_items]) for name in [form_systems[i % len(form_systems)]]]
        print("rating form:", ", ".join(str(p) for p in export_form(form, args.form, seed=SAMPLE_SEED)))
    judge = Judge(make_backend(LLMConfig(threads=args.threads), default_gguf=qwen_gguf),
                  cache="artifacts/judge/cache.sqlite", checker=GroundingChecker(build_redial_linker()))
    metrics: dict = {}
    try:
        for other in others:
            items = []
            for s in turns:
                movie = kb.movies[s["movie"]]
                facts = "; ".join(f"{rel}: {name}" for rel, _, name in movie.triples[:4])
                context = (f"{render_context(s['context'], max_turns=3)}\n\n(Recommended movie: {movie.title}"
                           f"{'; facts: ' + facts if facts else ''})")
                # the fact gate checks against all the friend prompt showed (plot, review entities, genres)
                knowledge = "\n".join([context, movie.plot, ", ".join(movie.genres),
                                        *(name for _, name in movie.review_entities),
                                        *(name for _, _, name in movie.triples)])
                items.append(PairItem(f"{other}|{s['id']}", context, outputs[args.system][s["id"]]["reply"],
                                      outputs[other][s["id"]]["reply"], args.system, other, knowledge))
            rows = judge.compare(items, dimensions=DIMENSIONS, progress=True)
            summary = summarize_compare(rows)
            by_dim = {}
            for d in DIMENSIONS:
                x = (summary.get("dimensions") or {}).get(d) or {}
                by_dim[d] = {"win": x.get("win"), "loss": x.get("loss"), "tie": x.get("tie"), "n": x.get("n"),
                             "order_agreement": (x.get("detail") or {}).get("order_agreement"),
                             "beats_at_0.6": (x.get("win") or 0) >= 0.6,
                             "fact_gated": sum(d in ((r.get("by_dimension") or {}).get(d, {}).get("fact_gate") or {})
                                               for r in rows)}
            metrics[other] = {"dimensions": by_dim, "n_failed": summary.get("n_failed")}
            print(other, json.dumps({d: (v["win"], v["loss"]) for d, v in by_dim.items()}), flush=True)
    finally:
        judge.close()
    write_results(RESULTS, "judge_systems", {"system": args.system, "against": metrics},
                  data={"redial/test.jsonl.gz": {"sample": f"generation_eval n={SAMPLE_N} seed={SAMPLE_SEED}",
                                                 "turns": len(turns)}},
                  description=__doc__.split("\n")[0], judge=judge.meta, requests=judge.requests,
                  cache_hits=judge.cache_hits, seconds=round(time.time() - t0, 1))
    print(f"-> {RESULTS} ({round(time.time() - t0)} s)")


if __name__ == "__main__":
    main()
