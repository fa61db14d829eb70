"""Wiring a recommender from its config: the entity encoder plus the head its `kind` and `backbone` name."""
from __future__ import annotations

import numpy as np
import torch

from ecrs.data.kg import KnowledgeGraph
from ecrs.models.entity_encoder import EntityEncoder
from ecrs.models.kbrd import KBRDHead
from ecrs.models.prefix_lm import PrefixLM
from ecrs.models.recommender import ECRHead, FastReader, Head, ModelConfig, RecommenderModel


def build_model(cfg: ModelConfig, kg: KnowledgeGraph, lm=None, name_features: np.ndarray | None = None
                ) -> RecommenderModel:
    """Wire the model for `kg` (constructors only wire: the LM and the entity-name vectors, if any, are loaded by
    the caller; `ecrs.models.recommender.entity_name_vectors` gives the latter)."""
    if cfg.entity_name_features and name_features is None:
        raise ValueError("entity_name_features is on: pass name_features (entity_name_vectors(kg, lookup))")
    edge_index, edge_type = kg.edge_tensors()
    encoder = EntityEncoder(kg.num_entities, kg.num_relations, edge_index, edge_type, cfg.d_kg, cfg.d_model,
                            cfg.num_bases, cfg.dropout,
                            torch.from_numpy(name_features) if cfg.entity_name_features else None)
    head: Head
    if cfg.kind == "kbrd":
        head = KBRDHead(cfg.d_model, kg.num_entities, kg.item_ids if cfg.item_scoring else None)
    elif cfg.backbone == "fast":
        backbone = FastReader(cfg.d_model, cfg.max_turns, cfg.reader_layers, cfg.reader_heads, cfg.dropout)
        head = ECRHead(cfg, kg.num_entities, backbone, kg.item_ids)
    else:
        if lm is None:
            raise ValueError("the lm backbone needs a loaded causal LM (ecrs.models.prefix_lm.load_lm)")
        head = ECRHead(cfg, kg.num_entities, PrefixLM(lm, cfg.d_model, cfg.prefix_hidden, cfg.dropout),
                       kg.item_ids)
    return RecommenderModel(cfg, encoder, head)
