"""`ecrs export-feedback OUT.jsonl`: stored chat sessions -> own-data dialogues (docs/OWN_DATA.md) with the users'
liked / disliked verdicts, ready for `ecrs prepare --set dataset=own ...` and the feedback-aware weighting."""
from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output JSONL file")
    p.add_argument("--db-url", default="sqlite:///artifacts/sessions.db",
                   help="SQLAlchemy URL of the sessions database (default: %(default)s)")
    p.add_argument("--all", action="store_true", help="export every session with a turn, not only those with feedback")


def run(args: argparse.Namespace) -> int:
    from ecrs.serving.store import export_feedback

    n = export_feedback(args.db_url, args.out, with_feedback_only=not args.all)
    print(f"wrote {n} dialogue{'s' if n != 1 else ''} to {args.out}", file=sys.stderr)
    return 0
