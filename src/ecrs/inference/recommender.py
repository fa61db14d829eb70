"""Trained recommenders behind the one `Recommender` contract (`fit(train, kg)` / `score(samples)`), loaded from
the run folders `ecrs train recommender` writes. The entity table and the movie columns are computed once and
cached: at inference only the query side runs (prompt + backbone), then the head's own `score` over the movies.

    rec = TrainedRecommender.load("artifacts/recommender/redial/ecr-fast-s0")
    scores = rec.score(samples)                                            # (N, n_items), kg.item_ids order
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecrs.config import from_dict
from ecrs.data.cooccurrence import Cooccurrence, load_matrix
from ecrs.data.datasets import load_kg
from ecrs.data.kg import KnowledgeGraph
from ecrs.data.samples import Sample
from ecrs.errors import EcrsError
from ecrs.models.build import build_model
from ecrs.models.context_encoder import TurnEmbeddingCache
from ecrs.models.prefix_lm import load_lm
from ecrs.models.recommender import (
    Columns,
    Featurizer,
    ModelConfig,
    RecommenderModel,
    entity_name_vectors,
)

__all__ = ["CALIBRATION_FILE", "TrainedRecommender"]

CALIBRATION_FILE = "calibration.json"  # the context shift fitted on validation (`ecrs.training.calibrate`)


class TrainedRecommender:
    """A trained checkpoint. `fit` only checks that the graph matches (training is `ecrs train recommender`)."""

    def __init__(self, name: str, run_dir: Path, cfg: ModelConfig, model: RecommenderModel, kg: KnowledgeGraph,
                 turn_vectors=None, tokenizer=None, cooccurrence=None, info: dict[str, Any] | None = None,
                 context_shift: float = 0.0):
        self.name = name
        self.run_dir = run_dir
        self.cfg = cfg
        self.model = model.eval()
        self.kg = kg
        self.turn_vectors = turn_vectors
        self.tokenizer = tokenizer
        self.cooccurrence = cooccurrence
        self.info = info or {}
        self.context_shift = context_shift  # added to the scores of the context's movies (0 = uncalibrated)
        self._table: torch.Tensor | None = None  # (N, d)
        self._items: Columns | None = None  # the movies, in `kg.item_ids` order

    @classmethod
    def load(cls, run_dir: str | Path, name: str | None = None, kg: KnowledgeGraph | None = None,
             threads: int = 0, live_int8: bool = False, calibrated: bool = True,
             cache_turns: bool = False) -> TrainedRecommender:
        """`calibrated`: apply the context shift fitted on validation when the run has one (`calibration.json`).
        `cache_turns`: turns not in the embedding cache are embedded like the training turns and saved there
        (evaluation: every run and seed then reads the test turns from disk); else they are embedded live and
        kept in memory only (chat, serving)."""
        run_dir = Path(run_dir)
        path = run_dir / "model.pt"
        if not path.exists():
            raise EcrsError(f"{path}: no trained recommender here (train one with `ecrs train recommender`)")
        if threads:
            torch.set_num_threads(threads)
        ck = torch.load(path, map_location="cpu", weights_only=False)
        cfg = from_dict(ModelConfig, ck["model_config"], str(path))
        if kg is None:
            kg = load_kg(ck.get("dataset", "redial"), ck.get("kg_dir", ""))
        lm = tok = None
        if cfg.kind == "ecr" and cfg.backbone == "lm":
            lm, tok = load_lm(cfg.lm_gguf)
        vectors = None
        if (cfg.kind == "ecr" and cfg.backbone == "fast") or cfg.entity_name_features:
            cache = TurnEmbeddingCache(ck.get("embedding_cache", "artifacts/cache/minilm"), live_int8=live_int8)
            vectors = cache.encode_cached if cache_turns else cache.encode_live
        names = entity_name_vectors(kg, vectors) if cfg.entity_name_features else None
        model = build_model(cfg, kg, lm, names)
        missing, unexpected = model.load_state_dict(ck["model"], strict=False)
        if unexpected or [k for k in missing if ".lm." not in k]:
            raise EcrsError(f"{path}: checkpoint does not fit the model (missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]})")
        cooc = None
        if cfg.kind == "ecr" and cfg.global_emotion:
            cooc = Cooccurrence(load_matrix(run_dir / "cooccurrence.npz"), normalised=True)  # wrapped once
        if not (cfg.kind == "ecr" and cfg.backbone == "fast"):
            vectors = None  # the turn texts are not read (KBRD, lm backbone)
        info = {k: ck.get(k) for k in ("dataset", "name", "epoch", "valid_R@50")}
        shift = 0.0
        if calibrated and (run_dir / CALIBRATION_FILE).exists():
            shift = float(json.loads((run_dir / CALIBRATION_FILE).read_text())["context_shift"])
        return cls(name or ck.get("name", run_dir.name), run_dir, cfg, model, kg, vectors, tok, cooc, info, shift)

    # ------------------------------------------------------------ the Recommender contract

    def fit(self, train: list[Sample], kg: KnowledgeGraph) -> None:
        if kg.num_entities != self.kg.num_entities or kg.item_ids != self.kg.item_ids:
            raise EcrsError(f"{self.run_dir}: trained on another graph ({self.kg.num_entities} entities, "
                            f"{len(self.kg.item_ids)} movies) than the one given ({kg.num_entities}, "
                            f"{len(kg.item_ids)})")

    def warm_up(self) -> None:
        """Pay the one-off costs now, not in the first chat turn: the entity table and the turn encoder (whose
        first call may export and quantise the ONNX graph)."""
        self.cache_table()
        if self.turn_vectors is not None:
            self.turn_vectors(["ecrs warm-up: not a cached turn"])

    def featurize(self, samples: list[Sample]) -> Featurizer:
        return Featurizer(self.cfg, samples, self.turn_vectors, self.tokenizer, self.cooccurrence)

    @torch.no_grad()
    def cache_table(self) -> None:
        """Entity table (N, d) and the movie columns (rows and biases), computed once."""
        if self._table is None:
            self._table = self.model.encoder()
            self._items = self.model.head.scorer.columns(self._table, self.kg.item_ids).gathered()

    def score(self, samples: list[Sample], batch_size: int = 256) -> np.ndarray:
        """(N, n_items) float32, one column per movie in `kg.item_ids` order: the head's own scores of the movie
        columns (`RecommenderModel.score_items` on the cached table; the other 25k entities are never ranked here, so
        their logits are not computed), plus the calibrated context shift."""
        self.cache_table()
        scores = self.model.score_items(self.featurize(samples), self.kg.item_ids, table=self._table,
                                        cols=self._items, batch_size=batch_size)
        if self.context_shift:
            for row, cols in enumerate(self.context_columns(samples)):
                scores[row, cols] += self.context_shift
        return scores

    def context_columns(self, samples: list[Sample]) -> list[np.ndarray]:
        """Movie columns among each sample's context entities (the ones the model reads): what the shift moves."""
        self.cache_table()
        column = self._items.index.numpy()
        out = []
        for s in samples:
            c = column[np.asarray(s.entities[-self.cfg.max_entities:], dtype=np.int64)]
            out.append(np.unique(c[c >= 0]))
        return out

    def prefetch(self, texts: list[str]) -> None:
        """Start embedding turns that a later `score` will read (the system's reply), in the background."""
        owner = getattr(self.turn_vectors, "__self__", None)  # the TurnEmbeddingCache of `encode_live`
        if hasattr(owner, "prefetch"):
            owner.prefetch(texts)
