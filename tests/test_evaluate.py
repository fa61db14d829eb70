"""evaluate_scores: which score the AUC compares (answers known by construction)."""
from types import SimpleNamespace

import numpy as np
import pytest

from ecrs.data.samples import Sample, Target
from ecrs.evaluation.evaluate import evaluate_scores


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
