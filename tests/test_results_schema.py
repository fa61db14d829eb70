"""Every maintained benchmark's results file has one shape (ecrs.evaluation.results): benchmark, metrics,
provenance (command, commit, dirty files, machine, data), then whatever else it records."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ecrs.data.bundle import REPO_ROOT
from ecrs.evaluation.results import write_results

RESULTS = REPO_ROOT / "benchmarks" / "results"
# benchmark -> its writer
MAINTAINED = {
    "entity_linking": "benchmarks/entity_linking.py",
    "emotion": "benchmarks/emotion.py",
    "recommendation": "src/ecrs/recipes/evaluate.py",
    "recommendation_paired": "src/ecrs/recipes/evaluate.py",
    "generation": "benchmarks/generation_eval.py",
    "generation_speed": "benchmarks/generation_speed.py",
    "judge": "benchmarks/judge.py",
    "judge_controls": "benchmarks/judge_controls.py",
    "judge_systems": "benchmarks/judge_systems.py",
    "serving": "benchmarks/serving_load.py",
    "recommender_latency": "benchmarks/recommender_latency.py",
    "simulator": "benchmarks/simulator.py",
    "conversations": "benchmarks/conversations.py",
    "stance": "benchmarks/stance.py",
}
PROVENANCE = {"command", "commit", "dirty_files", "machine", "data"}
COMMIT = re.compile(r"[0-9a-f]{40}")


def schema_errors(obj: Any, name: str) -> list[str]:
    """What keeps `obj` from the schema. A file migrated from earlier code (`migrated_from_commit`) may hold null
    where the old file recorded nothing."""
    if not isinstance(obj, dict):
        return ["not an object"]
    errors = []
    if obj.get("benchmark") != name:
        errors.append(f"benchmark is {obj.get('benchmark')!r}, not the file's name {name!r}")
    if not isinstance(obj.get("metrics"), dict) or not obj["metrics"]:
        errors.append("no metrics")
    prov = obj.get("provenance")
    if not isinstance(prov, dict) or not PROVENANCE <= set(prov):
        return errors + [f"provenance lacks {sorted(PROVENANCE - set(prov or {}))}"]
    migrated = "migrated_from_commit" in obj
    if migrated and not COMMIT.fullmatch(str(obj["migrated_from_commit"])):
        errors.append("migrated_from_commit is not a commit")
    types = {"command": str, "commit": str, "dirty_files": list, "machine": dict, "data": dict}
    errors += [f"provenance.{k} is {type(prov[k]).__name__}" for k, t in types.items()
               if not isinstance(prov[k], t) and not (migrated and prov[k] is None)]
    for r in obj.get("rows", []):
        if "commit" not in (r.get("provenance") or {}):
            errors.append(f"row {r.get('system')} / {r.get('dataset')}: no provenance")
    return errors


@pytest.mark.parametrize("name", sorted(MAINTAINED))
def test_results_file_follows_the_schema(name: str) -> None:
    assert (REPO_ROOT / MAINTAINED[name]).exists()
    path = RESULTS / f"{name}.json"
    assert schema_errors(json.loads(path.read_text()), name) == []


def test_write_results_writes_the_schema_and_keeps_only_named_keys(tmp_path: Path) -> None:
    path = tmp_path / "speed.json"
    path.write_text(json.dumps({"judge": {"win": 0.6}, "stale": 1}))
    written = write_results(path, "speed", {"tok_s": 120.5}, data={"model": "m.gguf"}, machine={"load_average": 0.4},
                            keep=("judge",), notes=["n"])
    assert json.loads(path.read_text()) == written
    assert list(written)[:3] == ["benchmark", "metrics", "provenance"] and schema_errors(written, "speed") == []
    assert written["provenance"]["data"] == {"model": "m.gguf"} and written["provenance"]["machine"]["load_average"] == 0.4
    assert written["judge"] == {"win": 0.6} and "stale" not in written and written["notes"] == ["n"]


def test_schema_errors_say_what_is_wrong() -> None:
    good = {"benchmark": "x", "metrics": {"a": 1}, "provenance": {"command": "c", "commit": "0" * 40,
                                                                  "dirty_files": [], "machine": {}, "data": {}}}
    assert schema_errors(good, "x") == []
    assert schema_errors(good, "y") == ["benchmark is 'x', not the file's name 'y'"]
    unrecorded = {**good, "provenance": {**good["provenance"], "dirty_files": None}}
    assert schema_errors(unrecorded, "x") == ["provenance.dirty_files is NoneType"]
    assert schema_errors({**unrecorded, "migrated_from_commit": "1" * 40}, "x") == []
    assert schema_errors({**good, "rows": [{"system": "s", "dataset": "d"}]}, "x") == ["row s / d: no provenance"]
