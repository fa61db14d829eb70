"""Entity encoder (ECR_SPEC §3): one R-GCN layer over the DBpedia graph, residual, then an MLP to the model width.

    h_v = x_v + RGCN(x)_v,      RGCN(x)_v = W_0 x_v + Σ_r Σ_{u ∈ N_r(v)} (1/|N_r(v)|) W_r x_u,   W_r = Σ_b a_rb B_b
    table_v = MLP(h_v)          (n_entities, d_model)

`x` is a learned embedding per entity; `W_r` uses basis decomposition with 8 bases (PyG `RGCNConv`). Edges are
used in both directions with the same relation id (`KnowledgeGraph.edge_tensors`).

Cost: one forward+backward over all ~31k entities takes about a second at 128-d on 2 CPU cores (PyG loops over the
25 relations with a dense (N, d) x (d, d) product each), so the training loop does not recompute the table every
micro-batch: see `EntityTableWindow`. At inference the table is static and is computed once and cached.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import RGCNConv


class EntityEncoder(nn.Module):
    """All entities -> (n_entities, d_model) float32 table. Edge tensors are buffers (moved with `.to(device)`)."""

    def __init__(self, n_entities: int, n_relations: int, edge_index: Tensor, edge_type: Tensor,
                 d_kg: int = 128, d_model: int = 128, num_bases: int = 8, dropout: float = 0.0,
                 name_features: Tensor | None = None):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(n_entities, d_kg))
        nn.init.normal_(self.embedding, std=d_kg ** -0.5)
        # Optional frozen text features of the entity names (N, 384 MiniLM): x_v = embedding_v + W·name_v gives
        # rarely seen movies a starting point ("Toy Story 3" near "Toy Story") that the learned part refines.
        self.name_proj = None
        if name_features is not None:
            self.register_buffer("name_features", name_features.float(), persistent=False)  # (N, d_text)
            self.name_proj = nn.Sequential(nn.Linear(name_features.shape[1], d_kg), nn.LayerNorm(d_kg))
        self.rgcn = RGCNConv(d_kg, d_kg, n_relations, num_bases=num_bases)
        self.proj = nn.Sequential(nn.Linear(d_kg, d_kg), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_kg, d_model))
        self.register_buffer("edge_index", edge_index.long(), persistent=False)  # (2, E)
        self.register_buffer("edge_type", edge_type.long(), persistent=False)  # (E,)

    @property
    def n_entities(self) -> int:
        return self.embedding.shape[0]

    def forward(self) -> Tensor:
        """Returns the entity table (n_entities, d_model) float32 (§3: R-GCN + residual + MLP)."""
        x = self.embedding  # (N, d_kg)
        if self.name_proj is not None:  # LN, then scaled to the embedding's init scale (d^-1/2 per dim)
            x = x + self.name_proj(self.name_features) * x.shape[1] ** -0.5
        h = x + self.rgcn(x, self.edge_index, self.edge_type)  # (N, d_kg)
        return self.proj(h)  # (N, d_model)


class EntityTableWindow:
    """Recompute the entity table once per `every` optimizer steps, exactly.

    The R-GCN parameters change only at the end of a window, so within a window the table computed at its start is
    *the* table for the current parameters: no staleness. Every micro-batch reads a detached leaf copy of the table
    and its gradient accumulates on that leaf; at the window's end `flush()` backpropagates the accumulated gradient
    (averaged over the window's optimizer steps) through the R-GCN once, and the next optimizer step updates the
    encoder together with the rest of the model. The rest of the model still updates every step. In effect the
    encoder trains with `every`× larger batches, and its ~1 s forward+backward is paid once per window instead of
    once per micro-batch. `every=1` is the plain "recompute every step" of the paper.

    Under data parallelism each rank accumulates its own table gradient; `flush(all_reduce=...)` averages it across
    ranks before the backward (one (N, d) all-reduce per window instead of one per parameter).
    """

    def __init__(self, encoder: EntityEncoder, every: int = 1):
        if every < 1:
            raise ValueError("every must be >= 1")
        self.encoder = encoder
        self.every = every
        self._out: Tensor | None = None  # table with the R-GCN graph attached
        self._leaf: Tensor | None = None
        self._steps = 0

    def table(self) -> Tensor:
        """(n_entities, d_model) leaf tensor that collects gradients for the current window."""
        if self._leaf is None:
            self._out = self.encoder()
            self._leaf = self._out.detach().requires_grad_(True)
            self._steps = 0
        return self._leaf

    def after_micro_batches(self) -> bool:
        """Call once per optimizer step, before `optimizer.step()`: True when this step closes the window."""
        self._steps += 1
        return self._steps == self.every

    def flush(self, all_reduce=None) -> None:
        """Backpropagate the window's accumulated table gradient into the encoder; the next `table()` recomputes."""
        if self._leaf is None:
            return
        grad = self._leaf.grad
        if grad is not None:
            grad = grad / self._steps
            if all_reduce is not None:
                grad = all_reduce(grad)
            self._out.backward(grad)
        self._out = self._leaf = None
        self._steps = 0

    def discard(self) -> None:
        self._out = self._leaf = None
        self._steps = 0
