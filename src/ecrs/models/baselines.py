"""Non-learned recommenders: popularity and "repeat the context" (ECR_SPEC §6: about half of the published
R@1 comes from repeating movies already in the context, which this trivial baseline also gets).

Every recommender shares one contract (RecBole-style): `fit(train, kg)` then `score(samples) -> (N, n_items)`
float32, one column per catalogue movie in `kg.item_ids` order, higher = more recommended.
"""
from __future__ import annotations

from collections import Counter
from typing import Protocol

import numpy as np

from ecrs.data.kg import KnowledgeGraph
from ecrs.data.samples import Sample


class Recommender(Protocol):
    name: str

    def fit(self, train: list[Sample], kg: KnowledgeGraph) -> None: ...

    def score(self, samples: list[Sample]) -> np.ndarray: ...


class Popularity:
    """Score = how often the movie was a recommendation target in the training samples (same for every turn)."""

    name = "popularity"

    def __init__(self) -> None:
        self.scores: np.ndarray | None = None

    def fit(self, train: list[Sample], kg: KnowledgeGraph) -> None:
        column = {e: i for i, e in enumerate(kg.item_ids)}
        counts = Counter(t.item for s in train for t in s.targets)
        scores = np.zeros(len(kg.item_ids), dtype=np.float32)
        for item, c in counts.items():
            scores[column[item]] = c
        self.scores = scores

    def score(self, samples: list[Sample]) -> np.ndarray:
        if self.scores is None:
            raise RuntimeError("call fit() first")
        return np.broadcast_to(self.scores, (len(samples), len(self.scores))).copy()


class RepeatContext:
    """Recommend the movies already mentioned in the context, most recent first; then the rest by popularity."""

    name = "repeat-context"

    def __init__(self) -> None:
        self.popularity = Popularity()
        self.column: dict[int, int] = {}

    def fit(self, train: list[Sample], kg: KnowledgeGraph) -> None:
        self.popularity.fit(train, kg)
        self.column = {e: i for i, e in enumerate(kg.item_ids)}

    def score(self, samples: list[Sample]) -> np.ndarray:
        scores = self.popularity.score(samples)
        # Popularity is a count; anything mentioned in the context outranks every count.
        offset = scores.max() + 1.0
        for i, s in enumerate(samples):
            for rank, item in enumerate(s.mentioned_items):  # oldest first, so later ones score higher
                scores[i, self.column[item]] = offset + rank
        return scores
