"""One evaluation path for every recommender (ECR_SPEC §6): standard and dedup rankings, R@n, RT@n, MRR/NDCG,
global AUC and the paper's batch-of-32 AUC, written as rows of `benchmarks/results/recommendation.json`; paired
bootstrap intervals of the difference between two systems on the same test targets (`compare_outcomes`)."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecrs.data.kg import KnowledgeGraph
from ecrs.data.samples import Sample
from ecrs.evaluation.metrics import (
    auc,
    batch_auc,
    paired_bootstrap,
    ranks_of_targets,
    summarize_ranking,
    target_log_probs,
)
from ecrs.evaluation.results import write_results

KS = (1, 10, 50)


@dataclass
class Flat:
    """One row per (sample, target movie), as ECR counts them."""

    sample: np.ndarray  # (M,) index into the samples list
    column: np.ndarray  # (M,) target's column among the items
    feedback: list[str]
    mentioned_before: np.ndarray  # (M,) bool


def flatten(samples: list[Sample], column: dict[int, int]) -> Flat:
    rows = [(i, column[t.item], t.feedback, t.mentioned_before) for i, s in enumerate(samples) for t in s.targets]
    return Flat(
        sample=np.array([r[0] for r in rows], dtype=np.int64),
        column=np.array([r[1] for r in rows], dtype=np.int64),
        feedback=[r[2] for r in rows],
        mentioned_before=np.array([r[3] for r in rows], dtype=bool),
    )


def _auc_block(log_probs: np.ndarray, logits: np.ndarray, feedback: list[str]) -> dict[str, Any]:
    """AUC and the paper's batch-32 AUC on the target's softmax probability (as ECR's reference code scores it:
    see `target_log_probs`), and `AUC_logit` on the raw target score, which earlier results used."""
    labelled = np.array([f in ("liked", "disliked") for f in feedback], dtype=bool)
    labels = np.array([f == "liked" for f in feedback], dtype=bool)[labelled].astype(int)
    out: dict[str, Any] = {"n_liked": int(labels.sum()), "n_disliked": int((1 - labels).sum())}
    try:
        out["AUC"] = auc(log_probs[labelled], labels)
        b = batch_auc(log_probs[labelled], labels, batch_size=32)
        out["AUC_batch32"] = b.value
        out["AUC_batch32_batches_used"] = b.batches_used
        out["AUC_logit"] = auc(logits[labelled], labels)
    except ValueError as e:  # one class only (e.g. INSPIRED has no questionnaire): undefined, say why
        out["AUC"] = None
        out["AUC_note"] = str(e)
    return out


@dataclass
class TargetOutcomes:
    """One run's outcome on each standard test target (sample, target movie), for paired comparisons."""

    ranks: np.ndarray  # (M,) 1-based rank of the target
    log_probs: np.ndarray  # (M,) the target's log softmax probability over the movies (what AUC compares)
    feedback: np.ndarray  # (M,) "liked" / "disliked" / "unknown" / "missing"


def evaluate_scores(scores: np.ndarray, samples: list[Sample], kg: KnowledgeGraph,
                    keep_outcomes: bool = False) -> dict[str, Any]:
    """Every metric from a (N, n_items) score matrix; `dedup` removes repeated targets and context movies.
    `keep_outcomes` adds `outcomes` (a `TargetOutcomes`, not JSON) for `compare_outcomes`."""
    column = {e: i for i, e in enumerate(kg.item_ids)}
    flat = flatten(samples, column)
    row_scores = scores[flat.sample]  # (M, n_items)
    target_scores = row_scores[np.arange(len(flat.column)), flat.column]
    liked = np.array([f == "liked" for f in flat.feedback])
    out: dict[str, Any] = {"standard": {}, "dedup": {}}

    ranks = ranks_of_targets(row_scores, flat.column)
    log_probs = target_log_probs(row_scores, flat.column)
    out["standard"] = _summary(ranks, liked) | _auc_block(log_probs, target_scores, flat.feedback)
    if keep_outcomes:
        out["outcomes"] = TargetOutcomes(ranks, log_probs, np.asarray(flat.feedback))

    keep = ~flat.mentioned_before
    exclude = [[column[m] for m in samples[i].mentioned_items] for i in flat.sample[keep]]
    d_ranks = ranks_of_targets(row_scores[keep], flat.column[keep], exclude=exclude)
    d_log_probs = target_log_probs(row_scores[keep], flat.column[keep], exclude=exclude)
    out["dedup"] = _summary(d_ranks, liked[keep]) | _auc_block(
        d_log_probs, target_scores[keep], [f for f, k in zip(flat.feedback, keep) if k])
    return out


def compare_outcomes(a: list[TargetOutcomes], b: list[TargetOutcomes], k: int = 50, n_resamples: int = 2000,
                     seed: int = 0) -> dict[str, dict[str, float] | None]:
    """System A minus system B on R@k, RT@k and AUC, each the mean over a system's runs (seeds), with a 95 %
    paired bootstrap interval over the test targets: how much of a gap between two rows the test set can resolve.
    Seed noise is averaged out, not included. RT@k / AUC are None where the targets carry no feedback."""
    n = len(a[0].ranks)
    if any(len(o.ranks) != n for o in [*a, *b]) or any((o.feedback != a[0].feedback).any() for o in [*a, *b]):
        raise ValueError("the runs were scored on different test targets")

    def ci(stat, data) -> dict[str, float] | None:
        if len(data[0]) < 2:
            return None
        r = paired_bootstrap(stat, data, n_resamples=n_resamples, seed=seed)
        return {"difference": r.difference, "ci_low": r.low, "ci_high": r.high, "level": r.level,
                "n_resamples": r.n_resamples, "n_targets": len(data[0])}

    def hits(runs: list[TargetOutcomes], rows: np.ndarray) -> np.ndarray:
        return np.mean([o.ranks[rows] <= k for o in runs], axis=0)

    diff_of_means = lambda x, y: float(x.mean() - y.mean())  # noqa: E731
    everything = np.ones(n, dtype=bool)
    liked = a[0].feedback == "liked"
    labelled = liked | (a[0].feedback == "disliked")
    out: dict[str, dict[str, float] | None] = {
        f"R@{k}": ci(diff_of_means, [hits(a, everything), hits(b, everything)]),
        f"RT@{k}": ci(diff_of_means, [hits(a, liked), hits(b, liked)]) if liked.any() else None,
        "AUC": None,
    }
    labels = liked[labelled]
    if labels.any() and not labels.all():
        na = len(a)

        def auc_gap(*arrays):  # arrays: A's runs, B's runs, then the labels, all resampled together
            y = np.asarray(arrays[-1]) > 0.5  # scipy hands the resampled labels back as floats
            if y.all() or not y.any():
                return 0.0  # a resample with one class (vanishingly rare at our sizes)
            mean_auc = lambda runs: float(np.mean([auc(lp, y) for lp in runs]))  # noqa: E731
            return mean_auc(arrays[:na]) - mean_auc(arrays[na:-1])

        out["AUC"] = ci(auc_gap, [*(o.log_probs[labelled] for o in a), *(o.log_probs[labelled] for o in b),
                                  labels])
    return out


def _summary(ranks: np.ndarray, liked: np.ndarray) -> dict[str, Any]:
    if liked.any():
        return summarize_ranking(ranks, liked, KS)
    # No questionnaire (INSPIRED): RT@n is undefined; the rest still is.
    out = summarize_ranking(ranks, np.ones_like(liked), KS)
    for k in KS:
        out[f"RT@{k}"] = None
    out["n_liked"] = 0
    return out


def evaluate_recommender(
    model, train: list[Sample], test: list[Sample], kg: KnowledgeGraph, batch: int = 512,
    progress: Callable[[int], None] | None = None, keep_outcomes: bool = False,
) -> dict[str, Any]:
    scores = np.concatenate([model.score(test[i : i + batch]) for i in range(0, len(test), batch)])
    return evaluate_scores(scores, test, kg, keep_outcomes=keep_outcomes)


# ---------------------------------------------------------------- results file

def update_results(path: Path, benchmark: str, rows: list[dict[str, Any]], markdown: bool = True,
                   data: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Replace rows of the same (system, dataset) and keep the rest; sorted for stable diffs. The file's `metrics`
    are each row's headline numbers (`headline`); `markdown` also writes the table beside the JSON."""
    existing = json.loads(path.read_text())["rows"] if path.exists() else []
    keys = {(r["system"], r["dataset"]) for r in rows}
    merged = [r for r in existing if (r["system"], r["dataset"]) not in keys] + rows
    merged.sort(key=lambda r: (r["dataset"], r.get("order", 99), r["system"]))
    write_results(path, benchmark, headline(merged), data=data, rows=merged)
    if markdown:
        path.with_suffix(".md").write_text(render_table(merged))
    return merged


HEADLINE = ("R@1", "R@10", "R@50", "RT@50", "AUC")


def headline(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{dataset: {system: numbers}}: a row's standard R@n / RT@50 / AUC (the mean over its seeds), or a comparison
    row's differences."""
    def mean(x: Any) -> Any:
        return x["mean"] if isinstance(x, dict) else x

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        if "difference" in r:
            numbers = {k: (g or {}).get("difference") for k, g in r["difference"].items()}
        else:
            numbers = {k: mean(r["metrics"]["standard"].get(k)) for k in HEADLINE}
        out.setdefault(r["dataset"], {})[r["system"]] = numbers
    return out


def fmt(x: Any) -> str:
    """A metric for tables and logs: 3 decimals, `mean±std` over seeds, `–` when undefined."""
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.3f}"
    if isinstance(x, dict) and "mean" in x:
        return f"{x['mean']:.3f}±{x['std']:.3f}" if x.get("std") else f"{x['mean']:.3f}"
    return str(x)


def render_table(rows: list[dict[str, Any]]) -> str:
    cols = ["AUC", "AUC_batch32", "RT@1", "RT@10", "RT@50", "R@1", "R@10", "R@50"]
    dcols = ["R@1", "R@10", "R@50"]
    lines = ["# Recommendation results", "",
             "Produced by `ecrs evaluate` (see each row's command and commit in recommendation.json). "
             "Trained on the public part of ReDial bundled here, not the paper's full data: compare rows with "
             "each other, not with the paper's numbers. Trained systems: mean ± std (sample std) over the runs "
             "(seeds) in the `runs` column; `train min` is the wall time of one training run (mean), with the "
             "hardware and per-run numbers in recommendation.json.", ""]
    for dataset in sorted({r["dataset"] for r in rows}):
        lines += [f"## {dataset}", "",
                  "| system | " + " | ".join(cols) + " | " + " | ".join(f"dedup {c}" for c in dcols)
                  + " | samples | runs | train min |",
                  "|---" * (len(cols) + len(dcols) + 4) + "|"]
        for r in (r for r in rows if r["dataset"] == dataset):
            m, d = r["metrics"]["standard"], r["metrics"]["dedup"]
            t = r.get("train_seconds")
            t = t.get("mean") if isinstance(t, dict) else t
            lines.append(f"| {r['system']} | " + " | ".join(fmt(m.get(c)) for c in cols) + " | "
                         + " | ".join(fmt(d.get(c)) for c in dcols) + f" | {m['n_samples']} | "
                         + f"{r.get('n_runs', '–')} | {'–' if t is None else f'{t / 60:.1f}'} |")
        lines.append("")
    return "\n".join(lines)
