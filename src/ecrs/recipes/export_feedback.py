"""`ecrs export-feedback OUT.jsonl [--config FILE.yaml] [--set key=value ...]`: stored chat sessions -> own-data
dialogues (docs/OWN_DATA.md) with the users' liked / disliked verdicts, ready for `ecrs prepare --set dataset=own ...`
and the feedback-aware weighting (keys: `ExportFeedbackConfig`)."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from ecrs.config import add_config_arguments, load_config
from ecrs.serving.store import export_feedback


@dataclass
class ExportFeedbackConfig:
    db_url: str = "sqlite:///artifacts/sessions.db"  # SQLAlchemy URL of the sessions database
    feedback_only: bool = True  # false: every session with a turn, not only those with feedback


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output JSONL file")
    add_config_arguments(p, ExportFeedbackConfig, "feedback_only=false")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(ExportFeedbackConfig, args.config, args.set)
    n = export_feedback(cfg.db_url, args.out, with_feedback_only=cfg.feedback_only)
    print(f"wrote {n} dialogue{'s' if n != 1 else ''} to {args.out}", file=sys.stderr)
    return 0
