"""Where a result came from: the command, the commit and its uncommitted files, the machine, the data. Every
results file and every trained run records it, so a number can be traced to the code that produced it.

    prov = provenance(data={"test": "artifacts/data/redial/test.jsonl.gz"})
    {"command": "ecrs evaluate ...", "commit": "b962e40...", "dirty_files": [], "machine": {...}, "data": {...}}
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["machine", "provenance"]

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = ("benchmarks/results/", "reports/")


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def machine() -> dict[str, Any]:
    """Platform, CPU model and count, Python, the thread settings that change speed (MODELS.md), and torch's
    version, threads and GPU when torch is already imported (never imported here just to ask)."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpus": os.cpu_count(), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def provenance(data: dict[str, Any] | None = None, command: str | None = None) -> dict[str, Any]:
    """The command line (default: this process's), the git commit with the tracked files that differ from it (the
    outputs under benchmarks/results/ and reports/ left out: a `reproduce` run rewrites them stage by stage), the
    machine, and `data` (what the result was computed on). A copy of the tree without its history (a lent GPU
    machine's) names the commit it was sent in `ECRS_GIT_COMMIT`."""
    if command is None:
        argv = list(sys.argv)
        command = " ".join(["ecrs", *argv[1:]] if argv and argv[0].endswith("ecrs") else argv)
    sent = os.environ.get("ECRS_GIT_COMMIT")
    status = None if sent else _git("status", "--porcelain", "--untracked-files=no")
    commit = sent or ((_git("rev-parse", "HEAD") or "unknown").strip())
    dirty = sorted(f for f in (line[3:] for line in (status or "").splitlines())
                   if not f.startswith(OUTPUTS))
    return {"command": command, "commit": commit, "dirty_files": dirty, "machine": machine(), "data": data or {}}
