"""Recommender parts on a 30-entity graph: shapes, the ECR equations against hand computations, the exact entity
table window, and a model that learns the answer the fixture is built around."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from tiny_recommender import N_MOVIES, tiny_kg, tiny_model_config, tiny_samples
from torch_geometric.nn import RGCNConv

from ecrs.models.build import build_model
from ecrs.models.entity_encoder import EntityEncoder, EntityTableWindow
from ecrs.models.prompt import EmotionAwarePrompt, EmotionVectors, TextEntityFusion
from ecrs.models.recommender import Featurizer, feedback_weights
from ecrs.training.loop import LoopConfig, train_loop
from ecrs.training.recommender import RecommenderTask

torch.set_num_threads(1)


def encoder(d_kg: int = 8, d: int = 6) -> EntityEncoder:
    kg = tiny_kg()
    ei, et = kg.edge_tensors()
    return EntityEncoder(kg.num_entities, kg.num_relations, ei, et, d_kg=d_kg, d_model=d)


def test_entity_encoder_is_rgcn_with_residual():
    torch.manual_seed(0)
    enc = encoder()
    assert isinstance(enc.rgcn, RGCNConv) and enc.rgcn.num_bases == 8
    table = enc()
    assert table.shape == (30, 6) and table.dtype == torch.float32
    # With the R-GCN silenced the table is MLP(x): the residual path alone.
    with torch.no_grad():
        for p in enc.rgcn.parameters():
            p.zero_()
        np.testing.assert_allclose(enc().numpy(), enc.proj(enc.embedding).numpy(), rtol=1e-6)


def test_table_window_gradient_is_exact():
    """Encoder gradient after a 2-step window == gradient of the mean of the two steps' losses."""
    torch.manual_seed(0)
    enc = encoder()
    c1, c2 = torch.randn(30, 6), torch.randn(30, 6)
    window = EntityTableWindow(enc, every=2)
    (window.table() * c1).pow(2).sum().backward()
    assert not window.after_micro_batches()
    (window.table() * c2).pow(2).sum().backward()
    assert window.after_micro_batches()
    window.flush()
    got = [p.grad.clone() for p in enc.parameters()]
    enc.zero_grad()
    t = enc()
    (((t * c1).pow(2).sum() + (t * c2).pow(2).sum()) / 2).backward()
    for g, p in zip(got, enc.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-6)


def test_fusion_equation_and_masking():
    torch.manual_seed(0)
    fusion = TextEntityFusion(4)
    e, h = torch.randn(1, 2, 4), torch.randn(1, 3, 4)
    mask = torch.tensor([[True, True, False]])
    got = fusion(e, h, mask)
    a = (e[0] @ fusion.bilinear(h[0]).T / 4)[:, :2]  # (L, T) over the 2 real positions
    want = e[0] + torch.softmax(a, dim=-1) @ h[0, :2]
    torch.testing.assert_close(got[0], want)
    # No text at all: the entity vectors are returned unchanged.
    torch.testing.assert_close(fusion(e, h, torch.zeros(1, 3, dtype=torch.bool)), e)


def test_emotion_vector_is_probability_weighted_sum():
    ev = EmotionVectors(5)
    labels = torch.tensor([[[0, 2, 0]]])  # like, happy, (padding)
    probs = torch.tensor([[[0.7, 0.2, 0.0]]])
    want = 0.7 * ev.table.weight[0] + 0.2 * ev.table.weight[2]
    torch.testing.assert_close(ev(labels, probs)[0, 0], want)


def test_prompt_local_and_global_equations():
    torch.manual_seed(0)
    n, d = 30, 6
    prompt = EmotionAwarePrompt(d, n_task_tokens=2, fusion=False, local=True, global_=True, d_emotion=4,
                                dropout=0.0)
    table = torch.randn(n, d)
    p = sp.csr_matrix(([0.25, 0.75, 1.0], ([21, 21, 22], [3, 5, 7])), shape=(n, n), dtype=np.float32)
    ents = torch.tensor([[21, 22, 0]])
    mask = torch.tensor([[True, True, False]])
    labels = torch.zeros(1, 3, 3, dtype=torch.long)
    probs = torch.zeros(1, 3, 3)
    probs[0, 0, 0] = 0.9
    from ecrs.models.recommender import _sparse_rows

    out = prompt(table, ents, mask, torch.zeros(1, 1, d), torch.zeros(1, 1, dtype=torch.bool), labels, probs,
                 _sparse_rows(p, ents.numpy(), mask.numpy()))
    assert out.tokens.shape == (1, 2 + 3 + 3, d)
    assert out.mask.tolist() == [[True, True, True, True, False, True, True, False]]
    f0 = 0.9 * prompt.emotions.table.weight[0]
    torch.testing.assert_close(out.tokens[0, 2], prompt.mlp(torch.cat([table[21], f0])))  # ẽ'_j
    e_global = 0.25 * table[3] + 0.75 * table[5]  # E_j = Σ_i P(e_i | e_j) table[e_i]
    torch.testing.assert_close(out.tokens[0, 5], prompt.mlp(torch.cat([e_global, f0])))  # E'_j, same MLP
    torch.testing.assert_close(out.tokens[0, 6], prompt.mlp(torch.cat([table[7], torch.zeros(4)])))

    prompt.residual = True  # ours: the MLP's output is added to the entity instead of replacing it
    res = prompt(table, ents, mask, torch.zeros(1, 1, d), torch.zeros(1, 1, dtype=torch.bool), labels, probs,
                 _sparse_rows(p, ents.numpy(), mask.numpy()))
    torch.testing.assert_close(res.tokens[0, 2], table[21] + prompt.mlp(torch.cat([table[21], f0])))
    torch.testing.assert_close(res.tokens[0, 5], e_global + prompt.mlp(torch.cat([e_global, f0])))


def test_global_needs_local():
    with pytest.raises(ValueError, match="local"):
        EmotionAwarePrompt(4, local=False, global_=True)


def test_featurizer_pads_left_and_keeps_last_entities():
    cfg = tiny_model_config(max_turns=3, max_entities=2)
    s, short = tiny_samples()[:2]
    s.context = [("seeker", "a"), ("recommender", "b")]
    s.entities, s.entity_emotions = [1, 2, 3], [[], [("like", 0.5)], [("negative", 0.6), ("curious", 0.3)]]
    short.context, short.entities, short.entity_emotions = [("seeker", "c")], [5], [[]]
    f = Featurizer(cfg, [s, short], turn_vectors=lambda texts: np.ones((len(texts), 384)))
    b = f.batch(np.array([0, 1]))
    # padding is cut to the batch's longest context (2 turns of 3, 2 entities of 2)
    assert b.turn_mask.tolist() == [[True, True], [False, True]] and b.turn_role.tolist() == [[0, 1], [0, 0]]
    assert b.entities.tolist() == [[2, 3], [5, 0]] and b.entity_mask.tolist() == [[True, True], [True, False]]
    assert b.emo_labels[0, 1, :2].tolist() == [4, 1] and b.emo_probs[0, 1].tolist() == pytest.approx(
        [0.6, 0.3, 0.0])
    assert f.batch(np.array([1])).entities.tolist() == [[5]]


def test_item_scoring_is_the_movie_columns_of_the_full_scores():
    """item_scoring changes which columns the softmax sees, not the scores: the same weights give the full model's
    movie columns (through ContextCopy and GlobalScore too), and the loss is the CE over those columns."""
    kg, samples = tiny_kg(), tiny_samples(repeats=2)
    cooc = sp.random(30, 30, density=0.3, random_state=0, dtype=np.float32).tocsr()
    parts = dict(copy_context=True, global_scoring=True)
    torch.manual_seed(0)
    full = build_model(tiny_model_config(**parts), kg).eval()
    items = build_model(tiny_model_config(item_scoring=True, **parts), kg).eval()
    items.load_state_dict(full.state_dict())
    with torch.no_grad():  # non-zero copy bonus and emotion gate, so both extra terms are exercised
        for m in (full, items):
            m.head.scorer.copy.bonus.fill_(0.3)
            m.head.global_score.gate.bias.fill_(0.2)
    f = Featurizer(tiny_model_config(**parts), samples, cooccurrence=cooc)
    rows, targets, weights = feedback_weights(samples, tiny_model_config(**parts))
    b = f.batch(rows, targets, weights)
    out_full, out_items = full(b), items(b)
    assert out_items.logits.shape == (len(rows), N_MOVIES)
    torch.testing.assert_close(out_items.logits, out_full.logits[:, kg.item_ids])
    ce = torch.nn.functional.cross_entropy(out_full.logits[:, kg.item_ids], torch.as_tensor(targets),
                                           reduction="none")
    torch.testing.assert_close(out_items.loss, (ce * torch.as_tensor(weights)).mean())
    np.testing.assert_allclose(items.score_items(f, kg.item_ids[::-1]), full.score_items(f, kg.item_ids[::-1]),
                               rtol=1e-5, atol=1e-5)


def test_feedback_weights_and_weighted_mean_loss():
    samples = tiny_samples(repeats=2)  # repeat 0: "unknown", repeat 1: "liked"
    cfg = tiny_model_config()
    _, _, w = feedback_weights(samples, cfg)
    assert w.tolist() == [0.5] * 10 + [2.0] * 10
    cfg_off = tiny_model_config(feedback_weights=False)
    assert feedback_weights(samples, cfg_off)[2].tolist() == [1.0] * 20
    # No answer at all ("missing") is not "did not say": it gets the mean weight of the answered targets.
    for s in samples[:4]:
        s.targets[0].feedback = "missing"
    answered = [0.5] * 6 + [2.0] * 10
    assert feedback_weights(samples, cfg)[2].tolist() == pytest.approx([np.mean(answered)] * 4 + answered)
    assert feedback_weights(samples, tiny_model_config(weights={"liked": 2.0, "disliked": 1.0, "unknown": 0.5,
                                                                 "missing": 0.25}))[2][:4].tolist() == [0.25] * 4
    for s in samples:
        s.targets[0].feedback = "missing"
    assert feedback_weights(samples, cfg)[2].tolist() == [1.0] * 20  # nothing answered (INSPIRED): plain loss
    samples = tiny_samples(repeats=2)
    torch.manual_seed(0)
    kg = tiny_kg()
    model = build_model(cfg, kg).eval()
    f = Featurizer(cfg, samples, cooccurrence=sp.csr_matrix((30, 30), dtype=np.float32))
    rows, targets, weights = feedback_weights(samples, cfg)
    assert len(set(weights.tolist())) == 2
    out = model(f.batch(rows, targets, weights))
    ce = torch.nn.functional.cross_entropy(out.logits, torch.as_tensor(targets), reduction="none")
    torch.testing.assert_close(out.loss, (ce * torch.as_tensor(weights)).mean())  # mean of weighted terms


@pytest.mark.parametrize("kind,backbone_parts", [
    ("kbrd", {}),
    ("ecr", {"local_emotion": False, "global_emotion": False, "feedback_weights": False}),  # UniCRS
    ("ecr", {}),  # ECR, all parts
])
def test_learns_the_only_neighbour(kind, backbone_parts, tmp_path):
    """Trained on 'person 20+i -> movie i', every model ranks movie i first among the 20 movies."""
    torch.manual_seed(0)
    kg = tiny_kg()
    cfg = tiny_model_config(kind=kind, d_kg=16, d_model=16, **backbone_parts)
    samples = tiny_samples(repeats=4)
    cooc = sp.csr_matrix(([1.0] * 10, (np.arange(20, 30), np.arange(10))), shape=(30, 30), dtype=np.float32)
    model = build_model(cfg, kg)
    feats = Featurizer(cfg, samples, cooccurrence=cooc)
    window = EntityTableWindow(model.encoder, every=2)
    task = RecommenderTask(model, model.head, window, feats, samples, feats, samples, kg,
                           dist=__import__("ecrs.training.loop", fromlist=["Dist"]).Dist())
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.003)
    state = train_loop(task, model, opt, LoopConfig(epochs=100, batch_size=8, patience=0, seed=0), tmp_path,
                       desc="tiny")
    scores = model.score_items(Featurizer(cfg, tiny_samples(), cooccurrence=cooc), kg.item_ids)
    assert scores.shape == (10, N_MOVIES)
    assert (scores.argmax(axis=1) == np.arange(10)).all(), state.history[-1]


def test_context_copy_bonus_by_recency_and_kind():
    from ecrs.models.recommender import ContextCopy

    copy = ContextCopy(n_entities=30, item_ids=list(range(20)), max_entities=4)
    with torch.no_grad():
        copy.bonus.copy_(torch.tensor([[0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 4.0]]) / copy.SCALE)  # [other | movie][recency]
    ents = torch.tensor([[5, 25, 5, 0]])  # movie 5, person 25, movie 5 again (latest), padding
    mask = torch.tensor([[True, True, True, False]])
    got = copy(torch.zeros(1, 30), ents, mask)[0]
    assert got[5].item() == pytest.approx(3.0 + 1.0)  # recency 2 and recency 0, both as a movie
    assert got[25].item() == pytest.approx(0.2)  # recency 1, not a movie
    assert got.abs().sum().item() == pytest.approx(4.2)  # padding adds nothing
    column = torch.full((30,), -1, dtype=torch.long)
    column[:20] = torch.arange(20)
    by_column = copy(torch.zeros(1, 20), ents, mask, column)[0]  # movie columns only: the person is dropped
    assert by_column[5].item() == pytest.approx(4.0) and by_column.sum().item() == pytest.approx(4.0)


def test_global_score_votes_weighted_by_emotion_gate():
    from ecrs.models.recommender import GlobalScore, _sparse_rows

    gs = GlobalScore(d_emotion=2)
    with torch.no_grad():
        gs.gate.weight.copy_(torch.tensor([[0.2, -0.1]]))  # γ_j = 10 · (0.2 F_j0 − 0.1 F_j1)
    p = sp.csr_matrix(([0.25, 0.75, 1.0], ([21, 21, 22], [3, 5, 5])), shape=(30, 30), dtype=np.float32)
    ents, mask = np.array([[21, 22, 0]]), np.array([[True, True, False]])
    emotion = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])  # γ = 2, −1, (padding: no row)
    got = gs(torch.zeros(1, 30), _sparse_rows(p, ents, mask), emotion)[0]
    assert got[3].item() == pytest.approx(2 * 0.25)
    assert got[5].item() == pytest.approx(2 * 0.75 - 1 * 1.0)
    assert got.abs().sum().item() == pytest.approx(0.5 + 0.5)


def test_feedback_weight_keys_are_checked():
    from ecrs.config import ConfigError, from_dict
    from ecrs.models.recommender import ModelConfig

    with pytest.raises(ConfigError, match="model.weights needs the keys"):
        from_dict(ModelConfig, {"weights": {"liked": 2.0, "disliked": 1.0, "unknwn": 0.5}}, "model")


def test_train_fraction_keeps_a_fixed_nested_subset_of_dialogues():
    from dataclasses import replace

    from ecrs.config import ConfigError, from_dict
    from ecrs.training.recommender import DataConfig, training_dialogues

    samples = tiny_samples()
    ids = {s.dialog_id for s in samples}
    assert len(ids) >= 8
    full = DataConfig()
    assert training_dialogues(full, samples) is None
    half = training_dialogues(replace(full, train_fraction=0.5), samples)
    quarter = training_dialogues(replace(full, train_fraction=0.25), samples)
    assert len(half) == round(len(ids) / 2) and len(quarter) == round(len(ids) / 4)
    assert quarter < half <= ids  # nested: the smaller subset is part of the larger one
    assert training_dialogues(replace(full, train_fraction=0.5), samples[::-1]) == half  # order-independent
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="train_fraction"):
            from_dict(DataConfig, {"train_fraction": bad}, "data")


def test_cooccurrence_counts_only_the_kept_dialogues(tmp_path):
    import gzip
    import json

    from ecrs.data.cooccurrence import load_training_cooccurrence

    # Two dialogues that each mention two entities in the seeker's turns, one pair each.
    rows = [{"id": "a", "turns": [{"role": "seeker", "text": "x", "entities": [1]},
                                  {"role": "seeker", "text": "y", "entities": [2]}]},
            {"id": "b", "turns": [{"role": "seeker", "text": "x", "entities": [3]},
                                  {"role": "seeker", "text": "y", "entities": [4]}]}]
    (tmp_path / "redial").mkdir()
    with gzip.open(tmp_path / "redial" / "train_dialogues.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    both = load_training_cooccurrence(str(tmp_path), "redial", 6, shared_emotion=False)
    only_a = load_training_cooccurrence(str(tmp_path), "redial", 6, shared_emotion=False, dialogues={"a"})
    assert both.counts[1, 2] == 1 and both.counts[3, 4] == 1
    assert only_a.counts[1, 2] == 1 and only_a.counts.nnz == 1
