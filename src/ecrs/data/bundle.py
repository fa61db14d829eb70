"""The bundled data folder: locating it, verifying it against its sha256 manifest, opening its files.

The repository carries every dataset it uses under `data/` (see DATA.md). `ECRS_DATA_DIR` points elsewhere,
e.g. at a folder holding the full official ReDial files.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from ecrs.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[3]


def data_dir() -> Path:
    """The bundled data folder (`$ECRS_DATA_DIR`, else `<repo>/data`)."""
    root = Path(os.environ.get("ECRS_DATA_DIR", REPO_ROOT / "data"))
    if not (root / "MANIFEST.tsv").exists():
        raise DataError("bundled data not found (no MANIFEST.tsv); set ECRS_DATA_DIR", root)
    return root


@lru_cache(maxsize=1)
def manifest() -> dict[str, str]:
    """Bundled path -> sha256, read from MANIFEST.tsv."""
    path = data_dir() / "MANIFEST.tsv"
    rows: dict[str, str] = {}
    for i, line in enumerate(path.read_text().splitlines()[1:], start=2):
        parts = line.split("\t")
        if len(parts) < 3:
            raise DataError("malformed manifest row", path, i)
        rows[parts[0]] = parts[2]
    return rows


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=None)
def bundled(rel: str) -> Path:
    """Path of a bundled file, verified once per process against the manifest."""
    expected = manifest().get(rel)
    path = data_dir() / rel
    if expected is None:
        raise DataError("not listed in MANIFEST.tsv", path)
    if not path.exists():
        raise DataError("bundled file is missing", path)
    if _sha256(path) != expected:
        raise DataError("sha256 does not match MANIFEST.tsv (corrupt or edited file)", path)
    return path


def open_text(path: Path) -> IO[str]:
    """Open a text file, transparently gunzipping `.gz`."""
    if not path.exists():
        raise DataError("file not found", path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open(encoding="utf-8")


def read_json(path: Path) -> Any:
    try:
        with open_text(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}", path, e.lineno) from None
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise DataError(f"unreadable: {e}", path) from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed object) for each non-blank line; a bad line raises naming file and line."""
    try:
        with open_text(path) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"invalid JSON ({e.msg})", path, lineno) from None
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise DataError(f"unreadable: {e}", path) from None
