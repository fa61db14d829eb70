"""`ecrs report [--config FILE.yaml] [--set key=value ...]`: render the results JSON files as a markdown report with
plots (`reports/README.md`, `*.png`) and rewrite the README's generated tables (keys: `ReportConfig`); see
ecrs.evaluation.report."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ecrs.config import add_config_arguments, load_config
from ecrs.errors import EcrsError
from ecrs.evaluation.report import render_report, update_readme


@dataclass
class ReportConfig:
    results: str = "benchmarks/results"  # folder of result JSON files
    out: str = "reports"  # output folder
    readme: str = ""  # a README whose `<!-- results:NAME -->` blocks are rewritten (README.md here); "" = none


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, ReportConfig, "out=/tmp/report")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(ReportConfig, args.config, args.set)
    report = render_report(Path(cfg.results), Path(cfg.out))
    print("wrote " + ", ".join(str(p) for p in report.files))
    if cfg.readme:
        readme = Path(cfg.readme)
        if not readme.exists():
            raise EcrsError(f"readme {readme}: no such file")
        changed = update_readme(readme, Path(cfg.results))
        print(f"{readme}: " + (f"rewrote {', '.join(changed)}" if changed else "tables up to date"))
    return 0
