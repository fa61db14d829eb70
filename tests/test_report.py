"""`ecrs report`: known numbers of a tiny results folder reach the markdown; plots are valid PNGs; re-running gives
identical files; missing results are said, not invented."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecrs.cli import main
from ecrs.evaluation.report import PAPER_TABLE1, render_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _metrics(r1: float | dict, r10: float, r50: float, auc: float | None = 0.61) -> dict:
    block = {"R@1": r1, "R@10": r10, "R@50": r50, "RT@1": 0.011, "RT@10": 0.111, "RT@50": 0.211,
             "AUC": auc, "AUC_batch32": 0.601, "n_samples": 77}
    return {"standard": block, "dedup": {**block, "R@1": 0.0042, "n_samples": 70}}


def _seeds(*values: float) -> dict:
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return {"mean": mean, "std": std, "n": len(values), "values": list(values)}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    d = tmp_path / "results"
    d.mkdir()
    rows = [
        {"system": "popularity", "dataset": "redial", "metrics": _metrics(0.0123, 0.0456, 0.0789),
         "train_samples": 500, "provenance": {"commit": "abcdef1234567"}},
        {"system": "unicrs-fast", "dataset": "redial", "metrics": _metrics(0.0311, 0.1511, 0.3111),
         "n_runs": 1, "train_samples": 500},
        {"system": "ecr-fast", "dataset": "redial", "n_runs": 3, "train_samples": 500,
         "metrics": _metrics(_seeds(0.03, 0.04, 0.05), 0.1611, 0.3222)},
        {"system": "popularity", "dataset": "inspired", "metrics": _metrics(0.0222, 0.1333, 0.2444, auc=None),
         "train_samples": 50},
    ]
    (d / "recommendation.json").write_text(json.dumps({"rows": rows}))
    gap = {"difference": 0.01, "ci_low": -0.005, "ci_high": 0.025}
    (d / "recommendation_paired.json").write_text(json.dumps({"rows": [
        {"system": "ecr-fast - unicrs-fast", "a": "ecr-fast", "b": "unicrs-fast", "dataset": "redial",
         "n_runs": [3, 1], "difference": {"R@50": gap, "RT@50": {**gap, "ci_low": 0.001}, "AUC": None}}]}))
    labels = ["like", "curious", "happy"]
    (d / "emotion.json").write_text(json.dumps({
        "benchmark": "emotion", "labels": labels, "paper_reference": "GPT-2 Recall@2 0.8775",
        "metrics": {"confusion_row_normalised": [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.5, 0.25, 0.25]],
                    "model": {"model": "tfidf", "recall@1": 0.7071, "recall@2": 0.9191, "n_heldout": 30,
                              "latency_batch1": {"p50_ms": 1.234},
                              "per_label": {"like": {"precision": 0.8181, "f1": 0.5}}}},
        "provenance": {"command": "benchmarks/emotion.py", "commit": "0123456789abcdef"}}))
    (d / "recommender_latency.json").write_text(json.dumps({"model": "ecr-fast", "metrics": {
        "turn_ms": {"p50": 28.59, "p95": 38.41, "n": 4, "samples_ms": [20.0, 28.0, 29.0, 40.0]}}}))
    (d / "serving.json").write_text(json.dumps({"metrics": {
        "full_reply": {"n": 3, "p50_s": 0.0106, "p95_s": 0.0144, "errors": 0},  # an old file: no raw samples
        "concurrency_8": {"clients": 8, "turns": 16, "turns_per_s": 65.76, "errors": 0,
                          "latency": {"n": 2, "p50_s": 0.06, "p95_s": 0.1, "samples_s": [0.05, 0.07]}}}}))
    (d / "generation.json").write_text(json.dumps({
        "metrics": {"finetuned": {"all": {"n": 20, "distinct_2": 0.1924, "bleu": 8.169}}},
        "training_extra": {"finetuned_qwen05": {"base": "models/qwen-0.5b.gguf", "steps": 90, "batch_size": 4,
                                                "train_seconds": 1500.4, "valid_loss_base": 3.7,
                                                "valid_loss_finetuned": 3.1}}}))
    (d / "generation_speed.json").write_text(json.dumps({
        "bar": "fine-tuned >= 90 % of the base", "n_runs": 11,
        "metrics": {"decode_ratio_finetuned_vs_base": 0.915, "bar_met": True,
                    "median": {"base_q4_1": {"decode_tok_s": 121.35, "serve_tok_s": 70.5, "first_piece_s": 0.21}}}}))
    return d


def test_report_numbers_plots_and_determinism(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    report = render_report(results, out)
    md = (out / "README.md").read_text()
    assert md == report.markdown
    # our numbers, with mean±std over seeds, and the paper's numbers labelled as such
    for text in ("0.012", "0.046", "0.079", "0.040±0.010", "0.161", "0.322", "| ECR (fast) | ours | 3 |",
                 "| UniCRS-style (fast) | ours | 1 |", "0.133", "0.004"):
        assert text in md, text
    assert f"| ECR | paper (full ReDial) | – | – | {PAPER_TABLE1['ECR']['AUC_batch32']:.3f} |" in md
    assert "No published ECR numbers on inspired" in md
    # the ablation renders what exists and names what is missing
    assert "| ECR | ecr-fast | 3 |" in md and "ECR[LG] (`ecr-lg-fast`)" in md
    # generation, the judge when present, emotion, latency
    for text in ("0.192", "8.169", "0.919", "1.23", "0.818",
                 "GPT-2 Recall@2 0.8775", "28.59", "| serving: full_reply | 3 | 10.60 | 14.40 | no raw samples |",
                 "| serving: concurrency_8 latency | 2 | 60.00 | 100.00 | 2 |", "65.76",
                 "`finetuned_qwen05` (qwen-0.5b.gguf): 90 steps of batch 4, 1500 s", "| base_q4_1 | 121.35 | 70.50 | 0.21 |",
                 "vs the base: 0.915 (bar: fine-tuned >= 90 % of the base; met: yes; medians of 11 runs)"):
        assert text in md, text
    # each source with the command and commit it records, or its rows' commits
    assert "- `emotion.json`, command `benchmarks/emotion.py`, commit 0123456789" in md
    assert "- `recommendation.json`, rows from commit abcdef1234" in md
    assert "| ECR (fast) − UniCRS-style (fast) | redial | 3 / 1 | +0.0100 [-0.0050, +0.0250] | +0.0100 [+0.0010, +0.0250] * | – |" in md
    assert "missing: `entity_linking.json`" in md
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["ablation.png", "emotion_confusion.png", "latency.png", "recall_curves.png"]
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert all(b.startswith(PNG_MAGIC) and len(b) > 1000 for n, b in first.items() if n.endswith(".png"))
    render_report(results, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first  # deterministic, byte for byte


def test_report_cli_on_empty_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "results").mkdir()
    out = tmp_path / "reports"
    (out).mkdir()
    (out / "ablation.png").write_bytes(PNG_MAGIC)  # stale plot of an earlier run: removed
    assert main(["report", "--set", f"results={tmp_path / 'results'}", "--set", f"out={out}"]) == 0
    md = (out / "README.md").read_text()
    assert "No `recommendation.json`" in md and "missing: `recommendation.json`" in md
    assert not list(out.glob("*.png")) and ".png" not in md
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("text, says", [('{"rows": [', "not valid JSON"),
                                         ('{"rows": {"ECR": {"runs": 3}}}', "'rows' must be a list")])
def test_report_cli_names_a_malformed_results_file(tmp_path: Path, text: str, says: str) -> None:
    import subprocess
    import sys

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "broken.json").write_text(text)
    # the shorthands `ecrs reproduce` uses
    r = subprocess.run([sys.executable, "-m", "ecrs.cli", "report", "--set", "results=" + str(tmp_path / "results"),
                        "--set", "out=" + str(tmp_path / "reports")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "broken.json" in r.stderr and says in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and not (tmp_path / "reports" / "README.md").exists()


def test_display_names():
    from ecrs.evaluation.report import display_name

    assert display_name("ecr-lg-fast") == "ECR[LG] (fast)"
    assert display_name("unicrs-fast-raw") == "UniCRS-style (fast, no context shift)"
    assert display_name("ecr-lm-gpu") == "ECR (lm, GPU budget)"
    assert display_name("unicrs-fast-e15") == "UniCRS-style (fast, 15 epochs)"
    assert display_name("kbrd-e15") == "KBRD (15 epochs)"
    assert display_name("ecr-fast-e15-noavg") == "ECR (fast, 15 epochs, no weight average)"
    assert display_name("ecr-l-fast-noavg-raw") == "ECR[L] (fast, no weight average, no context shift)"
    assert display_name("kbrd-h200") == "KBRD (trained on an H200)"
    assert display_name("popularity") == "popularity"


def test_subset_rows_say_so():
    from ecrs.evaluation.report import _row_label

    row = {"system": "ecr-lm-gpu", "metrics": {"standard": {"n_samples": 2020}}}
    assert _row_label(row) == "ECR (lm, GPU budget)"
    assert _row_label({**row, "test_subset": "fixed random subset (seed 0) of 1500 test samples"}) \
        == "ECR (lm, GPU budget) [test subset: 2020 targets]"


def test_single_question_judge_section(results: Path, tmp_path: Path) -> None:
    (results / "judge.json").write_text(json.dumps({"benchmark": "judge", "metrics": {"lifelikeness": {
        "passed": True, "mode": "yes_no", "calibrated": {"win": 0.915, "loss": 0.085, "tie": 0.0, "n": 200},
        "others": {"template": {"win": 0.2333, "loss": 0.6, "tie": 0.1667, "n": 30}}}}}))
    md = render_report(results, tmp_path / "reports").markdown
    assert "| lifelikeness | yes_no | yes | finetuned | 0.915 | 0.085 | 0.000 | 200 |" in md
    assert "| lifelikeness | yes_no | yes | template | 0.233 | 0.600 | 0.167 | 30 |" in md
