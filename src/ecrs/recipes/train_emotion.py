"""`ecrs train emotion [--config FILE.yaml] [--out DIR] [--set key=value ...]`: train the nine-label
emotion classifier (ECR_SPEC §2) on the bundled annotated ReDial utterances and write its checkpoint folder
(weights, resolved config.yaml, split.json with the train/val/held-out ids, report.json)."""
from __future__ import annotations

import argparse
import dataclasses

from ecrs.config import add_config_arguments, load_config
from ecrs.training.emotion import EmotionConfig, train_emotion


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, EmotionConfig, "encoder=minilm or c_grid=[8]")
    p.add_argument("--out", help="checkpoint folder (default: the config's out, artifacts/emotion)")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(EmotionConfig, args.config, args.set)
    if args.out:
        cfg = dataclasses.replace(cfg, out=str(args.out))
    _, report = train_emotion(cfg)
    print(f"emotion ({cfg.encoder}): C={report['chosen_C']:g}, validation Recall@2 "
          f"{max(s['val_recall@2'] for s in report['selection']):.4f} (n={report['n_val']}), fitted on "
          f"{report['n_fit']}, {report['train_seconds']:.0f} s -> {cfg.out}")
    return 0
