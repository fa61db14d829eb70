"""`ecrs train generator`: LoRA fine-tuning of the response generator on cleaned top-rated reviews, then the
merged model written back to GGUF for llama.cpp (see ecrs.training.generator). Re-running resumes from the
run's checkpoint; `--set base=path/to/hf_model_dir` tunes any HF causal LM (served then by transformers)."""
from __future__ import annotations

import argparse

from ecrs.config import add_config_arguments, load_config
from ecrs.training.generator import GeneratorTrainConfig, train_generator


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, GeneratorTrainConfig, "train.max_steps=200")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(GeneratorTrainConfig, args.config, args.set)
    s = train_generator(cfg)
    last = s["history"][-1] if s["history"] else {}
    print(f"generator: {s['steps']} steps, {s['train_seconds_total']:.0f} s training "
          f"({s['seconds_per_step']} s/step), valid loss {last.get('valid_loss', float('nan')):.3f} -> {cfg.out_dir}")
    return 0
