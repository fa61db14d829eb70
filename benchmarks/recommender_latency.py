"""Latency of the served recommendation turn, without HTTP: `EmpatheticRecommender.turn_events(state, text,
reply=False)`, the function `ecrs serve` and `ecrs chat` run, on the pipeline `ecrs serve` loads (trained ECR run,
emotion classifier, live linker, int8 MiniLM turn encoder, one torch thread).

Conversations replay the seeker's messages of ReDial test dialogues (at most 6 turns each, one state per dialogue),
as serving_load.py does over HTTP. Timed per turn with the turn's own events: understanding (entity linking +
emotion, up to `Understood`), recommending (the new utterance embedded, featurize, prompt + reader, scores of every
movie, memory masks, top 3: up to `Recommended`), finishing (the state remembers the turn: up to `Done`), and the
whole turn. p50 / p95 / mean in ms over the timed turns, after a few warm-up turns.

    .venv/bin/python benchmarks/recommender_latency.py [--artifacts artifacts] [--turns 300]

Run it in the server's environment (OMP_WAIT_POLICY unset, as `ecrs serve` runs: its process also decodes with
llama.cpp); the pipeline then scores with one torch thread, which keeps torch's small ops cheap (MODELS.md).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from common import bundled_files
from serving_load import DIALOGUES

from ecrs.evaluation.results import write_results
from ecrs.inference.pipeline import EmpatheticRecommender, Recommended, Understood
from ecrs.inference.state import ConversationState


def percentiles(ms: list[float]) -> dict[str, float | list[float]]:
    a = np.asarray(ms)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "mean": round(float(a.mean()), 2), "n": len(a),
            "samples_ms": [round(float(x), 3) for x in a]}  # raw per-turn times, in turn order (histogram)


def timed_turn(bot: EmpatheticRecommender, state: ConversationState, text: str) -> dict[str, float]:
    """One served turn, with the time (ms) to each of its events."""
    marks, t0 = {}, time.perf_counter()
    for event in bot.turn_events(state, text, reply=False):
        marks[type(event).__name__] = (time.perf_counter() - t0) * 1000
    return {"understand": marks[Understood.__name__],
            "recommend": marks[Recommended.__name__] - marks[Understood.__name__],
            "finish": marks["Done"] - marks[Recommended.__name__], "turn": marks["Done"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--turns", type=int, default=300)
    ap.add_argument("--warm-up", type=int, default=10)
    ap.add_argument("--out", default="benchmarks/results/recommender_latency.json")
    args = ap.parse_args()

    t0 = time.time()
    bot = EmpatheticRecommender.load(args.artifacts, generator="template")  # no reply is generated
    load_s = time.time() - t0
    if bot.missing:
        raise SystemExit(f"{args.artifacts}: " + "; ".join(map(str, bot.missing)))
    times: dict[str, list[float]] = {"understand": [], "recommend": [], "finish": [], "turn": []}
    n = 0
    for dialogue in DIALOGUES:
        state = ConversationState()
        for text in dialogue:
            t = timed_turn(bot, state, text)
            n += 1
            if n > args.warm_up:
                for k, v in t.items():
                    times[k].append(v)
        if n >= args.turns + args.warm_up:
            break
    run = getattr(bot.recommender, "run_dir", None)
    result = write_results(
        args.out, "recommender_latency", {f"{k}_ms": percentiles(v) for k, v in times.items()}
        | {"load_seconds": round(load_s, 2)},
        data=bundled_files("redial/test.jsonl.gz"), machine={"load_average_1m": round(os.getloadavg()[0], 2)},
        run=str(run), model=getattr(bot.recommender, "name", "popularity"), artifacts=str(Path(args.artifacts)),
        task="the served recommendation turn (EmpatheticRecommender.turn_events, reply=False) over replayed "
             f"ReDial test conversations, ranking {len(bot.kg.item_ids)} movies")
    print(json.dumps({k: {q: v[q] for q in ("p50", "p95", "mean", "n")} if isinstance(v, dict) else v
                      for k, v in result["metrics"].items()}, indent=1))


if __name__ == "__main__":
    main()
