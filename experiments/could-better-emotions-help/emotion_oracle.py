"""How much could emotion help recommendation on our ReDial data? An oracle and a slice analysis (issue 4).

    .venv/bin/python benchmarks/emotion_oracle.py [--out benchmarks/results/recommendation_emotion_oracle.json]

Why: over 10 seeds ECR (fast) and UniCRS are indistinguishable on ReDial test (recommendation_h200_seeds.json).
Either our emotion parts fail to use a signal that is there, or the signal our classifier gives them is too weak, or
sentiment about context movies says little about the next recommendation on this data. The oracle separates these:
the same models trained and tested with the seeker's own post-dialogue questionnaire answers as the emotions of the
movies he answered for ("like" / "negative", `ecrs.data.samples.questionnaire_emotions`), information no system has
at chat time.

Needs `ecrs prepare` (artifacts/data), the oracle samples
    ecrs prepare --set dataset=redial --set out_dir=artifacts/data-oracle --set entity_emotions=questionnaire
and trained runs, seeds 0-2: unicrs-fast, ecr-l-fast and ecr-fast from their configs, and the oracle rows
    ecrs train recommender --config configs/recommender/ecr-l-fast.yaml --set data.data_dir=artifacts/data-oracle \
        --set name=ecr-l-fast-oracle --set train.seed=S        (likewise ecr-fast -> ecr-fast-oracle)

Writes:
1. `agreement`: for context movie mentions the seeker answered, the classifier's strongest attached label by answer;
2. `systems`: R@50 / RT@50 / AUC per system (mean over seeds);
3. `differences`: each emotion row minus UniCRS with a 95 % paired bootstrap over the test targets (seed means) and a
   Welch interval over seeds, on all targets and on two slices: targets whose context names a movie the seeker
   disliked (where sentiment should matter most) and the rest;
and a plot of the differences beside the JSON (.png).
"""
from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch (MODELS.md)

import numpy as np  # noqa: E402
from common import difference, error_bars, per_seed, run_outcomes  # noqa: E402  (benchmarks/common.py, beside this script)

from ecrs.data.bundle import iter_jsonl  # noqa: E402
from ecrs.data.kg import load_redial_kg  # noqa: E402
from ecrs.data.prepare import load_samples  # noqa: E402
from ecrs.evaluation.evaluate import TargetOutcomes, provenance  # noqa: E402

RUNS = "artifacts/recommender/redial"
SYSTEMS = {  # name -> (run folders, the prepared samples they read)
    "UniCRS": (f"{RUNS}/unicrs-fast-s[0-9]", "artifacts/data"),
    "ECR[L]": (f"{RUNS}/ecr-l-fast-s[0-9]", "artifacts/data"),
    "ECR": (f"{RUNS}/ecr-fast-s[0-9]", "artifacts/data"),
    "ECR[L] oracle": (f"{RUNS}/ecr-l-fast-oracle-s[0-9]", "artifacts/data-oracle"),
    "ECR oracle": (f"{RUNS}/ecr-fast-oracle-s[0-9]", "artifacts/data-oracle"),
}
BASE = "UniCRS"


def feedback_by_dialogue(data_dir: str, split: str) -> dict[str, dict[int, str]]:
    path = Path(data_dir) / "redial" / f"{split}_dialogues.jsonl.gz"
    return {str(o["id"]): {int(k): v for k, v in (o.get("feedback") or {}).items()} for _, o in iter_jsonl(path)}


def agreement(samples, feedback) -> dict:
    """The classifier's strongest label on context movies, by the seeker's questionnaire answer."""
    by_answer: dict[str, Counter] = {"liked": Counter(), "disliked": Counter()}
    for s in samples:
        fb = feedback[s.dialog_id]
        for e, ems in zip(s.entities, s.entity_emotions):
            if fb.get(e) in by_answer and ems:
                by_answer[fb[e]][ems[0][0]] += 1
    out = {}
    for answer, c in by_answer.items():
        n = sum(c.values())
        out[answer] = {"mentions": n, "top_label_share": {k: round(v / n, 3) for k, v in c.most_common()}}
    return out


def subset(runs: list[TargetOutcomes], mask: np.ndarray) -> list[TargetOutcomes]:
    return [TargetOutcomes(o.ranks[mask], o.log_probs[mask], o.feedback[mask]) for o in runs]


def plot(differences: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slices = list(next(iter(differences.values())))
    systems = list(differences)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(systems)
    for i, name in enumerate(systems):
        xs = np.arange(len(slices)) + (i - (len(systems) - 1) / 2) * width
        d = [differences[name][s]["R@50"]["bootstrap"] for s in slices]
        mid, err = error_bars(d)
        ax.errorbar(xs, mid, yerr=err, fmt="o", capsize=3, label=name)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(np.arange(len(slices)))
    ax.set_xticklabels([f"{s}\n({next(iter(differences.values()))[s]['n_targets']} targets)" for s in slices])
    ax.set_ylabel(f"R@50 minus {BASE} (95 % paired bootstrap)")
    ax.set_title("ReDial test: emotion rows against UniCRS, classifier vs questionnaire (oracle) emotions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/results/recommendation_emotion_oracle.json")
    args = ap.parse_args()
    kg = load_redial_kg()
    test = load_samples("artifacts/data", "redial", "test")
    feedback = feedback_by_dialogue("artifacts/data", "test")
    # Slices by target row (a sample's mask repeated over its targets, in `evaluate.flatten`'s order).
    disliked_ctx = np.array([any(feedback[s.dialog_id].get(e) == "disliked" for e in s.entities)
                             for s in test for _ in s.targets])
    slices = {"all": np.ones_like(disliked_ctx), "context names a disliked movie": disliked_ctx,
              "no disliked movie in context": ~disliked_ctx}

    outcomes = {}
    for name, (pattern, data_dir) in SYSTEMS.items():
        print(name, flush=True)
        outcomes[name] = run_outcomes(pattern, data_dir, kg)
    systems, differences = {}, {}
    for name, runs in outcomes.items():
        systems[name] = {"runs": len(runs), **{k: round(float(np.mean(v)), 4) for k, v in per_seed(runs).items()}}
        if name == BASE:
            continue
        differences[name] = {}
        for sname, mask in slices.items():
            differences[name][sname] = {"n_targets": int(mask.sum()),
                                        **difference(subset(runs, mask), subset(outcomes[BASE], mask))}
            d = differences[name][sname]["R@50"]["bootstrap"]
            print(f"{name:14s} - {BASE} on {sname:30s}: R@50 {d['difference']:+.4f} "
                  f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]", flush=True)
    out = Path(args.out)
    result = {
        "what": "emotion rows minus UniCRS on ReDial test, with the classifier's emotions and with the seeker's "
                "questionnaire answers as oracle emotions; trained on the bundled public part of ReDial (CPU runs)",
        "agreement_train": agreement(load_samples("artifacts/data", "redial", "train"),
                                     feedback_by_dialogue("artifacts/data", "train")),
        "agreement_test": agreement(test, feedback),
        "systems": systems, "differences": differences,
        "slice_targets": {k: int(v.sum()) for k, v in slices.items()},
        **provenance(),
    }
    out.write_text(json.dumps(result, indent=1) + "\n")
    plot(differences, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
