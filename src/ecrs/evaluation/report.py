"""The results report: `benchmarks/results/*.json` -> `reports/README.md` (markdown tables) and PNG plots.

Every number of ours comes from the JSON files; the only constants here are the paper's published values
(ECR_SPEC §7, ECR Table 1 and its ablation, on the full ReDial training data), always labelled as the paper's.
The output depends only on the JSON files, so re-running on the same results writes byte-identical files.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecrs.errors import DataError
from ecrs.evaluation.evaluate import fmt

# ---------------------------------------------------------------- the paper's numbers (ECR_SPEC §7)

PAPER_LABEL = "paper (full ReDial)"
PAPER_NOTE = ("Paper rows: ECR (Zhang et al., RecSys 2024) Table 1 and ablation, ReDial test, trained on the full "
              "ReDial data (10,006 dialogues); the paper's AUC is the per-batch-of-32 variant, so it sits in the "
              "`AUC b32` column. Our AUC columns compare the target's softmax probability over the movies (as ECR's "
              "reference code feeds its AUC); `AUC_logit` in recommendation.json is the same AUC on the raw target "
              "score, which carries an arbitrary per-dialogue offset.")
# The paper's AUC is averaged over evaluation batches of 32 (ECR_SPEC §6), hence the AUC_batch32 key.
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "KBRD": {"AUC_batch32": 0.503, "RT@1": 0.040, "RT@10": 0.182, "RT@50": 0.381, "R@1": 0.037, "R@10": 0.175,
             "R@50": 0.360},
    "KGSF": {"AUC_batch32": 0.513, "RT@1": 0.043, "RT@10": 0.195, "RT@50": 0.383, "R@1": 0.040, "R@10": 0.182,
             "R@50": 0.361},
    "UniCRS": {"AUC_batch32": 0.506, "RT@1": 0.052, "RT@10": 0.229, "RT@50": 0.439, "R@1": 0.047, "R@10": 0.212,
               "R@50": 0.414},
    "ECR": {"AUC_batch32": 0.541, "RT@1": 0.055, "RT@10": 0.238, "RT@50": 0.452, "R@1": 0.049, "R@10": 0.220,
            "R@50": 0.428},
}
PAPER_ABLATION: dict[str, dict[str, float]] = {
    "UniCRS": {k: PAPER_TABLE1["UniCRS"][k] for k in ("AUC_batch32", "RT@10", "RT@50", "R@10", "R@50")},
    "ECR[L]": {"AUC_batch32": 0.535, "RT@10": 0.229, "RT@50": 0.444, "R@10": 0.213, "R@50": 0.420},
    "ECR[LS]": {"AUC_batch32": 0.541, "RT@10": 0.232, "RT@50": 0.442, "R@10": 0.216, "R@50": 0.420},
    "ECR[LG]": {"AUC_batch32": 0.535, "RT@10": 0.232, "RT@50": 0.453, "R@10": 0.216, "R@50": 0.428},
    "ECR": {k: PAPER_TABLE1["ECR"][k] for k in ("AUC_batch32", "RT@10", "RT@50", "R@10", "R@50")},
}
PAPER_DEDUP_ECR = {"R@1": 0.026, "R@10": 0.181, "R@50": 0.337}  # ECR with repeated items removed
PAPER_DATASET = "redial"  # the only dataset with published numbers in ECR_SPEC

# Ablation rows (ECR_SPEC §4.8) -> system-name prefix in recommendation.json; the suffix is the backbone.
ABLATION = [("UniCRS-style", "unicrs"), ("ECR[L]", "ecr-l"), ("ECR[LS]", "ecr-ls"), ("ECR[LG]", "ecr-lg"), ("ECR", "ecr"),
            ("ECR, entity stances", "ecr-stance")]
BACKBONES = ("fast", "lm")
# name suffix -> qualifier in the display name, stripped from the end of a name in this order
QUALIFIERS = [("-raw", "no context shift"), ("-noavg", "no weight average"), ("-h200", "trained on an H200"),
              ("-e15", "15 epochs"), ("-gpu", "GPU budget")]
TABLE1_COLS = ["AUC", "AUC_batch32", "RT@1", "RT@10", "RT@50", "R@1", "R@10", "R@50"]
ABLATION_COLS = ["AUC", "AUC_batch32", "RT@10", "RT@50", "R@10", "R@50"]
HEADER = {"AUC_batch32": "AUC b32"}
RESULT_FILES = ["recommendation", "recommendation_paired", "emotion", "entity_linking", "generation",
                "generation_speed", "judge", "recommender_latency", "serving", "annotation", "stance", "conversations",
                "reliability"]


@dataclass
class Report:
    markdown: str
    files: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------- small helpers

def load_results(results_dir: Path) -> dict[str, Any]:
    """Every `*.json` of the results folder by file stem; a missing folder or a malformed file is an error."""
    if not Path(results_dir).is_dir():
        raise DataError("results folder not found", results_dir)
    out: dict[str, Any] = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e.msg})", path, e.lineno) from None
        rows = out[path.stem].get("rows") if isinstance(out[path.stem], dict) else None
        if rows is not None and not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows)):
            raise DataError("'rows' must be a list of result rows (objects)", path)
    return out


def mean_std(x: Any) -> tuple[float, float] | None:
    """A metric as stored (a float, or `{mean, std, ...}` over seeds) -> (mean, std); None when undefined."""
    if isinstance(x, dict) and "mean" in x:
        return float(x["mean"]), float(x.get("std") or 0.0)
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x), 0.0
    return None


def num(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def _qualified(base: str, note: str) -> str:
    """`ECR (fast)` -> `ECR (fast, note)`; `KBRD` -> `KBRD (note)`."""
    return base[:-1] + f", {note})" if base.endswith(")") else f"{base} ({note})"


def display_name(system: str) -> str:
    """`ecr-lg-fast` -> `ECR[LG] (fast)`, `ecr-lm-gpu` -> `ECR (lm, GPU budget)`, `ecr-fast-e15-noavg` -> `ECR (fast,
    15 epochs, no weight average)`, `...-raw` (evaluated without the calibrated context shift) says so; baselines and
    unknown names stay as they are."""
    for suffix, note in QUALIFIERS:
        if system.endswith(suffix):
            return _qualified(display_name(system.removesuffix(suffix)), note)
    for label, prefix in ABLATION:
        for backbone in BACKBONES:
            if system == f"{prefix}-{backbone}":
                return f"{label} ({backbone})"
    return {"kbrd": "KBRD"}.get(system, system)


def _row_label(row: dict[str, Any]) -> str:
    """The row's display name, saying so when it was scored on a test subset (`ecrs evaluate` max_samples)."""
    name = display_name(row["system"])
    return f"{name} [test subset: {row['metrics']['standard']['n_samples']} targets]" if row.get("test_subset") else name


def _provenance(name: str, obj: Any) -> str:
    """The file with the command and commit it records (`ecrs.evaluation.results`): its own, and its rows'."""
    bits = [f"`{name}.json`"]
    if not isinstance(obj, dict):
        return bits[0]
    row_commits = sorted({str(c)[:10] for r in _rows(obj) if (c := (r.get("provenance") or {}).get("commit"))})
    if row_commits:
        bits.append(f"rows from commit{'s' if len(row_commits) > 1 else ''} {', '.join(row_commits)}")
    prov = obj.get("provenance") or {}
    if prov.get("command"):
        bits.append(f"command `{prov['command']}`")
    if prov.get("commit"):
        bits.append(f"commit {str(prov['commit'])[:10]}")
    return ", ".join(bits)


def _savefig(fig, path: Path) -> None:
    # No "Software" text chunk: the PNG bytes then depend only on the data, not on the matplotlib version string.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "ecrs", "font.size": 9})
    return plt


# ---------------------------------------------------------------- recommendation

def _rows(rec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(rec.get("rows", [])) if isinstance(rec, dict) else []


def _seeds(row: dict[str, Any]) -> str:
    n = row.get("n_runs")
    return "–" if n is None else str(n)


def _recommendation_section(rec: dict[str, Any] | None) -> list[str]:
    lines = ["## Recommendation", ""]
    if rec is None:
        return lines + ["_No `recommendation.json`: run `ecrs evaluate`._", ""]
    rows = _rows(rec)
    lines += [
        "Ours: the bundled public part of ReDial / INSPIRED (training samples per row in `recommendation.json`), "
        "test split; trained systems are mean±std (sample std) over the seeds in the `seeds` column (no ± = one "
        "seed). Compare our rows with each other; the paper's rows were trained on the full data. Trained rows "
        "apply the context shift each run fitted on validation (movies already mentioned in the dialogue move up the "
        "ranking, `ecrs.training.calibrate`); rows marked \"no context shift\" are the same runs without it (the "
        "dedup metrics, which remove those movies, are the same for both). " + PAPER_NOTE, ""]
    for dataset in sorted({r["dataset"] for r in rows}):
        ours = [r for r in rows if r["dataset"] == dataset]
        train_n = sorted({r.get("train_samples") for r in ours if r.get("train_samples") is not None})
        lines += [f"### {dataset} (Table 1 style)", "",
                  f"Test samples: {ours[0]['metrics']['standard'].get('n_samples')}; our training samples: "
                  f"{', '.join(map(str, train_n)) or '–'}.", ""]
        # Variant rows (no context shift, no weight average, 15 epochs, another machine) get their own table, so
        # that Table 1 shows each system once, as its config trains it.
        variants = sorted((r for r in ours if _is_variant(r["system"])), key=lambda r: display_name(r["system"]))
        ours = [r for r in ours if not _is_variant(r["system"])]
        body = [[_row_label(r), "ours", _seeds(r)] + [fmt(r["metrics"]["standard"].get(c))
                                                                   for c in TABLE1_COLS] for r in ours]
        if dataset != PAPER_DATASET:
            lines += [f"No published ECR numbers on {dataset} in ECR_SPEC: our rows only.", ""]
        else:
            body += [[name, PAPER_LABEL, "–"] + [num(v.get(c)) for c in TABLE1_COLS]
                     for name, v in PAPER_TABLE1.items()]
        header = ["system", "numbers", "seeds"] + [HEADER.get(c, c) for c in TABLE1_COLS]
        lines += table(header, body)
        if variants:
            lines += [f"Variants ({dataset}): the same systems trained or scored another way (dedup numbers of these "
                      "rows: `recommendation.json`).", ""]
            lines += table(header, [[_row_label(r), "ours", _seeds(r)] + [fmt(r["metrics"]["standard"].get(c))
                                                                          for c in TABLE1_COLS] for r in variants])
        dcols = ["R@1", "R@10", "R@50"]
        lines += [f"Dedup ({dataset}): movies mentioned earlier in the dialogue removed from targets and ranking.", ""]
        body = [[_row_label(r), "ours", str(r["metrics"]["dedup"].get("n_samples", "–"))]
                + [fmt(r["metrics"]["dedup"].get(c)) for c in dcols] for r in ours]
        if dataset == PAPER_DATASET:
            body.append(["ECR", PAPER_LABEL, "–"] + [num(PAPER_DEDUP_ECR[c]) for c in dcols])
        lines += table(["system", "numbers", "samples"] + dcols, body)
    lines += ["![recall@n per system](recall_curves.png)", ""]
    return lines


def interval_cell(g: dict[str, Any] | None) -> str:
    """A difference with its 95 % bootstrap interval ({difference, ci_low, ci_high}), starred when it excludes 0."""
    if not g:
        return "–"
    mark = " *" if g["ci_low"] > 0 or g["ci_high"] < 0 else ""
    return f"{g['difference']:+.4f} [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}]{mark}"


def _paired_section(paired: dict[str, Any] | None) -> list[str]:
    """a minus b per dataset with the 95 % paired bootstrap interval (`ecrs evaluate --set compare=[a:b]`)."""
    rows = _rows(paired) if paired else []
    if not rows:
        return []
    lines = ["### Paired differences", "",
             "System a minus system b on the same test targets, each the mean over its seeds, with a 95 % percentile "
             "bootstrap interval over the targets (seed noise is averaged, not included): an interval that spans 0 "
             "means this test set cannot tell the two rows apart.", ""]

    metrics = ["R@50", "RT@50", "AUC"]
    body = [[f"{display_name(r['a'])} − {display_name(r['b'])}", r["dataset"],
             " / ".join(map(str, r.get("n_runs", []))) or "–"] + [interval_cell(r["difference"].get(m))
                                                                   for m in metrics]
            for r in sorted(rows, key=lambda r: (r["dataset"], r["system"]))]
    lines += table(["a − b", "dataset", "seeds"] + metrics, body)
    return lines + ["\\* the interval excludes 0.", ""]


def _ablation_section(rec: dict[str, Any] | None) -> tuple[list[str], dict[str, list[tuple[str, dict]]]]:
    """The ablation tables and, per dataset, the present (label, row) pairs for the plot."""
    lines = ["## Ablation (ECR_SPEC §4.8)", ""]
    found: dict[str, list[tuple[str, dict]]] = {}
    rows = _rows(rec) if rec else []
    by_key = {(r["system"], r["dataset"]): r for r in rows}
    datasets = sorted({r["dataset"] for r in rows})
    lines += ["UniCRS-style = our ECR head with text–entity fusion only (UniCRS's design, not its code or LM); "
              "L = + local emotion-aware entities; S = + feedback-aware reweighting; "
              "G = + global (emotion-filtered co-occurrence) entities; ECR = all. Paper column: "
              "AUC b32 / RT@10 / RT@50 / R@10 / R@50 on the full ReDial data.", ""]
    for dataset in datasets:
        for backbone in BACKBONES:
            present = [(label, by_key[(f"{p}-{backbone}", dataset)]) for label, p in ABLATION
                       if (f"{p}-{backbone}", dataset) in by_key]
            if not present:
                continue
            missing = [f"{label} (`{p}-{backbone}`)" for label, p in ABLATION
                       if (f"{p}-{backbone}", dataset) not in by_key]
            found.setdefault(dataset, []).extend((display_name(r["system"]), r) for _, r in present)
            paper = dataset == PAPER_DATASET
            header = ["row", "system", "seeds"] + [HEADER.get(c, c) for c in ABLATION_COLS]
            header += ["paper (full ReDial)"] if paper else []
            body = []
            for label, r in present:
                cells = [label, r["system"], _seeds(r)] + [fmt(r["metrics"]["standard"].get(c)) for c in ABLATION_COLS]
                if paper:
                    paper_row = PAPER_ABLATION.get(label.removesuffix("-style"))  # the paper's UniCRS beside ours
                    cells.append(" / ".join(num(paper_row[c]) for c in ABLATION_COLS if c != "AUC")
                                 if paper_row else "– (not in the paper)")
                body.append(cells)
            lines += [f"### {dataset}, {backbone} backbone", "", *table(header, body)]
            if missing:
                lines += [f"Not in `recommendation.json` yet: {', '.join(missing)} (train with `ecrs train "
                          f"recommender --config configs/recommender/<row>.yaml`, then `ecrs evaluate`).", ""]
    if not found:
        lines += ["_No ablation rows in `recommendation.json` yet._", ""]
    else:
        lines += ["![ablation bars, error bars = std over seeds](ablation.png)", ""]
    return lines, found


def _is_variant(system: str) -> bool:
    """Trained or scored another way than its config says; `-gpu` is not: it names the lm backbone's own configs."""
    return any(system.endswith(suffix) for suffix, _ in QUALIFIERS if suffix != "-gpu")


def plot_recall_curves(rec: dict[str, Any], out: Path) -> bool:
    rows = _rows(rec)
    datasets = sorted({r["dataset"] for r in rows})
    if not datasets:
        return False
    plt = _pyplot()
    ks = [1, 10, 50]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)  # more systems than the default 10 colours
        # One line per system as its config trains it: the variants (no context shift, no weight average, 15
        # epochs, another machine) stay in the tables; here they would bury the comparison in look-alike lines.
        for r in (r for r in rows if r["dataset"] == dataset and not _is_variant(r["system"])):
            vals = [mean_std(r["metrics"]["standard"].get(f"R@{k}")) for k in ks]
            if any(v is None for v in vals):
                continue
            ax.errorbar(ks, [v[0] for v in vals], yerr=[v[1] for v in vals], marker="o", capsize=3,
                        label=f"{display_name(r['system'])} (n={r.get('n_runs', 1)})")
        if dataset == PAPER_DATASET:
            for name in ("UniCRS", "ECR"):
                ax.plot(ks, [PAPER_TABLE1[name][f"R@{k}"] for k in ks], ls="--", marker="x", color="grey",
                        alpha=0.6 if name == "UniCRS" else 1.0, label=f"{name}, {PAPER_LABEL}")
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("n")
        ax.set_ylabel("Recall@n")
        ax.set_title(f"{dataset} test")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    _savefig(fig, out)
    return True


def plot_ablation(found: dict[str, list[tuple[str, dict]]], out: Path) -> bool:
    if not found:
        return False
    import numpy as np

    plt = _pyplot()
    metrics = ["R@10", "R@50", "RT@50", "AUC"]
    fig, axes = plt.subplots(1, len(found), figsize=(6 * len(found), 5), squeeze=False)
    for ax, (dataset, present) in zip(axes[0], sorted(found.items())):
        width = 0.8 / len(present)
        x = np.arange(len(metrics))
        for i, (label, r) in enumerate(present):
            vals = [mean_std(r["metrics"]["standard"].get(m)) or (np.nan, 0.0) for m in metrics]
            ax.bar(x + i * width - 0.4 + width / 2, [v[0] for v in vals], width, yerr=[v[1] for v in vals],
                   capsize=3, label=f"{label} n={r.get('n_runs', 1)}")
        ax.set_xticks(x, metrics)
        ax.set_title(f"ablation, {dataset} test (error bars: std over seeds)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)  # below: bars stay visible
    fig.tight_layout()
    _savefig(fig, out)
    return True


# ---------------------------------------------------------------- generation

GEN_COLS = ["n", "distinct_1", "distinct_2", "distinct_4", "bleu", "length_words",
            "grounding_error_rate_before_repair", "grounding_error_rate_served", "knowledge_use_rate",
            "repetition_rate", "stock_phrase_rate", "dialogue_use_rate", "length_15_60_words_rate"]
GEN_HEADER = {"grounding_error_rate_before_repair": "grounding err (raw)",
              "grounding_error_rate_served": "grounding err (served)", "knowledge_use_rate": "knowledge use",
              "length_words": "words", "repetition_rate": "repeats", "stock_phrase_rate": "stock phrases",
              "dialogue_use_rate": "dialogue use", "length_15_60_words_rate": "15-60 words"}


def _generation_section(gen: dict[str, Any] | None, speed: dict[str, Any] | None,
                        judge: dict[str, Any] | None) -> list[str]:
    lines = ["## Generation", ""]
    if gen is None and speed is None:
        return lines + ["_No `generation.json`: run `benchmarks/generation_eval.py` and "
                        "`benchmarks/generation_speed.py`._", ""]
    gen = gen or {}
    ev = gen.get("evaluation") or {}
    tab = gen.get("metrics") or {}
    if tab:
        samples = ev.get("samples") or {}
        lines += [f"{samples.get('split', 'test')}: {samples.get('n', '–')} samples drawn (seed "
                  f"{samples.get('seed', '–')}; `n` = replies scored per system); Distinct-n is the true ratio over all replies; BLEU is sacrebleu corpus BLEU-4. Split columns: "
                  "all / movies with reviews in training (seen) / without (unseen).", ""]
        for split in ("all", "seen_movies", "unseen_movies"):
            body = [[name] + [num(v.get(split, {}).get(c)) for c in GEN_COLS] for name, v in tab.items()
                    if isinstance(v, dict) and split in v]
            if body:
                lines += [f"**{split}**", "", *table(["system"] + [GEN_HEADER.get(c, c) for c in GEN_COLS], body)]
    single = (judge or {}).get("metrics") or {}
    if single:  # benchmarks/judge.py: each dimension asked alone, only once its controls passed
        lines += ["### LLM judge, one dimension at a time", "",
                  "Each system against the zero-shot base; a dimension is asked of the systems only after its question "
                  "passed known-answer controls on held-out turns (`judge.json`).", ""]
        body = [[dim, e.get("mode", "–"), num(e.get("passed")), name, num(c.get("win")), num(c.get("loss")),
                 num(c.get("tie")), str(c.get("n", "–"))]
                for dim, e in single.items()
                for name, c in {"finetuned": e.get("calibrated"), **(e.get("others") or {})}.items() if c]
        lines += [*table(["dimension", "question", "controls passed", "system", "win", "loss", "tie", "n"], body), ""]
    if speed:
        m = speed.get("metrics") or {}
        lines += ["### Generation speed (llama.cpp)", ""]
        lines += table(["model", "decode tok/s", "served tok/s", "first piece s"],
                       ([k, num(v.get("decode_tok_s"), 2), num(v.get("serve_tok_s"), 2),
                         num(v.get("first_piece_s"), 2)] for k, v in (m.get("median") or {}).items()))
        lines += [f"Decode speed of the fine-tuned model vs the base: {num(m.get('decode_ratio_finetuned_vs_base'))}"
                  f" (bar: {speed.get('bar', '–')}; met: {num(m.get('bar_met'))}; medians of "
                  f"{speed.get('n_runs', '–')} runs).", ""]
    tr = gen.get("training") or {}
    if tr:
        lines += [f"Training: {tr.get('steps', '–')} steps of batch {tr.get('batch_size', '–')} "
                  f"({tr.get('examples_seen', '–')} of {tr.get('train_examples', '–')} examples), "
                  f"{num(tr.get('train_seconds'), 0)} s; valid loss {num(tr.get('valid_loss_base'))} (base) -> "
                  f"{num(tr.get('valid_loss_finetuned'))} (fine-tuned).", ""]
    for name, t in (gen.get("training_extra") or {}).items():
        lines += [f"Training of `{name}` ({Path(str(t.get('base', '–'))).name}): {t.get('steps', '–')} steps of batch "
                  f"{t.get('batch_size', '–')}, {num(t.get('train_seconds'), 0)} s; valid loss "
                  f"{num(t.get('valid_loss_base'))} (base) -> {num(t.get('valid_loss_finetuned'))} (fine-tuned).", ""]
    return lines


# ---------------------------------------------------------------- emotion

def _emotion_section(emo: dict[str, Any] | None) -> list[str]:
    lines = ["## Emotion classifier", ""]
    if emo is None:
        return lines + ["_No `emotion.json`: run `benchmarks/emotion.py`._", ""]
    measured = emo.get("metrics") or {}
    m = measured.get("model") or {}
    models = {m.get("model", "model"): m} | {v.get("model", f"variant {i}"): v
                                             for i, v in enumerate(measured.get("variants") or [])}
    cols = ["recall@1", "recall@2", "recall@3", "micro_f1", "macro_f1"]
    body = [[name] + [num(v.get(c)) for c in cols] + [num((v.get("latency_batch1") or {}).get("p50_ms"), 2),
                                                       num(v.get("size_mb"), 2)] for name, v in models.items()]
    body += [[f"baseline: {name}"] + [num(v.get(c)) for c in cols] + ["–", "–"]
             for name, v in (measured.get("baselines") or {}).items()]
    lines += [f"Held-out: {m.get('n_heldout', '–')} utterances ({(emo.get('definitions') or {}).get('heldout', '')})."
              "", "", *table(["model", *cols, "p50 ms (batch 1)", "MB"], body)]
    if emo.get("paper_reference"):
        lines += [f"Paper: {emo['paper_reference']}.", ""]
    per = m.get("per_label") or {}
    if per:
        lines += table(["label", "precision", "recall", "F1", "support"],
                       ([k, num(v.get("precision")), num(v.get("recall")), num(v.get("f1")), num(v.get("support"))]
                        for k, v in per.items()))
    if measured.get("confusion_row_normalised"):
        lines += ["![emotion confusion matrix, rows normalised](emotion_confusion.png)", ""]
    return lines


def plot_confusion(emo: dict[str, Any], out: Path) -> bool:
    model = (emo.get("metrics") or {}).get("model") or {}
    conf, labels = (emo.get("metrics") or {}).get("confusion_row_normalised"), emo.get("labels")
    if not conf or not labels:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(conf, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i, row in enumerate(conf):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.5 else "black")
    ax.set_xlabel("top-1 predicted")
    ax.set_ylabel("gold primary label")
    ax.set_title(f"{model.get('model', 'emotion classifier')}\n"
                 f"held-out n={model.get('n_heldout', '?')}, rows normalised", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    _savefig(fig, out)
    return True


# ---------------------------------------------------------------- linking, annotation

def _linking_section(el: dict[str, Any] | None) -> list[str]:
    lines = ["## Entity linking", ""]
    if el is None:
        return lines + ["_No `entity_linking.json`: run `benchmarks/entity_linking.py`._", ""]
    cols = ["gold_movies", "movie_precision", "movie_recall", "movie_f1", "strict_movie_precision_unjudged_counted_as_false",
            "p50_latency_ms", "p95_latency_ms", "passes_all"]
    head = {"strict_movie_precision_unjudged_counted_as_false": "strict precision"}
    lines += [f"ReDial {el.get('split', 'test')} split, movies typed by people (variant = titles with or "
              "without the year).", "",
              *table(["variant"] + [head.get(c, c) for c in cols],
                     ([k] + [num(v.get(c), 4 if "latency" in c else 3) for c in cols]
                      for k, v in (el.get("metrics") or {}).items()))]
    return lines


def _annotation_section(an: dict[str, Any] | None) -> list[str]:
    if an is None:
        return []
    cols = ["backend", "model", "n_gold", "n_labelled", "n_failed", "primary_agreement", "kappa_primary",
            "hit_rate", "wall_seconds"]
    sample = an.get("sample") or {}
    return ["## Emotion annotation by LLM (`ecrs annotate-emotions`)", "",
            f"{sample.get('n', '–')} bundled utterances (seed {sample.get('seed', '–')}), agreement with the "
            "bundled labels.", "",
            *table(["run", *cols], ([k] + [num(v.get(c)) for c in cols] for k, v in (an.get("runs") or {}).items()))]


# ---------------------------------------------------------------- latency

def _latency_series(lat: dict[str, Any] | None, serving: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every latency measurement as {name, unit_ms: factor, p50, p95, samples (ms) or None}."""
    out: list[dict[str, Any]] = []
    for key, v in ((lat or {}).get("metrics") or {}).items():
        if isinstance(v, dict) and "p50" in v:
            out.append({"name": f"recommender: {key.removesuffix('_ms')}", "p50": v.get("p50"), "p95": v.get("p95"),
                        "n": v.get("n"), "samples": v.get("samples_ms")})
    res = (serving or {}).get("metrics") or {}

    def add(name: str, v: dict[str, Any]) -> None:
        if isinstance(v, dict) and "p50_s" in v:
            out.append({"name": f"serving: {name}", "p50": v["p50_s"] * 1000, "p95": (v.get("p95_s") or 0) * 1000,
                        "n": v.get("n"),
                        "samples": [x * 1000 for x in v["samples_s"]] if v.get("samples_s") else None})

    for name, v in res.items():
        if not isinstance(v, dict):
            continue
        add(name, v)
        for sub, w in v.items():
            add(f"{name} {sub}", w)
    return out


def _latency_section(lat: dict[str, Any] | None, serving: dict[str, Any] | None,
                     series: list[dict[str, Any]]) -> list[str]:
    lines = ["## Latency and serving", ""]
    if not series:
        return lines + ["_No `recommender_latency.json` or `serving.json`._", ""]
    if lat:
        lines += [f"Recommender turn ({lat.get('model', '–')}, {lat.get('task', '')}); machine: "
                  f"{json.dumps((lat.get('provenance') or {}).get('machine', {}))}.", ""]
    if serving:
        pipe = serving.get("pipeline") or {}
        lines += [f"Serving over HTTP on loopback, pipeline: {pipe.get('kind', '–')} "
                  f"({pipe.get('description', pipe.get('artifacts', ''))}).", ""]
    lines += table(["measurement", "n", "p50 ms", "p95 ms", "raw samples"],
                   ([s["name"], num(s["n"]), num(float(s["p50"]), 2), num(float(s["p95"]), 2),
                     str(len(s["samples"])) if s["samples"] else "no raw samples"] for s in series))
    res = (serving or {}).get("metrics") or {}
    conc = {k: v for k, v in res.items() if isinstance(v, dict) and "turns_per_s" in v}
    if conc:
        lines += table(["phase", "clients", "turns", "turns/s", "errors"],
                       ([k, num(v.get("clients")), num(v.get("turns")), num(v.get("turns_per_s"), 2),
                         num(v.get("errors"))] for k, v in conc.items()))
    if isinstance(res.get("server_rss"), dict):
        lines += [f"Server memory: {', '.join(f'{k} {v}' for k, v in res['server_rss'].items())}.", ""]
    bars = (serving or {}).get("bars") or {}
    if bars:
        lines += table(["bar", "value", "target", "met"],
                       ([k, num(v.get("value")), str(v.get("bar")), num(v.get("met"))] for k, v in bars.items()))
    raw = any(s["samples"] for s in series)
    lines += ["![latency](latency.png)" if raw else
              "![latency percentiles (no raw samples stored)](latency.png)", ""]
    if not raw:
        lines += ["No raw samples stored in these results (the benchmarks record them from now on as "
                  "`samples_ms` / `samples_s`): the plot shows p50 / p95 only.", ""]
    return lines


def plot_latency(series: list[dict[str, Any]], out: Path) -> bool:
    if not series:
        return False
    plt = _pyplot()
    raw = [s for s in series if s["samples"]]
    if raw:
        fig, axes = plt.subplots(len(raw), 1, figsize=(6, 1.8 * len(raw) + 0.6), squeeze=False)
        for ax, s in zip(axes[:, 0], raw):
            ax.hist(s["samples"], bins=40, color="tab:blue", alpha=0.8)
            ax.axvline(s["p50"], color="k", ls="--", lw=1, label=f"p50 {s['p50']:.1f} ms")
            ax.axvline(s["p95"], color="tab:red", ls=":", lw=1, label=f"p95 {s['p95']:.1f} ms")
            ax.set_title(f"{s['name']} (n={len(s['samples'])})", fontsize=8)
            ax.set_xlabel("ms")
            ax.legend(fontsize=7)
    else:
        import numpy as np

        fig, ax = plt.subplots(figsize=(7, 0.35 * len(series) + 1.2))
        y = np.arange(len(series))
        ax.barh(y - 0.2, [s["p50"] for s in series], 0.4, label="p50")
        ax.barh(y + 0.2, [s["p95"] for s in series], 0.4, label="p95")
        ax.set_yticks(y, [s["name"] for s in series], fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("ms (log)")
        ax.set_title("latency percentiles (no raw samples stored)", fontsize=9)
        ax.invert_yaxis()
        ax.legend(fontsize=7)
    fig.tight_layout()
    _savefig(fig, out)
    return True


# ---------------------------------------------------------------- the whole report

def render_report(results_dir: Path, out_dir: Path) -> Report:
    """Read `results_dir/*.json`, write `out_dir/README.md` and the PNGs; returns the markdown and files written."""
    res = load_results(results_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rec = res.get("recommendation")
    files: list[Path] = []
    lines = ["# ecrs results report", "",
             f"Generated by `ecrs report` from `{Path(results_dir).as_posix()}/*.json`; every number of ours is read "
             "from those files (regenerate after new runs). Sources:", ""]
    lines += [f"- {_provenance(n, res[n])}" for n in RESULT_FILES if n in res]
    missing = [f"`{n}.json`" for n in RESULT_FILES if n not in res]
    if missing:
        lines.append(f"- missing: {', '.join(missing)}")
    lines.append("")

    lines += _recommendation_section(rec)
    lines += _paired_section(res.get("recommendation_paired"))
    ablation, found = _ablation_section(rec)
    lines += ablation
    lines += _generation_section(res.get("generation"), res.get("generation_speed"), res.get("judge"))
    lines += _emotion_section(res.get("emotion"))
    lines += _linking_section(res.get("entity_linking"))
    series = _latency_series(res.get("recommender_latency"), res.get("serving"))
    lines += _latency_section(res.get("recommender_latency"), res.get("serving"), series)
    lines += _annotation_section(res.get("annotation"))

    plots = [("recall_curves.png", lambda p: bool(rec) and plot_recall_curves(rec, p)),
             ("ablation.png", lambda p: plot_ablation(found, p)),
             ("emotion_confusion.png", lambda p: bool(res.get("emotion")) and plot_confusion(res["emotion"], p)),
             ("latency.png", lambda p: plot_latency(series, p))]
    for name, draw in plots:
        path = out_dir / name
        if draw(path):
            files.append(path)
        else:
            path.unlink(missing_ok=True)  # a stale plot from an earlier run would contradict the markdown
            lines = [x for x in lines if f"]({name})" not in x]
    markdown = "\n".join(lines).rstrip("\n") + "\n"
    (out_dir / "README.md").write_text(markdown)
    return Report(markdown=markdown, files=[out_dir / "README.md", *files])


# ---------------------------------------------------------------- the README's tables

# The README's compact tables are generated here from the results files and written between markers,
# `<!-- results:NAME -->` ... `<!-- /results -->`; `ecrs report` rewrites them and a test checks they match.
# (ECR[LS] and ECR[LG] are in the report's ablation section)
README_SYSTEMS = ["popularity", "repeat-context", "kbrd", "unicrs-fast", "ecr-l-fast", "ecr-fast", "ecr-stance-fast"]
README_GENERATION = {"reference": "the real ReDial reply", "finetuned": "SmolLM2-135M fine-tuned",
                     "qwen15b_friend": "Qwen2.5-1.5B zero-shot, friend prompt",
                     "qwen15b_friend_1turn": "the same, last message only (default)"}
README_FRIEND = "friend:qwen-1.5b"  # serving.json's `generators` entry the README's serving table shows
_BLOCK = re.compile(r"(<!-- results:([\w-]+) -->\n)(.*?)(<!-- /results -->)", re.S)


def _cell(x: Any, digits: int = 3) -> str:
    ms = mean_std(x)
    return "–" if ms is None else f"{ms[0]:.{digits}f}"


def readme_tables(res: dict[str, Any]) -> dict[str, list[str]]:
    """Markdown tables (lines) by block name: recommendation per dataset, generation, serving."""
    out: dict[str, list[str]] = {}
    rows = _rows(res.get("recommendation") or {})
    for dataset in ("redial", "inspired"):
        by_system = {r["system"]: r for r in rows if r["dataset"] == dataset}
        found = [by_system[s] for s in README_SYSTEMS if s in by_system]
        # RT@50 and AUC need the seeker's verdict on each target, which INSPIRED does not record
        cols = [k for k in ("R@1", "R@10", "R@50", "RT@50", "AUC")
                if any(mean_std(r["metrics"]["standard"].get(k)) is not None for r in found)]
        body = [[display_name(r["system"]), *(_cell(r["metrics"]["standard"].get(k)) for k in cols),
                 _cell((r["metrics"].get("dedup") or {}).get("R@50"))] for r in found]
        out[f"recommendation-{dataset}"] = table(["system", *cols, "dedup R@50"], body)
    gen = (res.get("generation") or {}).get("metrics") or {}
    # the issue-25 reply bars; Distinct-n, BLEU and the judge are in reports/README.md
    body = [[label, *(_cell(gen[s]["all"].get(k)) for k in ("repetition_rate", "knowledge_use_rate",
                                                            "grounding_error_rate_before_repair",
                                                            "length_15_60_words_rate"))]
            for s, label in README_GENERATION.items() if s in gen]
    out["generation"] = table(["replies (200 ReDial test turns)", "repeats", "uses a fact", "ungrounded",
                               "15-60 words"], body)
    serving = (res.get("serving") or {}).get("metrics") or {}
    lat = (res.get("recommender_latency") or {}).get("metrics") or {}

    def ms(v: Any) -> str:
        return "–" if v is None else f"{1000 * v:.0f} ms" if v < 1 else f"{v:.2f} s"

    body = [["recommendation-only turn, p50 (HTTP)", ms((serving.get("recommendation_only") or {}).get("p50_s"))],
            ["the same turn without HTTP, p50", ms((lat.get("turn_ms") or {}).get("p50", 0) / 1000 or None)],
            ["full reply (fine-tuned SmolLM2), p50 (HTTP)", ms((serving.get("full_reply") or {}).get("p50_s"))],
            ["first streamed text, p50", ms(((serving.get("stream") or {}).get("time_to_first_token") or {})
                                            .get("p50_s"))],
            ["Qwen2.5-1.5B reply (the default once installed), p50",
             ms((((serving.get("generators") or {}).get(README_FRIEND) or {}).get("full_reply") or {}).get("p50_s"))],
            ["its first model sentence, p50",
             ms(((((serving.get("generators") or {}).get(README_FRIEND) or {}).get("stream") or {})
                 .get("time_to_model_text") or {}).get("p50_s"))],
            ["errors at 32 concurrent clients", num((serving.get("concurrency_32") or {}).get("errors"))],
            ["server memory, peak", f"{(serving.get('server_rss') or {}).get('peak_mb', 0) / 1024:.2f} GB"]]
    out["serving"] = table(["serving (2 CPU cores)", "measured"], body)
    conv = (res.get("conversations") or {}).get("metrics") or {}
    stance = ((res.get("stance") or {}).get("metrics") or {})

    def passed(part: str) -> str:
        m = conv.get(part) or {}
        return "–" if not m else f"{m['passed']}/{m['conversations']}, {m['crashes']} crashes"

    def per(system: str, block: str, stance_name: str, key: str) -> Any:
        return ((((stance.get(system) or {}).get(block) or {}).get("per_stance") or {}).get(stance_name) or {}).get(key)

    body = [["held-back chats passed (written before the change)", passed("heldout")],
            ["the other chats passed", passed("tuning")],
            ["a named movie's dislike (ReDial test): recall / precision",
             f"{_cell(per('stance', 'redial_movies', 'disliked', 'recall'), 2)} / "
             f"{_cell(per('stance', 'redial_movies', 'disliked', 'precision'), 2)} (ECR's rule: "
             f"{_cell(per('broadcast', 'redial_movies', 'disliked', 'recall'), 2)} / "
             f"{_cell(per('broadcast', 'redial_movies', 'disliked', 'precision'), 2)})"],
            ["stance on people and genres, macro-F1",  # three places: two would round 0.846 up to the 0.85 bar
             _cell(((stance.get("stance") or {}).get("people_genres") or {}).get("macro_f1"), 3)]]
    out["understanding"] = table(["understanding", "measured"], body)
    out["reliability"] = _reliability_table((res.get("reliability") or {}).get("metrics") or {})
    return out


def _reliability_table(rel: dict[str, Any]) -> list[str]:
    """Issue 26's bars, each with its measured value (benchmarks/reliability.py)."""
    bars, phases = rel.get("bars") or {}, rel.get("phases") or {}
    fuzz = phases.get("fuzz") or {}
    rows = [("slow_p95_s", "2,000 slow connections: turn p95", lambda v: f"{v:.2f} s"),
            ("long_p50_ratio", "turn 500 vs a fresh session, p50", lambda v: f"{v:.2f}×"),
            ("long_page_kb", "largest history page", lambda v: f"{v:.0f} kB"),
            ("busy_p50_ratio", "one core busy: reply p50 vs quiet", lambda v: f"{v:.2f}×"),
            ("wrong_keys_429_share", "wrong keys refused after 20/minute", lambda v: f"{100 * v:.0f} %"),
            ("fuzz_5xx", "fuzz, SQLite + PostgreSQL: 5xx",
             lambda v: f"{v} of {sum(f.get('cases_sent', 0) for f in fuzz.values() if isinstance(f, dict)):,}"),
            ("kill_lost", "kill -9 ×10: acked turns lost / stored twice",
             lambda v: f"{v} / {(bars.get('kill_duplicated') or {}).get('value')}"),
            ("health_503_s", "full or read-only database: /health 503 in", lambda v: f"{v:.2f} s")]
    body = [[label, fmt(bars[key]["value"]), bars[key]["bar"].replace("<=", "≤").replace(">=", "≥")]
            for key, label, fmt in rows if key in bars and bars[key]["value"] is not None]
    return table(["under attack or fault", "measured", "bar"], body)


def update_readme(readme: Path, results_dir: Path, check: bool = False) -> list[str]:
    """Rewrite the marked blocks of `readme` from the results (`check`: only report); names of stale blocks. A block
    that would come out without a row is an error: a wrong results folder must not empty the README."""
    tables = readme_tables(load_results(results_dir))
    text = Path(readme).read_text()
    stale: list[str] = []

    def fill(m: re.Match[str]) -> str:
        name = m.group(2)
        if name not in tables:
            raise DataError(f"unknown results block {name!r} (known: {', '.join(tables)})", readme)
        if len([line for line in tables[name] if line.startswith("|")]) <= 2:
            raise DataError(f"block {name!r}: no results for it in {results_dir}", readme)
        new = "\n".join(tables[name]).rstrip("\n") + "\n"
        if m.group(3) != new:
            stale.append(name)
        return m.group(1) + new + m.group(4)

    updated = _BLOCK.sub(fill, text)
    if not check and updated != text:
        Path(readme).write_text(updated)
    return stale
