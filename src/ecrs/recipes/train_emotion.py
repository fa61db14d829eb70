"""`ecrs train emotion [--config configs/emotion.yaml] [--out DIR] [--set key=value ...]`: train the nine-label
emotion classifier (ECR_SPEC §2) on the bundled annotated ReDial utterances and write its checkpoint folder
(weights, resolved config.yaml, split.json with the train/val/held-out ids, report.json)."""
from __future__ import annotations

import argparse
import dataclasses
import os

# Before torch is imported (only the MiniLM variant imports it): without it OpenMP threads spin between small ops
# (5x slower on 2 cores, MODELS.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ecrs.config import load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file with EmotionConfig keys (see ecrs.training.emotion.EmotionConfig)")
    p.add_argument("--out", help="checkpoint folder (default: the config's out, artifacts/emotion)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. encoder=minilm or c_grid=[8]")


def run(args: argparse.Namespace) -> int:
    from ecrs.training.emotion import EmotionConfig, train_emotion

    cfg = load_config(EmotionConfig, args.config, args.set)
    if args.out:
        cfg = dataclasses.replace(cfg, out=str(args.out))
    _, report = train_emotion(cfg)
    print(f"emotion ({cfg.encoder}): C={report['chosen_C']:g}, validation Recall@2 "
          f"{max(s['val_recall@2'] for s in report['selection']):.4f} (n={report['n_val']}), fitted on "
          f"{report['n_fit']}, {report['train_seconds']:.0f} s -> {cfg.out}")
    return 0
