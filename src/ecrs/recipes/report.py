"""`ecrs report [--config FILE.yaml] [--set key=value ...]`: render the results JSON files as a markdown report with
plots (`reports/README.md`, `*.png`; keys: `ReportConfig`); see ecrs.evaluation.report."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from ecrs.config import add_config_arguments, load_config
from ecrs.evaluation.report import render_report


@dataclass
class ReportConfig:
    results: str = "benchmarks/results"  # folder of result JSON files
    out: str = "reports"  # output folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, ReportConfig, "out=/tmp/report")
    # Shorthands kept because `ecrs reproduce` runs this stage as `report --results DIR --out DIR`; the value is
    # quoted so it stays a string (a folder named `1` or `a: b`).
    for key in ("results", "out"):
        p.add_argument(f"--{key}", dest="set", action="append", metavar="DIR",
                       type=lambda v, k=key: f"{k}={json.dumps(v)}", help=f"same as --set {key}=DIR")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(ReportConfig, args.config, args.set)
    report = render_report(Path(cfg.results), Path(cfg.out))
    print("wrote " + ", ".join(str(p) for p in report.files))
    return 0
