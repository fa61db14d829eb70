"""Benchmark of the per-mention stance classifier (issue 24): what the seeker said about each thing they named.

    .venv/bin/python benchmarks/stance.py [--checkpoint artifacts/stance] [--emotion artifacts/emotion]

Test data, never trained or selected on (`ecrs.training.stance`):
- ReDial test dialogues: every seeker message naming a movie, labelled with the seeker's questionnaire answer for
  it (liked / disliked / seen without a verdict / none); and messages answering the recommender's single
  suggestion without naming it (`reply`).
- the hand-written people / genre utterances' test families (data/stance/people_genres.jsonl).
- benchmarks/data/stance_dislike_check.tsv: 50 questionnaire dislikes checked by hand for whether the message says
  so at all: the share that does bounds the recall a reader of the text can reach against the questionnaire.
The baseline is ECR's broadcast rule as the chat used it before: the utterance's top emotion for every entity it
names (negative -> disliked; like / happy / nostalgia -> liked; else none).
Writes benchmarks/results/stance.json.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

from common import bundled_files

from ecrs.config import load_config
from ecrs.data.bundle import REPO_ROOT
from ecrs.emotions import kept_labels
from ecrs.evaluation.results import write_results
from ecrs.models.emotion import EmotionClassifier
from ecrs.models.stance import load_stance
from ecrs.training.stance import StanceConfig, evaluate_stance, load_stance_data, stance_scores

MOVIE = ("liked", "disliked", "seen")
PEOPLE_GENRES = ("liked", "disliked", "wants", "avoid", "none")
CHECK = REPO_ROOT / "benchmarks" / "data" / "stance_dislike_check.tsv"


class Broadcast:
    """ECR's rule, as a stance: the utterance's top emotion for every mention."""

    def __init__(self, emotion: EmotionClassifier):
        self.emotion = emotion

    def predict(self, text, spans):
        top = (kept_labels(list(self.emotion.predict_proba([text], [""])[0])) or [("neutral", 1.0)])[0][0]
        stance = "disliked" if top == "negative" else "liked" if top in ("like", "happy", "nostalgia") else "none"
        return [(stance, 1.0)] * len(spans)


def _short(r: dict) -> dict:
    return {"macro_f1": round(r["macro_f1"], 4), "mentions": r["mentions"],
            "per_stance": {k: {m: round(v, 4) if isinstance(v, float) else v for m, v in s.items()}
                           for k, s in r["per_stance"].items()}, "confusion": r["confusion"]}


def dislike_check(clf, examples) -> dict:
    rows = [r for r in csv.DictReader((line for line in CHECK.open() if not line.startswith("#")), delimiter="\t")]
    by_key = {(e.group, m.start, m.end): (e, i) for e in examples for i, m in enumerate(e.mentions)}
    found = {"yes": [0, 0], "no": [0, 0]}  # expressed -> [predicted disliked, cases]
    for r in rows:
        e, i = by_key[(r["dialogue"], int(r["start"]), int(r["end"]))]
        found[r["expressed"]][0] += clf.predict(e.text, e.mentions)[i][0] == "disliked"
        found[r["expressed"]][1] += 1
    return {"checked": len(rows), "expressed": found["yes"][1],
            "ceiling_recall": round(found["yes"][1] / len(rows), 4),
            "recall_where_expressed": round(found["yes"][0] / max(1, found["yes"][1]), 4),
            "predicted_disliked_where_not_expressed": found["no"][0]}


def latency_ms(clf, examples, n: int = 500) -> dict:
    """Per message, on one torch thread: how the chat and the server run it (`TrainedRecommender.load(threads=1)`
    sets that for the process; two threads were no faster at batch 1)."""
    import torch

    torch.set_num_threads(1)
    times = []
    for e in examples[:n]:
        t = time.perf_counter()
        clf.predict(e.text, e.mentions)
        times.append((time.perf_counter() - t) * 1000)
    return {"p50": round(statistics.median(times), 3), "p95": round(sorted(times)[int(0.95 * len(times))], 3),
            "messages": len(times)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="artifacts/stance")
    ap.add_argument("--emotion", default="artifacts/emotion")
    ap.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" / "stance.json"))
    args = ap.parse_args()
    clf = load_stance(args.checkpoint)
    cfg = load_config(StanceConfig, Path(args.checkpoint) / "config.yaml", [])
    data = load_stance_data(cfg)
    redial, people = data["redial"]["test"], data["people_genres"]["test"]
    systems = {"stance": clf, "broadcast": Broadcast(EmotionClassifier.load(args.emotion))}
    metrics: dict = {}
    for name, model in systems.items():
        metrics[name] = {
            "redial_movies": _short(evaluate_stance(model, redial, MOVIE, ("movie",))),
            "redial_replies": _short(evaluate_stance(model, redial, MOVIE, ("reply",))),
            "people_genres": _short(evaluate_stance(model, people, PEOPLE_GENRES, ("person", "genre"))),
            "people": _short(evaluate_stance(model, people, PEOPLE_GENRES, ("person",))),
            "genres": _short(evaluate_stance(model, people, PEOPLE_GENRES, ("genre",))),
        }
    metrics["stance"]["dislike_check"] = dislike_check(clf, redial)
    metrics["stance"]["latency_ms_per_message"] = latency_ms(clf, redial)
    # Polarity only (liked / wants vs disliked / avoid vs none): how often a dislike is read as a wish or back.
    gold, pred = [], []
    for e in people:
        for m, lab, (p, _) in zip(e.mentions, e.labels, clf.predict(e.text, e.mentions)):
            if m.kind != "movie":
                gold.append(_polarity(lab))
                pred.append(_polarity(p))
    metrics["stance"]["people_genres_polarity"] = _short({**stance_scores(gold, pred, ("positive", "negative",
                                                                                         "none")),
                                                           "mentions": len(gold), "confusion": {}})
    write_results(args.out, "stance", metrics,
                  data=bundled_files("redial/test.jsonl.gz") | {"stance/people_genres.jsonl": {"split": "test"},
                                                                  "benchmarks/data/stance_dislike_check.tsv": {}},
                  definitions={
                      "redial_movies": "seeker messages of ReDial test naming a movie, labelled with the seeker's "
                                       "questionnaire answer; macro-F1 over liked, disliked, seen",
                      "people_genres": "hand-written test families; macro-F1 over liked, disliked, wants, avoid, "
                                       "none",
                      "dislike_check": "50 questionnaire dislikes checked by hand: ceiling_recall = share whose "
                                       "message expresses the dislike at all",
                      "latency_ms_per_message": "one predict() call for all mentions of a ReDial test message, "
                                                "batch 1, one torch thread, this machine"})
    s = metrics["stance"]
    print(f"ReDial movies: macro-F1 {s['redial_movies']['macro_f1']:.3f}, disliked P "
          f"{s['redial_movies']['per_stance']['disliked']['precision']:.3f} R "
          f"{s['redial_movies']['per_stance']['disliked']['recall']:.3f} (broadcast R "
          f"{metrics['broadcast']['redial_movies']['per_stance']['disliked']['recall']:.3f}); people/genres "
          f"macro-F1 {s['people_genres']['macro_f1']:.3f}; ceiling {s['dislike_check']['ceiling_recall']:.2f}; "
          f"p50 {s['latency_ms_per_message']['p50']:.2f} ms -> {args.out}")
    return 0


def _polarity(stance: str) -> str:
    return "positive" if stance in ("liked", "wants") else "negative" if stance in ("disliked", "avoid") else "none"


if __name__ == "__main__":
    raise SystemExit(main())
