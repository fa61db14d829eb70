"""Why judge-v3 shows no example answer: how far the example in the judge's instructions pulls its verdicts.

    .venv/bin/python benchmarks/judge_anchor.py [--n 25] [--system finetuned] [--threads 2]

judge-v2's instructions ended with a sample answer holding concrete values, {"emotional_intensity": "A",
"emotional_persuasiveness": "B", "logic_persuasiveness": "tie", "informativeness": "A", "lifelikeness": "B"}
(`V2_EXAMPLE`). For the first `--n` pairs that benchmarks/judge.py judges (`--system` vs the zero-shot base, both
orders) the local judge answers under four instructions that differ only in that sample: v2's, two relabellings of
it (A->B->tie->A and A->tie->B->A, so every dimension is shown each of A, B and tie once over the three), and none
(judge-v3, which names the allowed values in words). For each dimension the script counts how often an answer
equals the value the sample showed for it, and compares that with the same count under the no-sample instructions:

    pull = share(answer == sample's value | that sample shown) - share(answer == that value | no sample)

averaged over the three samples (and over the judge's probability of that value: `prob_pull`). A judge that reads
only the replies has pull 0. Also per instructions: the calibrated, both-orders and single-order verdicts
(ecrs.evaluation.judge.summarize_pairwise). Answers go through the judge cache (artifacts/judge/cache.sqlite), so
the no-sample answers are shared with benchmarks/judge.py.

`--controls N` also judges, on the first N of those turns, pairs whose better reply is known by construction, under
judge-v2's instructions and judge-v3's: the base reply with one enthusiastic, fact-free sentence appended against the
base reply alone (must win emotional intensity), and the base reply against the same words in shuffled order (must
win lifelikeness). A judge that cannot separate these cannot separate the systems on those dimensions either.
`--single-question` also asks the same control pairs one dimension per request ("Which reply is better on
emotional intensity: ...? Answer A, B or tie", the answer constrained to those three) and reads the judge's
probabilities of the three from its first answer token: does a simpler question let this judge separate them?
`--single-pairs N --single-dims emotional_intensity` then asks the same way on the first N real pairs (`--system`
vs the base, both orders, position-calibrated), for the dimensions a judge should only be read on once it has
passed their control.

Writes benchmarks/results/judge_anchor.json.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from judge import pair_items  # noqa: E402  (benchmarks/judge.py, beside this script)

from ecrs.evaluation.evaluate import provenance
from ecrs.evaluation.judge import (
    CONTROL_ENTHUSIASM,
    DIMENSIONS,
    JUDGE_PROMPT_VERSION,
    V2_EXAMPLE,
    Judge,
    JudgeLlamaBackend,
    PairItem,
    control_pairs,
    pairwise_system,
    summarize_pairwise,
)

RESULTS = Path("benchmarks/results/judge_anchor.json")
RELABEL = {"A": "B", "B": "tie", "tie": "A"}


def control_table(judge: Judge, items: list[PairItem], n: int, shown: dict[str, dict[str, str] | None]) -> dict:
    """Per instructions (v2's sample, none) and control: the known-better reply's calibrated win/loss/tie, both-orders
    win, forced lean, on the dimension the control is about."""
    out: dict = {}
    for name in ("v2_sample", "no_sample"):
        ex = shown[name]
        system = None if ex is None else pairwise_system(ex)
        for dim, pairs in control_pairs(items[:n]).items():
            s = summarize_pairwise(judge.pairwise(pairs, progress=True, system=system))["dimensions"][dim]
            out.setdefault(name, {})[dim] = {"calibrated": s.get("calibrated"), "both_orders_win": s["win"],
                                             "single_order": s["single_order"], "n": s["n"]}
    return out


def single_question_table(judge: Judge, by_dim: dict[str, list[PairItem]]) -> dict:
    """Pairs asked one dimension at a time (`Judge.pairwise(dimensions=...)`): calibrated win/loss/tie and lean of
    reply a, per dimension."""
    out = {}
    for dim, pairs in by_dim.items():
        s = summarize_pairwise(judge.pairwise(pairs, progress=True, dimensions=[dim]))
        out[dim] = {"calibrated": s["dimensions"][dim]["calibrated"]}
        print("single question", dim, out[dim], flush=True)
    return out


def samples() -> dict[str, dict[str, str] | None]:
    rot1 = {d: RELABEL[v] for d, v in V2_EXAMPLE.items()}
    rot2 = {d: RELABEL[v] for d, v in rot1.items()}
    return {"v2_sample": dict(V2_EXAMPLE), "relabelled_1": rot1, "relabelled_2": rot2, "no_sample": None}


def answers(rows: list[dict], d: str) -> list[tuple[str, dict[str, float] | None]]:
    """Every single-order answer on dimension d with its probabilities (as shown: A = first)."""
    return [(r[o][d], (r.get(o + "_probs") or {}).get(d)) for r in rows if "ab" in r for o in ("ab", "ba")]


def share(rows: list[dict], d: str, value: str) -> tuple[float, float | None]:
    """(share of answers == value, mean probability of value) on dimension d."""
    ans = answers(rows, d)
    probs = [p[value] for _, p in ans if p]
    return sum(v == value for v, _ in ans) / len(ans), (sum(probs) / len(probs) if probs else None)


def pull_table(by_variant: dict[str, list[dict]], shown: dict[str, dict[str, str] | None]) -> dict:
    """Per dimension and sample: share of answers equal to the sample's value, with and without that sample."""
    out: dict = {}
    for d in DIMENSIONS:
        per = {}
        for name, ex in shown.items():
            if ex is None:
                continue
            s_with, p_with = share(by_variant[name], d, ex[d])
            s_without, p_without = share(by_variant["no_sample"], d, ex[d])
            per[name] = {"value": ex[d], "share_with": round(s_with, 4), "share_without": round(s_without, 4),
                         "pull": round(s_with - s_without, 4),
                         "prob_pull": round(p_with - p_without, 4) if p_with is not None and p_without is not None
                         else None}
        out[d] = {"samples": per, "mean_pull": round(sum(v["pull"] for v in per.values()) / len(per), 4)}
    pulls = [v["pull"] for d in out.values() for v in d["samples"].values()]
    probs = [v["prob_pull"] for d in out.values() for v in d["samples"].values() if v["prob_pull"] is not None]
    return {"dimensions": out, "mean_pull": round(sum(pulls) / len(pulls), 4),
            "mean_prob_pull": round(sum(probs) / len(probs), 4) if probs else None,
            "positive_pulls": f"{sum(p > 0 for p in pulls)} of {len(pulls)}"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=25, help="pairs (each judged in both orders under each instruction)")
    ap.add_argument("--system", default="finetuned")
    ap.add_argument("--base", default="zero_shot_chat")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-turns", type=int, default=3)
    ap.add_argument("--cache", default="artifacts/judge/cache.sqlite")
    ap.add_argument("--controls", type=int, default=0, help="turns of known-answer control pairs (0: none)")
    ap.add_argument("--single-question", action="store_true", help="also ask the controls one dimension at a time")
    ap.add_argument("--single-pairs", type=int, default=0, help="real pairs asked one dimension at a time")
    ap.add_argument("--single-dims", default="emotional_intensity,lifelikeness")
    args = ap.parse_args()
    _, items, _, _ = pair_items({args.system: args.n}, args.base, args.max_turns)
    judge = Judge(JudgeLlamaBackend(n_threads=args.threads), cache=args.cache)
    shown = samples()
    t0 = time.time()
    by_variant = {}
    for name, ex in shown.items():
        system = None if ex is None else pairwise_system(ex)
        by_variant[name] = judge.pairwise(items, progress=True, system=system)
        s = summarize_pairwise(by_variant[name])
        print(name, {d[:12]: (v["calibrated"]["win"], v["calibrated"]["loss"]) for d, v in s["dimensions"].items()
                     if "calibrated" in v}, "first", s["first_position_rate"], flush=True)
    table = pull_table(by_variant, shown)
    controls = control_table(judge, items, args.controls, shown) if args.controls else None
    single = (single_question_table(judge, control_pairs(items[:args.controls]))
              if args.controls and args.single_question else None)
    single_real = None
    if args.single_pairs:
        _, real, _, _ = pair_items({args.system: args.single_pairs}, args.base, args.max_turns)
        single_real = single_question_table(judge, {d: real for d in args.single_dims.split(",")})
    result = {
        "what": "how far a sample answer with concrete values in the pairwise judge's instructions pulls its "
                "verdicts towards those values (pull = share of answers equal to the sample's value with that sample "
                "shown minus without any sample; 0 = no pull)",
        "judge_model": judge.backend.model, "prompt_version_without_sample": JUDGE_PROMPT_VERSION,
        "pairs": len(items), "system": args.system, "base": args.base, "samples": shown,
        "pull": table,
        "verdicts": {name: summarize_pairwise(rows) for name, rows in by_variant.items()},
        "controls": controls,
        "controls_single_question": single,
        "single_question": {"pairs": args.single_pairs, "system": args.system, "base": args.base,
                            "dimensions": single_real} if single_real else None,
        "controls_enthusiasm_sentences": list(CONTROL_ENTHUSIASM) if controls else None,
        "requests": judge.requests, "cache_hits": judge.cache_hits,
        "seconds": round(time.time() - t0, 1), "threads": args.threads,
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        **provenance(),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("mean pull", table["mean_pull"], "prob pull", table["mean_prob_pull"], table["positive_pulls"])
    for d, v in table["dimensions"].items():
        print(f"{d:26s}", {k: (s["value"], s["share_with"], s["share_without"]) for k, s in v["samples"].items()})
    for name, per in (controls or {}).items():
        print("controls", name, {d: (c["calibrated"], c["both_orders_win"]) for d, c in per.items()})


if __name__ == "__main__":
    main()
