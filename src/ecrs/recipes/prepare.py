"""`ecrs prepare`: raw data -> linked, emotion-labelled samples (see ecrs.data.prepare)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ecrs.config import add_config_arguments, load_config
from ecrs.data.prepare import PrepareConfig, prepare
from ecrs.models.emotion import EmotionLabeller


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, PrepareConfig, "dataset=inspired")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(PrepareConfig, args.config, args.set)
    model_dir = Path(cfg.emotion_model)
    labeller = (EmotionLabeller(model_dir, Path(cfg.out_dir) / "emotion_cache.tsv.gz")
                if cfg.emotion_model and model_dir.exists() else None)
    result = prepare(cfg, labeller=labeller)
    print(json.dumps(result.stats, indent=1))
    print(f"wrote {cfg.out_dir}/{cfg.dataset}/")
    return 0
