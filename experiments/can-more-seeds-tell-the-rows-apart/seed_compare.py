"""Can more seeds tell two recommender rows apart? Difference of per-seed means with a Welch interval.

    .venv/bin/python benchmarks/seed_compare.py RESULTS.json [...] --compare ecr-fast:unicrs-fast [...] \
        --out benchmarks/results/recommendation_h200_seeds.json [--sweep-command "..."] [--note "..."]

RESULTS: `ecrs evaluate` outputs ({"rows": [...]}, e.g. what benchmarks/gpu_fast_sweep.sh returns), one row per
system with the per-seed values of each metric. For each `a:b` pair and metric the script reports mean(a) - mean(b)
over the seeds with a 95 % Welch t interval (ecrs.evaluation.metrics.seed_difference): training noise only; the
test set is fixed, and its own noise is in recommendation_paired.json (paired bootstrap over targets). A plot of
every seed's R@50 / RT@50 / AUC per system is written beside the JSON (.png).

Why: with 3 seeds per row the ReDial rows differ by less than their seed spread (std 0.002-0.006), so "ECR beats
UniCRS on the mean over seeds" can flip with the draw of seeds. Ten seeds per row cost ~4 minutes on a lent H200.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ecrs.evaluation.evaluate import provenance
from ecrs.evaluation.metrics import seed_difference

METRICS = ("R@50", "RT@50", "AUC", "R@10", "R@1")


def per_seed(row: dict, metric: str) -> list[float]:
    m = row["metrics"]["standard"].get(metric)
    if not isinstance(m, dict) or not m.get("values"):
        raise SystemExit(f"{row['system']}: no per-seed values of {metric}")
    return [float(v) for v in m["values"]]


def summary(rows: dict[str, dict]) -> dict:
    out = {}
    for name, r in rows.items():
        st = r["metrics"]["standard"]
        out[name] = {"seeds": r.get("seeds"), "n": r.get("n_runs"),
                     "train_seconds_mean": (r.get("train_seconds") or {}).get("mean"),
                     **{k: {"mean": round(st[k]["mean"], 4), "std": round(st[k]["std"], 4)}
                        for k in METRICS if isinstance(st.get(k), dict)}}
    return out


def compare(rows: dict[str, dict], pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        a, b = pair.split(":")
        for name in (a, b):
            if name not in rows:
                raise SystemExit(f"--compare {pair}: no row {name!r} (have {sorted(rows)})")
        out[f"{a} - {b}"] = {}
        for k in METRICS:
            ci = seed_difference(per_seed(rows[a], k), per_seed(rows[b], k))
            out[f"{a} - {b}"][k] = {"difference": round(ci.difference, 4), "low": round(ci.low, 4),
                                    "high": round(ci.high, 4), "excludes_zero": ci.excludes_zero,
                                    "n_a": ci.n_a, "n_b": ci.n_b}
    return out


def plot(rows: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(rows, key=lambda n: -rows[n]["metrics"]["standard"]["R@50"]["mean"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, k in zip(axes, ("R@50", "RT@50", "AUC")):
        for i, n in enumerate(names):
            v = per_seed(rows[n], k)
            ax.scatter([i] * len(v), v, s=14, alpha=0.6)
            ax.hlines(sum(v) / len(v), i - 0.3, i + 0.3, color="black")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{k}: each seed (dot) and the mean (bar)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--compare", nargs="+", required=True, help="a:b system names, a minus b")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sweep-command", default="", help="how the rows were trained (recorded)")
    ap.add_argument("--note", default="", help="what the reader must know about these rows (recorded)")
    args = ap.parse_args()
    rows: dict[str, dict] = {}
    for f in args.results:
        for r in json.loads(f.read_text())["rows"]:
            if r["system"] in rows and rows[r["system"]]["metrics"] != r["metrics"]:
                raise SystemExit(f"{r['system']}: two different rows of that name in {args.results}")
            rows[r["system"]] = r
    result = {"description": __doc__.split("\n")[0], "note": args.note, "sweep_command": args.sweep_command,
              "summary": summary(rows), "comparisons": compare(rows, args.compare), "rows": list(rows.values()),
              **provenance()}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    plot(rows, args.out.with_suffix(".png"))
    for pair, c in result["comparisons"].items():
        print(pair, *(f"{k} {v['difference']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}]" for k, v in c.items()))
    print("wrote", args.out, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
