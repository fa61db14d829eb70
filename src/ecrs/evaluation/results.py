"""One shape for the results file of every maintained benchmark (`benchmarks/results/<name>.json`):

    {"benchmark": "<name>",                      # which benchmark (its file's stem where it is committed)
     "metrics": {...},                           # what was measured
     "provenance": {"command", "commit", "dirty_files", "machine", "data"},   # ecrs.provenance.provenance()
     ...}                                        # anything else the benchmark records: settings, definitions, notes

written by `write_results`, so that every number can be traced to the command, code, machine and data behind it.
Files of result rows (`ecrs evaluate`) keep their `rows`, each with its own `provenance`: the rows of one file come
from many runs; the file's `provenance` is then that of the run that wrote it last.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ecrs.provenance import provenance

__all__ = ["write_results"]


def write_results(path: str | Path, benchmark: str, metrics: dict[str, Any], *, data: dict[str, Any] | None = None,
                  machine: dict[str, Any] | None = None, keep: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """Write the results file `path` and return what was written. `data`: what the numbers were computed on;
    `machine`: facts of this run beside `ecrs.provenance.machine()` (e.g. the load average); `keep`: keys that
    other scripts add to this file, kept from the existing one."""
    path = Path(path)
    prov = provenance(data)
    prov["machine"] |= machine or {}
    old = json.loads(path.read_text()) if keep and path.exists() else {}
    result = {"benchmark": benchmark, "metrics": metrics, "provenance": prov, **extra,
              **{k: old[k] for k in keep if k in old}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return result
