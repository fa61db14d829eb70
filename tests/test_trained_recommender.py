"""Trained runs behind the Recommender contract, and evaluate's NAME:RUNS rows (mean ± std over seeds)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_recommender import N_MOVIES, tiny_samples, write_tiny_dataset

from ecrs.config import load_config
from ecrs.data.datasets import load_kg
from ecrs.data.samples import Sample, Target
from ecrs.errors import EcrsError
from ecrs.inference.recommender import TrainedRecommender
from ecrs.recipes.evaluate import aggregate, run_dirs
from ecrs.training.calibrate import GRID, fit_context_shift
from ecrs.training.recommender import RecommenderTrainConfig, train_recommender

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    kg_dir, data_dir, cache_dir = write_tiny_dataset(root)
    runs = []
    for seed in (0, 1):
        cfg = load_config(RecommenderTrainConfig, None, [
            f"out_dir={root}/runs/{{name}}-s{{seed}}", f"data.data_dir={data_dir}", f"data.kg_dir={kg_dir}",
            f"data.embedding_cache={cache_dir}", "model.d_kg=8", "model.d_model=8", "model.d_emotion=4",
            "model.n_task_tokens=2", "model.max_turns=4", "model.max_entities=4", "model.reader_layers=1",
            "model.reader_heads=2", "model.dropout=0.0", "model.copy_context=true", "model.global_scoring=true",
            "train.epochs=3", "train.batch_size=8", "train.lr=0.003", f"train.seed={seed}", "threads=1"])
        summary = train_recommender(cfg)
        runs.append((cfg, summary))
    return root, kg_dir, runs


def test_run_folder_is_self_describing(trained):
    root, _, runs = trained
    cfg, summary = runs[0]
    out = cfg.resolved_out_dir()
    for name in ("model.pt", "config.yaml", "metrics.json", "checkpoint.pt", "cooccurrence.npz"):
        assert (out / name).exists(), name
    m = json.loads((out / "metrics.json").read_text())
    assert m["seed"] == 0 and m["optimizer_steps"] == 15 and m["wall_seconds"] > 0 and "hardware" in m
    assert m["training_data"]["path"].endswith("redial/train")


def test_loaded_scores_match_the_trained_model(trained):
    _, kg_dir, runs = trained
    out = runs[0][0].resolved_out_dir()
    rec = TrainedRecommender.load(out, name="ecr")
    rec.context_shift = 0.0  # the raw model (the calibrated shift is tested below)
    kg = load_kg("redial", str(kg_dir))
    rec.fit([], kg)
    samples = tiny_samples()
    scores = rec.score(samples)
    assert scores.shape == (10, N_MOVIES) and scores.dtype == np.float32
    # Serving scores only the movie columns of the cached table; training's forward scores every entity (or its
    # `item_scoring` movies): one scoring function, so the movie columns agree.
    with torch.no_grad():
        full = rec.model(rec.featurize(samples).batch(np.arange(len(samples)))).logits.numpy()
    train_items = rec.model.head.scorer.train_items
    cols = kg.item_ids if train_items is None else [train_items.tolist().index(e) for e in kg.item_ids]
    np.testing.assert_allclose(scores, full[:, cols], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scores, rec.model.score_items(rec.featurize(samples), kg.item_ids), rtol=1e-6)


def test_training_calibrates_the_context_shift_and_scores_apply_it(trained):
    _, _, runs = trained
    out = runs[0][0].resolved_out_dir()
    cal = json.loads((out / "calibration.json").read_text())
    assert [t["g"] for t in cal["grid"]] == list(GRID) and cal["context_shift"] == pytest.approx(cal["g"] * cal["sigma"])
    assert runs[0][1]["calibration"]["g"] == cal["g"]
    assert TrainedRecommender.load(out).context_shift == pytest.approx(cal["context_shift"])
    raw = TrainedRecommender.load(out, calibrated=False)
    assert raw.context_shift == 0.0
    samples = tiny_samples()[:2]
    samples[0].entities = [3, N_MOVIES, 3]  # movie 3 (twice) and a person in the context; sample 1: a person only
    shifted = TrainedRecommender.load(out, calibrated=False)
    shifted.context_shift = 2.5
    diff = shifted.score(samples) - raw.score(samples)
    want = np.zeros_like(diff)
    want[0, raw.kg.item_ids.index(3)] = 2.5  # once, however often the movie was mentioned
    np.testing.assert_allclose(diff, want, atol=1e-5)
    assert [c.tolist() for c in raw.context_columns(samples)] == [[raw.kg.item_ids.index(3)], []]


def test_context_shift_is_the_smallest_best_on_validation():
    # 60 movies; row 0's target (column 55) is in its context and ranks 56th unshifted; row 1's target ranks 1st.
    item_ids = list(range(100, 160))
    scores = np.tile(-np.arange(60, dtype=np.float32), (2, 1))
    samples = [Sample(id=f"s{i}", dialog_id=f"d{i}", turn=1, context=[("seeker", "hi")], entities=[], entity_emotions=[],
                      mentioned_items=[], targets=[Target(t, "liked", i == 0)], response="")
               for i, t in enumerate((155, 100))]
    out = fit_context_shift(scores, [np.array([55]), np.array([], dtype=np.int64)], samples, item_ids)
    sigma = float(np.arange(60).std())
    # g = 0.5 already lifts it into the top 50 (rank 47); g = 3 (shift 52) into the top 10 (rank 5), g = 2 not (22)
    assert out["g"] == 3.0 and out["context_shift"] == pytest.approx(3.0 * sigma, rel=1e-5)
    r50 = {t["g"]: t["R@50"] for t in out["grid"]}
    assert r50[0.0] == 0.5 and r50[0.5] == 1.0
    with pytest.raises(ValueError, match="no validation samples"):
        fit_context_shift(scores[:0], [], [], item_ids)


def test_warm_up_caches_the_table_before_the_first_turn(trained):
    _, _, runs = trained
    rec = TrainedRecommender.load(runs[0][0].resolved_out_dir())
    assert rec._table is None
    rec.warm_up()  # the real turn encoder embeds one text
    assert rec._table is not None and len(rec._items) == N_MOVIES


def test_fit_refuses_another_graph(trained):
    _, _, runs = trained
    rec = TrainedRecommender.load(runs[0][0].resolved_out_dir())
    other = load_kg("redial", "")  # the bundled 31k-entity graph
    with pytest.raises(EcrsError, match="another graph"):
        rec.fit([], other)


def test_run_glob_and_aggregate(trained):
    root, _, _ = trained
    dirs = run_dirs(str(root / "runs" / "ecr-fast-s*"), "redial")
    assert [d.name for d in dirs] == ["ecr-fast-s0", "ecr-fast-s1"]
    agg = aggregate([{"R@50": 0.2, "n_samples": 10, "AUC": None}, {"R@50": 0.4, "n_samples": 10, "AUC": None}])
    assert agg["R@50"]["mean"] == pytest.approx(0.3)
    assert agg["R@50"]["std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert agg["n_samples"] == 10 and agg["AUC"] is None
