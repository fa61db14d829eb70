"""Does the judge catch the faults a generator really makes? Known-answer controls on all five ECR dimensions.

    .venv/bin/python benchmarks/judge_controls.py [--turns 40] [--skip 60] [--threads 2] [--gate 0.8]

Turns: ReDial test recommender turns of generation_eval's seeded sample, after the first `--skip` (benchmarks/judge.py
chose its questions on the first 20 and gated on the next 40 of the same sample: these are held out from both).
The base reply of each control is the real ReDial reply of that turn, so no generator has to run first. Each
control (`ecrs.evaluation.judge.FAULT_CONTROLS`) adds one sentence to the base on both sides, or one of the same
length, and the judge is asked the dimension that fault must cost, the way `ecrs judge` asks it (`design`: the two
replies side by side in both orders, position-calibrated; lifelikeness each reply alone, yes or no):

  duplicated_sentence   lifelikeness              base vs base with its longest sentence said twice
  contradiction         logic_persuasiveness      base + a neutral sentence vs base + "I would not recommend it"
  swapped_fact          informativeness           base + a true fact vs the same fact with another film's value
  other_film            logic_persuasiveness      base vs the base reply of another turn (another movie)
  emotion_vs_neutral    emotional_intensity       base + an emotional sentence vs base + a neutral one
  feeling_vs_neutral    emotional_persuasiveness  base + a sentence answering the user vs base + a neutral one

The judge sees the recommended movie and its facts in the context (as the generator does in its prompt). A control
passes when the known-better reply wins at least `--gate` of its pairs (calibrated); both-orders agreement is
reported beside it. The judge runs with its fact gate (`Judge(checker=...)`: on informativeness and logic
persuasiveness, a reply naming a person, movie or year the context lacks loses to one that does not); the LLM's
verdicts alone are reported beside (`llm_only`), and `--no-fact-gate` judges with the LLM alone.
Writes benchmarks/results/judge_controls.json.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from generation_eval import test_samples

from ecrs.data.linking import build_redial_linker
from ecrs.data.reviews import load_review_kb
from ecrs.evaluation.judge import (
    FACT_DIMENSIONS,
    FAULT_CONTROLS,
    Judge,
    PairItem,
    design,
    fault_controls,
    render_context,
    summarize_pairwise,
    summarize_yes_no,
)
from ecrs.evaluation.results import write_results
from ecrs.inference.grounding import GroundingChecker
from ecrs.inference.llm import LLMConfig, make_backend
from ecrs.inference.model_files import qwen_gguf

RESULTS = Path("benchmarks/results/judge_controls.json")
SAMPLE_N, SAMPLE_SEED = 200, 0  # generation_eval's defaults: the same random turns


def control_items(turns: int, skip: int) -> tuple[list[PairItem], list[list[tuple[str, str]]], list[str]]:
    kb = load_review_kb()
    samples, _ = test_samples(kb, SAMPLE_N, SAMPLE_SEED)
    chosen = samples[skip:skip + turns]
    items, facts, titles = [], [], []
    for s in chosen:
        movie = kb.movies[s["movie"]]
        reference = s["reference"].strip()
        items.append(PairItem(s["id"], render_context(s["context"], max_turns=3), reference, reference,
                              "reference", "reference"))
        facts.append([(rel, name) for rel, _, name in movie.triples[:4]])
        titles.append(movie.title)
    return items, facts, titles


def ask(judge: Judge, pairs: list[PairItem], dim: str) -> dict:
    if design(dim) == "yes_no":
        rows = judge.paired_yes_no(pairs, dim, progress=True)
        s = summarize_yes_no(rows)
        return {"design": "yes_no", "win": s.get("win"), "loss": s.get("loss"), "tie": s.get("tie"),
                "n": s.get("n"), "n_failed": s["n_failed"]}
    rows = judge.pairwise(pairs, progress=True, dimensions=[dim])
    d = summarize_pairwise(rows)["dimensions"].get(dim, {})
    cal = d.get("calibrated") or {}
    return {"design": "pairwise", "win": cal.get("win"), "loss": cal.get("loss"), "tie": cal.get("tie"),
            "n": cal.get("n", d.get("n")), "both_orders": {k: d.get(k) for k in ("win", "loss", "tie")},
            "order_agreement": d.get("order_agreement"), "n_failed": len(rows) - d.get("n", 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--turns", type=int, default=40)
    ap.add_argument("--skip", type=int, default=60, help="sample turns benchmarks/judge.py used (dev + held-out)")
    ap.add_argument("--gate", type=float, default=0.8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--controls", default=",".join(FAULT_CONTROLS))
    ap.add_argument("--no-fact-gate", dest="fact_gate", action="store_false",
                    help="the LLM's verdicts alone, no grounding check on the fact dimensions")
    args = ap.parse_args()
    t0 = time.time()
    items, facts, titles = control_items(args.turns, args.skip)
    pairs = fault_controls(items, facts, titles)
    checker = GroundingChecker(build_redial_linker()) if args.fact_gate else None
    judge = Judge(make_backend(LLMConfig(threads=args.threads), default_gguf=qwen_gguf),
                  cache="artifacts/judge/cache.sqlite", checker=checker)
    metrics: dict = {}
    try:
        for name in args.controls.split(","):
            dim = FAULT_CONTROLS[name]
            res = ask(judge, pairs[name], dim)
            if checker is not None and dim in FACT_DIMENSIONS:  # the same answers (cached), read without the gate
                judge.checker = None
                res["llm_only"] = {k: v for k, v in ask(judge, pairs[name], dim).items() if k != "design"}
                judge.checker = checker
            res.update(dimension=dim, passed=(res["win"] or 0.0) >= args.gate)
            metrics[name] = res
            print(name, dim, res, flush=True)
    finally:
        judge.close()
    summary = {"passed": sum(m["passed"] for m in metrics.values()), "controls": len(metrics),
               "dimensions_with_a_passed_control": sorted({m["dimension"] for m in metrics.values() if m["passed"]})}
    result = write_results(RESULTS, "judge_controls", {"controls": metrics, "summary": summary},
                           data={"redial/test.jsonl.gz": {"sample": f"generation_eval n={SAMPLE_N} seed={SAMPLE_SEED}",
                                                          "turns": f"{args.skip}..{args.skip + args.turns}"}},
                           description=__doc__.split("\n")[0], judge=judge.meta, gate=args.gate,
                           fact_gate=args.fact_gate,
                           requests=judge.requests, cache_hits=judge.cache_hits, seconds=round(time.time() - t0, 1))
    print(f"{summary['passed']}/{summary['controls']} controls passed -> {RESULTS} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
