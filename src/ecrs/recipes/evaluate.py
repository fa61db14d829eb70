"""`ecrs evaluate`: score recommenders on the prepared test split; rows go to benchmarks/results.

A system is a baseline name (`popularity`, `repeat-context`) or `name:RUNS`, where RUNS names trained run folders
(`ecrs train recommender` output): a path, a glob, with `{dataset}` filled in per dataset, e.g.
`ecr-fast:artifacts/recommender/{dataset}/ecr-fast-s*`. Several runs (seeds) give one row whose metrics are
mean ± std over the runs (sample std, ddof = 1), with each run's numbers, training time, hardware and training data.

`compare: ["a:b", ...]` (names from `systems`) adds, per dataset, a minus b on R@50, RT@50 and AUC with a 95 %
paired bootstrap interval over the test targets to `compare_results`.
"""
from __future__ import annotations

import argparse
import glob
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecrs.config import add_config_arguments, load_config
from ecrs.data.datasets import load_kg
from ecrs.data.prepare import load_samples
from ecrs.errors import EcrsError
from ecrs.evaluation.evaluate import (
    compare_outcomes,
    evaluate_recommender,
    fmt,
    update_results,
)
from ecrs.inference.recommender import TrainedRecommender
from ecrs.models.baselines import Popularity, RepeatContext
from ecrs.provenance import provenance

BASELINES = {"popularity": Popularity, "repeat-context": RepeatContext}


@dataclass
class EvaluateConfig:
    datasets: list[str] = field(default_factory=lambda: ["redial", "inspired"])
    systems: list[str] = field(default_factory=lambda: ["popularity", "repeat-context"])
    data_dir: str = "artifacts/data"
    split: str = "test"
    max_samples: int = 0  # 0 = the whole split; else a fixed (seed 0) subset of that many samples, recorded per row
    results: str = "benchmarks/results/recommendation.json"
    # Trained runs: apply the context shift each fitted on validation (`ecrs.training.calibrate`); false = the raw
    # model scores (name such a row differently, e.g. `ecr-fast-raw:...`)
    calibrated: bool = True
    compare: list[str] = field(default_factory=list)  # "a:b" pairs of system names: a minus b, paired bootstrap
    compare_results: str = "benchmarks/results/recommendation_paired.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, EvaluateConfig, "'systems=[popularity, repeat-context]'")


def run_dirs(pattern: str, dataset: str) -> list[Path]:
    """Run folders (holding model.pt) matching `pattern` with `{dataset}` filled in, sorted."""
    pat = pattern.format(dataset=dataset)
    return sorted(Path(p) for p in glob.glob(pat) if (Path(p) / "model.pt").exists())


def aggregate(values: list[Any]) -> Any:
    """Metrics of several runs -> one: numbers become {mean, std, n, values}; equal ints and other values stay."""
    first = values[0]
    if isinstance(first, dict):
        return {k: aggregate([v.get(k) for v in values]) for k in first}
    if any(v is None for v in values):
        return None
    if isinstance(first, bool) or isinstance(first, str):
        return first
    if isinstance(first, int) and all(v == first for v in values):
        return first  # counts (n_samples, n_liked) are the same for every run
    if isinstance(first, (int, float)):
        arr = np.asarray(values, dtype=np.float64)
        return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                "n": len(arr), "values": [round(float(v), 6) for v in arr]}
    return first


def _trained_row(system: str, pattern: str, dataset: str, kg, train, test, split: str,
                 calibrated: bool = True, outcomes: list | None = None) -> dict[str, Any]:
    """The row of one trained system (all its runs); each run's per-target outcomes go to `outcomes` if given."""
    dirs = run_dirs(pattern, dataset)
    if not dirs:
        raise EcrsError(f"{system}: no trained runs match {pattern.format(dataset=dataset)!r} "
                        f"(train them with `ecrs train recommender`)")
    per_run, infos = [], []
    for d in dirs:
        t0 = time.time()
        # cache_turns: the test turns are embedded once (by the encoder of the training turns) and saved; without
        # it every run re-embedded them live, ~5 min per run on 2 cores
        model = TrainedRecommender.load(d, name=system, calibrated=calibrated, cache_turns=True)
        model.fit(train, kg)
        metrics = evaluate_recommender(model, train, test, kg, keep_outcomes=True)
        run_outcomes = metrics.pop("outcomes")
        if outcomes is not None:
            outcomes.append(run_outcomes)
        seconds = time.time() - t0
        info = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
        per_run.append(metrics)
        infos.append({
            "run": str(d), "seed": info.get("seed"), "best_epoch": info.get("best_epoch"),
            "best_valid_R@50": info.get("best_valid_R@50"), "train_wall_seconds": info.get("wall_seconds"),
            "train_loop_seconds": info.get("loop_seconds"), "optimizer_steps": info.get("optimizer_steps"),
            "world_size": info.get("world_size"), "hardware": info.get("hardware"),
            "pretrain": info.get("pretrain"), "eval_seconds": round(seconds, 1),
            "context_shift": model.context_shift,
        })
    first = json.loads((dirs[0] / "metrics.json").read_text()) if (dirs[0] / "metrics.json").exists() else {}
    cfg_text = (dirs[0] / "config.yaml").read_text() if (dirs[0] / "config.yaml").exists() else ""
    walls = [i["train_wall_seconds"] for i in infos if i["train_wall_seconds"] is not None]
    return {
        "system": system, "dataset": dataset, "split": split,
        "metrics": aggregate(per_run) if len(per_run) > 1 else per_run[0],
        "seeds": [i["seed"] for i in infos], "n_runs": len(dirs),
        "per_run": [{**i, "metrics": {"standard": {k: m["standard"].get(k) for k in
                                                    ("AUC", "RT@50", "R@1", "R@10", "R@50")}}}
                    for i, m in zip(infos, per_run)],
        "train_seconds": aggregate(walls) if len(walls) > 1 else (walls[0] if walls else None),
        "hardware": first.get("hardware"), "train_samples": len(train),
        "training_data": first.get("training_data", f"{dataset}/train"), "config": cfg_text,
    }


def _pairs(cfg: EvaluateConfig) -> list[tuple[str, str]]:
    names = [s.partition(":")[0] for s in cfg.systems]
    pairs = []
    for c in cfg.compare:
        a, sep, b = c.partition(":")
        if not sep or a not in names or b not in names:
            raise EcrsError(f"compare entry {c!r} must be 'a:b' with a and b among the systems ({', '.join(names)})")
        pairs.append((a, b))
    return pairs


def run(args: argparse.Namespace) -> int:
    cfg = load_config(EvaluateConfig, args.config, args.set)
    pairs = _pairs(cfg)  # checked before any scoring
    rows, comparisons = [], []
    data = {d: {split: str(Path(cfg.data_dir) / d / f"{split}.jsonl.gz") for split in ("train", cfg.split)}
            for d in cfg.datasets}
    for dataset in cfg.datasets:
        kg = load_kg(dataset)
        train = load_samples(cfg.data_dir, dataset, "train")
        test = load_samples(cfg.data_dir, dataset, cfg.split)
        subset = None
        if cfg.max_samples and len(test) > cfg.max_samples:
            keep = sorted(np.random.default_rng(0).choice(len(test), cfg.max_samples, replace=False).tolist())
            test = [test[i] for i in keep]
            subset = f"fixed random subset (seed 0) of {cfg.max_samples} {cfg.split} samples"
        outcomes: dict[str, list] = {}
        for order, system in enumerate(cfg.systems):
            name, sep, pattern = system.partition(":")
            t0 = time.time()
            outcomes[name] = []
            if sep:
                row = _trained_row(name, pattern, dataset, kg, train, test, cfg.split, cfg.calibrated,
                                   outcomes[name])
            elif system in BASELINES:
                model = BASELINES[system]()
                model.fit(train, kg)
                metrics = evaluate_recommender(model, train, test, kg, keep_outcomes=True)
                outcomes[name].append(metrics.pop("outcomes"))
                row = {"system": system, "dataset": dataset, "split": cfg.split,
                       "metrics": metrics, "train_samples": len(train),
                       "training_data": f"{cfg.data_dir}/{dataset}/train (ecrs prepare)"}
            else:
                raise EcrsError(f"unknown system {system!r} (known: {', '.join(BASELINES)}, or NAME:RUN_DIRS)")
            row |= {"order": order, "seconds": round(time.time() - t0, 2), "provenance": provenance(data[dataset])}
            if subset:
                row["test_subset"] = subset
            rows.append(row)
            m, d = row["metrics"]["standard"], row["metrics"]["dedup"]
            print(f"{dataset:9s} {row['system']:15s} R@1 {fmt(m['R@1'])} R@10 {fmt(m['R@10'])} "
                  f"R@50 {fmt(m['R@50'])} RT@50 {fmt(m.get('RT@50'))} AUC {fmt(m.get('AUC'))} | dedup R@10 "
                  f"{fmt(d['R@10'])} ({m['n_samples']} samples)")
        for a, b in pairs:
            gaps = compare_outcomes(outcomes[a], outcomes[b])
            comparisons.append({"system": f"{a} - {b}", "a": a, "b": b, "dataset": dataset, "split": cfg.split,
                                "n_runs": [len(outcomes[a]), len(outcomes[b])], "difference": gaps,
                                **({"test_subset": subset} if subset else {}),
                                "provenance": provenance(data[dataset])})
            print(f"{dataset:9s} {a} - {b}: " + ", ".join(
                f"{k} {g['difference']:+.4f} [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}]"
                for k, g in gaps.items() if g is not None))
    update_results(Path(cfg.results), "recommendation", rows, data=data)
    print(f"wrote {cfg.results} and {Path(cfg.results).with_suffix('.md')}")
    if comparisons:
        update_results(Path(cfg.compare_results), "recommendation_paired", comparisons, markdown=False, data=data)
        print(f"wrote {cfg.compare_results}")
    return 0

