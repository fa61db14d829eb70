"""`ecrs report [--results benchmarks/results] [--out reports]`: render the results JSON files as a markdown report
with plots (`reports/README.md`, `*.png`); see ecrs.evaluation.report."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="benchmarks/results", help="folder of result JSON files (default: %(default)s)")
    p.add_argument("--out", default="reports", help="output folder (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from ecrs.evaluation.report import render_report

    report = render_report(Path(args.results), Path(args.out))
    print("wrote " + ", ".join(str(p) for p in report.files))
    return 0
