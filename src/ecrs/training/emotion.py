"""Training of the nine-label emotion classifier (ECR_SPEC §2) on the bundled LLM-annotated ReDial utterances.

    cfg = load_config(EmotionConfig, None, ["c_grid=[4]"])
    clf, report = train_emotion(cfg)        # also writes cfg.out/ (weights, config.yaml, split.json, report.json)

Steps: load examples -> held-out split (15 % of the utterances, whole dialogues, never used for training or model
selection) -> validation split (15 % of the rest, whole dialogues) -> for each L2 strength in `c_grid`, fit on
train and score Recall@2 on validation -> refit the chosen strength on train + validation -> save. Splits are
drawn by dialogue, so no held-out utterance shares a conversation (its topic, its movie titles, its repeated
phrases) with a training one.

Targets are soft: an utterance labelled [a] has target a = 1; one labelled [a, b] (strongest first) has a = 0.7,
b = 0.3 (`primary_weight`, `secondary_weight`). The head is a softmax regression fitted by L-BFGS on

    L(W, b) = mean_i  -Σ_k y_ik log softmax(x_i W + b)_k  +  ||W||² / (2 · C · N)

which is scikit-learn's `LogisticRegression(C)` objective divided by C·N, with soft targets in place of
duplicated weighted rows.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import sparse
from tqdm.auto import tqdm

from ecrs.config import save_config, to_dict
from ecrs.data.bundle import bundled, iter_jsonl, manifest
from ecrs.emotions import EMOTION_INDEX, EMOTIONS
from ecrs.errors import DataError, EcrsError
from ecrs.models.emotion import (
    FALLBACK,
    EmotionClassifier,
    MiniLMEncoder,
    NgramTfidf,
    SentenceEncoder,
    clean_text,
)

__all__ = [
    "SPLIT_FILE",
    "EmotionConfig",
    "EmotionExample",
    "fit_softmax",
    "grouped_split",
    "load_examples",
    "make_splits",
    "recall_at_k",
    "soft_targets",
    "train_emotion",
]

SPLIT_FILE = "split.json"


@dataclass
class EmotionConfig:
    """Settings of `ecrs train emotion`; the defaults are the shipped model (see benchmarks/results/emotion.json).

    data: a bundled path (see data/MANIFEST.tsv) or a file path; JSONL with id, context, text, labels.
    seed: salts the hash that orders the dialogues in the splits (same seed -> same split).
    heldout_fraction: share of the utterances kept out for the benchmark, in whole dialogues (never trained on or
        selected on).
    val_fraction: share of the remaining utterances, in whole dialogues, used to choose the L2 strength.
    primary_weight / secondary_weight: soft target of the first / second annotated label (sum 1).
    min_df, word_ngrams, char_ngrams, char_weight: n-gram TF-IDF of the utterance (NgramTfidf).
    context_weight: > 0 adds word n-grams of the recommender line before the utterance, scaled by this; 0 = off
        (measured: no gain on validation, so off).
    encoder: "none" (n-grams only, < 1 ms per utterance) or "minilm" (+ frozen all-MiniLM-L6-v2 embedding of
        the utterance, about +1 point Recall@2 for 15-70 ms per utterance on a 2-core CPU).
    encoder_weight, max_tokens: scale of the embedding block; tokens kept per utterance for MiniLM.
    max_chars: utterances are cut to this many characters before featurisation.
    c_grid: inverse L2 strengths tried; the best validation Recall@2 (then Recall@1) wins.
    max_iter: L-BFGS iterations per fit.
    refit: refit the chosen strength on train + validation for the saved model.
    out: checkpoint folder.
    """

    data: str = "emotion/redial_emotion_train.jsonl.gz"
    seed: int = 0
    heldout_fraction: float = 0.15
    val_fraction: float = 0.15
    primary_weight: float = 0.7
    secondary_weight: float = 0.3
    min_df: int = 2
    word_ngrams: int = 2
    char_ngrams: list[int] = field(default_factory=lambda: [2, 5])
    char_weight: float = 1.0
    context_weight: float = 0.0
    encoder: Literal["none", "minilm"] = "none"
    encoder_weight: float = 1.0
    max_tokens: int = 64
    max_chars: int = 2000
    c_grid: list[float] = field(default_factory=lambda: [4.0, 8.0, 16.0, 32.0])
    max_iter: int = 200
    refit: bool = True
    out: str = "artifacts/emotion"

    def __post_init__(self) -> None:
        if not 0.0 < self.heldout_fraction < 1.0 or not 0.0 < self.val_fraction < 1.0:
            raise EcrsError("heldout_fraction and val_fraction must lie in (0, 1)")
        if abs(self.primary_weight + self.secondary_weight - 1.0) > 1e-6 or self.secondary_weight < 0:
            raise EcrsError("primary_weight + secondary_weight must be 1, both >= 0")
        if len(self.char_ngrams) != 2 or not 1 <= self.char_ngrams[0] <= self.char_ngrams[1]:
            raise EcrsError(f"char_ngrams must be [lo, hi] with 1 <= lo <= hi, got {self.char_ngrams}")
        if not self.c_grid or min(self.c_grid) <= 0:
            raise EcrsError("c_grid must hold positive numbers")


@dataclass(frozen=True)
class EmotionExample:
    id: str
    context: str
    text: str
    labels: tuple[str, ...]  # 1-2 labels, strongest first

    @property
    def primary(self) -> str:
        return self.labels[0]

    @property
    def dialogue(self) -> str:
        """The conversation the utterance belongs to: ids are `<dialogue>-<turn>` (the bundled `train-10000-13`
        is turn 13 of ReDial dialogue 10000); an id without "-" is a dialogue of its own."""
        return self.id.rsplit("-", 1)[0]


def load_examples(path: str | Path) -> list[EmotionExample]:
    """Read annotated utterances; a bundled path (e.g. "emotion/redial_emotion_train.jsonl.gz") is verified
    against the manifest. Raises DataError naming file and line on a malformed row or an unknown label."""
    p = Path(path)
    if not p.exists():
        p = bundled(str(path))
    out: list[EmotionExample] = []
    seen: set[str] = set()
    for lineno, row in iter_jsonl(p):
        try:
            ex = EmotionExample(str(row["id"]), str(row.get("context") or ""), str(row["text"]),
                                tuple(row["labels"]))
        except (KeyError, TypeError):
            raise DataError("expected an object with id, text, labels", p, lineno) from None
        if not 1 <= len(ex.labels) <= 2 or any(lab not in EMOTION_INDEX for lab in ex.labels):
            raise DataError(f"labels must be 1-2 of {', '.join(EMOTIONS)}; got {list(ex.labels)}", p, lineno)
        if ex.id in seen:
            raise DataError(f"duplicate id {ex.id!r}", p, lineno)
        seen.add(ex.id)
        out.append(ex)
    if not out:
        raise DataError("no examples", p)
    return out


def grouped_split(ids: Sequence[str], groups: Sequence[str], fraction: float, seed: int, salt: str) -> set[str]:
    """Whole groups (dialogues), ordered by sha256(f"{salt}:{seed}:{group}"), taken until they hold
    round(fraction · n) of the n ids (the last group taken may overshoot by less than its size). Deterministic,
    independent of input order and of library versions."""
    if len(ids) != len(groups):
        raise ValueError("ids and groups differ in length")
    members: dict[str, list[str]] = {}
    for i, g in zip(ids, groups):
        members.setdefault(g, []).append(i)
    want = round(fraction * len(ids))
    chosen: set[str] = set()
    for g in sorted(members, key=lambda g: hashlib.sha256(f"{salt}:{seed}:{g}".encode()).hexdigest()):
        if len(chosen) >= want:
            break
        chosen.update(members[g])
    return chosen


def make_splits(examples: Sequence[EmotionExample], heldout_fraction: float = 0.15, val_fraction: float = 0.15,
                seed: int = 0) -> dict[str, list[str]]:
    """{"train", "val", "heldout"}: sorted, disjoint id lists covering `examples`, each of whole dialogues. The
    held-out part depends only on (ids, heldout_fraction, seed)."""
    heldout = grouped_split([e.id for e in examples], [e.dialogue for e in examples], heldout_fraction, seed,
                            "heldout")
    rest = [e for e in examples if e.id not in heldout]
    val = grouped_split([e.id for e in rest], [e.dialogue for e in rest], val_fraction, seed, "val")
    train = [e.id for e in rest if e.id not in val]
    return {"train": sorted(train), "val": sorted(val), "heldout": sorted(heldout)}


def soft_targets(examples: Sequence[EmotionExample], primary_weight: float = 0.7) -> np.ndarray:
    """(N, 9) float32 targets; rows sum to 1 (primary_weight / 1 - primary_weight for two labels)."""
    y = np.zeros((len(examples), len(EMOTIONS)), dtype=np.float32)
    for i, e in enumerate(examples):
        if len(e.labels) == 1:
            y[i, EMOTION_INDEX[e.primary]] = 1.0
        else:
            y[i, EMOTION_INDEX[e.labels[0]]] = primary_weight
            y[i, EMOTION_INDEX[e.labels[1]]] = 1.0 - primary_weight
    return y


def recall_at_k(probs: np.ndarray, gold: np.ndarray, k: int) -> float:
    """Share of rows whose gold index (N,) is among the k highest probabilities (N, 9); ties by lower index."""
    if len(gold) == 0:
        raise ValueError("recall_at_k of no rows")
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top == gold[:, None]).any(axis=1).mean())


def lbfgs(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, max_iter: int = 300,
          history: int = 10, gtol: float = 1e-6, ftol: float = 1e-7, progress: tqdm | None = None) -> np.ndarray:
    """Minimise a smooth function by L-BFGS (two-loop recursion) with Armijo backtracking; `fun` returns
    (value, gradient). Stops when max|grad| < gtol, when an iteration improves `fun` by less than ftol (relative), after
    max_iter iterations, or when no step decreases `fun`.
    Written out (40 lines) because scipy's L-BFGS-B bookkeeping and torch's LBFGS each cost more per iteration
    than the sparse gradient itself at this size on a 2-core CPU."""
    x = x0.copy()
    f, g = fun(x)
    s_hist: list[np.ndarray] = []
    y_hist: list[np.ndarray] = []
    rho: list[float] = []
    for _ in range(max_iter):
        if np.abs(g).max() < gtol:
            break
        q = g.copy()  # two-loop recursion: d = -H g
        alphas = []
        for s_i, y_i, r_i in zip(reversed(s_hist), reversed(y_hist), reversed(rho)):
            a = r_i * float(s_i @ q)
            q -= a * y_i
            alphas.append(a)
        if s_hist:
            q *= float(s_hist[-1] @ y_hist[-1]) / float(y_hist[-1] @ y_hist[-1])
        else:
            q /= max(1.0, float(np.linalg.norm(g)))
        for (s_i, y_i, r_i), a in zip(zip(s_hist, y_hist, rho), reversed(alphas)):
            q += (a - r_i * float(y_i @ q)) * s_i
        d = -q
        slope = float(g @ d)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            s_hist, y_hist, rho = [], [], []
            d, slope = -g, -float(g @ g)
        step = 1.0
        for _ls in range(30):
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            if f_new <= f + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        s_vec, y_vec = x_new - x, g_new - g
        sy = float(s_vec @ y_vec)
        if sy > 1e-12:
            s_hist.append(s_vec)
            y_hist.append(y_vec)
            rho.append(1.0 / sy)
            if len(s_hist) > history:
                s_hist.pop(0), y_hist.pop(0), rho.pop(0)
        converged = f - f_new < ftol * max(1.0, abs(f))
        x, f, g = x_new, f_new, g_new
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{f:.4f}", refresh=False)
        if converged:
            break
    return x


def fit_softmax(x: sparse.csr_matrix, y: np.ndarray, c: float, max_iter: int = 300,
                progress: tqdm | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Minimise the module docstring's L(W, b) by full-batch L-BFGS.
    x: (N, D) sparse features, y: (N, K) soft targets (rows sum to 1). Returns W (D, K), b (K,) float32."""
    n, d = x.shape
    k = y.shape[1]
    x64 = x.astype(np.float64).tocsr()
    xt = x64.T.tocsr()
    y64 = y.astype(np.float64)
    reg = 1.0 / (c * n)

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:  # theta = [W.ravel() ; b]
        w, b = theta[: d * k].reshape(d, k), theta[d * k:]
        z = x64 @ w + b  # (N, K)
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -(y64 * logp).sum() / n + 0.5 * reg * float((w * w).sum())
        dz = (np.exp(logp) - y64) / n  # (N, K) dL/dz, as rows of y sum to 1
        return loss, np.concatenate([(xt @ dz + reg * w).ravel(), dz.sum(axis=0)])

    theta = lbfgs(loss_grad, np.zeros(d * k + k), max_iter=max_iter, progress=progress)
    return theta[: d * k].reshape(d, k).astype(np.float32), theta[d * k:].astype(np.float32)


def _build(cfg: EmotionConfig, train: Sequence[EmotionExample], encoder: SentenceEncoder | None,
           cache: dict[str, np.ndarray]) -> tuple[EmotionClassifier, sparse.csr_matrix]:
    """An untrained classifier (feature vocabularies fitted on `train`) and the feature rows of `train`."""
    texts = [clean_text(e.text, cfg.max_chars) for e in train]
    ctxs = [clean_text(e.context, cfg.max_chars) for e in train]
    text_feats = NgramTfidf.fit(texts, cfg.min_df, cfg.word_ngrams, (cfg.char_ngrams[0], cfg.char_ngrams[1]),
                                cfg.char_weight)
    ctx_feats = NgramTfidf.fit(ctxs, cfg.min_df, cfg.word_ngrams, (1, 1), 0.0) if cfg.context_weight > 0 else None
    k = len(EMOTIONS)
    dim = text_feats.dim + (ctx_feats.dim if ctx_feats else 0)
    clf = EmotionClassifier(text_feats, np.zeros((dim, k), np.float32), np.zeros(k, np.float32), ctx_feats,
                            cfg.context_weight, None, cfg.encoder_weight, cfg.max_chars)
    x = clf.features(texts, ctxs)  # (N, dim) n-gram blocks
    if encoder is not None:  # embeddings are computed once per run (cache) and appended as the last block
        emb = np.stack([cache[e.id] for e in train]) * cfg.encoder_weight  # (N, 384)
        x = sparse.hstack([x, sparse.csr_matrix(emb)], format="csr", dtype=np.float32)
        clf.encoder, clf.weight = encoder, np.zeros((x.shape[1], k), np.float32)
    return clf, x


def train_emotion(cfg: EmotionConfig, encoder: SentenceEncoder | None = None, save: bool = True,
                  examples: Sequence[EmotionExample] | None = None) -> tuple[EmotionClassifier, dict[str, Any]]:
    """Select, fit and (if `save`) write the classifier to `cfg.out`; returns it and a report dict.
    `encoder` overrides loading MiniLM when `cfg.encoder == "minilm"`; `examples` overrides `cfg.data`."""
    t0 = time.perf_counter()
    if examples is None:
        examples = load_examples(cfg.data)
    by_id = {e.id: e for e in examples}
    splits = make_splits(examples, cfg.heldout_fraction, cfg.val_fraction, cfg.seed)
    train = [by_id[i] for i in splits["train"]]
    val = [by_id[i] for i in splits["val"]]
    if not train or not val:
        raise EcrsError(f"too few examples to split ({len(examples)})")

    cache: dict[str, np.ndarray] = {}
    if cfg.encoder == "minilm":
        encoder = encoder or MiniLMEncoder.load(max_tokens=cfg.max_tokens)
        fit_ids = splits["train"] + splits["val"]  # held-out utterances are never encoded here
        for s in tqdm(range(0, len(fit_ids), 256), desc="MiniLM embeddings", unit="batch"):
            chunk = fit_ids[s:s + 256]
            emb = encoder.encode([clean_text(by_id[i].text, cfg.max_chars) for i in chunk])
            cache.update(zip(chunk, emb))
    else:
        encoder = None

    # model selection: vocabularies and head fitted on train only, scored on val
    clf, x_train = _build(cfg, train, encoder, cache)
    y_train = soft_targets(train, cfg.primary_weight)
    gold_val = np.array([EMOTION_INDEX[e.primary] for e in val])
    scores: list[dict[str, float]] = []
    for c in cfg.c_grid:
        with tqdm(desc=f"fit C={c:g}", unit="eval", leave=False, mininterval=1.0) as bar:
            clf.weight, clf.bias = fit_softmax(x_train, y_train, c, cfg.max_iter, progress=bar)
        p = clf.predict_proba([e.text for e in val], [e.context for e in val])
        scores.append({"C": c, "val_recall@2": recall_at_k(p, gold_val, 2), "val_recall@1": recall_at_k(p, gold_val, 1)})
        tqdm.write(f"C={c:g}: val Recall@2 {scores[-1]['val_recall@2']:.4f}  Recall@1 {scores[-1]['val_recall@1']:.4f}")
    best = max(scores, key=lambda s: (s["val_recall@2"], s["val_recall@1"], -s["C"]))

    fit_on = train + val if cfg.refit else train
    clf, x_fit = _build(cfg, fit_on, encoder, cache)
    with tqdm(desc=f"final fit C={best['C']:g}", unit="eval", leave=False, mininterval=1.0) as bar:
        clf.weight, clf.bias = fit_softmax(x_fit, soft_targets(fit_on, cfg.primary_weight), best["C"],
                                           cfg.max_iter, progress=bar)
    data_sha = manifest().get(cfg.data) if not Path(cfg.data).exists() else None
    report = {
        "n_train": len(train), "n_val": len(val), "n_heldout": len(splits["heldout"]), "n_fit": len(fit_on),
        "selection": scores, "chosen_C": best["C"], "train_seconds": round(time.perf_counter() - t0, 1),
        "data": cfg.data, "data_sha256": data_sha, "fallback": FALLBACK.tolist(),
    }
    clf.meta = {"config": to_dict(cfg), "report": report}
    if save:
        out = Path(cfg.out)
        clf.save(out)
        save_config(cfg, out / "config.yaml")
        (out / SPLIT_FILE).write_text(json.dumps(splits, indent=0))
        (out / "report.json").write_text(json.dumps(report, indent=2))
    return clf, report
