"""`ecrs simulate --out DIR [--config FILE.yaml] [--set key=value ...]`: interactive evaluation with simulated
seekers drawn from ReDial test dialogues (iEvaLM style, `ecrs.evaluation.simulator`), e.g. `--set simulator=llm
--set n=10`. The LLM seeker's model is the config's `llm:` section (`ecrs.inference.llm.LLMConfig`; default the
installed SmolLM2-135M-Instruct GGUF through llama.cpp).

Writes `DIR/transcripts.jsonl` (one simulated dialogue a line, appended and flushed one by one: a rerun of the
same command skips the dialogues already there), `DIR/summary.json` (success@k, mean turns to success,
rejections per dialogue, title leaks, LLM fallbacks) over the dialogues of this sample, and `DIR/config.yaml`."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from ecrs.config import add_config_arguments, load_config, save_config
from ecrs.data.bundle import bundled
from ecrs.data.dialogues import load_redial
from ecrs.data.kg import redial_movie_entities, redial_titles
from ecrs.errors import EcrsError
from ecrs.evaluation.simulator import (
    SUMMARY,
    LLMSeeker,
    PipelineSystem,
    RuleSeeker,
    seeker_profiles,
    simulate,
)
from ecrs.inference.llm import LLMConfig, make_backend
from ecrs.inference.pipeline import EmpatheticRecommender

DIALOGUES = "redial/test.jsonl.gz"


@dataclass
class SimulateConfig:
    simulator: Literal["rule", "llm"] = "rule"  # rule-based (templates) or LLM-written seeker messages
    n: int = 50                     # simulated dialogues
    seed: int = 0                   # seed of the dialogue sample
    max_turns: int = 5              # seeker messages per dialogue
    top_k: int = 3                  # movies the system recommends per turn
    artifacts: str = "artifacts"    # folder with trained artifacts
    recommender: str | None = None  # recommender run folder, or "popularity"; None = the trained ECR run if present
    generator: str = "template"     # generator folder, or "template" (the reply does not change the movies)
    threads: int = 2                # torch threads (llm.threads is llama.cpp's)
    llm: LLMConfig = field(default_factory=LLMConfig)  # the LLM seeker's model (simulator: llm)

    def __post_init__(self) -> None:
        for name in ("n", "max_turns", "top_k", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.simulator == "rule" and (self.llm.base_url or self.llm.gguf):
            raise ValueError("llm.base_url / llm.gguf are for simulator: llm")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (rerun the same command to resume)")
    add_config_arguments(p, SimulateConfig, "simulator=llm --set n=10 --set llm.gguf=model.gguf")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def make_seeker(cfg: SimulateConfig) -> RuleSeeker | LLMSeeker:
    if cfg.simulator == "rule":
        return RuleSeeker()
    return LLMSeeker(make_backend(cfg.llm), retry=cfg.llm.retry())


def run(args: argparse.Namespace) -> int:
    cfg = load_config(SimulateConfig, args.config, args.set)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise EcrsError(f"--out {out}: not a folder")
    torch.set_num_threads(cfg.threads)  # the scorer's MiniLM encoder: oversubscribed cores slow it ~10x
    bot = EmpatheticRecommender.load(cfg.artifacts, cfg.recommender, cfg.generator, top_k=cfg.top_k)
    run_dir = getattr(bot.recommender, "run_dir", None)
    system = PipelineSystem(bot, str(run_dir) if run_dir is not None else "popularity")
    dialogues = load_redial(bundled(DIALOGUES), redial_movie_entities(bot.kg), redial_titles())
    profiles = seeker_profiles(dialogues, bot.catalogue, n=cfg.n, seed=cfg.seed)
    if len(profiles) < cfg.n:
        raise EcrsError(f"n={cfg.n}: only {len(profiles)} ReDial test dialogues have a target movie")
    seeker = make_seeker(cfg)
    try:
        _, s = simulate(profiles, system, seeker, out, cfg.max_turns, progress=not args.no_progress,
                        extra={"n": cfg.n, "seed": cfg.seed, "dialogues": f"bundled {DIALOGUES}"})
    finally:
        if isinstance(seeker, LLMSeeker):
            seeker.backend.close()
    save_config(cfg, out / "config.yaml")
    print(json.dumps({"n": s.n, "success_at_k": s.success_at_k, "mean_turns_to_success": s.mean_turns_to_success,
                      "mean_rejections": s.mean_rejections, "leaks": s.leaks, "fallbacks": s.fallbacks}))
    print(f"{seeker.name} vs {system.name}: {s.successes}/{s.n} found within {cfg.max_turns} turns "
          f"-> {out / SUMMARY}", file=sys.stderr)
    return 0
