"""Emotion-filtered entity co-occurrence (ECR_SPEC §4.5): the "collaborative knowledge" of the global
emotion-aware entity representation.

From the TRAINING dialogues only: take each dialogue's entity mentions in order (both speakers, turn order, then
text order within a turn), each carrying the emotion labels attached to its turn by ECR's rule
(`ecrs.data.samples.turn_emotions`). Every ordered pair of mentions (earlier x -> later y, any distance) counts
once when the first three labels of x and of y share at least one label:

    C[x, y] = #{(i, j) : i < j, m_i = x, m_j = y, x != y, labels3(i) ∩ labels3(j) != ∅}
    P(y | x) = C[x, y] / Σ_y' C[x, y']          (rows without any pair stay all-zero)

Pairs of an entity with itself are not counted (a repeat is not co-occurrence with another entity). The matrix is
returned as scipy CSR float32 (n_entities, n_entities): the reference code held it dense (~4 GB at 31k entities).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from ecrs.data.dialogues import Dialogue
from ecrs.data.samples import Emotions, turn_emotions
from ecrs.emotions import BETA


def dialogue_mentions(dialogue: Dialogue, emotions: Sequence[Emotions]) -> list[tuple[int, frozenset[str]]]:
    """(entity, first three labels) for every mention in order; `emotions[k]` are turn k's attached labels."""
    out = []
    for turn, ems in zip(dialogue.turns, emotions):
        labels = frozenset(label for label, _ in list(ems)[:3])
        out += [(e, labels) for e in turn.entities]
    return out


def count_pairs(mentions: Sequence[tuple[int, frozenset[str]]], counts: Counter | None = None,
                shared_emotion: bool = True) -> Counter:
    """Add one dialogue's ordered pairs (x earlier, y later, x != y) to `counts`: those sharing an emotion label
    (ECR), or all of them with `shared_emotion=False` (plain co-occurrence, the filter's ablation)."""
    counts = Counter() if counts is None else counts
    for i, (x, lx) in enumerate(mentions):
        if shared_emotion and not lx:
            continue
        for y, ly in mentions[i + 1:]:
            if y != x and (not shared_emotion or lx & ly):
                counts[(x, y)] += 1
    return counts


def cooccurrence_counts(dialogues: Iterable[Dialogue], seeker_probs: Iterable[dict[int, Sequence[float]]],
                        beta: float = BETA, shared_emotion: bool = True) -> Counter:
    counts: Counter = Counter()
    for d, probs in zip(dialogues, seeker_probs):
        count_pairs(dialogue_mentions(d, turn_emotions(d, probs, beta)), counts, shared_emotion)
    return counts


def transition_matrix(counts: Counter, n_entities: int) -> sp.csr_matrix:
    """Row-normalised P(y | x) as scipy CSR float32 (n_entities, n_entities)."""
    if counts:
        (xs, ys), vals = zip(*counts.keys()), list(counts.values())
        c = sp.coo_matrix((np.asarray(vals, np.float64), (np.asarray(xs), np.asarray(ys))),
                          shape=(n_entities, n_entities)).tocsr()
    else:
        c = sp.csr_matrix((n_entities, n_entities), dtype=np.float64)
    rows = np.asarray(c.sum(axis=1)).ravel()
    inv = np.divide(1.0, rows, out=np.zeros_like(rows), where=rows > 0)
    p = sp.diags(inv) @ c
    p = sp.csr_matrix(p, dtype=np.float32)
    p.sort_indices()
    return p


def load_training_cooccurrence(data_dir: str, dataset: str, n_entities: int, beta: float = BETA,
                               shared_emotion: bool = True) -> sp.csr_matrix:
    """P(y | x) from `<data_dir>/<dataset>/train_dialogues.jsonl.gz` (written by `ecrs prepare`)."""
    from pathlib import Path

    from ecrs.data.bundle import iter_jsonl
    from ecrs.data.dialogues import Turn
    from ecrs.errors import DataError

    path = Path(data_dir) / dataset / "train_dialogues.jsonl.gz"
    if not path.exists():
        raise DataError(f"prepared dialogues not found; run `ecrs prepare --set dataset={dataset}`", path)
    dialogues, probs = [], []
    for _, obj in iter_jsonl(path):
        turns = [Turn(role=t["role"], text=t["text"], raw=t.get("raw", ""), movies=t.get("movies", []),
                      entities=t.get("entities", [])) for t in obj["turns"]]
        dialogues.append(Dialogue(id=str(obj["id"]), turns=turns))
        probs.append({int(k): v for k, v in (obj.get("seeker_emotions") or {}).items()})
    return transition_matrix(cooccurrence_counts(dialogues, probs, beta, shared_emotion), n_entities)


def save_matrix(p: sp.csr_matrix, path) -> None:
    sp.save_npz(path, p, compressed=True)


def load_matrix(path) -> sp.csr_matrix:
    return sp.csr_matrix(sp.load_npz(path), dtype=np.float32)
