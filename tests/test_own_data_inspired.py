"""Generality: INSPIRED, converted to the own-data format by scripts/inspired_to_own.py, goes through the same
`ecrs prepare` and `ecrs evaluate` commands as ReDial, end to end (the baselines need no training)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ecrs.cli import main
from ecrs.data.bundle import REPO_ROOT, bundled


def test_inspired_as_own_data_prepare_and_evaluate(tmp_path: Path) -> None:
    own = {}
    for split, limit in (("train", "300"), ("test", "99")):
        own[split] = tmp_path / f"inspired_{split}.jsonl"
        done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts/inspired_to_own.py"),
                               str(bundled(f"inspired/{split}_data_dbpedia.jsonl.gz")), str(own[split]),
                               "--limit", limit], capture_output=True, text=True, check=True)
        assert f"wrote {limit} dialogues" in done.stdout
    data, results = tmp_path / "data", tmp_path / "results" / "recommendation.json"
    # No emotion classifier needed by the baselines (and none is trained in the default test run).
    assert main(["prepare", "--set", "dataset=own", "--set", f"own_train={own['train']}", "--set",
                 f"own_test={own['test']}", "--set", f"out_dir={data}", "--set", "emotion_model=''"]) == 0
    manifest = json.loads((data / "own" / "manifest.json").read_text())
    assert manifest["stats"]["test"]["dialogues"] == 99 and manifest["stats"]["train"]["samples"] > 100
    paired = tmp_path / "results" / "paired.json"
    assert main(["evaluate", "--set", "datasets=[own]", "--set", "systems=[popularity, repeat-context]",
                 "--set", f"data_dir={data}", "--set", f"results={results}", "--set", "compare=[repeat-context:popularity]",
                 "--set", f"compare_results={paired}"]) == 0
    rows = {r["system"]: r for r in json.loads(results.read_text())["rows"]}
    assert set(rows) == {"popularity", "repeat-context"}
    for r in rows.values():
        m = r["metrics"]["standard"]
        assert r["dataset"] == "own" and m["n_samples"] == manifest["stats"]["test"]["targets"] > 50  # one per (turn, movie)
        assert 0 <= m["R@1"] <= m["R@10"] <= m["R@50"] <= 1
    assert rows["repeat-context"]["metrics"]["standard"]["R@1"] > 0  # INSPIRED recommenders repeat movies too
    # the paired comparison: the rows' difference, with an interval around it; no feedback -> no RT@50 / AUC
    (gap,) = json.loads(paired.read_text())["rows"]
    r50 = gap["difference"]["R@50"]
    want = rows["repeat-context"]["metrics"]["standard"]["R@50"] - rows["popularity"]["metrics"]["standard"]["R@50"]
    assert gap["system"] == "repeat-context - popularity" and abs(r50["difference"] - want) < 1e-12
    assert r50["ci_low"] <= r50["difference"] <= r50["ci_high"] and r50["ci_low"] < r50["ci_high"]
    assert gap["difference"]["RT@50"] is None and gap["difference"]["AUC"] is None
