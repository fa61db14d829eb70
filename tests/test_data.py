"""Bundled data, dialogue parsing, ECR's emotion attachment rule and sample building."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ecrs.data import bundle
from ecrs.data.dialogues import Dialogue, Turn, load_own, load_redial
from ecrs.data.samples import build_samples, questionnaire_emotions, split_train_valid, turn_emotions
from ecrs.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures"


# ---------------------------------------------------------------- bundle

def test_bundled_files_verify_against_manifest():
    for rel in bundle.manifest():
        assert bundle.bundled(rel).exists()


def test_corrupt_bundled_file_is_an_error(tmp_path, monkeypatch):
    shutil.copy(bundle.data_dir() / "MANIFEST.tsv", tmp_path / "MANIFEST.tsv")
    (tmp_path / "kg").mkdir()
    (tmp_path / "kg" / "relation2id.json.gz").write_bytes(b"not the real file")
    monkeypatch.setenv("ECRS_DATA_DIR", str(tmp_path))
    bundle.manifest.cache_clear()
    bundle.bundled.cache_clear()
    try:
        with pytest.raises(DataError, match="sha256"):
            bundle.bundled("kg/relation2id.json.gz")
        with pytest.raises(DataError, match="missing"):
            bundle.bundled("kg/entity2id.json.gz")
    finally:
        bundle.manifest.cache_clear()
        bundle.bundled.cache_clear()


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"a": 1}\n{broken\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2"):
        list(bundle.iter_jsonl(p))


# ---------------------------------------------------------------- dialogues

def test_redial_parsing_merges_turns_replaces_mentions_and_reads_feedback(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps({
        "conversationId": "7", "initiatorWorkerId": 1, "respondentWorkerId": 2,
        "movieMentions": {"11": "Alien  (1979)", "22": "Up (2009)"},
        "initiatorQuestions": {"11": {"suggested": 0, "seen": 1, "liked": 1},
                               "22": {"suggested": 1, "seen": 0, "liked": 2}},
        "respondentQuestions": {"22": {"suggested": 1, "seen": 0, "liked": 0},
                                "33": {"suggested": 1, "seen": 0, "liked": 0}},
        "messages": [
            {"senderWorkerId": 1, "text": "hi"}, {"senderWorkerId": 1, "text": "I loved @11"},
            {"senderWorkerId": 2, "text": "Try @22 or @99"},
        ],
    }) + "\n")
    (d,) = load_redial(p, movie_entity={"11": 100, "22": 200, "33": 300}, titles={"99": "Nine (2009)"})
    assert [t.role for t in d.turns] == ["seeker", "recommender"]
    assert d.turns[0].text == "hi I loved Alien (1979)"
    assert d.turns[1].text == "Try Up (2009) or Nine (2009)"
    assert d.turns[1].movies == [200]  # @99 is not in the graph
    # The seeker's own answer wins; "did not say" (2) is unknown; the recommender's answer fills the gaps.
    assert d.feedback == {100: "liked", 200: "unknown", 300: "disliked"}


def test_redial_malformed_line_is_a_one_line_error(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"messages": [], "initiatorWorkerId": 1}\n{"conversationId": "2"}\n')
    with pytest.raises(DataError, match=r"r\.jsonl:2: not a ReDial dialogue"):
        list(load_redial(p, {}, {}))


def test_own_format_rejects_unknown_keys_and_unresolvable_movies(tmp_path):
    resolve = {"Alien (1979)": 5}.get
    good = {"id": "a", "turns": [{"role": "seeker", "text": "hi"},
                                 {"role": "recommender", "text": "Alien!", "movies": ["Alien (1979)"]}],
            "feedback": {"Alien (1979)": "liked"}}
    p = tmp_path / "own.jsonl"
    p.write_text(json.dumps(good) + "\n")
    (d,) = load_own(p, resolve)
    assert d.turns[1].movies == [5] and d.feedback == {5: "liked"}
    for bad, match in [({**good, "extra": 1}, "unknown key 'extra'"),
                       ({**good, "turns": [{"role": "bot", "text": "x"}]}, "turn 0"),
                       ({**good, "turns": [{"role": "seeker", "text": "x", "movies": ["Nope"]}]}, "not in the graph")]:
        p.write_text(json.dumps(good) + "\n" + json.dumps({**bad, "id": "b"}) + "\n")
        with pytest.raises(DataError, match=rf"own\.jsonl:2: .*{match}"):
            list(load_own(p, resolve))


# ---------------------------------------------------------------- ECR's attachment rule and samples

def _dialogue() -> Dialogue:
    # seeker mentions 1 (turn 0); recommender mentions 2 and recommends movie 10 (turn 1);
    # seeker reacts (turn 2) mentioning 3; recommender recommends 10 again and 11 (turn 3).
    return Dialogue(id="d", turns=[
        Turn("seeker", "I like 1", entities=[1]),
        Turn("recommender", "2 and 10", movies=[10], entities=[2, 10]),
        Turn("seeker", "meh 3", entities=[3]),
        Turn("recommender", "10 or 11", movies=[10, 11], entities=[10, 11]),
    ], feedback={10: "liked", 11: "disliked"})


def test_attachment_rule_gives_recommender_entities_the_next_seeker_reaction():
    #            like  cur  happy grat neg  neut nost agr  surp
    p0 = [0.7, 0.2, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0]   # like, curious (neutral 0.1 is not > beta)
    p2 = [0.0, 0.0, 0.0, 0.0, 0.05, 0.08, 0.0, 0.0, 0.07]  # nothing > beta: keeps top-1 (neutral)
    em = turn_emotions(_dialogue(), {0: p0, 2: p2})
    assert [lab for lab, _ in em[0]] == ["like", "curious"]
    assert em[1] == em[2]  # recommender turn 1 gets the reaction of seeker turn 2
    assert [lab for lab, _ in em[2]] == ["neutral"]
    assert em[3] == []  # no seeker turn follows


def test_build_samples_context_targets_and_dedup_flags():
    d = _dialogue()
    em = turn_emotions(d, {0: [1.0] + [0.0] * 8, 2: [0.0] * 4 + [1.0] + [0.0] * 4})
    s1, s3 = build_samples(d, items=frozenset({10, 11}), emotions=em, max_entities=3)
    assert (s1.turn, s1.entities, [t.item for t in s1.targets]) == (1, [1], [10])
    assert s1.targets[0].feedback == "liked" and not s1.targets[0].mentioned_before
    assert s3.entities == [2, 10, 3]  # the last 3 of [1, 2, 10, 3]
    assert [lab for lab, _ in s3.entity_emotions[0]] == ["negative"]  # entity 2: the reaction in turn 2
    assert [(t.item, t.feedback, t.mentioned_before) for t in s3.targets] == [
        (10, "liked", True), (11, "disliked", False)]
    assert s3.mentioned_items == [10]
    assert s3.context[-1] == ("seeker", "meh 3") and s3.response == "10 or 11"


def test_questionnaire_oracle_replaces_only_the_answered_movies_emotions():
    d = _dialogue()  # the seeker liked 10 and disliked 11; entities 1, 2, 3 have no answer
    em = turn_emotions(d, {0: [1.0] + [0.0] * 8, 2: [0.0] * 5 + [1.0] + [0.0] * 3})  # like; neutral
    oracle = questionnaire_emotions(d)
    assert oracle == {10: [("like", 1.0)], 11: [("negative", 1.0)]}
    plain = build_samples(d, frozenset({10, 11}), em)[1]
    s3 = build_samples(d, frozenset({10, 11}), em, entity_override=oracle)[1]
    assert s3.entities == plain.entities == [1, 2, 10, 3]
    labels = [[lab for lab, _ in ems] for ems in s3.entity_emotions]
    # 10 was mentioned by the recommender, so the classifier gave it the seeker's (neutral) reaction
    assert [[lab for lab, _ in ems] for ems in plain.entity_emotions][2] == ["neutral"]
    assert labels == [["like"], ["neutral"], ["like"], ["neutral"]]
    assert s3.targets == plain.targets  # targets and their feedback are untouched


def test_split_is_seeded_disjoint_and_order_independent():
    ids = [str(i) for i in range(100)]
    a = split_train_valid(ids, 0.1, seed=1)
    b = split_train_valid(list(reversed(ids)), 0.1, seed=1)
    assert a == b and len(a[1]) == 10 and not (a[0] & a[1]) and a[0] | a[1] == set(ids)
    assert split_train_valid(ids, 0.1, seed=2)[1] != a[1]


def test_genre_words_cover_chat_kinds_and_prefer_the_longer_spelling():
    from ecrs.data.catalogue import genre_mentions

    assert genre_mentions("something spooky, no jump scares") == [(10, 16, "horror"), (21, 32, "horror")]
    assert genre_mentions("a family-friendly time travel movie") == [(2, 17, "family"), (18, 29, "sci-fi")]
    assert [g for *_, g in genre_mentions("una película de terror o una comedia")] == ["horror", "comedy"]
    assert genre_mentions("is it gory?") == []  # a question about the movie just suggested, not a genre
