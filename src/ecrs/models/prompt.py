"""ECR's prompt (ECR_SPEC §4.2–§4.6): text–entity fusion, local and global emotion-aware entity representations,
and the learned task tokens, assembled as `[task tokens ; local ; global]` for the backbone to read.

Every part is switchable, which gives the paper's ablation rows from one module:
UniCRS = fusion only; ECR[L] = + local; ECR[LG] = + local + global; (S, the loss reweighting, lives in the loss).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ecrs.emotions import EMOTIONS


class TextEntityFusion(nn.Module):
    """UniCRS's bilinear cross-attention (§4.2): each context entity attends over the context text states and is
    enriched with what it attends to.

        A_{jt} = (W h_t) · e_j / d                     (B, L, T)
        ẽ_j   = e_j + Σ_t softmax_t(A_{jt}) h_t         (B, L, d)

    `h_t` are token states (LM backbone) or turn-sentence states (fast backbone). Padded text positions are masked;
    a sample with no text keeps `ẽ_j = e_j`.
    """

    def __init__(self, d: int):
        super().__init__()
        self.bilinear = nn.Linear(d, d, bias=False)
        self.d = d

    def forward(self, entities: Tensor, text: Tensor, text_mask: Tensor) -> Tensor:
        # entities (B, L, d) float; text (B, T, d) float; text_mask (B, T) bool (True = real position)
        scores = torch.einsum("bld,btd->blt", entities, self.bilinear(text)) / self.d  # (B, L, T)
        scores = scores.masked_fill(~text_mask[:, None, :], float("-inf"))
        attn = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # rows with no text -> all zeros
        return entities + attn @ text  # (B, L, d)


class EmotionVectors(nn.Module):
    """F_j = Σ_i p_i · V[label_i] over an entity's (≤ 3) attached labels (§4.3); V is learned, (9, d_emotion)."""

    def __init__(self, d_emotion: int = 48):
        super().__init__()
        self.table = nn.Embedding(len(EMOTIONS), d_emotion)

    def forward(self, labels: Tensor, probs: Tensor) -> Tensor:
        # labels (B, L, 3) long; probs (B, L, 3) float, 0 where there is no label -> F (B, L, d_emotion)
        return (probs.unsqueeze(-1) * self.table(labels)).sum(dim=-2)


@dataclass
class PromptOutput:
    tokens: Tensor  # (B, P, d) float: [task tokens ; local (L) ; global (L)]
    mask: Tensor  # (B, P) bool, True = real token
    emotion: Tensor | None = None  # (B, L, d_emotion) F_j of the context entities (when the local part is on)


class EmotionAwarePrompt(nn.Module):
    """Builds the prompt from context entities, their emotions and the text states.

        ẽ_j  = fusion(e_j, text)                        §4.2   (or e_j when fusion is off)
        ẽ'_j = MLP([ẽ_j ; F_j])                         §4.4   local   (residual: ẽ_j + MLP([ẽ_j ; F_j]))
        E_j  = Σ_i P(e_i | e_j) · table[e_i]             §4.5   global, P sparse
        E'_j = MLP([E_j ; F_j])                         §4.5   (the same MLP; residual: E_j + MLP(...))
        prompt = [task_1..task_n ; ẽ'_1..ẽ'_L ; E'_1..E'_L]
    """

    def __init__(self, d: int, n_task_tokens: int = 10, fusion: bool = True, local: bool = True,
                 global_: bool = True, d_emotion: int = 48, dropout: float = 0.1, residual: bool = False):
        super().__init__()
        if global_ and not local:
            raise ValueError("the global representation reuses the local MLP: enable local_emotion too")
        self.task = nn.Parameter(torch.randn(n_task_tokens, d) * d ** -0.5)
        self.fusion = TextEntityFusion(d) if fusion else None
        self.emotions = EmotionVectors(d_emotion) if local else None
        self.mlp = nn.Sequential(nn.Linear(d + d_emotion, d), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(d, d)) if local else None
        self.use_global = global_
        # Ours, not the paper's: with `residual` the MLP adds an emotion-dependent correction to the entity instead
        # of replacing it, so the entity's identity reaches the backbone unchanged (the replacing MLP over-fitted
        # early here: valid R@50 peaked at epoch 5 and fell, below UniCRS, which has no MLP).
        self.residual = residual

    def _emotional(self, e: Tensor, f: Tensor) -> Tensor:
        out = self.mlp(torch.cat([e, f], dim=-1))
        return e + out if self.residual else out

    def forward(self, table: Tensor, entities: Tensor, entity_mask: Tensor, text: Tensor, text_mask: Tensor,
                emo_labels: Tensor, emo_probs: Tensor, global_rows: Tensor | None = None) -> PromptOutput:
        """
        table (N, d) float: the entity table; entities (B, L) long (padding 0, masked by entity_mask (B, L) bool);
        text (B, T, d), text_mask (B, T); emo_labels / emo_probs (B, L, 3);
        global_rows: sparse (B·L, N) float, the rows P(· | e_j) of the co-occurrence matrix (needed when global).
        """
        b, n_ent = entities.shape
        e = table[entities]  # (B, L, d)
        local = self.fusion(e, text, text_mask) if self.fusion is not None else e  # ẽ (B, L, d)
        parts, masks = [local], [entity_mask]
        f = None
        if self.mlp is not None:
            f = self.emotions(emo_labels, emo_probs)  # F (B, L, d_emotion)
            parts[0] = self._emotional(local, f)  # ẽ' (B, L, d)
            if self.use_global:
                if global_rows is None:
                    raise ValueError("global_rows are needed when the global representation is on")
                g = torch.sparse.mm(global_rows, table).view(b, n_ent, -1)  # E (B, L, d)
                parts.append(self._emotional(g, f))  # E' (B, L, d)
                masks.append(entity_mask)
        task = self.task.expand(b, -1, -1)  # (B, n_task, d)
        tokens = torch.cat([task, *parts], dim=1)  # (B, n_task + L·k, d)
        mask = torch.cat([torch.ones(b, task.shape[1], dtype=torch.bool, device=entities.device), *masks], dim=1)
        return PromptOutput(tokens=tokens, mask=mask, emotion=f)
