"""Shared by the benchmark scripts: results files that several scripts fill in, key by key, and the per-target
outcomes of trained recommender runs with their a-minus-b differences."""
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


def run_outcomes(pattern: str, data_dir: str, kg) -> list:
    """Each trained run matching `pattern` scored on the ReDial test split of `data_dir`: `TargetOutcomes` per run."""
    import glob

    import numpy as np

    from ecrs.data.prepare import load_samples
    from ecrs.evaluation.evaluate import evaluate_recommender
    from ecrs.inference.recommender import TrainedRecommender

    train, test = load_samples(data_dir, "redial", "train"), load_samples(data_dir, "redial", "test")
    dirs = sorted(Path(p) for p in glob.glob(pattern) if (Path(p) / "model.pt").exists())
    if not dirs:
        raise SystemExit(f"no trained runs match {pattern} (see the script's docstring)")
    runs = []
    for d in dirs:
        model = TrainedRecommender.load(d, calibrated=True, cache_turns=True)
        model.fit(train, kg)
        runs.append(evaluate_recommender(model, train, test, kg, keep_outcomes=True)["outcomes"])
        print(f"  {d}: R@50 {np.mean(runs[-1].ranks <= 50):.4f}", flush=True)
    return runs


def per_seed(runs: list, k: int = 50) -> dict[str, list[float]]:
    """Per-run R@k and RT@k (liked targets): the inputs of the Welch interval over seeds."""
    import numpy as np

    liked = runs[0].feedback == "liked"
    return {f"R@{k}": [float(np.mean(o.ranks <= k)) for o in runs],
            f"RT@{k}": [float(np.mean(o.ranks[liked] <= k)) for o in runs]}


def difference(a: list, b: list) -> dict[str, Any]:
    """Runs a minus runs b on R@50, RT@50 and AUC: a 95 % paired bootstrap over the test targets (seed means) and,
    for the recalls, a Welch interval over the seeds."""
    from ecrs.evaluation.evaluate import compare_outcomes
    from ecrs.evaluation.metrics import seed_difference

    out: dict[str, Any] = {}
    sa, sb = per_seed(a), per_seed(b)
    for k, g in compare_outcomes(a, b).items():
        if g is None:
            continue
        out[k] = {"bootstrap": {x: round(g[x], 4) for x in ("difference", "ci_low", "ci_high")}}
        if k in sa:
            w = seed_difference(sa[k], sb[k])
            out[k]["seeds_welch"] = {"difference": round(w.difference, 4), "low": round(w.low, 4),
                                     "high": round(w.high, 4)}
    return out


def error_bars(entries: list[dict[str, float]]):
    """Bootstrap entries ({difference, ci_low, ci_high}) -> (centres, asymmetric yerr) for `plt.errorbar`."""
    import numpy as np

    mid = np.array([x["difference"] for x in entries])
    low = np.array([x["ci_low"] for x in entries])
    high = np.array([x["ci_high"] for x in entries])
    return mid, np.array([mid - low, high - mid])
