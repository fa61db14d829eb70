"""Benchmark of the emotion classifier on its held-out split (ECR_SPEC §2).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/emotion.py [--checkpoint artifacts/emotion] \
        [--compare artifacts/emotion_minilm]

(PASSIVE: a MiniLM checkpoint runs torch, whose small ops otherwise spin; docs/MODELS.md.)

Loads the checkpoint written by `ecrs train emotion`, re-derives the held-out split (and checks it matches the
checkpoint's split.json), and writes benchmarks/results/emotion.json and emotion_confusion.png: Recall@1/@2,
micro/macro F1 at β, per-label scores, batch-1 latency, batch-64 throughput, size, trivial baselines, and the same
numbers for each --compare checkpoint.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from common import bundled_files

from ecrs.data.bundle import REPO_ROOT, bundled
from ecrs.emotions import BETA, EMOTION_INDEX, EMOTIONS
from ecrs.evaluation.results import write_results
from ecrs.models.emotion import EmotionClassifier
from ecrs.training.emotion import (
    SPLIT_FILE,
    EmotionConfig,
    EmotionExample,
    load_examples,
    make_splits,
    recall_at_k,
)

K = len(EMOTIONS)
MODEL_NAMES = {"none": "word 1-2-gram + char 2-5-gram TF-IDF -> softmax regression",
               "minilm": "word/char TF-IDF + frozen all-MiniLM-L6-v2 embedding -> softmax regression"}
DEFINITIONS = {
    "heldout": "15 % of the annotated utterances in whole dialogues, taken in sha256(salt:seed:dialogue) order "
               "(ecrs.training.emotion.make_splits); never used for training or model selection",
    "leakage": "held-out utterances whose dialogue also gave training utterances, and whose exact text (case and "
               "spacing folded) is also a training utterance's",
    "recall@k": "share of held-out utterances whose annotated primary (first) label is among the k labels of "
                "highest predicted probability",
    "predicted_set": f"labels with probability > beta={BETA}, or the top-1 label if none passes (no cap)",
    "gold_set": "all annotated labels of the utterance (1 or 2)",
    "micro_f1": "F1 from true/false positives and false negatives summed over labels and utterances "
                "(predicted_set vs gold_set)",
    "macro_f1": "unweighted mean over the nine labels of the per-label F1 (0 for a label never predicted)",
    "per_label": "precision, recall, F1 of label L: utterances with L in predicted_set vs with L in gold_set; "
                 "support = number of held-out utterances with L in gold_set",
    "latency": "wall time of one predict_proba([text], [context]) call (batch 1, cleaning + features + head) on "
               "held-out utterances, after 20 warm-up calls; p50/p95 over n calls",
    "throughput_batch64": "utterances per second of predict_proba over chunks of 64 held-out utterances",
    "throughput_bulk": "utterances per second of one predict_proba call over throughput_bulk_n utterances (the "
                       "4,200 annotated ones, five times for the n-gram model): what `ecrs prepare` labelling sees",
    "size_mb": "bytes of the checkpoint's model files (emotion_head.npz + emotion_model.json) / 1e6; a MiniLM "
               "variant also needs the 91 MB all-MiniLM-L6-v2 package (reported apart)",
    "confusion": "rows: primary gold label; columns: top-1 predicted label; each row normalised to sum 1",
}


# ---- metrics: pure functions of arrays ----

def predicted_sets(probs: np.ndarray, beta: float = BETA) -> np.ndarray:
    """(N, K) bool: labels with p > beta, or the argmax when none passes."""
    pred = probs > beta
    none = ~pred.any(axis=1)
    pred[none, probs[none].argmax(axis=1)] = True
    return pred


def set_f1(pred: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    """Micro and macro F1 and per-label precision/recall/F1/support of boolean (N, K) label sets."""
    tp = (pred & gold).sum(axis=0).astype(float)
    fp = (pred & ~gold).sum(axis=0).astype(float)
    fn = (~pred & gold).sum(axis=0).astype(float)

    def f1(t: float, p: float, n: float) -> float:
        return 2 * t / (2 * t + p + n) if t > 0 else 0.0

    per = {}
    for k, label in enumerate(EMOTIONS):
        per[label] = {
            "precision": tp[k] / (tp[k] + fp[k]) if tp[k] + fp[k] > 0 else 0.0,
            "recall": tp[k] / (tp[k] + fn[k]) if tp[k] + fn[k] > 0 else 0.0,
            "f1": f1(tp[k], fp[k], fn[k]), "support": int(gold[:, k].sum()), "predicted": int(pred[:, k].sum()),
        }
    return {"micro_f1": f1(tp.sum(), fp.sum(), fn.sum()),
            "macro_f1": float(np.mean([per[lab]["f1"] for lab in EMOTIONS])), "per_label": per}


def confusion(gold: np.ndarray, top1: np.ndarray) -> np.ndarray:
    """(K, K) counts: row = gold primary index, column = predicted top-1 index."""
    m = np.zeros((K, K), dtype=np.int64)
    np.add.at(m, (gold, top1), 1)
    return m


def quality(probs: np.ndarray, examples: list[EmotionExample]) -> dict[str, Any]:
    primary = np.array([EMOTION_INDEX[e.primary] for e in examples])
    gold = np.zeros((len(examples), K), dtype=bool)
    for i, e in enumerate(examples):
        gold[i, [EMOTION_INDEX[lab] for lab in e.labels]] = True
    return {"recall@1": recall_at_k(probs, primary, 1), "recall@2": recall_at_k(probs, primary, 2),
            "recall@3": recall_at_k(probs, primary, 3), **set_f1(predicted_sets(probs), gold)}


# ---- baselines ----

def majority_baseline(train: list[EmotionExample], n: int) -> np.ndarray:
    """Every utterance gets the training distribution of primary labels."""
    counts = Counter(e.primary for e in train)
    prior = np.array([counts[lab] for lab in EMOTIONS], dtype=np.float32)
    return np.tile(prior / prior.sum(), (n, 1))


def vader_compound(text: str, lexicon: dict[str, float]) -> float:
    """VADER's normalised sum of lexicon valences, s / sqrt(s² + 15), without VADER's booster/negation rules."""
    s = sum(lexicon.get(tok, 0.0) for tok in re.findall(r"[\w']+|[:;=8][\-o']?[()dpDP\]\[/\\|]", text.lower()))
    return s / math.sqrt(s * s + 15.0)


def vader_baseline(train: list[EmotionExample], test: list[EmotionExample]) -> np.ndarray:
    """VADER-lexicon sentiment bucket (positive >= 0.05, negative <= -0.05, else neutral) -> the distribution of
    primary labels among training utterances in the same bucket."""
    lexicon = {}
    with gzip.open(bundled("emotion/lexicons/vader_lexicon.txt.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 2:
                lexicon[parts[0].lower()] = float(parts[1])

    def bucket(text: str) -> int:
        c = vader_compound(text, lexicon)
        return 0 if c >= 0.05 else (2 if c <= -0.05 else 1)

    dist = np.ones((3, K), dtype=np.float32)  # add-one smoothing
    for e in train:
        dist[bucket(e.text), EMOTION_INDEX[e.primary]] += 1
    dist /= dist.sum(axis=1, keepdims=True)
    return np.stack([dist[bucket(e.text)] for e in test])


# ---- speed ----

def latency_ms(clf: EmotionClassifier, examples: list[EmotionExample], calls: int = 300) -> dict[str, Any]:
    for e in examples[:20]:
        clf.predict_proba([e.text], [e.context])
    times = []
    for i in range(calls):
        e = examples[i % len(examples)]
        t = time.perf_counter()
        clf.predict_proba([e.text], [e.context])
        times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
            "mean_ms": float(np.mean(times)), "calls": calls}


def throughput(clf: EmotionClassifier, examples: list[EmotionExample], batch: int, min_items: int = 2000) -> float:
    texts = [e.text for e in examples]
    ctxs = [e.context for e in examples]
    done, t = 0, time.perf_counter()
    while done < min_items:
        for s in range(0, len(texts), batch):
            clf.predict_proba(texts[s:s + batch], ctxs[s:s + batch])
        done += len(texts)
    return done / (time.perf_counter() - t)


def bulk_throughput(clf: EmotionClassifier, examples: list[EmotionExample], repeat: int) -> float:
    texts = [e.text for e in examples] * repeat
    ctxs = [e.context for e in examples] * repeat
    t = time.perf_counter()
    clf.predict_proba(texts, ctxs)
    return len(texts) / (time.perf_counter() - t)


def leakage(heldout: list[EmotionExample], fit_on: list[EmotionExample]) -> dict[str, int]:
    dialogues = {e.dialogue for e in fit_on}
    texts = {" ".join(e.text.lower().split()) for e in fit_on}
    return {"heldout_in_training_dialogues": sum(e.dialogue in dialogues for e in heldout),
            "heldout_text_in_training": sum(" ".join(e.text.lower().split()) in texts for e in heldout)}


def evaluate_checkpoint(path: Path, examples: list[EmotionExample], speed: bool) -> tuple[dict[str, Any], Any]:
    cfg_splits = json.loads((path / SPLIT_FILE).read_text())
    spec = json.loads((path / "emotion_model.json").read_text())
    cfg = EmotionConfig(**{k: v for k, v in spec["meta"]["config"].items()})
    splits = make_splits(examples, cfg.heldout_fraction, cfg.val_fraction, cfg.seed)
    if splits != cfg_splits:
        raise SystemExit(f"{path}/{SPLIT_FILE} does not match the split re-derived from the data and config")
    by_id = {e.id: e for e in examples}
    heldout = [by_id[i] for i in splits["heldout"]]
    fit_ids = splits["train"] + splits["val"] if cfg.refit else splits["train"]
    clf = EmotionClassifier.load(path)
    probs = clf.predict_proba([e.text for e in heldout], [e.context for e in heldout])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    res: dict[str, Any] = {
        "checkpoint": rel(path), "model": MODEL_NAMES[cfg.encoder], "encoder": cfg.encoder, "chosen_C": spec["meta"]["report"]["chosen_C"],
        "n_train": len(fit_ids), "n_heldout": len(heldout), "n_train_selection": len(splits["train"]),
        "n_val": len(splits["val"]), "train_seconds": spec["meta"]["report"]["train_seconds"],
        "size_mb": sum((path / f).stat().st_size for f in ("emotion_head.npz", "emotion_model.json")) / 1e6,
        "extra_size_mb": 91.0 if cfg.encoder == "minilm" else 0.0,
        "n_features": int(clf.weight.shape[0]),
        "leakage": leakage(heldout, [by_id[i] for i in fit_ids]),
        **quality(probs, heldout),
    }
    if speed:
        res["latency_batch1"] = latency_ms(clf, heldout)
        res["throughput_batch64_per_s"] = throughput(clf, heldout, 64)
        repeat = 1 if cfg.encoder == "minilm" else 5  # MiniLM: 4,200 utterances already take about a minute
        res["throughput_bulk_per_s"] = bulk_throughput(clf, examples, repeat)
        res["throughput_bulk_n"] = repeat * len(examples)
        res["est_minutes_for_100k"] = 1e5 / res["throughput_bulk_per_s"] / 60
        res["load_average_during"] = list(os.getloadavg())
    return res, (probs, heldout, [by_id[i] for i in fit_ids])


def rel(path: Path) -> str:
    """`path` relative to the repository when inside it (artifacts/ may be a link): results files do not name this
    checkout's folder."""
    path = path.absolute()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def row_normalised(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(m.sum(axis=1, keepdims=True), 1)


def plot_confusion(m: np.ndarray, title: str, out: Path) -> None:
    """`m`: the (K, K) confusion counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = row_normalised(m)
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=120)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(K), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(K), [f"{lab} (n={int(m[i].sum())})" for i, lab in enumerate(EMOTIONS)])
    for i in range(K):
        for j in range(K):
            if m[i, j]:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted (top-1)")
    ax.set_ylabel("annotated primary label")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=REPO_ROOT / "artifacts/emotion")
    ap.add_argument("--compare", type=Path, action="append", default=[],
                    help="other checkpoints to report beside it (e.g. the MiniLM variant)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/emotion.json")
    ap.add_argument("--no-speed", action="store_true", help="skip latency/throughput (quality only)")
    args = ap.parse_args()
    if not (args.checkpoint / "emotion_model.json").exists():
        print(f"no checkpoint at {args.checkpoint}: run `ecrs train emotion` first", file=sys.stderr)
        return 2

    data = json.loads((args.checkpoint / "emotion_model.json").read_text())["meta"]["config"]["data"]
    examples = load_examples(data)
    main_res, (probs, heldout, fit_on) = evaluate_checkpoint(args.checkpoint, examples, not args.no_speed)
    n = len(heldout)
    baselines = {
        "majority (training prior of primary labels)": quality(majority_baseline(fit_on, n), heldout),
        "VADER-lexicon sentiment bucket -> bucket's label prior": quality(vader_baseline(fit_on, heldout),
                                                                          heldout),
    }
    for b in baselines.values():
        b.pop("per_label")
    variants = []
    for path in args.compare:
        res, _ = evaluate_checkpoint(path, examples, not args.no_speed)
        res.pop("per_label")
        variants.append(res)

    counts = confusion(np.array([EMOTION_INDEX[e.primary] for e in heldout]), probs.argmax(axis=1)).astype(float)
    png = args.out.with_name("emotion_confusion.png")
    bars = {"recall@2 >= 0.90": main_res["recall@2"] >= 0.90}
    if "latency_batch1" in main_res:
        bars["p50 latency <= 5 ms"] = main_res["latency_batch1"]["p50_ms"] <= 5.0
    write_results(
        args.out, "emotion", {"model": main_res, "baselines": baselines, "variants": variants,
                   "confusion_row_normalised": row_normalised(counts).round(4).tolist()},
        data={**bundled_files(data), "checkpoint": rel(args.checkpoint)},
        task="nine-label emotion classification of ReDial seeker utterances (ECR_SPEC §2)",
        labels=list(EMOTIONS), definitions=DEFINITIONS, bars=bars, confusion_png=rel(png),
        paper_reference="ECR: GPT-2 classifier, Recall@2 = 0.8775 against its own LLM labels (different data)")
    # After the results file: written before, the plot would count as an uncommitted change in its provenance.
    plot_confusion(counts, f"{main_res['model']}\nheld-out n={n}: Recall@1 {main_res['recall@1']:.3f}, "
                           f"Recall@2 {main_res['recall@2']:.3f}", png)
    lat = main_res.get("latency_batch1", {}).get("p50_ms", float("nan"))
    print(f"held-out n={n}: Recall@2 {main_res['recall@2']:.4f}, Recall@1 {main_res['recall@1']:.4f}, "
          f"micro F1 {main_res['micro_f1']:.4f}, macro F1 {main_res['macro_f1']:.4f}, p50 {lat:.2f} ms -> {args.out}")
    for v in variants:
        vl = v.get("latency_batch1", {}).get("p50_ms", float("nan"))
        print(f"  {v['checkpoint']}: Recall@2 {v['recall@2']:.4f}, Recall@1 {v['recall@1']:.4f}, p50 {vl:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
