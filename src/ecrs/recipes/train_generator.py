"""`ecrs train generator`: LoRA fine-tuning of the response generator on cleaned top-rated reviews, then the
merged model written back to GGUF for llama.cpp (see ecrs.training.generator). Re-running resumes from the
run's checkpoint; `--set base=path/to/hf_model_dir` tunes any HF causal LM (served then by transformers)."""
from __future__ import annotations

import argparse
import os

# Before torch is imported: without it OpenMP threads spin between small ops (MODELS.md). This process runs no
# llama.cpp decoding, which the same setting would slow down.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ecrs.config import load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file with GeneratorTrainConfig keys")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. train.max_steps=200")


def run(args: argparse.Namespace) -> int:
    from ecrs.training.generator import GeneratorTrainConfig, train_generator

    cfg = load_config(GeneratorTrainConfig, args.config, args.set)
    s = train_generator(cfg)
    last = s["history"][-1] if s["history"] else {}
    print(f"generator: {s['steps']} steps, {s['train_seconds_total']:.0f} s training "
          f"({s['seconds_per_step']} s/step), valid loss {last.get('valid_loss', float('nan')):.3f} -> {cfg.out_dir}")
    return 0
