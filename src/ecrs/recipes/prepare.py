"""`ecrs prepare`: raw data -> linked, emotion-labelled samples (see ecrs.data.prepare)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ecrs.config import add_config_arguments, load_config
from ecrs.data.datasets import load_kg
from ecrs.data.kg import person_entities
from ecrs.data.linking import build_redial_linker
from ecrs.data.prepare import PrepareConfig, prepare
from ecrs.models.emotion import EmotionLabeller
from ecrs.models.stance import EntityStancer, load_stance


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, PrepareConfig, "dataset=inspired")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(PrepareConfig, args.config, args.set)
    model_dir = Path(cfg.emotion_model)
    labeller = (EmotionLabeller(model_dir, Path(cfg.out_dir) / "emotion_cache.tsv.gz")
                if cfg.emotion_model and model_dir.exists() else None)
    stancer = None
    if cfg.entity_emotions == "stance" and Path(cfg.stance_model).exists():
        kg = load_kg(cfg.dataset)
        stancer = EntityStancer(load_stance(cfg.stance_model), build_redial_linker(kg), person_entities(kg))
    result = prepare(cfg, labeller=labeller, stancer=stancer)
    print(json.dumps(result.stats, indent=1))
    print(f"wrote {cfg.out_dir}/{cfg.dataset}/")
    return 0
