"""`ecrs prepare` end to end on tiny fixtures: the official-files path, idempotence, and one-line CLI errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ecrs.data.prepare import PrepareConfig, load_samples, prepare

FIXTURES = Path(__file__).parent / "fixtures"


def _run_prepare(out: Path):
    cfg = PrepareConfig(redial_dir=str(FIXTURES / "redial_official"), emotion_model="", out_dir=str(out))
    return prepare(cfg)


def test_official_redial_files_are_accepted_and_prepare_is_idempotent(tmp_path):
    result = _run_prepare(tmp_path / "a")
    # 3 train dialogues -> train + valid (seeded 10 % of 3 rounds to 0), 2 test dialogues.
    assert result.stats["train"]["dialogues"] + result.stats["valid"]["dialogues"] == 3
    assert result.stats["test"]["dialogues"] == 2
    test = load_samples(tmp_path / "a", "redial", "test")
    assert test and all(s.targets for s in test)
    # Dialogue 20048's first recommender turn recommends a movie the seeker had not mentioned.
    assert any(not t.mentioned_before for s in test for t in s.targets)
    _run_prepare(tmp_path / "b")
    for name in ("train.jsonl.gz", "valid.jsonl.gz", "test.jsonl.gz", "test_dialogues.jsonl.gz"):
        assert (tmp_path / "a/redial" / name).read_bytes() == (tmp_path / "b/redial" / name).read_bytes()


def test_questionnaire_emotions_change_only_the_entity_emotions(tmp_path):
    plain = _run_prepare(tmp_path / "a")
    cfg = PrepareConfig(redial_dir=str(FIXTURES / "redial_official"), emotion_model="", out_dir=str(tmp_path / "b"),
                        entity_emotions="questionnaire")
    oracle = prepare(cfg)
    a, b = plain.splits["test"], oracle.splits["test"]
    assert [(s.id, s.entities, s.targets) for s in a] == [(s.id, s.entities, s.targets) for s in b]
    fb = {d.id: d.feedback for d in oracle.dialogues["test"]}
    expected = {"liked": [("like", 1.0)], "disliked": [("negative", 1.0)]}
    answered = [(ems, expected[fb[s.dialog_id][e]]) for s in b for e, ems in zip(s.entities, s.entity_emotions)
                if fb[s.dialog_id].get(e) in expected]
    assert answered and all(got == want for got, want in answered)


def test_questionnaire_emotions_need_a_questionnaire():
    import pytest

    from ecrs.errors import DataError

    with pytest.raises(DataError, match="inspired"):
        prepare(PrepareConfig(dataset="inspired", emotion_model="", entity_emotions="questionnaire"), write=False)


def _ecrs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ecrs.cli", *args], capture_output=True, text=True, timeout=120)


def test_cli_errors_are_one_line(tmp_path):
    bad_key = _ecrs("prepare", "--set", "nonsense=1")
    assert bad_key.returncode == 2
    assert bad_key.stderr.strip().count("\n") == 0 and "unknown key 'nonsense'" in bad_key.stderr
    missing = _ecrs("prepare", "--set", f"redial_dir={tmp_path}", "--set", "emotion_model=''")
    assert missing.returncode == 2 and "train_data.jsonl" in missing.stderr and "Traceback" not in missing.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "train_data.jsonl").write_text((FIXTURES / "redial_official/train_data.jsonl").read_text() + "{oops\n")
    (broken / "test_data.jsonl").write_text((FIXTURES / "redial_official/test_data.jsonl").read_text())
    bad_line = _ecrs("prepare", "--set", f"redial_dir={broken}", "--set", "emotion_model=''",
                     "--set", f"out_dir={tmp_path / 'out'}")
    assert bad_line.returncode == 2 and "train_data.jsonl:4" in bad_line.stderr, bad_line.stderr


def test_own_format_end_to_end(tmp_path):
    """Own-data dialogues (titles and URIs) prepare into samples with the stated feedback."""
    import json

    d = {"id": "o1", "turns": [
        {"role": "seeker", "text": "I loved Titanic, any romance like it?"},
        {"role": "recommender", "text": "Try The Notebook!", "movies": ["The Notebook (2004)"]},
        {"role": "seeker", "text": "Perfect, thanks!"}], "feedback": {"The Notebook (2004)": "liked"}}
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text(json.dumps(d) + "\n")
    cfg = PrepareConfig(dataset="own", own_train=str(tmp_path / "train.jsonl"), own_test=str(tmp_path / "test.jsonl"),
                        emotion_model="", out_dir=str(tmp_path / "out"))
    result = prepare(cfg)
    (sample,) = result.splits["test"]
    assert [t.feedback for t in sample.targets] == ["liked"]
    assert sample.entities  # Titanic (and the romance genre) linked from the free text


class _EveryoneDislikes:
    """A stance classifier stand-in: every named thing is disliked (answers known by construction)."""

    def predict(self, text, spans):
        return [("disliked", 1.0)] * len(spans)


def test_stance_emotions_replace_the_broadcast_for_the_entities_a_seeker_names(tmp_path):
    from ecrs.data.kg import load_redial_kg, person_entities
    from ecrs.data.linking import build_redial_linker
    from ecrs.models.stance import EntityStancer

    plain = _run_prepare(tmp_path / "a")
    kg = load_redial_kg()
    stancer = EntityStancer(_EveryoneDislikes(), build_redial_linker(kg), person_entities(kg))
    cfg = PrepareConfig(redial_dir=str(FIXTURES / "redial_official"), emotion_model="", out_dir=str(tmp_path / "b"),
                        entity_emotions="stance")
    own = prepare(cfg, stancer=stancer)
    a, b = plain.splits["test"], own.splits["test"]
    assert [(s.id, s.entities, s.targets) for s in a] == [(s.id, s.entities, s.targets) for s in b]
    changed = [(x, y) for s, t in zip(a, b) for x, y in zip(s.entity_emotions, t.entity_emotions) if x != y]
    assert changed and all(y == [("negative", 1.0)] for _, y in changed)
    import pytest

    from ecrs.errors import DataError

    with pytest.raises(DataError, match="ecrs train stance"):
        prepare(cfg, write=False)
