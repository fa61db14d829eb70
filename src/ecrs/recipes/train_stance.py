"""`ecrs train stance [--config FILE.yaml] [--set key=value ...]`: train the per-mention stance classifier (what
the seeker said about each movie, person and genre a message names) on ReDial's seeker questionnaire and the
hand-written people / genre utterances, and write its folder (weights, config.yaml, report.json)."""
from __future__ import annotations

import argparse

from ecrs.config import add_config_arguments, load_config
from ecrs.training.stance import StanceConfig, train_stance


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, StanceConfig, "model=sparse or train.epochs=3")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(StanceConfig, args.config, args.set)
    _, report = train_stance(cfg)
    chosen = (f"epoch {report['chosen_epoch']}" + (", refit on train + validation" if cfg.refit else "")
              if cfg.model == "encoder" else f"C={report['chosen_C']:g}")
    print(f"stance ({cfg.model}): {chosen}, validation score "
          f"{max(s['val_score'] for s in report['selection']):.4f}, {report['train_seconds']:.0f} s -> {cfg.out}")
    return 0
