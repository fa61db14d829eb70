"""UniCRS's prompt pre-training (lm backbone): before learning to recommend, the prompt encoder (entity encoder,
fusion, emotion parts, prefix MLP) learns to point the frozen LM at the entities of a turn whose answer it can read.

Every recommendation turn is used with its response appended to the dialogue (the movie's title is in the input),
and the target is the recommended movie; the loss and the model are the recommender's own. Its recall, measured on
validation turns in the same answer-in-input form, is the health check UniCRS reports (R@1 ≈ 0.4–0.57 healthy).
The task tokens are re-initialised afterwards: they belong to the recommendation task, not to pre-training.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ecrs.data.kg import KnowledgeGraph
from ecrs.data.samples import Sample
from ecrs.models.entity_encoder import EntityTableWindow
from ecrs.models.recommender import Featurizer, RecommenderModel
from ecrs.training.loop import Dist, train_loop


def with_answer(samples: list[Sample]) -> list[Sample]:
    """The same turns with the recommender's response appended to the context."""
    return [dataclasses.replace(s, context=[*s.context, ("recommender", s.response)]) for s in samples]


def pretrain_prompt(cfg, model: RecommenderModel, head: nn.Module, window: EntityTableWindow,
                    train: list[Sample], valid: list[Sample], kg: KnowledgeGraph, dist: Dist, tokenizer, cooc,
                    out: Path) -> dict[str, Any]:
    from ecrs.training.recommender import RecommenderTask

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
