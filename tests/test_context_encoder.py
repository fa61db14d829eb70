"""The frozen MiniLM turn encoder: the ONNX Runtime path used for live turns gives the vectors sentence-transformers
gives (which fill the training cache), so a model trained on cached vectors reads live turns the same way."""
from __future__ import annotations

import numpy as np
import pytest

from ecrs.models.context_encoder import OnnxMiniLM, TurnEmbeddingCache, load_minilm

TEXTS = ["I loved Titanic, something romantic but not too sad please", "Have you seen it?", "", "ok " * 300]


@pytest.fixture(scope="module")
def onnx_encoder(tmp_path_factory):
    return OnnxMiniLM(tmp_path_factory.mktemp("onnx") / "minilm.onnx")


def test_onnx_matches_sentence_transformers(onnx_encoder):
    reference = load_minilm().encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True)
    one_by_one = np.stack([onnx_encoder.encode([t])[0] for t in TEXTS])
    batched = onnx_encoder.encode(TEXTS)  # padding inside a batch changes nothing
    np.testing.assert_allclose(one_by_one, reference, atol=1e-5)
    np.testing.assert_allclose(batched, reference, atol=1e-5)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_int8_encoder_stays_close_to_the_float_one(onnx_encoder):
    """The served (quantised) encoder is a copy made once beside the float graph; its vectors point the same way
    (cosine > 0.95 on these texts; ~0.99 on average over real ReDial turns, see OnnxMiniLM)."""
    int8 = OnnxMiniLM(onnx_encoder.path, int8=True)
    assert int8.path == onnx_encoder.path.with_suffix(".int8.onnx")
    assert int8.path.stat().st_size < onnx_encoder.path.stat().st_size / 3
    a, b = onnx_encoder.encode(TEXTS), int8.encode(TEXTS)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.95 and not np.allclose(a, b, atol=1e-4), cos  # close, yet really the quantised graph


def test_encode_live_uses_the_cache_first(tmp_path):
    cache = TurnEmbeddingCache(tmp_path)
    cache.ensure(TEXTS[:1], progress=False)
    stored = cache.vectors(TEXTS[:1])
    live = cache.encode_live(TEXTS[:2])
    np.testing.assert_array_equal(live[0], stored[0])  # the cached float16 vector, not a re-encoding
    assert (tmp_path / "all-MiniLM-L6-v2.onnx").exists() and len(cache) == 1  # live texts are not persisted
    np.testing.assert_allclose(live[1], load_minilm().encode(TEXTS[1], normalize_embeddings=True), atol=1e-5)


def test_encode_cached_embeds_once_and_persists(tmp_path):
    """Evaluation's path: texts missing from the cache are embedded once and saved, so a second process (the next
    seed's run) reads them from disk instead of embedding them again."""
    first = TurnEmbeddingCache(tmp_path).encode_cached(TEXTS[:2])
    again = TurnEmbeddingCache(tmp_path)
    assert len(again) == 2 and again.missing(TEXTS[:2]) == []
    np.testing.assert_array_equal(again.encode_cached([TEXTS[1], TEXTS[0]]), first[::-1])
    np.testing.assert_allclose(first, load_minilm().encode(TEXTS[:2], normalize_embeddings=True), atol=2e-3)


def test_encode_live_memoises_live_turns(tmp_path):
    """A conversation's earlier live turns are encoded once, not again on every later turn."""
    cache = TurnEmbeddingCache(tmp_path)
    first = cache.encode_live(TEXTS[:2])
    calls: list[list[str]] = []
    live = cache._live
    cache._live = lambda texts: calls.append(list(texts)) or live(texts)
    again = cache.encode_live([TEXTS[1], TEXTS[0], TEXTS[2], TEXTS[2]])
    assert calls == [[TEXTS[2]]]  # only the new text, once
    np.testing.assert_array_equal(again[:2], first[::-1])
    np.testing.assert_array_equal(again[2], again[3])


def test_prefetch_embeds_in_the_background_once(tmp_path):
    """A prefetched text is embedded on the prefetch thread; `encode_live` then waits for it instead of embedding it
    again, and gets the same vector as a direct encoding."""
    import threading

    cache = TurnEmbeddingCache(tmp_path)
    direct = cache.encode_live(TEXTS[:1])
    calls: list[tuple[str, list[str]]] = []
    live = cache._live
    cache._live = lambda texts: calls.append((threading.current_thread().name, list(texts))) or live(texts)
    cache.prefetch([TEXTS[1], TEXTS[1], TEXTS[0]])  # TEXTS[0] is in the memo already
    got = cache.encode_live([TEXTS[1], TEXTS[0]])
    assert [texts for _, texts in calls] == [[TEXTS[1]]] and calls[0][0].startswith("turn-prefetch")
    np.testing.assert_array_equal(got[1], direct[0])
    np.testing.assert_allclose(got[0], load_minilm().encode(TEXTS[1], normalize_embeddings=True), atol=1e-5)
    cache.prefetch([TEXTS[1]])  # known now: nothing to do
    assert len(calls) == 1
