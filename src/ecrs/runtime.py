"""The process environment a job needs, in one place (docs/MODELS.md, "Threads on these 2-core machines").

OMP_WAIT_POLICY=PASSIVE stops OpenMP threads spinning between torch's small ops (5x faster on 2 cores), but makes
llama.cpp decode ~3x slower: a process that runs only torch gets it, one that decodes with llama.cpp does not. It
must be set before torch is imported, so the CLI entry sets it per command (`ecrs.cli`) and `ecrs reproduce` per
stage process; no library module sets it.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["LLAMA_CPP", "NO_TORCH", "TORCH_ONLY", "environment", "shell_prefix"]

TORCH_ONLY: Mapping[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}
LLAMA_CPP: Mapping[str, str] = {}  # decodes with llama.cpp in-process: leave OpenMP's default
NO_TORCH: Mapping[str, str] = {}


def environment(wants: Mapping[str, str]) -> dict[str, str]:
    """This process's environment for a child process that wants `wants` (the thread setting replaced)."""
    return {k: v for k, v in os.environ.items() if k not in TORCH_ONLY} | dict(wants)


def shell_prefix(wants: Mapping[str, str]) -> str:
    """`VAR=value ` to type before a command by hand."""
    return "".join(f"{k}={v} " for k, v in wants.items())
