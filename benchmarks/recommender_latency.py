"""One-turn recommendation latency of a trained fast-backbone recommender: dialogue context -> top-50 movies.

What one chat turn costs: the new seeker utterance is embedded by MiniLM (earlier turns were embedded when they were
said, so they come from the cache), the sample is featurized, the query side runs (prompt + reader), and the movies
are ranked against the entity table computed once at load (cached). Reported: p50 / p95 / mean in ms of the whole
turn and of its two parts (MiniLM encoding of the new utterance; featurize + model + top-50), over test turns.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/recommender_latency.py --run artifacts/recommender/redial/ecr-fast-s0

(PASSIVE: a turn is a chain of small torch ops, each costing milliseconds while OpenMP threads spin; MODELS.md.)
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from ecrs.data.prepare import load_samples
from ecrs.evaluation.results import write_results
from ecrs.inference.recommender import TrainedRecommender
from ecrs.models.context_encoder import TurnEmbeddingCache, load_live_encoder


def percentiles(ms: list[float]) -> dict[str, float | list[float]]:
    a = np.asarray(ms)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "mean": round(float(a.mean()), 2), "n": len(a),
            "samples_ms": [round(float(x), 3) for x in a]}  # raw per-call times, in call order (latency histogram)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="artifacts/recommender/redial/ecr-fast-s0")
    ap.add_argument("--data-dir", default="artifacts/data")
    ap.add_argument("--dataset", default="redial")
    ap.add_argument("--turns", type=int, default=300)
    # One thread: a turn is a chain of small ops, which 2 threads make slower here (query 3.3 vs 9.0 ms, MiniLM 17
    # vs 24 ms on the 2-core machine); a server also answers other sessions on the other core.
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    ap.add_argument("--out", default="benchmarks/results/recommender_latency.json")
    ap.add_argument("--float-encoder", action="store_true", help="embed the new utterance with the float32 MiniLM")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.time()
    rec = TrainedRecommender.load(args.run)
    rec.cache_table()
    load_s = time.time() - t0
    if rec.cfg.backbone != "fast":
        raise SystemExit("this benchmark is for the fast backbone")
    ck = torch.load(Path(args.run) / "model.pt", map_location="cpu", weights_only=False)
    cache = TurnEmbeddingCache(ck["embedding_cache"])  # earlier turns: embedded when they were said
    # What the chat pipeline uses: ONNX Runtime when installed, int8 unless --float-encoder.
    encoder = load_live_encoder(cache.path.parent, int8=not args.float_encoder)
    samples = [s for s in load_samples(args.data_dir, args.dataset, "test") if s.context]
    rng = np.random.default_rng(0)
    picks = [samples[i] for i in rng.choice(len(samples), min(args.turns, len(samples)), replace=False)]
    # Earlier turns of a live conversation were embedded when they were said: embed the test turns up front (a no-op
    # when `ecrs evaluate` already did), outside the timed part.
    cache.ensure(t for s in picks for _, t in s.context)

    def one_turn(sample) -> tuple[float, float, list[int]]:
        last = sample.context[-1][1]
        t_a = time.perf_counter()
        live = encoder([last])  # the new utterance, (1, 384)
        t_b = time.perf_counter()

        def lookup(texts: list[str]) -> np.ndarray:  # the new utterance live, earlier turns from the cache
            new = np.array([t == last for t in texts])
            vecs = np.empty((len(texts), live.shape[1]), np.float32)
            vecs[new] = live[0]
            if (~new).any():
                vecs[~new] = cache.vectors([t for t in texts if t != last])
            return vecs

        rec.turn_vectors = lookup
        top = rec.top_k(sample, k=50)
        t_c = time.perf_counter()
        return (t_b - t_a) * 1000, (t_c - t_b) * 1000, top

    for s in picks[:10]:  # warm-up (first calls allocate)
        one_turn(s)
    enc_ms, model_ms, total_ms = [], [], []
    for s in picks:
        e, m, top = one_turn(s)
        assert len(top) == 50
        enc_ms.append(e)
        model_ms.append(m)
        total_ms.append(e + m)
    result = write_results(
        args.out, "recommender_latency", {"turn_ms": percentiles(total_ms), "encode_new_utterance_ms": percentiles(enc_ms),
                   "recommend_ms": percentiles(model_ms), "load_seconds": round(load_s, 2)},
        data={"test": str(Path(args.data_dir) / args.dataset / "test.jsonl.gz")},
        machine={"load_average_1m": round(os.getloadavg()[0], 2)},
        run=args.run, model=rec.name, backbone=rec.cfg.backbone, context_shift=rec.context_shift,
        task="one dialogue turn: embed the new utterance (MiniLM), featurize, prompt + reader, top-50 of "
             f"{len(rec.kg.item_ids)} movies against the cached entity table",
        live_encoder=(("onnxruntime-float32" if args.float_encoder else "onnxruntime-int8")
                      if hasattr(encoder, "__self__") else "sentence-transformers"))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
