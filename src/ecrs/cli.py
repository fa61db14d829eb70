"""The `ecrs` command. Each subcommand is a thin recipe module in `ecrs.recipes` with
`add_arguments(parser)` and `run(args) -> int`; modules are imported only when their command runs, so
`ecrs --help` is instant and a missing optional extra fails with a one-line install hint."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import ModuleType

from ecrs.errors import EcrsError
from ecrs.runtime import LLAMA_CPP, NO_TORCH, TORCH_ONLY

# The environment a command's process needs (`ecrs.runtime`), set before its recipe (and so torch) is imported; a
# variable the caller already set is kept. Commands that decode with llama.cpp in this process leave the thread
# setting unset, and so do those without torch (and reproduce, which sets it for each stage process).

# command -> (recipe module, one-line help, environment)
COMMANDS: dict[str, tuple[str, str, dict[str, str]]] = {
    "prepare": ("ecrs.recipes.prepare", "turn bundled raw data into processed turn samples", TORCH_ONLY),
    "evaluate": ("ecrs.recipes.evaluate", "evaluate recommenders and write benchmarks/results", TORCH_ONLY),
    "chat": ("ecrs.recipes.chat", "chat with the recommender in the terminal", LLAMA_CPP),
    "serve": ("ecrs.recipes.serve", "serve the HTTP API and web chat page", LLAMA_CPP),
    "export-feedback": ("ecrs.recipes.export_feedback", "export chat sessions as own-data JSONL", NO_TORCH),
    "annotate-emotions": ("ecrs.recipes.annotate_emotions", "label utterances' emotions with an LLM", LLAMA_CPP),
    "judge": ("ecrs.recipes.judge", "rate replies with an LLM judge (pairwise) and against people",
              LLAMA_CPP),
    "simulate": ("ecrs.recipes.simulate", "interactive evaluation with simulated seekers (iEvaLM style)", LLAMA_CPP),
    "report": ("ecrs.recipes.report", "render benchmarks/results as reports/README.md with plots", NO_TORCH),
    "reproduce": ("ecrs.recipes.reproduce", "run every stage from bundled data to reports/ (CPU)", NO_TORCH),
}
# `ecrs train X` -> recipe
TRAIN_COMMANDS: dict[str, tuple[str, str, dict[str, str]]] = {
    "recommender": ("ecrs.recipes.train_recommender", "train a recommender", TORCH_ONLY),
    "generator": ("ecrs.recipes.train_generator", "fine-tune the response generator", TORCH_ONLY),
    "emotion": ("ecrs.recipes.train_emotion", "train the nine-label emotion classifier", TORCH_ONLY),
    "stance": ("ecrs.recipes.train_stance", "train the per-mention stance classifier", TORCH_ONLY),
}


def _import_recipe(module: str, env: dict[str, str]) -> ModuleType:
    for name, value in env.items():
        os.environ.setdefault(name, value)
    return importlib.import_module(module)


def _add(sub: argparse._SubParsersAction, name: str, module: str, help_: str, env: dict[str, str]) -> None:
    p = sub.add_parser(name, help=help_, description=help_)
    p.set_defaults(_module=module, _env=env)
    # Arguments are registered lazily: importing every recipe here would import torch for `--help`.
    if name in sys.argv[1:3]:
        _import_recipe(module, env).add_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecrs", description="Empathetic conversational recommender system")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_, env) in COMMANDS.items():
        _add(sub, name, module, help_, env)
    train = sub.add_parser("train", help="train a model").add_subparsers(dest="what", required=True)
    for name, (module, help_, env) in TRAIN_COMMANDS.items():
        _add(train, name, module, help_, env)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = ["ecrs", *argv]
    args = build_parser().parse_args()
    try:
        module = _import_recipe(args._module, args._env)
        return int(module.run(args) or 0)
    except EcrsError as e:
        print(f"ecrs: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if (e.name or "").startswith("ecrs"):
            raise  # a bug of ours, not a missing extra
        print(f"ecrs: error: missing dependency {e.name!r}; install the extras: pip install -e '.[train,serve]'",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ecrs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
