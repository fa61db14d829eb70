"""Invariances of the one training loop on the 30-entity fixture: accumulation 8×1 ≡ 2×4, resume ≡ uninterrupted
(at an epoch end and mid-epoch), and a 2-process gloo (DDP) run ≡ the 1-process run of the same global batch."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from tiny_recommender import tiny_kg, tiny_model_config, tiny_samples, write_tiny_dataset

from ecrs.errors import EcrsError
from ecrs.models.build import build_model
from ecrs.models.entity_encoder import EntityTableWindow
from ecrs.models.recommender import Featurizer
from ecrs.training.loop import Dist, LoopConfig, WeightAverage, train_loop
from ecrs.training.recommender import RecommenderTask

torch.set_num_threads(1)
COOC = sp.csr_matrix(([1.0] * 10, (np.arange(20, 30), np.arange(10))), shape=(30, 30), dtype=np.float32)


def setup(dropout: float = 0.0, every: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    kg = tiny_kg()
    cfg = tiny_model_config(dropout=dropout)
    samples = tiny_samples(repeats=4)  # 40 rows
    model = build_model(cfg, kg)
    feats = Featurizer(cfg, samples, cooccurrence=COOC)
    task = RecommenderTask(model, model.head, EntityTableWindow(model.encoder, every), feats, samples, feats,
                           samples, kg, Dist())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.01)
    return model, task, opt


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(a, b, atol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=k)


def test_accumulation_8x1_equals_2x4(tmp_path):
    m1, t1, o1 = setup()
    train_loop(t1, m1, o1, LoopConfig(epochs=2, batch_size=8, grad_accum=1, patience=0), tmp_path / "a")
    m4, t4, o4 = setup()
    train_loop(t4, m4, o4, LoopConfig(epochs=2, batch_size=8, grad_accum=4, patience=0), tmp_path / "b")
    assert_same(params(m1), params(m4), atol=1e-5)


def test_accumulation_steps_after_the_kth_micro_batch(tmp_path):
    """10 optimizer steps for 40 rows / 8 per step over 2 epochs, whatever k is (no step after micro-batch 1)."""
    m, t, o = setup()
    state = train_loop(t, m, o, LoopConfig(epochs=2, batch_size=8, grad_accum=4, patience=0), tmp_path)
    assert state.step == 10
    assert o.state[next(iter(o.state))]["step"].item() == 10


def test_resume_equals_uninterrupted(tmp_path):
    cfg = LoopConfig(epochs=3, batch_size=8, patience=0, seed=3)
    m, t, o = setup(dropout=0.2)
    straight = train_loop(t, m, o, cfg, tmp_path / "straight")
    m1, t1, o1 = setup(dropout=0.2)
    first = train_loop(t1, m1, o1, cfg, tmp_path / "resumed", stop_after_epochs=1)
    assert first.epoch == 1 and not first.finished
    m2, t2, o2 = setup(dropout=0.2, seed=123)  # a new process: fresh objects, different initial weights
    second = train_loop(t2, m2, o2, cfg, tmp_path / "resumed")
    assert second.finished and second.step == straight.step
    assert_same(params(m), params(m2))
    assert [h["train_loss"] for h in straight.history] == [h["train_loss"] for h in second.history]


def test_weight_average_update_and_swap():
    p = torch.nn.Parameter(torch.zeros(3))
    avg = WeightAverage([p], decay=0.99)
    with torch.no_grad():
        p.fill_(1.0)
    avg.update(step=0)  # decay ramps: min(0.99, 1/10) = 0.1 -> 0.1 * 0 + 0.9 * 1
    torch.testing.assert_close(avg.shadow[0], torch.full((3,), 0.9))
    avg.update(step=10_000)  # decay 0.99 -> 0.99 * 0.9 + 0.01 * 1
    torch.testing.assert_close(avg.shadow[0], torch.full((3,), 0.901))
    with avg.swapped_in():
        torch.testing.assert_close(p.detach(), torch.full((3,), 0.901))
    torch.testing.assert_close(p.detach(), torch.ones(3))  # the trained weights are back


def test_a_checkpoint_of_other_data_is_refused_not_resumed(tmp_path):
    cfg = LoopConfig(epochs=3, batch_size=8, patience=0, seed=3)
    m, t, o = setup()
    train_loop(t, m, o, cfg, tmp_path, stop_after_epochs=1, fingerprint="data-a")
    m, t, o = setup()
    with pytest.raises(EcrsError, match="other data or settings"):
        train_loop(t, m, o, cfg, tmp_path, fingerprint="data-b")
    assert train_loop(t, m, o, cfg, tmp_path, fingerprint="data-a").epoch == 3  # its own run resumes


def test_weight_average_validates_on_the_average_and_resumes(tmp_path):
    """Averaging changes what validation sees (not the training path), and the checkpoint carries the average."""
    cfg = LoopConfig(epochs=3, batch_size=8, patience=0, seed=3, ema_decay=0.9)
    m0, t0, o0 = setup(dropout=0.2)
    plain = train_loop(t0, m0, o0, LoopConfig(epochs=3, batch_size=8, patience=0, seed=3), tmp_path / "plain")
    m, t, o = setup(dropout=0.2)
    straight = train_loop(t, m, o, cfg, tmp_path / "straight")
    assert_same(params(m0), params(m))  # the model keeps its trained weights; only validation used the average
    assert [h["train_loss"] for h in plain.history] == [h["train_loss"] for h in straight.history]
    m1, t1, o1 = setup(dropout=0.2)
    train_loop(t1, m1, o1, cfg, tmp_path / "resumed", stop_after_epochs=1)
    m2, t2, o2 = setup(dropout=0.2, seed=123)
    second = train_loop(t2, m2, o2, cfg, tmp_path / "resumed")
    assert [h["R@50"] for h in straight.history] == [h["R@50"] for h in second.history]
    assert [h["R@1"] for h in straight.history] == [h["R@1"] for h in second.history]


class Crash(Exception):
    pass


def test_mid_epoch_resume_equals_uninterrupted(tmp_path):
    cfg = LoopConfig(epochs=2, batch_size=8, patience=0, checkpoint_every=2)
    m, t, o = setup(dropout=0.2)
    train_loop(t, m, o, cfg, tmp_path / "straight")
    m1, t1, o1 = setup(dropout=0.2)
    calls = {"n": 0}
    real_loss = t1.loss

    def crashing_loss(micro, sync):
        calls["n"] += 1
        if calls["n"] == 8:  # epoch 1, after the step-6 checkpoint (5 steps per epoch)
            raise Crash
        return real_loss(micro, sync)

    t1.loss = crashing_loss
    with pytest.raises(Crash):
        train_loop(t1, m1, o1, cfg, tmp_path / "resumed")
    m2, t2, o2 = setup(dropout=0.2, seed=7)
    state = train_loop(t2, m2, o2, cfg, tmp_path / "resumed")
    assert state.finished and state.step == 10
    assert_same(params(m), params(m2))


TINY_YAML = """\
name: tiny
out_dir: {out}
entity_refresh_every: 2
threads: 1
data: {{data_dir: {data}, kg_dir: {kg}, embedding_cache: {cache}}}
model: {{d_kg: 8, d_model: 8, d_emotion: 4, n_task_tokens: 2, max_turns: 4, max_entities: 4, reader_layers: 1,
        reader_heads: 2, dropout: 0.0}}
train: {{epochs: 2, batch_size: 8, grad_accum: {accum}, lr: 0.01, patience: 0}}
"""


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed")
def test_ddp_two_processes_equal_one(tmp_path):
    kg, data, cache = write_tiny_dataset(tmp_path)
    bin_dir = Path(sys.executable).parent
    runs = {}
    for world, accum in ((1, 2), (2, 1)):  # same global batch of 8: 1 rank × 2 micro-batches vs 2 ranks × 1
        out = tmp_path / f"w{world}"
        cfg = tmp_path / f"tiny{world}.yaml"
        cfg.write_text(TINY_YAML.format(out=out, data=data, kg=kg, cache=cache, accum=accum))
        if world == 1:
            _run([str(bin_dir / "ecrs"), "train", "recommender", "--config", str(cfg)], tmp_path)
        else:
            _run([str(bin_dir / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "ecrs.cli", "train",
                  "recommender", "--config", str(cfg)], tmp_path)
        runs[world] = torch.load(out / "checkpoint.pt", weights_only=False)
        assert (out / "model.pt").exists() and (out / "metrics.json").exists()
    assert runs[1]["state"]["step"] == runs[2]["state"]["step"] == 10
    assert_same(runs[1]["model"], runs[2]["model"], atol=1e-5)
