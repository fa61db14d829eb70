"""evaluate_scores: which score the AUC compares (answers known by construction); update_results: merging rows."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from ecrs.data.samples import Sample, Target
from ecrs.evaluation.evaluate import TargetOutcomes, compare_outcomes, evaluate_scores


def _sample(i: int, feedback: str, mentioned: list[int]) -> Sample:
    return Sample(id=f"d{i}/1", dialog_id=f"d{i}", turn=1, context=[("seeker", "hi")], entities=[],
                  entity_emotions=[], mentioned_items=mentioned, targets=[Target(10, feedback, False)], response="")


def test_auc_compares_probabilities_not_raw_logits():
    # Liked target: logit 2 of (2, 0, 0) -> p ≈ 0.79. Disliked target: logit 10 of (10, 10, 10) -> p = 1/3.
    # Raw logits order them the wrong way round (AUC_logit 0); probabilities the right way (AUC 1).
    kg = SimpleNamespace(item_ids=[10, 11, 12])
    scores = np.array([[2.0, 0.0, 0.0], [10.0, 10.0, 10.0]], dtype=np.float32)
    out = evaluate_scores(scores, [_sample(0, "liked", []), _sample(1, "disliked", [])], kg)
    assert out["standard"]["AUC"] == 1.0 and out["standard"]["AUC_logit"] == 0.0


def test_dedup_auc_renormalises_without_the_mentioned_movies():
    # Disliked row: (0, 5, 0) with movie 11 already mentioned. With it, p(target) = 1/(2 + e^5) is below the liked
    # row's 1/3; once 11 is removed from the candidates, p = 1/2 is above it: the dedup AUC flips to 0.
    kg = SimpleNamespace(item_ids=[10, 11, 12])
    scores = np.array([[0.0, 0.0, 0.0], [0.0, 5.0, 0.0]], dtype=np.float32)
    out = evaluate_scores(scores, [_sample(0, "liked", []), _sample(1, "disliked", [11])], kg)
    assert out["standard"]["AUC"] == 1.0
    assert out["dedup"]["AUC"] == 0.0
    assert out["dedup"]["AUC_logit"] == pytest.approx(0.5)  # equal raw target scores: a tie


def _outcomes(ranks, log_probs, feedback) -> TargetOutcomes:
    return TargetOutcomes(np.asarray(ranks, float), np.asarray(log_probs, float), np.asarray(feedback))


def test_compare_outcomes_known_gaps():
    feedback = ["liked", "disliked"] * 20
    # A: every target in its top 50 and every liked target above every disliked one; B: none in the top 50 and
    # the opposite order -> A - B = +1 on R@50, RT@50 and AUC, whatever the resample.
    good = _outcomes([1] * 40, [-1.0, -5.0] * 20, feedback)
    bad = _outcomes([100] * 40, [-5.0, -1.0] * 20, feedback)
    gaps = compare_outcomes([good, good], [bad], n_resamples=200)
    for k in ("R@50", "RT@50", "AUC"):
        assert gaps[k]["difference"] == gaps[k]["ci_low"] == gaps[k]["ci_high"] == 1.0
    assert gaps["RT@50"]["n_targets"] == 20 and gaps["R@50"]["n_targets"] == 40
    # the mean over runs: one run of A hits everything, the other nothing -> A's R@50 is 0.5
    assert compare_outcomes([good, bad], [bad], n_resamples=200)["R@50"]["difference"] == 0.5


def test_compare_outcomes_same_system_is_zero_and_needs_the_same_targets():
    rng = np.random.default_rng(0)
    run = _outcomes(rng.integers(1, 200, 300), rng.normal(size=300), ["liked", "disliked", "unknown"] * 100)
    gaps = compare_outcomes([run], [run], n_resamples=200)
    assert all(g["difference"] == g["ci_low"] == g["ci_high"] == 0.0 for g in gaps.values())
    other = _outcomes(run.ranks, run.log_probs, ["liked"] * 300)
    with pytest.raises(ValueError, match="different test targets"):
        compare_outcomes([run], [other])


def test_update_results_replaces_rows_of_the_same_system_and_keeps_the_rest(tmp_path):
    from ecrs.evaluation.evaluate import update_results

    def row(system: str, r50) -> dict:
        return {"system": system, "dataset": "redial", "metrics": {"standard": {"R@50": r50, "AUC": None}},
                "provenance": {"commit": system}}

    path = tmp_path / "recommendation.json"
    update_results(path, "recommendation", [row("a", 0.3), row("b", {"mean": 0.4, "std": 0.01, "n": 3})],
                   markdown=False)
    update_results(path, "recommendation", [row("a", 0.35)], markdown=False, data={"test": "t.jsonl.gz"})
    out = json.loads(path.read_text())
    assert [r["system"] for r in out["rows"]] == ["a", "b"] and out["rows"][0]["metrics"]["standard"]["R@50"] == 0.35
    # the headline numbers: each row's (the mean over seeds); the file's provenance: the last call's
    assert out["metrics"]["redial"]["a"]["R@50"] == 0.35 and out["metrics"]["redial"]["b"]["R@50"] == 0.4
    assert out["benchmark"] == "recommendation" and out["provenance"]["data"] == {"test": "t.jsonl.gz"}
