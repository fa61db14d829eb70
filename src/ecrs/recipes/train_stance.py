"""`ecrs train stance [--config FILE.yaml] [--set key=value ...]`: train the per-mention stance classifier (what
the seeker said about each movie, person and genre a message names) on ReDial's seeker questionnaire and the
hand-written people / genre utterances, and write its folder (weights, config.yaml, report.json)."""
from __future__ import annotations

import argparse

from ecrs.config import add_config_arguments, load_config
from ecrs.training.stance import StanceConfig, train_stance


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, StanceConfig, "c_grid=[1.0] or class_weight=none")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(StanceConfig, args.config, args.set)
    _, report = train_stance(cfg)
    print(f"stance: C={report['chosen_C']:g}, validation score {max(s['val_score'] for s in report['selection']):.4f}"
          f", {report['features']} features, {report['train_seconds']:.0f} s -> {cfg.out}")
    return 0
