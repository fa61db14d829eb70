"""`ecrs train recommender --config configs/recommender/<row>.yaml`: train one recommender (ECR, an ablation,
UniCRS or KBRD) on the prepared samples; `torchrun --nproc_per_node=N -m ecrs.cli train recommender ...` runs it
data-parallel (gloo on CPU, nccl on CUDA). Re-running the same command resumes from the run's checkpoint."""
from __future__ import annotations

import argparse
import os

from ecrs.config import add_config_arguments, load_config
from ecrs.errors import EcrsError
from ecrs.training.calibrate import calibrate_run
from ecrs.training.recommender import RecommenderTrainConfig, load_valid, train_recommender


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, RecommenderTrainConfig, "train.seed=1")
    p.add_argument("--calibrate-only", action="store_true",
                   help="only (re)fit the context shift of the run this config names, on validation")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(RecommenderTrainConfig, args.config, args.set)
    if args.calibrate_only:
        out = cfg.resolved_out_dir()
        if not (out / "model.pt").exists():
            raise EcrsError(f"{out}: no trained run to calibrate (train it first)")
        c = calibrate_run(out, load_valid(cfg.data))
        best = next(t for t in c["grid"] if t["g"] == c["g"])
        print(f"{out}: context shift {c['context_shift']:.3f} ({c['g']} sigma), valid R@50 "
              f"{c['grid'][0]['R@50']:.4f} -> {best['R@50']:.4f}")
        return 0
    summary = train_recommender(cfg)
    if summary.get("world_size", 1) == 1 or int(os.environ.get("RANK", "0")) == 0:
        print(f"{cfg.name} ({cfg.data.dataset}, seed {cfg.train.seed}): best valid R@50 "
              f"{summary['best_valid_R@50']:.4f} at epoch {summary['best_epoch']}, "
              f"{summary['wall_seconds']:.0f} s -> {cfg.resolved_out_dir()}")
    return 0
