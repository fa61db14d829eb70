"""Shared by the benchmark scripts (run as `python benchmarks/<name>.py`, which puts this folder on the path).
Each writes its results file through `ecrs.evaluation.results.write_results` (one schema; `ecrs evaluate` writes
recommendation.json through it too)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ecrs.data.bundle import manifest


def bundled_files(*paths: str) -> dict[str, dict[str, str | None]]:
    """The bundled data files a result was computed on, each with its sha256 (data/MANIFEST): `provenance.data`."""
    sums = manifest()
    return {p: {"sha256": sums.get(p)} for p in paths}


def update_json(path: Path, key: str, value: Any) -> None:
    """Set one top-level key of a results JSON, keeping what other scripts wrote there (the judge's scripts add
    their summaries to generation.json this way; generation_eval.py keeps those keys)."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")  # as write_results
