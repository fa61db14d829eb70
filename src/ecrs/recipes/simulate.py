"""`ecrs simulate --simulator rule|llm --n 50 --max-turns 5 --out DIR`: interactive evaluation with simulated
seekers drawn from ReDial test dialogues (iEvaLM style, `ecrs.evaluation.simulator`).

Writes `DIR/transcripts.jsonl` (one simulated dialogue a line, appended and flushed one by one: a rerun of the
same command skips the dialogues already there) and `DIR/summary.json` (success@k, mean turns to success,
rejections per dialogue, title leaks, LLM fallbacks) over the dialogues of this sample."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ecrs.errors import EcrsError

DIALOGUES = "redial/test.jsonl.gz"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--simulator", choices=("rule", "llm"), default="rule",
                   help="rule-based (templates) or LLM-written seeker messages (default: %(default)s)")
    p.add_argument("--n", type=int, default=50, help="simulated dialogues (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the dialogue sample (default: %(default)s)")
    p.add_argument("--max-turns", type=int, default=5, help="seeker messages per dialogue (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=3, help="movies the system recommends per turn (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder (rerun the same command to resume)")
    p.add_argument("--artifacts", default="artifacts", help="folder with trained artifacts")
    p.add_argument("--recommender", default=None,
                   help="recommender run folder, or 'popularity' (default: the trained ECR run if present)")
    p.add_argument("--generator", default="template",
                   help="generator folder, or 'template' (default: %(default)s; the reply does not change which "
                        "movies are recommended)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch and llama.cpp (default: %(default)s)")
    llm = p.add_argument_group("LLM seeker (--simulator llm): an OpenAI-compatible endpoint or a local GGUF model")
    llm.add_argument("--base-url", help="e.g. https://api.openai.com/v1 or http://127.0.0.1:8080/v1")
    llm.add_argument("--model", help="model name sent to the endpoint (required with --base-url)")
    llm.add_argument("--api-key-env", default="OPENAI_API_KEY",
                     help="environment variable holding the API key; unset = no key (default: %(default)s)")
    llm.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default: %(default)s)")
    llm.add_argument("--gguf", help="GGUF chat model (default: the installed SmolLM2-135M-Instruct)")
    llm.add_argument("--n-ctx", type=int, default=4096, help="llama.cpp context size (default: %(default)s)")
    llm.add_argument("--max-tokens", type=int, default=64, help="seeker message length limit (default: %(default)s)")
    llm.add_argument("--attempts", type=int, default=2, help="tries per message on backend errors (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check(args: argparse.Namespace) -> None:
    for name in ("n", "max_turns", "top_k", "threads", "attempts", "max_tokens"):
        if getattr(args, name) < 1:
            raise EcrsError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    llm_only = [f"--{k.replace('_', '-')}" for k in ("base_url", "model", "gguf") if getattr(args, k)]
    if args.simulator == "rule" and llm_only:
        raise EcrsError(f"{llm_only[0]} is for --simulator llm")
    if args.base_url and args.gguf:
        raise EcrsError("give either --base-url or --gguf, not both")
    if args.base_url and not args.model:
        raise EcrsError("--base-url needs --model (the model name the endpoint serves)")
    if args.model and not args.base_url:
        raise EcrsError("--model names a model of an HTTP endpoint; for a local model use --gguf PATH")


def make_seeker(args: argparse.Namespace):
    from ecrs.evaluation.simulator import LLMSeeker, RuleSeeker

    if args.simulator == "rule":
        return RuleSeeker()
    from ecrs.training.annotate import LlamaCppBackend, OpenAIChatBackend

    # json_schema=False: the backends' schema is the emotion-label one; a seeker writes free text.
    if args.base_url:
        backend = OpenAIChatBackend(args.base_url, args.model, api_key=os.environ.get(args.api_key_env) or None,
                                    timeout=args.timeout, max_tokens=args.max_tokens, json_schema=False)
    else:
        backend = LlamaCppBackend(args.gguf, n_threads=args.threads, n_ctx=args.n_ctx, max_tokens=args.max_tokens,
                                  json_schema=False)
    return LLMSeeker(backend, attempts=args.attempts)


def run(args: argparse.Namespace) -> int:
    _check(args)
    import torch

    from ecrs.data.bundle import bundled
    from ecrs.data.dialogues import load_redial
    from ecrs.data.kg import redial_movie_entities, redial_titles
    from ecrs.evaluation.simulator import SUMMARY, PipelineSystem, seeker_profiles, simulate
    from ecrs.inference.pipeline import EmpatheticRecommender

    torch.set_num_threads(args.threads)  # the scorer's MiniLM encoder: oversubscribed cores slow it ~10x
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise EcrsError(f"--out {out}: not a folder")
    bot = EmpatheticRecommender.load(args.artifacts, args.recommender, args.generator, top_k=args.top_k)
    run_dir = getattr(bot.recommender, "run_dir", None)
    system = PipelineSystem(bot, str(run_dir) if run_dir is not None else "popularity")
    dialogues = load_redial(bundled(DIALOGUES), redial_movie_entities(bot.kg), redial_titles())
    profiles = seeker_profiles(dialogues, bot.catalogue, n=args.n, seed=args.seed)
    if len(profiles) < args.n:
        raise EcrsError(f"--n {args.n}: only {len(profiles)} ReDial test dialogues have a target movie")
    seeker = make_seeker(args)
    try:
        _, s = simulate(profiles, system, seeker, out, args.max_turns, progress=not args.no_progress,
                        extra={"n": args.n, "seed": args.seed, "dialogues": f"bundled {DIALOGUES}"})
    finally:
        backend = getattr(seeker, "backend", None)
        if backend is not None:
            backend.close()
    print(json.dumps({"n": s.n, "success_at_k": s.success_at_k, "mean_turns_to_success": s.mean_turns_to_success,
                      "mean_rejections": s.mean_rejections, "leaks": s.leaks, "fallbacks": s.fallbacks}))
    print(f"{seeker.name} vs {system.name}: {s.successes}/{s.n} found within {args.max_turns} turns "
          f"-> {out / SUMMARY}", file=sys.stderr)
    return 0
