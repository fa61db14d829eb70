"""The README is a front door that stays true: short, its tables generated from the committed results, and every
file it names present."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ecrs.errors import DataError
from ecrs.evaluation.report import readme_tables, update_readme

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_readme_is_short():
    assert len(README.read_text().split()) <= 1200  # `wc -w`


def test_readme_tables_match_the_committed_results():
    stale = update_readme(README, ROOT / "benchmarks" / "results", check=True)
    assert not stale, f"README blocks out of date: {stale}; run `ecrs report`"
    assert set(re.findall(r"<!-- results:([\w-]+) -->", README.read_text())) == set(
        readme_tables({}).keys())  # every generated table is shown


def test_readme_names_only_files_that_exist():
    text = README.read_text()
    named = set(re.findall(r"`((?:benchmarks|experiments|docs|configs|reports|src)/[\w./-]+)`", text))
    named |= set(re.findall(r"\]\(((?:docs|reports)/[\w./-]+)\)", text))
    assert named and not [p for p in named if not (ROOT / p).exists()]


def test_a_changed_result_makes_the_block_stale(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "serving.json").write_text('{"metrics": {"full_reply": {"p50_s": 0.8}}}')
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- results:serving -->\n| old |\n<!-- /results -->\n")
    assert update_readme(readme, results, check=True) == ["serving"]
    assert update_readme(readme, results) == ["serving"]
    assert update_readme(readme, results, check=True) == []
    assert "| full reply (fine-tuned SmolLM2), p50 (HTTP) | 800 ms |" in readme.read_text()


def test_no_results_never_empty_the_readme(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(text := "<!-- results:recommendation-redial -->\n| a row |\n<!-- /results -->\n")
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(DataError):
            update_readme(readme, folder)
    assert readme.read_text() == text


def test_docs_the_code_cites_are_in_the_repository():
    cited = set()
    for path in (ROOT / "src").rglob("*.py"):
        text = path.read_text()
        cited |= {f"docs/{m}.md" for m in re.findall(r"\b(ECR_SPEC|MODELS|ARCHITECTURE|DATASETS|OWN_DATA|ANNOTATION)\b",
                                                      text)}
        cited |= set(re.findall(r"\bdocs/[\w-]+\.md\b", text))
    assert cited and not [p for p in cited if not (ROOT / p).exists()]
