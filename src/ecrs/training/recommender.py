"""Training a recommender (ECR, its ablations, UniCRS, KBRD) with the one loop (`ecrs.training.loop`).

setup: prepared samples + the turn-embedding cache (fast backbone) or the tokenizer (lm backbone) -> features;
       the emotion-filtered co-occurrence matrix from the TRAINING dialogues (global part);
train: rows = (sample, target movie, feedback weight); the entity table is recomputed once per
       `entity_refresh_every` optimizer steps (`EntityTableWindow`: exact, the encoder accumulates gradients over the
       window); only the head runs under DistributedDataParallel;
       validation R@50 (movies only) each epoch drives early stopping;
save:  `<out_dir>/model.pt` (best weights + model config), `cooccurrence.npz`, `config.yaml`, `metrics.json`
       (history, times, hardware, training data manifest), `checkpoint.pt` (resume);
then:  the context shift fitted on validation, `calibration.json` (`ecrs.training.calibrate`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecrs.config import save_config, to_dict
from ecrs.data.cooccurrence import Cooccurrence, load_training_cooccurrence, save_matrix
from ecrs.data.datasets import DATASETS, load_kg
from ecrs.data.kg import KnowledgeGraph
from ecrs.data.prepare import load_samples
from ecrs.data.samples import Sample
from ecrs.evaluation.evaluate import evaluate_scores
from ecrs.models.build import build_model
from ecrs.models.context_encoder import TurnEmbeddingCache
from ecrs.models.entity_encoder import EntityTableWindow
from ecrs.models.prefix_lm import load_lm
from ecrs.models.recommender import (
    Featurizer,
    ModelConfig,
    RecBatch,
    RecommenderModel,
    entity_name_vectors,
    feedback_weights,
)
from ecrs.provenance import machine
from ecrs.training.calibrate import calibrate_run
from ecrs.training.loop import Dist, LoopConfig, init_distributed, seed_everything, train_loop


@dataclass
class DataConfig:
    dataset: str = "redial"  # a name of the dataset registry (ecrs.data.datasets)
    data_dir: str = "artifacts/data"
    embedding_cache: str = "artifacts/cache/minilm"  # MiniLM turn vectors (fast backbone), shared by datasets
    max_valid_samples: int = 0  # 0 = the whole validation split (lm backbone runs use a subset)
    # "" = the dataset's bundled graph; else a folder with UniCRS-format dbpedia_subkg.json, entity2id.json,
    # relation2id.json, item_ids.json (an own catalogue; the tests' 30-entity graph)
    kg_dir: str = ""
    # < 1 trains on that fraction of the training dialogues (samples and co-occurrence counts), for learning curves:
    # a fixed subset that depends only on the set of dialogue ids, the same for every model and seed
    train_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"data.dataset {self.dataset!r} is not one of {', '.join(DATASETS)}")
        if not 0 < self.train_fraction <= 1:
            raise ValueError(f"data.train_fraction must be in (0, 1], got {self.train_fraction}")


@dataclass
class PretrainConfig:
    """UniCRS's prompt pre-training (lm backbone): every recommendation turn with the answer in the input."""

    enabled: bool = False
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=1, batch_size=8, lr=5e-4, patience=0))


@dataclass
class RecommenderTrainConfig:
    name: str = "ecr-fast"
    out_dir: str = "artifacts/recommender/{dataset}/{name}-s{seed}"
    entity_refresh_every: int = 1  # optimizer steps per entity-table recomputation (paper: every step)
    threads: int = 0  # torch threads per process; 0 = torch's default
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)

    def resolved_out_dir(self) -> Path:
        return Path(self.out_dir.format(dataset=self.data.dataset, name=self.name, seed=self.train.seed))


def training_dialogues(data: DataConfig, train: list[Sample]) -> set[str] | None:
    """The training dialogues kept under `train_fraction` (None = all)."""
    if data.train_fraction >= 1:
        return None
    ids = sorted({s.dialog_id for s in train})
    # A prefix of one seeded permutation: smaller fractions are subsets of larger ones (nested learning curve).
    order = random.Random(0).sample(ids, len(ids))
    return set(order[: max(1, round(len(ids) * data.train_fraction))])


def load_valid(data: DataConfig) -> list[Sample]:
    valid = load_samples(data.data_dir, data.dataset, "valid")
    if data.max_valid_samples and len(valid) > data.max_valid_samples:
        # A fixed, seed-independent subset so every run validates on the same dialogues.
        keep = np.random.default_rng(0).choice(len(valid), data.max_valid_samples, replace=False)
        valid = [valid[i] for i in sorted(keep)]
    return valid


def turn_vector_lookup(cache_dir: str):
    """texts -> (n, 384) vectors from the on-disk MiniLM cache, embedding (and persisting) what is missing."""
    return TurnEmbeddingCache(cache_dir).encode_cached


class RecommenderTask:
    """The `TrainTask` of one recommender: rows, micro-batches, loss through the table window, validation."""

    def __init__(self, model: RecommenderModel, head: nn.Module, window: EntityTableWindow, feats: Featurizer,
                 train_samples: list[Sample], valid_feats: Featurizer, valid_samples: list[Sample],
                 kg: KnowledgeGraph, dist: Dist, input_builder=None):
        self.model, self.head, self.window, self.feats, self.dist = model, head, window, feats, dist
        self.sample_idx, self.targets, self.weights = feedback_weights(train_samples, model.cfg)
        self.n_rows = len(self.sample_idx)
        self.valid_feats, self.valid_samples, self.kg = valid_feats, valid_samples, kg

    def make_micro(self, rows: np.ndarray) -> RecBatch:
        return self.feats.batch(self.sample_idx[rows], self.targets[rows], self.weights[rows]).to(self.dist.device)

    def loss(self, micro: RecBatch, sync: bool) -> torch.Tensor:
        no_sync = getattr(self.head, "no_sync", None)
        ctx = no_sync() if (no_sync is not None and not sync) else contextlib.nullcontext()
        with ctx:
            return self.head(micro, self.window.table()).loss

    def before_optimizer_step(self, boundary: bool) -> None:
        if self.window.after_micro_batches() or boundary:
            self.window.flush(all_reduce=self.dist.all_reduce_mean)

    def validate(self) -> dict[str, float]:
        self.window.discard()
        scores = self.model.score_items(self.valid_feats, self.kg.item_ids, self.dist.device)
        m = evaluate_scores(scores, self.valid_samples, self.kg)["standard"]
        return {k: float(m[k]) for k in ("R@1", "R@10", "R@50") if m.get(k) is not None}


def train_recommender(cfg: RecommenderTrainConfig, stop_after_epochs: int | None = None) -> dict[str, Any]:
    """Setup -> (pre-train) -> train -> save; returns the run summary (also written to metrics.json)."""
    wall0 = time.time()
    dist = init_distributed()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.train.seed)
    out = cfg.resolved_out_dir()
    mcfg = cfg.model
    kg = load_kg(cfg.data.dataset, cfg.data.kg_dir)
    train = load_samples(cfg.data.data_dir, cfg.data.dataset, "train")
    kept = training_dialogues(cfg.data, train)
    if kept is not None:
        train = [s for s in train if s.dialog_id in kept]
    valid = load_valid(cfg.data)

    cooc: Cooccurrence | None = None
    if mcfg.kind == "ecr" and mcfg.global_emotion:
        cooc = load_training_cooccurrence(cfg.data.data_dir, cfg.data.dataset, kg.num_entities,
                                          shared_emotion=mcfg.cooccurrence == "emotion", dialogues=kept)
        if dist.main:
            print(f"co-occurrence ({mcfg.cooccurrence} pairs, training dialogues): {cooc.counts.nnz} non-zeros, "
                  f"{int((cooc.counts.getnnz(axis=1) > 0).sum())} entities with a row", flush=True)

    lm = tokenizer = None
    if mcfg.kind == "ecr" and mcfg.backbone == "lm":
        lm, tokenizer = load_lm(mcfg.lm_gguf)
    # Only rank 0 embeds missing texts (the cache is shared on disk); the others wait, then read it.
    text_features = mcfg.backbone == "fast" and mcfg.kind == "ecr"
    lookup = turn_vector_lookup(cfg.data.embedding_cache) if text_features or mcfg.entity_name_features else None
    if lookup is not None and not dist.main:
        dist.barrier()
    feats = Featurizer(mcfg, train, lookup if text_features else None, tokenizer, cooc)
    valid_feats = Featurizer(mcfg, valid, lookup if text_features else None, tokenizer, cooc)
    names = entity_name_vectors(kg, lookup) if mcfg.entity_name_features else None
    if lookup is not None and dist.main:
        dist.barrier()

    model = build_model(mcfg, kg, lm, names).to(dist.device)
    head: nn.Module = model.head
    if dist.world > 1:
        for p in model.parameters():  # replicas start equal even if a constructor drew random numbers differently
            torch.distributed.broadcast(p.data, src=0)
        head = nn.parallel.DistributedDataParallel(model.head, device_ids=[dist.device] if dist.device.type ==
                                                   "cuda" else None)
    window = EntityTableWindow(model.encoder, cfg.entity_refresh_every)

    setup_seconds = time.time() - wall0
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        if cooc is not None:
            save_matrix(cooc.matrix(), out / "cooccurrence.npz")  # inference reads the full P
    pretrain_summary = None
    if mcfg.backbone == "lm" and cfg.pretrain.enabled:
        pretrain_summary = pretrain_prompt(cfg, model, head, window, train, valid, kg, dist, tokenizer, cooc, out)

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    task = RecommenderTask(model, head, window, feats, train, valid_feats, valid, kg, dist)

    def save_best(state) -> None:
        torch.save({"model_config": to_dict(mcfg), "dataset": cfg.data.dataset, "kg_dir": cfg.data.kg_dir,
                    "embedding_cache": cfg.data.embedding_cache, "name": cfg.name,
                    "model": model.trainable_state_dict(), "epoch": state.best_epoch, "valid_R@50": state.best},
                   out / "model.pt")

    # A resumed run adds the wall time of its earlier sessions, so `wall_seconds` is the whole training's.
    resumed = (out / "checkpoint.pt").exists()
    previous_wall = 0.0
    if resumed and (out / "metrics.json").exists():
        previous_wall = float(json.loads((out / "metrics.json").read_text()).get("wall_seconds", 0.0))
    state = train_loop(task, model, optimizer, cfg.train, out, dist, metric="R@50", save_best=save_best,
                       desc=cfg.name, stop_after_epochs=stop_after_epochs, fingerprint=run_fingerprint(cfg))
    summary = {
        "name": cfg.name, "dataset": cfg.data.dataset, "seed": cfg.train.seed, "finished": state.finished,
        "best_valid_R@50": state.best, "best_epoch": state.best_epoch, "epochs_run": state.epoch,
        "optimizer_steps": state.step, "train_rows": task.n_rows, "train_samples": len(train),
        "valid_samples": len(valid), "loop_seconds": round(state.seconds, 1),
        "setup_seconds": round(setup_seconds, 1), "wall_seconds": round(previous_wall + time.time() - wall0, 1),
        "resumed": resumed,
        "world_size": dist.world, "hardware": machine(), "history": state.history,
        "training_data": _data_manifest(cfg.data), "pretrain": pretrain_summary,
        "parameters": {"trainable": sum(p.numel() for p in trainable),
                       "frozen": sum(p.numel() for p in model.parameters() if not p.requires_grad)},
    }
    if dist.main:
        if state.best_epoch is not None and (out / "model.pt").exists():
            c = calibrate_run(out, valid)  # the context shift, on validation (`ecrs.training.calibrate`)
            summary["calibration"] = {"context_shift": c["context_shift"], "g": c["g"]}
        (out / "metrics.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


# ---------------------------------------------------------------- UniCRS's prompt pre-training (lm backbone)

# UniCRS's prompt pre-training (lm backbone): before learning to recommend, the prompt encoder (entity encoder,
# fusion, emotion parts, prefix MLP) learns to point the frozen LM at the entities of a turn whose answer it can read.
#
# Every recommendation turn is used with its response appended to the dialogue (the movie's title is in the input),
# and the target is the recommended movie; the loss and the model are the recommender's own. Its recall, measured on
# validation turns in the same answer-in-input form, is the health check UniCRS reports (R@1 ≈ 0.4–0.57 healthy).
# The task tokens are re-initialised afterwards: they belong to the recommendation task, not to pre-training.

def with_answer(samples: list[Sample]) -> list[Sample]:
    """The same turns with the recommender's response appended to the context."""
    return [dataclasses.replace(s, context=[*s.context, ("recommender", s.response)]) for s in samples]


def pretrain_prompt(cfg, model: RecommenderModel, head: nn.Module, window: EntityTableWindow,
                    train: list[Sample], valid: list[Sample], kg: KnowledgeGraph, dist: Dist, tokenizer, cooc,
                    out: Path) -> dict[str, Any]:
    t0 = time.time()
    p_train, p_valid = with_answer(train), with_answer(valid)
    feats = Featurizer(model.cfg, p_train, None, tokenizer, cooc)
    valid_feats = Featurizer(model.cfg, p_valid, None, tokenizer, cooc)
    task = RecommenderTask(model, head, window, feats, p_train, valid_feats, p_valid, kg, dist)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.pretrain.loop.lr, weight_decay=cfg.pretrain.loop.weight_decay)
    best: dict[str, torch.Tensor] = {}

    best_path = out / "pretrain" / "best.pt"

    def keep_best(state) -> None:
        best.clear()
        best.update({k: v.detach().clone() for k, v in model.trainable_state_dict().items()})
        best_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(best, best_path)

    state = train_loop(task, model, optimizer, cfg.pretrain.loop, out / "pretrain", dist, metric="R@50",
                       save_best=keep_best, desc=f"{cfg.name} pretrain")
    if not best and best_path.exists():  # pre-training finished in an earlier session
        best = torch.load(best_path, weights_only=False)
    if best:
        model.load_state_dict(best, strict=False)
    if dist.world > 1:
        for p in model.parameters():
            torch.distributed.broadcast(p.data, src=0)
    with torch.no_grad():  # fresh task tokens for the recommendation task
        g = torch.Generator().manual_seed(cfg.train.seed)
        task_tokens = model.head.prompt.task
        task_tokens.copy_(torch.randn(task_tokens.shape, generator=g) * task_tokens.shape[1] ** -0.5)
    summary = {"valid_answer_in_input": state.history[state.best_epoch] if state.history else None,
               "optimizer_steps": state.step, "seconds": round(time.time() - t0, 1),
               "history": state.history}
    if dist.main:
        (out / "pretrain" / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def run_fingerprint(cfg: RecommenderTrainConfig) -> str:
    """The settings and the prepared samples a run trains on (their files' bytes): a checkpoint is resumed only
    by the run that left it (`train_loop`)."""
    h = hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True, default=str).encode())
    for split in ("train", "valid"):
        path = Path(cfg.data.data_dir) / cfg.data.dataset / f"{split}.jsonl.gz"
        if path.exists():
            h.update(path.read_bytes())
    return h.hexdigest()


def _data_manifest(data: DataConfig) -> dict[str, Any]:
    path = Path(data.data_dir) / data.dataset / "manifest.json"
    info: dict[str, Any] = {"path": f"{data.data_dir}/{data.dataset}/train", "train_fraction": data.train_fraction}
    if path.exists():
        m = json.loads(path.read_text())
        info["emotions"] = m.get("stats", {}).get("emotions")
        info["train"] = m.get("stats", {}).get("train")
    return info
