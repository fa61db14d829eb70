"""Does ECR's gap to UniCRS grow with training data? A learning curve on ReDial (issue 4).

    .venv/bin/python benchmarks/learning_curve.py [--out benchmarks/results/recommendation_learning_curve.json]

Why: the paper trains on about 10k ReDial dialogues and reports ECR − UniCRS +0.014 R@50; we have the public
2,905 complete + 3,433 partial ones, where the two rows cannot be told apart. If the gap opened with more data, it
would show as a trend across fractions of ours. Each fraction trains both rows with their committed configs (the
same recipe, so fewer optimizer steps at smaller fractions) on the same nested subset of dialogues
(`data.train_fraction`), seeds 0-2, for example

    for f in 25 50; do for s in 0 1 2; do for row in unicrs-fast ecr-fast; do
      ecrs train recommender --config configs/recommender/$row.yaml --set data.train_fraction=0.$f \\
          --set name=$row-f$f --set train.seed=$s --set threads=1
    done; done; done

and the full fraction is the rows' existing runs (`<row>-s*`). Writes, per fraction, each row's R@50 / RT@50 / AUC
(mean over seeds) and ECR − UniCRS with a 95 % paired bootstrap over the test targets and a Welch interval over the
seeds, and a plot beside the JSON (.png).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch (MODELS.md)

import numpy as np  # noqa: E402
from common import difference, error_bars, per_seed, run_outcomes  # noqa: E402  (benchmarks/common.py, beside this script)

from ecrs.data.kg import load_redial_kg  # noqa: E402
from ecrs.data.prepare import load_samples  # noqa: E402
from ecrs.evaluation.evaluate import provenance  # noqa: E402

RUNS = "artifacts/recommender/redial"

FRACTIONS = {0.25: "-f25", 0.5: "-f50", 1.0: ""}
ROWS = {"UniCRS": "unicrs-fast", "ECR": "ecr-fast"}


def plot(curve: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.6))
    fr = [c["train_fraction"] for c in curve]
    for name in ROWS:
        ax.plot(fr, [c["systems"][name]["R@50"] for c in curve], "o-", label=name)
    ax.set_xlabel("fraction of our training dialogues")
    ax.set_ylabel("R@50")
    ax.legend()
    d = [c["ECR - UniCRS"]["R@50"]["bootstrap"] for c in curve]
    mid, err = error_bars(d)
    bx.errorbar(fr, mid, yerr=err, fmt="o-", capsize=3)
    bx.axhline(0, color="grey", lw=0.8)
    bx.set_xlabel("fraction of our training dialogues")
    bx.set_ylabel("ECR − UniCRS, R@50")
    bx.set_title("difference, 95 % paired bootstrap", fontsize=9)
    ax.set_title("ReDial test, mean over seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/results/recommendation_learning_curve.json")
    args = ap.parse_args()
    kg = load_redial_kg()
    n_train = len({s.dialog_id for s in load_samples("artifacts/data", "redial", "train")})
    curve = []
    for fraction, suffix in FRACTIONS.items():
        outcomes = {name: run_outcomes(f"{RUNS}/{row}{suffix}-s[0-9]", "artifacts/data", kg)
                    for name, row in ROWS.items()}
        point = {"train_fraction": fraction, "train_dialogues": max(1, round(n_train * fraction)),
                 "systems": {name: {"runs": len(runs), **{k: round(float(np.mean(v)), 4)
                                                          for k, v in per_seed(runs).items()}}
                             for name, runs in outcomes.items()},
                 "ECR - UniCRS": difference(outcomes["ECR"], outcomes["UniCRS"])}
        d = point["ECR - UniCRS"]["R@50"]["bootstrap"]
        print(f"fraction {fraction}: UniCRS {point['systems']['UniCRS']['R@50']:.4f}, ECR "
              f"{point['systems']['ECR']['R@50']:.4f}, ECR - UniCRS {d['difference']:+.4f} "
              f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]", flush=True)
        curve.append(point)
    out = Path(args.out)
    out.write_text(json.dumps({
        "what": "ECR (fast) and UniCRS (fast) trained on nested fractions of the bundled public ReDial training "
                "dialogues (same configs and recipe), scored on the whole ReDial test split (CPU runs)",
        "train_dialogues_total": n_train, "curve": curve, **provenance()}, indent=1) + "\n")
    plot(curve, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
