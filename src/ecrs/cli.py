"""The `ecrs` command. Each subcommand is a thin recipe module in `ecrs.recipes` with
`add_arguments(parser)` and `run(args) -> int`; modules are imported only when their command runs, so
`ecrs --help` is instant and a missing optional extra fails with a one-line install hint."""
from __future__ import annotations

import argparse
import importlib
import sys

from ecrs.errors import EcrsError

# command -> (recipe module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("ecrs.recipes.prepare", "turn bundled raw data into processed turn samples"),
    "evaluate": ("ecrs.recipes.evaluate", "evaluate recommenders and write benchmarks/results"),
    "chat": ("ecrs.recipes.chat", "chat with the recommender in the terminal"),
    "serve": ("ecrs.recipes.serve", "serve the HTTP API and web chat page"),
    "export-feedback": ("ecrs.recipes.export_feedback", "export chat sessions as own-data JSONL"),
    "annotate-emotions": ("ecrs.recipes.annotate_emotions", "label utterances' emotions with an LLM"),
    "judge": ("ecrs.recipes.judge", "rate replies with an LLM judge (pairwise / absolute) and against people"),
    "simulate": ("ecrs.recipes.simulate", "interactive evaluation with simulated seekers (iEvaLM style)"),
    "report": ("ecrs.recipes.report", "render benchmarks/results as reports/README.md with plots"),
    "reproduce": ("ecrs.recipes.reproduce", "run every stage from bundled data to reports/ (CPU)"),
}
# `ecrs train X` -> recipe
TRAIN_COMMANDS: dict[str, tuple[str, str]] = {
    "recommender": ("ecrs.recipes.train_recommender", "train a recommender"),
    "generator": ("ecrs.recipes.train_generator", "fine-tune the response generator"),
    "emotion": ("ecrs.recipes.train_emotion", "train the nine-label emotion classifier"),
}


def _add(sub: argparse._SubParsersAction, name: str, module: str, help_: str) -> None:
    p = sub.add_parser(name, help=help_, description=help_)
    p.set_defaults(_module=module)
    # Arguments are registered lazily: importing every recipe here would import torch for `--help`.
    if name in sys.argv[1:3]:
        importlib.import_module(module).add_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecrs", description="Empathetic conversational recommender system")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_) in COMMANDS.items():
        _add(sub, name, module, help_)
    if TRAIN_COMMANDS:
        train = sub.add_parser("train", help="train a model").add_subparsers(dest="what", required=True)
        for name, (module, help_) in TRAIN_COMMANDS.items():
            _add(train, name, module, help_)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = ["ecrs", *argv]
    args = build_parser().parse_args()
    try:
        module = importlib.import_module(args._module)
        return int(module.run(args) or 0)
    except EcrsError as e:
        print(f"ecrs: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        print(f"ecrs: error: missing dependency {e.name!r}; install the extras: pip install -e '.[train,serve]'",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ecrs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
