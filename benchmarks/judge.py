"""The judge asked about one dimension at a time, read only where it passes known-answer controls.

    .venv/bin/python benchmarks/judge.py [--pairs 200] [--dev 20] [--held-out 40] [--threads 2]

For emotional intensity (EI) and lifelikeness (LL), the issue-5 dimensions, in three steps:

1. **Choose the question on dev controls.** Each candidate (`CANDIDATES`) is asked on control pairs built from
   the first `--dev` turns. A candidate is either pairwise (both replies shown, "which is better on <dimension>?",
   `Judge.pairwise(dimensions=...)`, its definition the library's or reworded) or yes/no (each reply shown alone,
   "does it ...?", `Judge.paired_yes_no`; the reply with the higher P(yes) wins). The controls: EI, the
   base reply plus one enthusiastic, fact-free sentence vs the base reply; LL, the base reply vs its words shuffled,
   and the base reply vs the same reply opened by "As an AI language model, ..." (`robotic_pairs`). The candidate
   whose worst control wins most (pairwise: position-calibrated, the judge's P(A)/P(B)/P(tie) at its first answer
   token averaged over both orders; yes/no: P(yes) higher) is chosen; ties go to the earlier candidate.
2. **Gate on held-out controls.** The chosen wording is asked once more on controls from the next `--held-out`
   turns (not used to choose). The dimension qualifies when the known-better reply wins at least `--gate` (0.8)
   of every control, calibrated.
3. **Judge the systems.** Only a qualified dimension is asked on the real pairs: fine-tuned SmolLM2 vs the
   zero-shot base on the first `--pairs` turns of generation_eval's sample (`pair_items`), with the chosen question.
   A dimension that fails its gate is reported as not measurable by this judge, with its control numbers.
   `--others template:30,...` asks the same question of other systems against the base (their first N turns).
   Each result also splits the win rate by the length ratio of the two replies (`by_length_ratio`): the fine-tuned
   replies are about twice as long as the base's, so a judge that just likes longer text would win there too.

Every answer goes through the judge cache (artifacts/judge/cache.sqlite), so a rerun asks only what is new. How
the candidates came about: the pairwise wordings were tried first; the yes/no questions were added after a quick
look at 10 dev turns (logged in the stop notes) showed pairwise LL questions losing the shuffled control and yes/no
questions winning it. The chosen questions are what `ecrs judge` asks by default (`Judge.compare`). Only dev turns were looked at; the held-out gate and the real pairs were asked once, by this
script. The controls are built from the same ReDial test turns as the real pairs (their base replies).
Writes benchmarks/results/judge.json (`metrics`: per dimension, whether it qualified, the question, and each
system's calibrated win / loss / tie against the base).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from generation_eval import CACHE, test_samples

from ecrs.data.reviews import load_review_kb
from ecrs.evaluation.judge import (
    DIMENSION_DEFINITIONS,
    YES_NO_QUESTIONS,
    Judge,
    PairItem,
    control_pairs,
    render_context,
    robotic_pairs,
    summarize_pairwise,
    summarize_yes_no,
)
from ecrs.evaluation.results import write_results
from ecrs.inference.llm import LLMConfig, make_backend
from ecrs.inference.model_files import qwen_gguf

RESULTS = Path("benchmarks/results/judge.json")
GENERATION = Path("benchmarks/results/generation.json")
DIMS = ("emotional_intensity", "lifelikeness")
_NATURAL = YES_NO_QUESTIONS["lifelikeness"][0]
# Candidates per dimension: ("pairwise", definition or None = DIMENSION_DEFINITIONS) or ("yes_no", (instructions,
# question) or None = YES_NO_QUESTIONS).
CANDIDATES: dict[str, list[tuple[str, object]]] = {
    "emotional_intensity": [("pairwise", None)],
    "lifelikeness": [
        ("pairwise", None),
        ("pairwise", "how much the reply reads like something a real person would write in a chat: fluent, "
                     "grammatical, natural sentences, as opposed to awkward, broken or machine-like text"),
        ("yes_no", (_NATURAL, "Does the reply read like natural text written by a person?")),
        ("yes_no", ("You judge whether a reply in a movie-recommendation chat sounds like a real person talking to a "
                    "friend, rather than a machine.", "Does the reply sound like a real person talking?")),
        ("yes_no", None),  # "Could a real movie fan have written this reply?", which the library took after this run
    ],
}


def read_outputs(name: str) -> dict[str, dict]:
    path = CACHE / f"{name}.jsonl"
    if not path.exists():
        sys.exit(f"{path} missing: run benchmarks/generation_eval.py first")
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


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


def controls(dim: str, items: list[PairItem]) -> dict[str, list[PairItem]]:
    """{control name: pairs whose a reply is better on `dim` by construction}."""
    if dim == "emotional_intensity":
        return {"enthusiasm": control_pairs(items)["emotional_intensity"]}
    return {"shuffled": control_pairs(items)["lifelikeness"], "robotic": robotic_pairs(items)}


LENGTH_BINS = ((0.0, 1.5), (1.5, 3.0), (3.0, float("inf")))  # words in reply a / words in reply b


def by_length(pairs: list[PairItem], rows: list[dict], dim: str) -> list[dict]:
    """The calibrated win rate of a within bins of the length ratio a / b: does the longer reply simply win?"""
    out = []
    for lo, hi in LENGTH_BINS:
        sel = [r["calibrated"][dim] for it, r in zip(pairs, rows) if "calibrated" in r
               and lo <= len(it.a.split()) / max(1, len(it.b.split())) < hi]
        out.append({"ratio": [lo, None if hi == float("inf") else hi], "n": len(sel),
                    "win": round(sum(v == "a" for v in sel) / len(sel), 4) if sel else None})
    return out


def ask(judge: Judge, pairs: list[PairItem], dim: str, candidate: tuple[str, object]) -> dict:
    mode, wording = candidate
    if mode == "yes_no":
        rows = judge.paired_yes_no(pairs, dim, progress=True, question=wording)
        s = summarize_yes_no(rows)
        return {"calibrated": {k: s.get(k) for k in ("win", "loss", "tie", "n", "mean_p_a_minus_p_b")},
                "yes_rate": s.get("yes_rate"), "mean_p_yes": s.get("mean_p_yes"), "n_failed": s["n_failed"],
                "by_length_ratio": by_length(pairs, rows, dim)}
    rows = judge.pairwise(pairs, progress=True, dimensions=[dim], definitions={dim: wording} if wording else None)
    s = summarize_pairwise(rows)
    d = s["dimensions"][dim]
    return {"calibrated": d.get("calibrated"), "both_orders": {k: d[k] for k in ("win", "loss", "tie", "n")},
            "single_order": d["single_order"], "first_position_prob": s.get("first_position_prob"),
            "n_failed": s["n_failed"], "by_length_ratio": by_length(pairs, rows, dim)}


def worst_win(result: dict[str, dict]) -> float:
    return min((r["calibrated"] or {}).get("win") or 0.0 for r in result.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=200, help="real turns judged on a qualified dimension")
    ap.add_argument("--dev", type=int, default=20, help="turns whose controls choose the wording")
    ap.add_argument("--held-out", type=int, default=40, help="the next turns, whose controls gate the dimension")
    ap.add_argument("--gate", type=float, default=0.8, help="calibrated win every control must reach")
    ap.add_argument("--system", default="finetuned")
    ap.add_argument("--base", default="zero_shot_chat")
    ap.add_argument("--others", default="",
                    help="more systems judged on each qualified dimension, name:N turns (comma-separated), e.g. "
                         "template:30,finetuned_qwen05:30")
    ap.add_argument("--dims", default=",".join(DIMS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-turns", type=int, default=3)
    args = ap.parse_args()
    t0 = time.time()
    n = max(args.pairs, args.dev + args.held_out)
    others = {name: int(k) for name, k in (o.split(":") for o in args.others.split(",") if o)}
    _, items, _, _ = pair_items({args.system: n}, args.base, args.max_turns)
    other_items = pair_items(others, args.base, args.max_turns)[1] if others else []
    dev, held = items[:args.dev], items[args.dev:args.dev + args.held_out]
    # The local Qwen2.5-Coder-1.5B GGUF, grammar-constrained, with log-probabilities (llama.cpp always returns them)
    judge = Judge(make_backend(LLMConfig(threads=args.threads), default_gguf=qwen_gguf),
                  cache="artifacts/judge/cache.sqlite")
    out: dict = {}
    try:
        for dim in args.dims.split(","):
            tried = []
            for cand in CANDIDATES[dim]:
                mode, wording = cand
                res = {c: ask(judge, pairs, dim, cand) for c, pairs in controls(dim, dev).items()}
                default = DIMENSION_DEFINITIONS[dim] if mode == "pairwise" else YES_NO_QUESTIONS.get(dim)
                tried.append({"mode": mode, "wording": wording or default, "default": wording is None,
                              "dev_controls": res, "worst_dev_win": worst_win(res)})
                print(dim, mode, "dev", tried[-1]["worst_dev_win"], {c: r["calibrated"] for c, r in res.items()},
                      flush=True)
            best = max(range(len(tried)), key=lambda i: (tried[i]["worst_dev_win"], -i))
            cand = CANDIDATES[dim][best]
            held_res = {c: ask(judge, pairs, dim, cand) for c, pairs in controls(dim, held).items()}
            passed = worst_win(held_res) >= args.gate
            print(dim, "held-out", worst_win(held_res), "passed" if passed else "failed", flush=True)
            entry = {"candidates": tried, "chosen": best, "held_out_controls": held_res, "passed": passed}
            if passed:
                real = items[:args.pairs]
                entry["pairs"] = {"system": args.system, "base": args.base, **ask(judge, real, dim, cand)}
                print(dim, "pairs", entry["pairs"]["calibrated"], flush=True)
                for name in others:
                    mine = [it for it in other_items if it.a_name == name]
                    entry.setdefault("others", {})[name] = ask(judge, mine, dim, cand)
                    print(dim, name, entry["others"][name]["calibrated"], flush=True)
            out[dim] = entry
    finally:
        judge.close()
    metrics = {dim: {"passed": e["passed"], "mode": e["candidates"][e["chosen"]]["mode"],
                     "wording": e["candidates"][e["chosen"]]["wording"],
                     "calibrated": (e.get("pairs") or {}).get("calibrated"),
                     "others": {k: v["calibrated"] for k, v in (e.get("others") or {}).items()}}
               for dim, e in out.items()}
    result = write_results(RESULTS, "judge", metrics, data={"replies": str(CACHE)},
                           description=__doc__.split("\n")[0], judge=judge.meta, dev_turns=args.dev,
                           held_out_turns=args.held_out, gate=args.gate, pairs=args.pairs, dimensions=out,
                           requests=judge.requests, cache_hits=judge.cache_hits, seconds=round(time.time() - t0, 1))
    print("wrote", RESULTS, f"({judge.requests} requests, {judge.cache_hits} cached, {result['seconds']} s)")


if __name__ == "__main__":
    main()
