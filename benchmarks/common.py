"""Shared by the benchmark scripts (run as `python benchmarks/<name>.py`, which puts this folder on the path).
Each writes its results file through `ecrs.evaluation.results.write_results` (one schema; `ecrs evaluate` writes
recommendation.json through it too)."""
from __future__ import annotations

from ecrs.data.bundle import manifest


def bundled_files(*paths: str) -> dict[str, dict[str, str | None]]:
    """The bundled data files a result was computed on, each with its sha256 (data/MANIFEST): `provenance.data`."""
    sums = manifest()
    return {p: {"sha256": sums.get(p)} for p in paths}
