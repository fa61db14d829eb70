"""Evaluation metrics as pure functions of arrays (ECR spec §6).

Recommendation is scored one sample per (recommender turn, recommended movie): the model scores every candidate
movie, `ranks_of_targets` turns the scores into the 1-based rank of the target, and the recall / MRR / NDCG
functions average over those ranks. Every function validates its input and raises `ValueError` where the metric is
undefined (no samples, AUC with one class) instead of returning a silent NaN or 0. Nothing here keeps state.

Generation is scored with Distinct-n (both the true ratio and the UniCRS/ECR per-sentence variant) and corpus
BLEU via sacrebleu (an optional dependency from the `train` extra, imported only when BLEU is asked for), and
replies' quality by what a reader notices: repeated phrases or sentences, a system's stock phrases, and whether a
reply takes up what the seeker said.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "BatchAUC",
    "auc",
    "batch_auc",
    "bleu",
    "bleu_n",
    "cohen_kappa",
    "dialogue_use",
    "plot_use",
    "distinct_n",
    "distinct_n_per_sentence",
    "repeats",
    "repetition_rate",
    "stock_phrase_rate",
    "stock_phrases",
    "mrr_at_k",
    "ndcg_at_k",
    "PairedCI",
    "paired_bootstrap",
    "SeedCI",
    "seed_difference",
    "ranks_of_targets",
    "recall_at_k",
    "recall_true_at_k",
    "summarize_ranking",
    "target_log_probs",
]

# Rows of the (N, C) score matrix compared at once: bounds the temporary boolean arrays to ~CHUNK × C.
_RANK_CHUNK_ROWS = 1024


# ---------------------------------------------------------------------------------------------------------------
# Ranking
# ---------------------------------------------------------------------------------------------------------------

def ranks_of_targets(
    scores: np.ndarray,
    targets: np.ndarray,
    exclude: Sequence[Iterable[int] | np.ndarray] | None = None,
    ties: Literal["pessimistic", "optimistic"] = "pessimistic",
) -> np.ndarray:
    """1-based rank of each row's target among that row's candidates.

    For row i with target t = targets[i], candidate set A_i = {0..C-1} minus exclude[i]:

        pessimistic (default):  rank_i = 1 + #{c in A_i, c != t : scores[i, c] >= scores[i, t]}
        optimistic:             rank_i = 1 + #{c in A_i, c != t : scores[i, c] >  scores[i, t]}

    Pessimistic tie handling puts the target *below* every candidate with an equal score, so a constant scorer
    gets rank C (the worst), never rank 1; a top-k (e.g. `torch.topk`) evaluation breaks ties arbitrarily and
    lies between the two.

    `exclude[i]` lists candidate indices removed from row i's ranking, e.g. the movies already mentioned earlier
    in the dialogue (the "dedup" evaluation): removing a higher-scored candidate moves the target up by one.
    The target itself must never be excluded (a sample whose target is a repeated movie is dropped by the
    caller, not ranked) - that raises.

    Args:
        scores: (N, C) float, higher = more recommended. Must be finite.
        targets: (N,) int in [0, C).
        exclude: None, or a sequence of N array-likes of int in [0, C) (duplicates allowed).
        ties: "pessimistic" (>=) or "optimistic" (>).

    Returns:
        (N,) int64 ranks, each in [1, C - |exclude[i]|].
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (N, C), got shape {scores.shape}")
    n, c = scores.shape
    if n == 0 or c == 0:
        raise ValueError(f"scores must be non-empty, got shape {scores.shape}")
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(scores.dtype, np.complexfloating):
        raise ValueError(f"scores must be real numbers, got dtype {scores.dtype}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinity")
    if targets.shape != (n,):
        raise ValueError(f"targets must have shape ({n},), got {targets.shape}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be integers, got dtype {targets.dtype}")
    if np.any(targets < 0) or np.any(targets >= c):
        raise ValueError(f"targets must lie in [0, {c})")
    if ties not in ("pessimistic", "optimistic"):
        raise ValueError(f"ties must be 'pessimistic' or 'optimistic', got {ties!r}")

    excluded_mask = None
    if exclude is not None:
        if len(exclude) != n:
            raise ValueError(f"exclude must have one entry per row ({n}), got {len(exclude)}")
        excluded_mask = np.zeros((n, c), dtype=bool)
        for i, row in enumerate(exclude):
            idx = np.asarray(list(row) if not isinstance(row, np.ndarray) else row).reshape(-1)
            if idx.size == 0:
                continue
            if not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(f"exclude[{i}] must contain integers, got dtype {idx.dtype}")
            if np.any(idx < 0) or np.any(idx >= c):
                raise ValueError(f"exclude[{i}] has indices outside [0, {c})")
            if np.any(idx == targets[i]):
                raise ValueError(f"exclude[{i}] contains the target {int(targets[i])}; drop such samples instead")
            excluded_mask[i, idx] = True

    ranks = np.empty(n, dtype=np.int64)
    for start in range(0, n, _RANK_CHUNK_ROWS):
        stop = min(start + _RANK_CHUNK_ROWS, n)
        block = scores[start:stop]                                           # (B, C)
        rows = np.arange(stop - start)
        target_scores = block[rows, targets[start:stop]][:, None]            # (B, 1)
        above = block >= target_scores if ties == "pessimistic" else block > target_scores  # (B, C)
        above[rows, targets[start:stop]] = False                             # the target does not outrank itself
        if excluded_mask is not None:
            above &= ~excluded_mask[start:stop]
        ranks[start:stop] = 1 + above.sum(axis=1)
    return ranks


def _check_ranks(ranks: np.ndarray) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 1:
        raise ValueError(f"ranks must be 1-D, got shape {ranks.shape}")
    if ranks.size == 0:
        raise ValueError("ranks is empty: the average over zero samples is undefined")
    if not np.issubdtype(ranks.dtype, np.integer):
        raise ValueError(f"ranks must be integers, got dtype {ranks.dtype}")
    if np.any(ranks < 1):
        raise ValueError("ranks are 1-based and must be >= 1")
    return ranks


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """R@k = (1/N) * sum_i [rank_i <= k]  (one relevant item per sample, so recall = hit rate).

    Args:
        ranks: (N,) int, 1-based, from `ranks_of_targets`. N = 0 raises.
        k: cut-off, >= 1.
    """
    ranks, k = _check_ranks(ranks), _check_k(k)
    return float(np.mean(ranks <= k))


def mrr_at_k(ranks: np.ndarray, k: int) -> float:
    """MRR@k = (1/N) * sum_i [rank_i <= k] / rank_i.

    Args:
        ranks: (N,) int, 1-based. N = 0 raises.
        k: cut-off, >= 1.
    """
    ranks, k = _check_ranks(ranks), _check_k(k)
    return float(np.mean(np.where(ranks <= k, 1.0 / ranks, 0.0)))


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    """NDCG@k = (1/N) * sum_i [rank_i <= k] / log2(rank_i + 1).

    With a single relevant item per sample the ideal DCG is 1/log2(2) = 1, so NDCG equals DCG.

    Args:
        ranks: (N,) int, 1-based. N = 0 raises.
        k: cut-off, >= 1.
    """
    ranks, k = _check_ranks(ranks), _check_k(k)
    return float(np.mean(np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)))


def _check_mask(mask: np.ndarray, n: int, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {mask.shape}")
    if mask.dtype != bool:
        if not np.issubdtype(mask.dtype, np.integer) or not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f"{name} must be boolean (or 0/1 integers)")
        mask = mask.astype(bool)
    return mask


def recall_true_at_k(ranks: np.ndarray, liked_mask: np.ndarray, k: int) -> float:
    """RT@k ("Recall_True" in ECR) = R@k over the samples whose movie the seeker liked:

        RT@k = sum_i liked_i * [rank_i <= k] / sum_i liked_i

    Args:
        ranks: (N,) int, 1-based.
        liked_mask: (N,) bool (or 0/1), True where the seeker liked the target movie. No liked sample raises.
        k: cut-off, >= 1.
    """
    ranks = _check_ranks(ranks)
    liked = _check_mask(liked_mask, ranks.shape[0], "liked_mask")
    if not liked.any():
        raise ValueError("no liked samples: RT@k is undefined")
    return recall_at_k(ranks[liked], k)


def summarize_ranking(
    ranks: np.ndarray, liked_mask: np.ndarray, ks: Sequence[int] = (1, 10, 50)
) -> dict[str, float | int]:
    """All ranking metrics of one evaluation in one flat dict, counts beside the averages.

    Keys: `R@k` and `RT@k` for every k in `ks`; `MRR@k` and `NDCG@k` for every k in `ks` except 1 (at k = 1
    both equal R@1); `n_samples` = N and `n_liked` = #liked (the denominators of R@k and RT@k).
    With the default ks: R@1, R@10, R@50, RT@1, RT@10, RT@50, MRR@10, NDCG@10, MRR@50, NDCG@50,
    n_samples, n_liked.

    Raises ValueError if there are no samples or no liked samples.
    """
    ranks = _check_ranks(ranks)
    liked = _check_mask(liked_mask, ranks.shape[0], "liked_mask")
    ks = [_check_k(k) for k in ks]
    out: dict[str, float | int] = {}
    for k in ks:
        out[f"R@{k}"] = recall_at_k(ranks, k)
    for k in ks:
        out[f"RT@{k}"] = recall_true_at_k(ranks, liked, k)
    for k in ks:
        if k == 1:
            continue
        out[f"MRR@{k}"] = mrr_at_k(ranks, k)
        out[f"NDCG@{k}"] = ndcg_at_k(ranks, k)
    out["n_samples"] = int(ranks.shape[0])
    out["n_liked"] = int(liked.sum())
    return out


# ---------------------------------------------------------------------------------------------------------------
# AUC: do liked movies score higher than disliked ones?
# ---------------------------------------------------------------------------------------------------------------

def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x in ascending order, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Start index of each run of equal values in the sorted order.
    is_start = np.concatenate(([True], sorted_x[1:] != sorted_x[:-1]))
    starts = np.flatnonzero(is_start)
    ends = np.concatenate((starts[1:], [x.size]))                     # exclusive
    run_rank = (starts + 1 + ends) / 2.0                               # mean of 1-based ranks starts+1 .. ends
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def _check_scores_labels(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    if scores.dtype == bool or not np.issubdtype(scores.dtype, np.number) \
            or np.issubdtype(scores.dtype, np.complexfloating):
        raise ValueError(f"scores must be real numbers, got dtype {scores.dtype}")
    scores = scores.astype(np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinity")
    labels = _check_mask(labels, scores.shape[0], "labels")
    return scores, labels


def target_log_probs(
    scores: np.ndarray, targets: np.ndarray, exclude: Sequence[Iterable[int] | np.ndarray] | None = None,
) -> np.ndarray:
    """log softmax(scores[i])[targets[i]]: the share of row i's probability that its target gets.

    The AUC compares targets *across* rows, so every row's scores must be on one scale. A softmax recommender's
    logits are not: adding a constant to a row changes no probability, so training never pins the offset. The
    ECR reference code therefore feeds its AUC softmax probabilities; this is that transform (log: same order,
    no underflow). `exclude[i]` lists columns removed from row i's candidates (the dedup evaluation), which then
    take no probability.

    Args:
        scores: (N, C) finite float logits (or any scores; the softmax is taken over the C columns).
        targets: (N,) int in [0, C).
        exclude: None, or N array-likes of column indices (never the row's target).

    Returns:
        (N,) float64 log-probabilities, each ≤ 0.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty 2-D (N, C) array, got shape {scores.shape}")
    if not np.issubdtype(scores.dtype, np.number) or not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite real numbers")
    n, c = scores.shape
    if targets.shape != (n,) or not np.issubdtype(targets.dtype, np.integer) \
            or np.any(targets < 0) or np.any(targets >= c):
        raise ValueError(f"targets must be {n} integers in [0, {c})")
    if exclude is not None and len(exclude) != n:
        raise ValueError(f"exclude must have one entry per row ({n}), got {len(exclude)}")
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, _RANK_CHUNK_ROWS):  # float64 copies of one block at a time
        stop = min(start + _RANK_CHUNK_ROWS, n)
        block = scores[start:stop].astype(np.float64)  # (B, C)
        for i in range(start, stop) if exclude is not None else ():
            idx = np.asarray(list(exclude[i]), dtype=np.int64)
            if np.any(idx == targets[i]):
                raise ValueError(f"exclude[{i}] contains the target {int(targets[i])}")
            block[i - start, idx] = -np.inf
        top = block.max(axis=1, keepdims=True)
        log_z = top[:, 0] + np.log(np.exp(block - top).sum(axis=1))
        out[start:stop] = block[np.arange(stop - start), targets[start:stop]] - log_z
    return out


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Global ROC AUC = P(score of a liked sample > score of a disliked sample), ties counting 1/2.

    Computed with the Mann-Whitney U statistic: with R_i the average rank (ties share the mean rank) of sample i
    among all N scores in ascending order, P = #positives, M = #negatives,

        AUC = (sum_{i: label_i = 1} R_i - P (P + 1) / 2) / (P * M)

    which equals (1 / (P M)) * sum_{pos p, neg q} ([s_p > s_q] + 0.5 [s_p = s_q]).

    Args:
        scores: (N,) float, the model's score of each (sample, target movie). Must be finite.
        labels: (N,) bool or 0/1, 1 = the seeker liked the movie, 0 = disliked.

    Raises ValueError when only one class is present (AUC is undefined), or on malformed input.
    """
    scores, labels = _check_scores_labels(scores, labels)
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC is undefined with one class (positives={n_pos}, negatives={n_neg})")
    rank_sum_pos = float(_average_ranks(scores)[labels].sum())
    return (rank_sum_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


@dataclass(frozen=True)
class PairedCI:
    """A paired statistic (system A's metric minus system B's on the same targets) and its bootstrap interval."""

    difference: float
    low: float
    high: float
    level: float
    n_resamples: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_bootstrap(statistic, data: Sequence[np.ndarray], n_resamples: int = 2000, level: float = 0.95,
                     seed: int = 0) -> PairedCI:
    """Percentile bootstrap interval of `statistic(*data)`, resampling the targets with replacement: the same
    indices for every array, so both systems are always scored on the same resampled test set (paired).

    Args:
        statistic: f(*arrays) -> float, e.g. ``lambda a, b: a.mean() - b.mean()``.
        data: 1-D arrays of equal length, one entry per test target.
    """
    from scipy.stats import bootstrap

    data = [np.asarray(x) for x in data]
    if not data or any(x.ndim != 1 or len(x) != len(data[0]) for x in data) or len(data[0]) < 2:
        raise ValueError("paired_bootstrap needs 1-D arrays of one equal length >= 2")
    res = bootstrap(tuple(data), statistic, paired=True, vectorized=False, n_resamples=n_resamples,
                    confidence_level=level, method="percentile", random_state=np.random.default_rng(seed))
    ci = res.confidence_interval
    return PairedCI(float(statistic(*data)), float(ci.low), float(ci.high), level, n_resamples)


@dataclass(frozen=True)
class SeedCI:
    """Mean of system A's per-seed metric minus system B's, with a Welch t interval (`seed_difference`)."""

    difference: float
    low: float
    high: float
    level: float
    n_a: int
    n_b: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def seed_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> SeedCI:
    """Difference of the mean over seeds of two independently trained rows, mean(a) - mean(b), with a Welch
    t interval (unequal variances): how far apart the two rows' means could be given their seed-to-seed spread.
    The seeds of a and b are independent runs, not pairs (seed 3 of one model has nothing in common with seed 3
    of another), and the test set is fixed, so this interval holds training noise only; the test-target noise is
    `paired_bootstrap`'s.

    Args:
        a, b: one metric value per seed, at least 2 each.
    """
    from scipy.stats import ttest_ind

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or y.ndim != 1 or x.size < 2 or y.size < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("seed_difference needs two 1-D arrays of at least 2 finite values")
    ci = ttest_ind(x, y, equal_var=False).confidence_interval(level)
    return SeedCI(float(x.mean() - y.mean()), float(ci.low), float(ci.high), level, int(x.size), int(y.size))


@dataclass(frozen=True)
class BatchAUC:
    """Mean of per-batch AUCs, with how many batches were averaged and how many had one class and were skipped."""

    value: float
    batches_used: int
    batches_skipped: int


def batch_auc(scores: np.ndarray, labels: np.ndarray, batch_size: int = 32) -> BatchAUC:
    """The AUC as the ECR reference code computes it, only for comparison with the paper (use `auc` otherwise).

    The samples are split, in the given order, into consecutive batches of `batch_size` (the last one may be
    shorter); each batch b with both classes gets AUC_b (`auc` on that batch), batches with one class are skipped
    (the reference wraps sklearn's roc_auc_score in try/except), and

        batch AUC = (1 / |B_used|) * sum_{b in B_used} AUC_b

    Unlike the global AUC this depends on the batch size and on the order of the samples, and it never compares
    a liked and a disliked sample from different batches.

    Args:
        scores: (N,) float, in evaluation order.
        labels: (N,) bool or 0/1, 1 = liked.
        batch_size: the evaluation batch size (32 in ECR).

    Raises ValueError if no batch has both classes, or on malformed input.
    """
    scores, labels = _check_scores_labels(scores, labels)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    values: list[float] = []
    skipped = 0
    for start in range(0, scores.size, batch_size):
        batch_labels = labels[start:start + batch_size]
        if batch_labels.all() or not batch_labels.any():
            skipped += 1
            continue
        values.append(auc(scores[start:start + batch_size], batch_labels))
    if not values:
        raise ValueError(f"batch AUC is undefined: none of the {skipped} batches has both classes")
    return BatchAUC(value=float(np.mean(values)), batches_used=len(values), batches_skipped=skipped)


# ---------------------------------------------------------------------------------------------------------------
# Generation: Distinct-n and BLEU
# ---------------------------------------------------------------------------------------------------------------

def _check_texts(texts: Sequence[str], name: str = "texts") -> None:
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of strings, not a single string")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] is {type(t).__name__}, not str")


def _ngrams_per_text(texts: Sequence[str], n: int) -> list[list[tuple[str, ...]]]:
    """n-grams of each text after lowercasing and splitting on whitespace; n-grams never cross texts."""
    out = []
    for text in texts:
        tokens = text.lower().split()
        out.append([tuple(tokens[j:j + n]) for j in range(len(tokens) - n + 1)])
    return out


def _check_distinct_args(texts: Sequence[str], n: int) -> None:
    _check_texts(texts)
    if len(texts) == 0:
        raise ValueError("texts is empty: Distinct-n over zero sentences is undefined")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")


def distinct_n(texts: Sequence[str], n: int) -> float:
    """True Distinct-n = #distinct n-grams / #n-grams, both counted over the whole corpus.

    Tokenization: each text is lowercased and split on whitespace (`str.lower().split()`); n-grams are taken
    within a text, never across two texts. Empty generations count: they add no n-grams, so they lower nothing
    here but are never dropped. Returns 0.0 when the corpus has no n-gram at all (e.g. every text is shorter
    than n tokens). The result lies in [0, 1].

    Raises ValueError on an empty list of texts or n < 1; TypeError unless texts is a list of str.
    """
    _check_distinct_args(texts, n)
    grams = [g for per_text in _ngrams_per_text(texts, n) for g in per_text]
    if not grams:
        return 0.0
    return len(set(grams)) / len(grams)


def distinct_n_per_sentence(texts: Sequence[str], n: int) -> float:
    """Distinct-n as the UniCRS/ECR code computes it = #distinct n-grams over the corpus / #sentences.

    #sentences = len(texts), empty generations included (an empty text adds a sentence and no n-gram, so it
    lowers the score). Same tokenization as `distinct_n`. Not a ratio in [0, 1]: it grows with sentence
    length; report it only beside the true ratio and name it.

    Raises ValueError on an empty list of texts or n < 1; TypeError unless texts is a list of str.
    """
    _check_distinct_args(texts, n)
    distinct = {g for per_text in _ngrams_per_text(texts, n) for g in per_text}
    return len(distinct) / len(texts)


def _corpus_bleu_stats(hypotheses: Sequence[str], references: Sequence[str]):
    _check_texts(hypotheses, "hypotheses")
    _check_texts(references, "references")
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if len(hypotheses) == 0:
        raise ValueError("no hypotheses: BLEU over an empty corpus is undefined")
    from sacrebleu.metrics import BLEU  # optional dependency (the `train` extra)

    return BLEU().corpus_score(list(hypotheses), [list(references)])


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 on a 0-100 scale, via sacrebleu with its defaults (13a tokenization, case-sensitive,
    exponential smoothing, one reference per hypothesis):

        BLEU = 100 * BP * exp((1/4) * sum_{n=1..4} log p_n),   BP = min(1, exp(1 - r / h))

    with p_n the corpus-level clipped n-gram precision, h and r the total hypothesis and reference lengths.
    Empty hypotheses are kept (they add reference length and no n-grams).

    Raises ValueError on length mismatch or an empty corpus; ModuleNotFoundError if sacrebleu is not installed.
    """
    return float(_corpus_bleu_stats(hypotheses, references).score)


def bleu_n(hypotheses: Sequence[str], references: Sequence[str], n: int) -> float:
    """Individual-order corpus BLEU-n on a 0-100 scale: 100 * BP * p_n, for n in 1..4.

    p_n = (clipped matching n-grams) / (hypothesis n-grams), both summed over the corpus (sacrebleu's counts,
    no smoothing; 0.0 when the hypotheses have no n-gram of order n), BP the corpus brevity penalty as in
    `bleu`. This is the corpus-level analogue of nltk's BLEU with one-hot weights, which the CRS literature
    reports as BLEU-1..4.

    Raises ValueError on n outside 1..4, length mismatch or an empty corpus.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 4:
        raise ValueError(f"n must be in 1..4, got {n!r}")
    stats = _corpus_bleu_stats(hypotheses, references)
    total = stats.totals[n - 1]
    if total == 0:
        return 0.0
    return float(100.0 * stats.bp * stats.counts[n - 1] / total)


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two label sequences (one label per item); None when undefined (expected agreement 1,
    i.e. both raters always give the same single label, or no items)."""
    if len(a) != len(b):
        raise ValueError("sequences differ in length")
    n = len(a)
    if n == 0:
        return None
    p_o = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if p_e >= 1.0:
        return None
    return (p_o - p_e) / (1.0 - p_e)


# ---------------------------------------------------------------------------------------------------------------
# Reply quality: repetition, stock phrases, use of the dialogue (issue 25)
# ---------------------------------------------------------------------------------------------------------------

_WORDS = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCES = re.compile(r"(?<=[.!?])\s+")
# Words that carry no topic: a reply sharing only these with the seeker has not used what they said.
_FUNCTION_WORDS = frozenset("""a about after all also am an and any are as at be been but by can could did do does
for from get got had has have he her him his how i i'd i'll i'm i've if in is it it's its just like me more movie
movies my no not of on one or really so some something that that's the them then there they this to too very was
we what when which who will with would you you'd you'll you're your film films watch watched seen see saw good great
yes ok okay well think know want""".split())


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.lower().replace("’", "'"))


def repeats(text: str) -> bool:
    """True when a reply says something twice: a word 3-gram occurs twice ("the acting is great ... the acting
    is good"), or a sentence does (compared on its words)."""
    words = _words(text)
    grams = list(zip(words, words[1:], words[2:]))
    if len(set(grams)) < len(grams):
        return True
    sentences = [tuple(_words(x)) for x in _SENTENCES.split(text.strip()) if _words(x)]
    return len(set(sentences)) < len(sentences)


def repetition_rate(texts: Sequence[str]) -> float:
    """Share of texts that `repeats`."""
    _check_texts(texts)
    if not texts:
        raise ValueError("texts is empty")
    return sum(map(repeats, texts)) / len(texts)


def stock_phrases(texts: Sequence[str], n: int = 4, min_share: float = 0.05) -> set[tuple[str, ...]]:
    """Word n-grams that at least `min_share` of the texts (and at least 2) contain: a system's stock phrases
    ("one of the best", "i have seen this"), found from its own replies rather than from a fixed list."""
    _check_distinct_args(texts, n)
    per_text = Counter(g for t in texts for g in set(zip(*(_words(t)[i:] for i in range(n)))))
    floor = max(2, math.ceil(min_share * len(texts)))
    return {g for g, c in per_text.items() if c >= floor}


def stock_phrase_rate(texts: Sequence[str], n: int = 4, min_share: float = 0.05) -> float:
    """Share of texts containing one of the system's `stock_phrases`."""
    phrases = stock_phrases(texts, n, min_share)
    return sum(bool(phrases & set(zip(*(_words(t)[i:] for i in range(n))))) for t in texts) / len(texts)


def dialogue_use(reply: str, said: str, ignore: Iterable[str] = ()) -> bool:
    """The reply takes up something the seeker said: they share a content word (not a function word, 3+ letters)
    beyond the words of `ignore` (the recommended title, which every reply names)."""
    skip = _FUNCTION_WORDS | {w for x in ignore for w in _words(x)}
    said_words = {w for w in _words(said) if len(w) >= 3 and w not in skip}
    return bool(said_words & set(_words(reply)))


def plot_use(reply: str, plot: str, ignore: Iterable[str] = (), min_shared: int = 2) -> bool:
    """The reply tells something of the plot summary: it shares at least `min_shared` distinct content words (4+
    letters, not function words) with it, beyond the words of `ignore` (the title, the genres, the seeker's
    words). One shared word happens by chance ("young", "love"); two rarely do without the plot (1-2 % of the
    fine-tuned replies, which never see it)."""
    skip = _FUNCTION_WORDS | {w for x in ignore for w in _words(x)}
    plot_words = {w for w in _words(plot) if len(w) >= 4 and w not in skip}
    return len(plot_words & set(_words(reply))) >= min_shared
