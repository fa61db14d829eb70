"""`ecrs prepare`: raw data -> linked, emotion-labelled samples (see ecrs.data.prepare)."""
from __future__ import annotations

import argparse
import json

from ecrs.config import load_config
from ecrs.data.prepare import PrepareConfig, prepare


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file with PrepareConfig keys")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(PrepareConfig, args.config, args.set)
    result = prepare(cfg)
    print(json.dumps(result.stats, indent=1))
    print(f"wrote {cfg.out_dir}/{cfg.dataset}/")
    return 0
