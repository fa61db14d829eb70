"""Pairwise LLM judge of the generation systems vs the zero-shot base (ECR_SPEC §6 subjective scores).

    nice -n 10 .venv/bin/python benchmarks/judge.py [--n 10] [--systems template,finetuned:100,...] [--threads 1]

Replies: the outputs cached by benchmarks/generation_eval.py under artifacts/generator/eval/ (same ReDial test
turns, same order); the first `--n` turns of its random sample that every judged system covers (`name:N` judges
that system on the first N instead, e.g. more turns for the system a bar is about). Judge: the local
Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF through llama.cpp (ecrs.evaluation.judge, prompt JUDGE_PROMPT_VERSION),
greedy, all five dimensions in one answer per order, each pair judged in both orders; a preference counts only when
the orders agree. Beside that rule, the judge's probabilities of "A" / "B" / "tie" averaged over the two orders give
a position-calibrated verdict per turn and dimension (ecrs.evaluation.judge.calibrate_orders). Answers are cached in
artifacts/judge/cache.sqlite, so a rerun (or a larger --n) asks only for what is new. Writes benchmarks/results/judge.json and the "judge" key of benchmarks/results/generation.json.

`--absolute` also rates every reply on its own (0-9 per dimension, no second reply in view: no position to be biased
by) and compares each system with the base by those scores (higher wins, equal = tie): a second, independent
reading of the same bar, reported beside the pairwise one, never in its place.

Threads: on this 2-core machine, shared with training jobs, llama.cpp with 2 threads decoded at 0.3-1.1 tok/s and
with 1 thread at ~6.7 tok/s (measured before this run: with 2 threads each thread waits for a preempted partner),
so the default is 1.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from common import update_json  # noqa: E402  (benchmarks/common.py, beside this script)
from generation_eval import CACHE, test_samples

from ecrs.data.reviews import load_review_kb
from ecrs.evaluation.evaluate import provenance
from ecrs.evaluation.judge import (
    DIMENSIONS,
    JUDGE_PROMPT_VERSION,
    TOP_LOGPROBS,
    Judge,
    JudgeLlamaBackend,
    PairItem,
    ReplyItem,
    render_context,
    scores_to_preferences,
    summarize_absolute,
    summarize_pairwise,
)

RESULTS = Path("benchmarks/results/judge.json")
GENERATION = Path("benchmarks/results/generation.json")
ROWS = Path("artifacts/judge/benchmark_rows.jsonl")


def read_outputs(name: str) -> dict[str, dict]:
    path = CACHE / f"{name}.jsonl"
    if not path.exists():
        sys.exit(f"{path} missing: run benchmarks/generation_eval.py first")
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def generation_summary(result: dict) -> dict:
    """The preference bar for benchmarks/results/generation.json: win/loss/tie per system and dimension."""
    return {
        "judge_model": result["judge_model"], "prompt_version": result["prompt_version"], "base": result["base"],
        "n_turns": result["n_turns"], "details": str(RESULTS),
        "n_turns_per_system": {name: s["n"] for name, s in result["systems"].items()},
        "win_loss_tie": {name: {d: {k: s["dimensions"][d][k] for k in ("win", "loss", "tie")} for d in DIMENSIONS}
                         for name, s in result["systems"].items()},
        "single_order_win_loss_tie": {name: {d: s["dimensions"][d]["single_order"] for d in DIMENSIONS}
                                      for name, s in result["systems"].items()},
        "order_agreement": {name: s["order_agreement"] for name, s in result["systems"].items()},
        "calibrated_win_loss_tie": {name: {d: s["dimensions"][d].get("calibrated") for d in DIMENSIONS}
                                    for name, s in result["systems"].items()},
        "first_position_rate": {name: s["first_position_rate"] for name, s in result["systems"].items()},
        "first_position_prob": {name: s.get("first_position_prob") for name, s in result["systems"].items()},
        "n_failed": {name: s["n_failed"] for name, s in result["systems"].items()},
        "absolute_win_loss_tie": {name: a["dimensions"] for name, a in (result.get("absolute") or {}).items()
                                  if name in result["systems"]} or None,
        "absolute_share_of_replies_with_one_score_on_all_dimensions":
            (result.get("absolute") or {}).get("share_of_replies_with_one_score_on_all_dimensions"),
    }


def pair_items(n_of: dict[str, int], base_name: str, max_turns: int
               ) -> tuple[list[dict], list[PairItem], dict[str, dict], dict[str, dict[str, dict]]]:
    """(turns, items, base outputs, system outputs): each system's replies against the base's on the first
    `n_of[system]` turns of generation_eval's random sample that every system covers."""
    gen = json.loads(GENERATION.read_text())["evaluation"]["samples"]
    # The random sample of generation_eval, same seed, for the dialogue context of each turn.
    samples, _ = test_samples(load_review_kb(), gen["n"] - gen["seen_extra"], gen["seed"])
    base = read_outputs(base_name)
    outputs = {s: read_outputs(s) for s in n_of}
    turns = [s for s in samples if s["id"] in base and all(s["id"] in o for o in outputs.values())][:max(n_of.values())]
    # Turn-major order: consecutive requests share the system prompt and the dialogue context, which llama.cpp
    # keeps in its prompt cache.
    items = [PairItem(f"{name}|{s['id']}", render_context(s["context"], max_turns=max_turns),
                      outputs[name][s["id"]]["reply"], base[s["id"]]["reply"], name, base_name)
             for i, s in enumerate(turns) for name in n_of if i < n_of[name]]
    return turns, items, base, outputs


def absolute_comparison(rows: list[dict], systems: list[str], base: str) -> dict:
    """Absolute rows (ids `system|turn`) -> per system: mean scores, and win/loss/tie against the base by score."""
    scores: dict[str, dict[str, dict]] = {}  # system -> turn -> {dim: score}
    for r in rows:
        if "scores" in r:
            name, _, turn = r["id"].partition("|")
            scores.setdefault(name, {})[turn] = r["scores"]
    rated = [sc for per_turn in scores.values() for sc in per_turn.values()]
    # A judge that gives a reply the same number on all five dimensions rates overall quality, not each dimension.
    out = {"base_mean": summarize_absolute([r for r in rows if r["id"].startswith(base + "|")]),
           "share_of_replies_with_one_score_on_all_dimensions":
               round(sum(len(set(sc.values())) == 1 for sc in rated) / len(rated), 4) if rated else None}
    for name in systems:
        prefs = scores_to_preferences(scores.get(name, {}), scores.get(base, {}))
        n = len(prefs)
        out[name] = {
            "n": n, "mean": summarize_absolute([r for r in rows if r["id"].startswith(name + "|")])["mean"],
            "dimensions": {d: {k: round(sum(p[d] == v for p in prefs.values()) / n, 4) if n else None
                               for k, v in (("win", "a"), ("loss", "b"), ("tie", "tie"))} for d in DIMENSIONS}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10, help="test turns per system")
    ap.add_argument("--systems", default="template,finetuned,finetuned_dialogue_emotion",
                    help="comma-separated; name:N judges that system on the first N turns instead of --n")
    ap.add_argument("--base", default="zero_shot_chat")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gguf", help="judge GGUF (default: the installed Qwen2.5-Coder-1.5B Q4_K_M)")
    ap.add_argument("--cache", default="artifacts/judge/cache.sqlite")
    ap.add_argument("--max-turns", type=int, default=3, help="dialogue turns shown to the judge")
    ap.add_argument("--absolute", action="store_true", help="also rate each reply alone and compare by scores")
    ap.add_argument("--machine-note", default="", help="what else ran on the machine during the run")
    args = ap.parse_args()
    n_of = {name: int(n or args.n) for name, _, n in (s.partition(":") for s in args.systems.split(","))}
    systems = list(n_of)
    t_start = time.time()
    load_before = os.getloadavg()[0]

    turns, items, base, outputs = pair_items(n_of, args.base, args.max_turns)

    backend = JudgeLlamaBackend(args.gguf, n_threads=args.threads)
    judge = Judge(backend, cache=args.cache)
    t0 = time.time()
    rows = judge.pairwise(items, progress=True)
    ROWS.parent.mkdir(parents=True, exist_ok=True)
    ROWS.write_text("".join(json.dumps(r) + "\n" for r in rows))

    absolute = None
    if args.absolute:
        singles = [ReplyItem(f"{name}|{s['id']}", render_context(s["context"], max_turns=args.max_turns),
                             (base if name == args.base else outputs[name])[s["id"]]["reply"])
                   for i, s in enumerate(turns) for name in [args.base, *systems] if i < n_of.get(name, len(turns))]
        absolute = absolute_comparison(judge.absolute(singles, progress=True), systems, args.base)
        for name in systems:
            line = " ".join(f"{d[:12]} {v['win']}/{v['loss']}/{v['tie']}" for d, v in absolute[name]["dimensions"].items())
            print(f"absolute {name:19s} n={absolute[name]['n']} | {line}")
    judge_seconds = time.time() - t0
    per_system = {name: summarize_pairwise([r for r in rows if r["a"] == name]) for name in systems}
    for name, s in per_system.items():
        line = " ".join(f"{d[:12]} {v['win']}/{v['loss']}/{v['tie']} (single {v['single_order']['win']}, "
                        f"calibrated {(v.get('calibrated') or {}).get('win')})" for d, v in s["dimensions"].items())
        print(f"{name:28s} n={s['n']} agree={s['order_agreement']} first-pos={s['first_position_rate']} "
              f"first-pos-prob={s.get('first_position_prob')} | {line}")
    result = {
        "what": f"pairwise judge, each system (a) vs {args.base} (b), both orders, five dimensions per answer",
        "judge_model": backend.model,
        "prompt_version": JUDGE_PROMPT_VERSION,
        "base": args.base,
        "n_turns": len(turns),
        "turn_ids": [s["id"] for s in turns],
        "systems": per_system,
        "definitions": {
            "win": "share of turns where both orders preferred the system over the base",
            "loss": "share where both orders preferred the base",
            "tie": "share where both orders said tie or the two orders disagreed",
            "order_agreement": "share of (turn, dimension) verdicts on which the two orders agreed",
            "first_position_rate": "share of single-order non-tie verdicts that picked the reply shown first "
                                   "(0.5 = no position bias)",
            "single_order": "win / loss / tie over the 2n single-order judgements (each order one judgement; "
                            "each pair is shown once in each position, so position bias adds to both sides)",
            "calibrated": "win / loss / tie of the position-calibrated verdict: the judge's probabilities of A, B "
                          "and tie averaged over the two orders (P(system) = (P(A | system first) + P(B | system "
                          "second)) / 2), the most probable of the three; mean_p_a_minus_p_b = mean P(system) - "
                          "P(base); forced = shares of turns with P(system) > P(base) and the reverse: which reply the judge leans "
                          "to with tie set aside (a direction, not a verdict)",
            "first_position_prob": "the judge's mean P(A) / (P(A) + P(B)) over both orders and all dimensions "
                                   "(0.5 = no position bias)",
        },
        "absolute": absolute,
        "absolute_definition": "each reply rated alone 0-9 per dimension; win / loss / tie = share of turns where "
                               "the system's score is higher / lower / equal to the base's" if absolute else None,
        "requests": judge.requests,
        "cache_hits": judge.cache_hits,
        "seconds_judging": round(judge_seconds, 1),
        "seconds_per_request": round(judge_seconds / judge.requests, 2) if judge.requests else None,
        "seconds_total": round(time.time() - t_start, 1),
        "cache_note": "answers cached earlier (e.g. by a sizing run on the first turns) are reused, not re-asked; "
                      "seconds_per_request is over the fresh requests of this run",
        "decoding": {"temperature": 0, "grammar": "one-line JSON of the five dimensions, spaced as the model "
                                                  "writes it (since judge-v2)",
                     "top_logprobs": TOP_LOGPROBS, "threads": args.threads, "dialogue_turns_shown": args.max_turns},
        "command": "nice -n 10 .venv/bin/python " + " ".join(shlex.quote(a) for a in sys.argv),
        "git_commit": (prov := provenance())["git_commit"],
        "git_dirty": prov["git_dirty"],
        "machine": {"cpu": platform.machine(), "cores": os.cpu_count(),
                    "loadavg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                    "note": args.machine_note or None},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    update_json(GENERATION, "judge", generation_summary(result))

if __name__ == "__main__":
    main()
