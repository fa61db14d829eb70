"""Crash-safe JSONL output files, one object with an "id" a line: the annotator's labels and the simulator's
transcripts are appended row by row, so an interrupted run keeps what it wrote and a rerun resumes after it."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from ecrs.errors import DataError

__all__ = ["append_row", "read_rows"]


def read_rows(path: Path, repair: bool) -> list[dict[str, Any]]:
    """Rows of an output file ([] when it does not exist). A last line without its newline (a run killed
    mid-write) is cut off the file when `repair`, else ignored; any other unreadable line raises DataError."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        if repair:
            with path.open("r+b") as f:
                f.truncate(keep)
        data = data[:keep]
    rows = []
    for lineno, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON ({e.msg})", path, lineno) from None
        if not isinstance(row, dict) or "id" not in row:
            raise DataError('expected an object with "id"', path, lineno)
        rows.append(row)
    return rows


def append_row(f: IO[str], row: dict[str, Any]) -> None:
    """Write one row and push it to disk before returning: a crash after this call cannot lose it."""
    f.write(json.dumps(row, ensure_ascii=False) + "\n")
    f.flush()
    os.fsync(f.fileno())
