"""KBRD-style recommender (Chen et al., 2019): R-GCN entity table, self-attention pooling over the context
entities, dot product with the table. No text, no emotions: the knowledge-graph baseline of ECR's Table 1.

    α_j = softmax_j( w₂ · tanh(W₁ e_j) )        over the real context entities
    u   = Σ_j α_j e_j                           (B, d)   (0 for a context without entities)
    logits = u · tableᵀ + b                     (B, C)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ecrs.models.recommender import Columns, Head, RecBatch, Scorer


class KBRDHead(Head):
    def __init__(self, d: int, n_entities: int, item_ids: list[int] | None = None):
        super().__init__()
        self.attn = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1, bias=False))
        self.scorer = Scorer(n_entities, train_items=item_ids)

    def query(self, batch: RecBatch, table: Tensor) -> Tensor:
        """(B, d) user vector u."""
        e = table[batch.entities]  # (B, L, d)
        scores = self.attn(e).squeeze(-1).masked_fill(~batch.entity_mask, float("-inf"))  # (B, L)
        alpha = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # empty context -> all zeros
        return torch.einsum("bl,bld->bd", alpha, e)  # (B, d)

    def score(self, batch: RecBatch, table: Tensor, cols: Columns) -> Tensor:
        return self.scorer(self.query(batch, table), batch, cols)
