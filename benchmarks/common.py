"""Shared by the benchmark scripts: results files that several scripts fill in, key by key."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def update_json(path: Path, key: str, value: Any) -> None:
    """Set one top-level key of a results JSON, keeping what other scripts wrote there."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
