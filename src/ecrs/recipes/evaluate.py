"""`ecrs evaluate`: score recommenders on the prepared test split; rows go to benchmarks/results."""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

from ecrs.config import load_config
from ecrs.data.kg import load_inspired_kg, load_redial_kg
from ecrs.data.prepare import load_samples
from ecrs.errors import EcrsError
from ecrs.evaluation.evaluate import evaluate_recommender, provenance, update_results
from ecrs.models.baselines import Popularity, RepeatContext

BASELINES = {"popularity": Popularity, "repeat-context": RepeatContext}


@dataclass
class EvaluateConfig:
    datasets: list[str] = field(default_factory=lambda: ["redial", "inspired"])
    systems: list[str] = field(default_factory=lambda: ["popularity", "repeat-context"])
    data_dir: str = "artifacts/data"
    split: str = "test"
    results: str = "benchmarks/results/recommendation.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file with EvaluateConfig keys")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(EvaluateConfig, args.config, args.set)
    rows = []
    for dataset in cfg.datasets:
        kg = load_inspired_kg() if dataset == "inspired" else load_redial_kg()
        train = load_samples(cfg.data_dir, dataset, "train")
        test = load_samples(cfg.data_dir, dataset, cfg.split)
        for system in cfg.systems:
            if system not in BASELINES:
                raise EcrsError(f"unknown system {system!r} (known: {', '.join(BASELINES)})")
            t0 = time.time()
            model = BASELINES[system]()
            model.fit(train, kg)
            metrics = evaluate_recommender(model, train, test, kg)
            row = {
                "system": system, "dataset": dataset, "split": cfg.split, "metrics": metrics,
                "train_samples": len(train), "training_data": f"{cfg.data_dir}/{dataset}/train (ecrs prepare)",
                "seconds": round(time.time() - t0, 2), **provenance(),
            }
            rows.append(row)
            m, d = metrics["standard"], metrics["dedup"]
            print(f"{dataset:9s} {system:15s} R@1 {m['R@1']:.3f} R@10 {m['R@10']:.3f} R@50 {m['R@50']:.3f} "
                  f"AUC {m['AUC'] if m['AUC'] is None else round(m['AUC'], 3)} | dedup R@10 {d['R@10']:.3f} "
                  f"({m['n_samples']} samples)")
    update_results(Path(cfg.results), rows)
    print(f"wrote {cfg.results} and {Path(cfg.results).with_suffix('.md')}")
    return 0
