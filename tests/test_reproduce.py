"""`ecrs reproduce`: the plan (stages, commands, estimates, thread environment), stage selection, and one cheap
stage (report) run end to end in a scratch folder, then skipped when its outputs are up to date."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ecrs.cli import main
from ecrs.data.bundle import REPO_ROOT
from ecrs.errors import EcrsError
from ecrs.recipes.reproduce import plan, select

ECR_FAST = str(REPO_ROOT / "configs/recommender/ecr-fast.yaml")
UNICRS_INSPIRED = str(REPO_ROOT / "configs/recommender/unicrs-fast-inspired.yaml")


def test_plan_follows_the_makefile(tmp_path: Path) -> None:
    stages = plan([ECR_FAST, UNICRS_INSPIRED], [0, 1], artifacts=tmp_path / "a")
    names = [s.name for s in stages]
    assert names[:4] == ["train-emotion", "train-stance", "prepare-redial", "prepare-inspired"]
    assert {"train-ecr-fast-redial-s0", "train-ecr-fast-redial-s1", "train-unicrs-fast-inspired-s1"} <= set(names)
    assert names.index("train-generator") < names.index("evaluate-inspired") < names.index("report")
    by_name = {s.name: s for s in stages}
    redial = by_name["evaluate-redial"].argv
    start = redial.index("datasets=[redial]") - 1
    assert redial[start:start + 6] == [
        "--set", "datasets=[redial]", "--set",
        'systems=[popularity, repeat-context, "ecr-fast:artifacts/recommender/{dataset}/ecr-fast-s*"]',
        "--set", "results=benchmarks/results/recommendation.json"]  # the maintained file
    assert "compare=[ecr-fast:repeat-context]" in redial
    assert "calibrated=false" in by_name["evaluate-redial-raw"].argv
    assert any("unicrs-fast:artifacts/recommender/{dataset}/unicrs-fast-s*" in a for a in by_name["evaluate-inspired"].argv)
    assert by_name["train-ecr-fast-redial-s1"].argv[-4:] == ["--config", ECR_FAST, "--set", "train.seed=1"]
    assert [s.name for s in select(stages, ["prepare", "report"], ["prepare-inspired"])] == ["prepare-redial", "report"]
    with pytest.raises(EcrsError, match="unknown stage"):
        select(stages, ["trian"], [])


def test_dry_run_prints_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--dry-run", "--set", f"recommenders=[{ECR_FAST}]", "--set", "skip=[generator]"]) == 0
    out = capsys.readouterr().out
    assert "estimated" in out and "2-core" in out
    for text in ("train-emotion", "prepare --set dataset=redial", "train recommender --config", "evaluate-redial",
                 "benchmarks/generation_eval.py", "ecrs report"):
        assert text in out, text
    assert "train-generator" not in out


def test_every_maintained_benchmark_is_a_stage_with_its_thread_setting(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from test_results_schema import MAINTAINED

    stages = plan([ECR_FAST], [0], artifacts=tmp_path / "a")
    bench = {s.name: s for s in stages if s.group == "benchmarks"}
    written = {p.stem for s in stages for p in s.outputs if p.parent.name == "results"}
    assert set(MAINTAINED) <= written | {"recommendation_paired"}  # paired rows: only when two trained rows compare
    # llama.cpp decodes in these processes (or, for the latency of the served turn, in the server they stand for):
    # PASSIVE would slow it ~3x; the torch-only ones get it
    assert {n for n, s in bench.items() if s.llama} == {"bench-generation", "bench-judge", "bench-judge-controls",
                                                        "bench-judge-systems", "bench-speed", "bench-serving", "bench-simulator",
                                                        "bench-latency", "bench-llm-threads", "bench-reliability"}
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert bench["bench-linking"].environment()["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in bench["bench-serving"].environment()
    assert bench["bench-emotion"].shell().startswith("OMP_WAIT_POLICY=PASSIVE ")
    # a benchmark never measured here says its estimate is a guess
    assert bench["bench-speed"].estimate()[1] is False and bench["bench-linking"].estimate()[1] is True


def test_config_keys_replace_the_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "plan.yaml"
    cfg.write_text(f"recommenders: [{ECR_FAST}, {UNICRS_INSPIRED}]\nseeds: [0, 1]\nonly: [recommender]\n")
    assert main(["reproduce", "--dry-run", "--config", str(cfg), "--set", "skip=[train-ecr-fast-redial-s0]"]) == 0
    out = capsys.readouterr().out
    stages = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and not line.strip().startswith("$")]
    assert stages == ["train-ecr-fast-redial-s1", "train-unicrs-fast-inspired-s0", "train-unicrs-fast-inspired-s1"]
    assert main(["reproduce", "--dry-run", "--set", "seeds=one"]) == 2  # typed: a clear error, no plan
    assert "seeds" in capsys.readouterr().err


def test_report_stage_runs_then_skips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "entity_linking.json").write_text(json.dumps(
        {"metrics": {"no_year": {"movie_precision": 0.9182, "movie_recall": 0.9503}}}))
    # A committed report, newer than the results, as in a fresh clone: not this checkout's run, so not skipped.
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "README.md").write_text("committed report")
    args = ["reproduce", "--set", f"recommenders=[{ECR_FAST}]", "--set", "only=[report]"]
    assert main(args) == 0
    assert "0.918" in (tmp_path / "reports" / "README.md").read_text()
    assert "report done in" in capsys.readouterr().out
    assert main(args) == 0  # up to date now
    assert "outputs up to date, skipped" in capsys.readouterr().out
    os.utime(results / "entity_linking.json", (1e10, 1e10))  # a newer result: the report is stale
    assert main(args) == 0
    assert "report done in" in capsys.readouterr().out


def test_a_row_on_its_own_prepared_samples_gets_its_prepare_and_evaluate_stages(tmp_path: Path) -> None:
    stages = {s.name: s for s in plan(["configs/recommender/ecr-stance-fast.yaml"], [0], artifacts=tmp_path / "a")}
    prep = stages["prepare-redial-data-stance"]
    assert prep.argv[-4:] == ["--set", "entity_emotions=stance", "--set", "out_dir=artifacts/data-stance"]
    assert stages["train-ecr-stance-fast-redial-s0"].inputs == [Path("artifacts/data-stance/redial/manifest.json")]
    evaluate = stages["evaluate-redial-data-stance"].argv
    assert "data_dir=artifacts/data-stance" in evaluate and "ecr-stance-fast" in " ".join(evaluate)
    assert "ecr-stance-fast" not in " ".join(stages["evaluate-redial"].argv)  # not on the default samples
