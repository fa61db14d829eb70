"""Judge rows -> rates: win / loss / tie of system a over b per dimension under each reading, position-bias
diagnostics, and Cohen's kappa between raters (two judges, people and a judge)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ecrs.evaluation.judge.parsing import SHOWN_AB, SHOWN_BA
from ecrs.evaluation.judge.prompts import DIMENSIONS, design
from ecrs.evaluation.metrics import cohen_kappa

__all__ = ["preference_kappa", "summarize_calibrated", "summarize_compare", "summarize_pairwise",
           "summarize_yes_no"]


def _rate(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def summarize_pairwise(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Win/loss/tie rates of a over b per dimension, over judged rows (failed rows are counted, not rated).

    win = both orders preferred a; loss = both preferred b; tie = both said tie or the orders disagreed.
    order_agreement = share of dimension verdicts on which the two orders agreed (same reply or both tie).
    first_position_rate = share of single-order non-tie verdicts that picked the reply shown first (0.5 = no
    position bias).
    single_order = the same win/loss/tie counted over the 2n single-order judgements (each order one judgement):
    every pair is shown once in each position, so position bias adds as much to a as to b; ties only where the
    judge said tie. A second reading of "share of pairwise judgements", beside the both-orders one.
    calibrated = win/loss/tie of the position-calibrated verdicts (`calibrate_orders`) over the rows that carry
    them, with the mean P(a) - P(b) and "forced": the shares of rows with P(a) > P(b) and P(b) > P(a), i.e. which
    reply the judge leans to with "tie" set aside (a direction, not a verdict: a judge that says "tie" to
    everything still leans); first_position_prob = the judge's mean P(A) / (P(A) + P(B)) over both orders
    and all dimensions of those rows (0.5 = no position bias). A third reading, present only with probabilities."""
    rows = list(rows)
    ok = [r for r in rows if "preference" in r]
    n = len(ok)
    asked = [d for d in DIMENSIONS if all(d in r["preference"] for r in ok)]  # the dimensions every row was asked
    dims: dict[str, Any] = {}
    first = decisive = 0
    for d in asked:
        c = Counter(r["preference"][d] for r in ok)
        agree = sum(r["agree"][d] for r in ok)
        single = Counter(v for r in ok for v in (SHOWN_AB[r["ab"][d]], SHOWN_BA[r["ba"][d]]))
        dims[d] = {"win": _rate(c["a"], n), "loss": _rate(c["b"], n), "tie": _rate(c["tie"], n),
                   "wins": c["a"], "losses": c["b"], "ties": c["tie"], "n": n,
                   "order_agreement": _rate(agree, n),
                   "single_order": {"win": _rate(single["a"], 2 * n), "loss": _rate(single["b"], 2 * n),
                                    "tie": _rate(single["tie"], 2 * n), "n": 2 * n}}
        cal = [(r["calibrated"][d], r["calibrated_probs"][d]) for r in ok if d in r.get("calibrated", {})]
        if cal:
            dims[d]["calibrated"] = summarize_calibrated(cal)
        for r in ok:
            for v in (r["ab"][d], r["ba"][d]):
                decisive += v != "tie"
                first += v == "A"
    agree_all = sum(r["agree"][d] for r in ok for d in asked)
    out = {"n": n, "n_failed": len(rows) - n, "dimensions": dims,
           "order_agreement": _rate(agree_all, n * len(asked)),
           "first_position_rate": _rate(first, decisive), "decisive_single_order_verdicts": decisive}
    shown = [p[d] for r in ok for key in ("ab_probs", "ba_probs") for p in [r.get(key) or {}] for d in p
             if p[d]["A"] + p[d]["B"] > 0]
    if shown:
        out["first_position_prob"] = round(sum(p["A"] / (p["A"] + p["B"]) for p in shown) / len(shown), 4)
    return out


def summarize_calibrated(cal: Sequence[tuple[str, Mapping[str, float]]]) -> dict[str, Any]:
    """Position-calibrated verdicts of one dimension, [(a | b | tie, {"a", "b", "tie"} probabilities)] as
    `calibrate_orders` gives them -> win / loss / tie rates, n, mean P(a) - P(b) and the "forced" lean (shares with
    P(a) > P(b) and P(b) > P(a))."""
    n = len(cal)
    c = Counter(v for v, _ in cal)
    diffs = [p["a"] - p["b"] for _, p in cal]
    return {"win": _rate(c["a"], n), "loss": _rate(c["b"], n), "tie": _rate(c["tie"], n), "n": n,
            "mean_p_a_minus_p_b": round(sum(diffs) / n, 4) if n else None,
            "forced": {"a": _rate(sum(x > 0 for x in diffs), n), "b": _rate(sum(x < 0 for x in diffs), n)}}


def summarize_yes_no(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`Judge.paired_yes_no` rows -> win / loss / tie of a (P(yes) higher / lower / equal), mean P(yes | a) -
    P(yes | b), the yes-answer rates of both sides; failed rows counted apart."""
    rows = list(rows)
    ok = [r for r in rows if "p_yes" in r]
    out: dict[str, Any] = {"n": len(ok), "n_failed": len(rows) - len(ok)}
    if ok:
        d = ok[0]["dimension"]
        out.update(dimension=d, **summarize_calibrated([(r["calibrated"][d], r["calibrated_probs"][d]) for r in ok]))
        out["yes_rate"] = {s: _rate(sum(r["answers"][s] == "yes" for r in ok), len(ok)) for s in ("a", "b")}
        out["mean_p_yes"] = {s: round(sum(r["p_yes"][s] for r in ok) / len(ok), 4) for s in ("a", "b")}
    return out


def summarize_compare(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`Judge.compare` rows -> per dimension: its design, win / loss / tie of the verdicts, and that design's own
    summary (`summarize_pairwise`'s dimension entry or `summarize_yes_no`) under "detail"; failed rows counted
    apart."""
    rows = list(rows)
    ok = [r for r in rows if "verdict" in r]
    n = len(ok)
    dims: dict[str, Any] = {}
    for d in (d for d in DIMENSIONS if ok and all(d in r["verdict"] for r in ok)):
        c = Counter(r["verdict"][d] for r in ok)
        detail = [r["by_dimension"][d] for r in ok]
        dims[d] = {"design": design(d), "win": _rate(c["a"], n), "loss": _rate(c["b"], n), "tie": _rate(c["tie"], n),
                   "n": n, "detail": summarize_yes_no(detail) if design(d) == "yes_no"
                   else summarize_pairwise(detail)["dimensions"][d]}
    return {"n": n, "n_failed": len(rows) - n, "dimensions": dims}


def preference_kappa(x: Mapping[str, Mapping[str, str]], y: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """Cohen's kappa of two raters' a/b/tie outcomes ({id: {dim: outcome}}), per dimension and pooled over all
    (id, dimension) pairs both rated; None where kappa is undefined (one label throughout)."""
    out: dict[str, Any] = {"dimensions": {}}
    pooled_x, pooled_y = [], []
    for d in DIMENSIONS:
        ids = [i for i in x if i in y and d in x[i] and d in y[i]]
        xs, ys = [x[i][d] for i in ids], [y[i][d] for i in ids]
        k = cohen_kappa(xs, ys)
        out["dimensions"][d] = {"n": len(ids), "kappa": None if k is None else round(k, 4),
                                "agreement": _rate(sum(p == q for p, q in zip(xs, ys)), len(ids))}
        pooled_x += xs
        pooled_y += ys
    k = cohen_kappa(pooled_x, pooled_y)
    out.update({"n": len(pooled_x), "kappa": None if k is None else round(k, 4),
                "agreement": _rate(sum(p == q for p, q in zip(pooled_x, pooled_y)), len(pooled_x))})
    return out
