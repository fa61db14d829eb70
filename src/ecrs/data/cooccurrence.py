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

Training samples read their rows leave-one-dialogue-out (`Cooccurrence.rows`): a sample's own dialogue is one of
the training dialogues, so the full P would hand it the answer (its target follows its context entities in the
very dialogue counted) and the model would learn to trust P far more than it deserves on unseen dialogues.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ecrs.data.bundle import iter_jsonl
from ecrs.data.dialogues import Dialogue, Turn
from ecrs.data.samples import Emotions, turn_emotions
from ecrs.emotions import BETA
from ecrs.errors import DataError


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


def _normalise_rows(c: sp.csr_matrix) -> sp.csr_matrix:
    rows = np.asarray(c.sum(axis=1)).ravel()
    inv = np.divide(1.0, rows, out=np.zeros_like(rows, dtype=np.float64), where=rows > 0)
    p = sp.csr_matrix(sp.diags(inv) @ c, dtype=np.float32)
    p.sort_indices()
    return p


class Cooccurrence:
    """Pair counts C (CSR) and each training dialogue's own counts, serving rows of P(· | x).

    `rows(entities, dialogues)` returns P(· | x) for each x, computed without the named dialogue's own pairs
    (leave-one-dialogue-out) where one is given; unknown or None dialogues (validation, test, live chat) read
    the full P.
    """

    def __init__(self, counts: sp.csr_matrix, by_dialogue: dict[str, dict[int, dict[int, int]]] | None = None,
                 normalised: bool = False):
        """`normalised=True`: `counts` already holds P (possibly restricted to some columns) and rows are served
        as they are."""
        self.counts = sp.csr_matrix(counts, dtype=np.float64)
        self.by_dialogue = by_dialogue or {}
        self.normalised = normalised

    @property
    def n_entities(self) -> int:
        return self.counts.shape[1]  # columns: the entities a row spreads over

    def matrix(self) -> sp.csr_matrix:
        return sp.csr_matrix(self.counts, dtype=np.float32) if self.normalised else _normalise_rows(self.counts)

    def rows(self, entities: np.ndarray, dialogues: Sequence[str | None] | None = None) -> sp.csr_matrix:
        """(M, N) float32 CSR: row m = P(· | entities[m]) (all zero for entities[m] < 0)."""
        ents = np.asarray(entities, dtype=np.int64)
        if self.normalised:
            return sp.csr_matrix(sp.diags((ents >= 0).astype(np.float64)) @ self.counts[np.maximum(ents, 0)],
                                 dtype=np.float32)
        c = self.counts[np.maximum(ents, 0)].tocoo()
        r, col, val = [c.row], [c.col], [c.data]
        if dialogues is not None and self.by_dialogue:
            fix = [(m, y, -n) for m, (x, d) in enumerate(zip(ents, dialogues)) if d in self.by_dialogue
                   for y, n in self.by_dialogue[d].get(int(x), {}).items()]
            if fix:
                fr, fc, fv = (np.asarray(a) for a in zip(*fix))
                r, col, val = r + [fr], col + [fc], val + [fv.astype(np.float64)]
        m = sp.csr_matrix((np.concatenate(val), (np.concatenate(r), np.concatenate(col))),
                          shape=(len(ents), self.n_entities))  # duplicates summed: count − own count
        m.data[np.abs(m.data) < 1e-9] = 0.0
        m = sp.diags((ents >= 0).astype(np.float64)) @ m
        m.eliminate_zeros()
        return _normalise_rows(sp.csr_matrix(m))


def training_cooccurrence(dialogues: Iterable[Dialogue], seeker_probs: Iterable[dict[int, Sequence[float]]],
                          n_entities: int, beta: float = BETA, shared_emotion: bool = True) -> Cooccurrence:
    total: Counter = Counter()
    by_dialogue: dict[str, dict[int, dict[int, int]]] = {}
    for d, probs in zip(dialogues, seeker_probs):
        own = count_pairs(dialogue_mentions(d, turn_emotions(d, probs, beta)), None, shared_emotion)
        total.update(own)
        nested = by_dialogue.setdefault(d.id, {})  # an id seen twice (two sources) pools both
        for (x, y), n in own.items():
            nested.setdefault(x, {})[y] = nested.get(x, {}).get(y, 0) + n
    return Cooccurrence(_count_matrix(total, n_entities), {k: v for k, v in by_dialogue.items() if v})


def _count_matrix(counts: Counter, n_entities: int) -> sp.csr_matrix:
    if not counts:
        return sp.csr_matrix((n_entities, n_entities), dtype=np.float64)
    (xs, ys), vals = zip(*counts.keys()), list(counts.values())
    return sp.coo_matrix((np.asarray(vals, np.float64), (np.asarray(xs), np.asarray(ys))),
                         shape=(n_entities, n_entities)).tocsr()


def transition_matrix(counts: Counter, n_entities: int) -> sp.csr_matrix:
    """Row-normalised P(y | x) as scipy CSR float32 (n_entities, n_entities)."""
    return _normalise_rows(_count_matrix(counts, n_entities))


def load_training_cooccurrence(data_dir: str, dataset: str, n_entities: int, beta: float = BETA,
                               shared_emotion: bool = True, dialogues: set[str] | None = None) -> Cooccurrence:
    """Counts from `<data_dir>/<dataset>/train_dialogues.jsonl.gz` (written by `ecrs prepare`) only; `dialogues`
    keeps only those ids (a training subset)."""
    path = Path(data_dir) / dataset / "train_dialogues.jsonl.gz"
    if not path.exists():
        raise DataError(f"prepared dialogues not found; run `ecrs prepare --set dataset={dataset}`", path)
    keep, dialogues, probs = dialogues, [], []
    for _, obj in iter_jsonl(path):
        if keep is not None and str(obj["id"]) not in keep:
            continue
        turns = [Turn(role=t["role"], text=t["text"], raw=t.get("raw", ""), movies=t.get("movies", []),
                      entities=t.get("entities", [])) for t in obj["turns"]]
        dialogues.append(Dialogue(id=str(obj["id"]), turns=turns))
        probs.append({int(k): v for k, v in (obj.get("seeker_emotions") or {}).items()})
    return training_cooccurrence(dialogues, probs, n_entities, beta, shared_emotion)


def save_matrix(p: sp.csr_matrix, path) -> None:
    sp.save_npz(path, p, compressed=True)


def load_matrix(path) -> sp.csr_matrix:
    return sp.csr_matrix(sp.load_npz(path), dtype=np.float32)
