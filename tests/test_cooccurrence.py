"""Emotion-filtered co-occurrence on a 3-dialogue fixture counted by hand (ECR_SPEC §4.5)."""
from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import asdict

import numpy as np
import pytest
import scipy.sparse as sp

from ecrs.data.cooccurrence import (
    cooccurrence_counts,
    count_pairs,
    load_training_cooccurrence,
    training_cooccurrence,
    transition_matrix,
)
from ecrs.data.dialogues import Dialogue, Turn
from ecrs.emotions import EMOTIONS


def probs(**kw: float) -> list[float]:
    return [kw.get(e, 0.0) for e in EMOTIONS]


def turn(role: str, entities: list[int]) -> Turn:
    return Turn(role=role, text=f"{role} {entities}", entities=entities)  # type: ignore[arg-type]


# A: mentions 10{like,happy} 11{like,happy} | 12{negative} (reaction of turn 2) | 13{like,curious} (reaction of
#    turn 4) | 10{like,curious}
A = Dialogue("A", [turn("seeker", [10, 11]), turn("recommender", [12]), turn("seeker", []),
                   turn("recommender", [13]), turn("seeker", [10])])
A_PROBS = {0: probs(like=0.8, happy=0.15), 2: probs(negative=0.9), 4: probs(like=0.7, curious=0.2)}
# B: 11{happy} 13{happy} | 14{happy,surprise}
B = Dialogue("B", [turn("seeker", [11, 13]), turn("recommender", [14]), turn("seeker", [])])
B_PROBS = {0: probs(happy=0.95), 2: probs(happy=0.5, surprise=0.3)}
# C: no emotions at all -> no pair counts
C = Dialogue("C", [turn("seeker", [10, 11]), turn("recommender", [12])])
C_PROBS: dict[int, list[float]] = {}

# Worked by hand: A gives (10,11) (10,13) (11,13) (11,10) (13,10); (10,10) is a self pair; 12 shares nothing.
# B gives (11,13) (11,14) (13,14).
EXPECTED = {(10, 11): 1, (10, 13): 1, (11, 13): 2, (11, 10): 1, (11, 14): 1, (13, 10): 1, (13, 14): 1}


def test_counts_by_hand():
    counts = cooccurrence_counts([A, B, C], [A_PROBS, B_PROBS, C_PROBS])
    assert dict(counts) == EXPECTED


def test_pair_needs_shared_label_and_order():
    like, neg = frozenset({"like"}), frozenset({"negative"})
    assert dict(count_pairs([(1, like), (2, like)])) == {(1, 2): 1}  # earlier -> later only
    assert dict(count_pairs([(1, like), (2, neg)])) == {}
    assert dict(count_pairs([(1, like), (1, like)])) == {}  # self pairs excluded
    assert dict(count_pairs([(1, like), (2, neg), (3, like)])) == {(1, 3): 1}  # any distance


def test_row_normalised_sparse():
    p = transition_matrix(cooccurrence_counts([A, B, C], [A_PROBS, B_PROBS, C_PROBS]), n_entities=20)
    assert sp.issparse(p) and p.format == "csr" and p.dtype == np.float32 and p.shape == (20, 20)
    dense = p.toarray()
    assert dense[10, 11] == pytest.approx(0.5) and dense[10, 13] == pytest.approx(0.5)
    assert dense[11, 13] == pytest.approx(0.5) and dense[11, 10] == pytest.approx(0.25)
    assert dense[11, 14] == pytest.approx(0.25)
    assert dense[13, 10] == pytest.approx(0.5) and dense[13, 14] == pytest.approx(0.5)
    assert dense[12].sum() == 0 and dense[14].sum() == 0  # no outgoing pair: an all-zero row, not NaN
    np.testing.assert_allclose(dense[[10, 11, 13]].sum(axis=1), 1.0, rtol=1e-6)
    assert p.nnz == len(EXPECTED)


def _write(path, dialogues, probs_list):
    with gzip.open(path, "wt") as f:
        for d, pr in zip(dialogues, probs_list):
            f.write(json.dumps({**asdict(d), "seeker_emotions": {str(k): v for k, v in pr.items()}}) + "\n")


def test_training_dialogues_only(tmp_path):
    (tmp_path / "redial").mkdir()
    _write(tmp_path / "redial" / "train_dialogues.jsonl.gz", [A, B, C], [A_PROBS, B_PROBS, C_PROBS])
    # A test dialogue whose pairs must not leak into the statistics.
    leak = Dialogue("T", [turn("seeker", [15, 16])])
    _write(tmp_path / "redial" / "test_dialogues.jsonl.gz", [leak], [{0: probs(like=0.9)}])
    p = load_training_cooccurrence(str(tmp_path), "redial", n_entities=20).matrix()
    assert p[15].nnz == 0
    assert dict(zip(map(tuple, np.argwhere(p.toarray() > 0)), [1] * 7)).keys() == EXPECTED.keys()


def test_plain_cooccurrence_ablation_counts_every_pair():
    like, neg = frozenset({"like"}), frozenset({"negative"})
    assert dict(count_pairs([(1, like), (2, neg), (3, frozenset())], shared_emotion=False)) == {
        (1, 2): 1, (1, 3): 1, (2, 3): 1}


def test_leave_one_dialogue_out_rows():
    co = training_cooccurrence([A, B, C], [A_PROBS, B_PROBS, C_PROBS], n_entities=20)
    np.testing.assert_allclose(co.matrix().toarray(), transition_matrix(Counter(EXPECTED), 20).toarray())
    # Entity 11 in a sample of dialogue B: B's own (11,13) and (11,14) are left out -> (11,13):1, (11,10):1.
    rows = co.rows(np.array([11, 11, -1]), ["B", None, "B"]).toarray()
    assert rows[0, 13] == pytest.approx(0.5) and rows[0, 10] == pytest.approx(0.5) and rows[0, 14] == 0
    np.testing.assert_allclose(rows[1], co.matrix().toarray()[11], rtol=1e-6)  # no dialogue: the full row
    assert rows[2].sum() == 0  # padding
    # A dialogue that holds every pair of its entity leaves an empty row, not NaN.
    only = training_cooccurrence([B], [B_PROBS], n_entities=20)
    assert only.rows(np.array([13]), ["B"]).nnz == 0
