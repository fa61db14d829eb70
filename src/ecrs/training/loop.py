"""The one training loop: micro-batches, gradient accumulation, optimizer steps, validation, early stopping,
checkpoint + resume, data parallelism (torchrun: gloo on CPU, nccl on CUDA).

What a model brings is a `TrainTask` (its number of training rows, how to batch rows, the loss of a micro-batch,
what to do around an optimizer step, how to validate); the loop owns the data order and everything about *when*:

    for epoch:
        for i, rows in enumerate(micro_batch_rows(seed, epoch)):    # this rank's share, same order on resume
            micro = task.make_micro(rows)
            (task.loss(micro) / k).backward()                    # DDP syncs only on the k-th micro-batch
            if (i + 1) % k == 0:                                 # not i % k == 0: the reference code stepped
                task.before_optimizer_step(...); clip; step; zero    # after the first micro-batch
        metric = task.validate(); early stopping on it; checkpoint

Determinism: every rank seeds with the same `seed` (so replicas start equal); the data order of an epoch depends only on (seed, epoch); the checkpoint holds model, optimizer, scheduler
and RNG states, so a resumed run continues exactly where the interrupted one stopped (tested).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ecrs.errors import EcrsError


@dataclass
class LoopConfig:
    epochs: int = 20
    batch_size: int = 256  # rows per optimizer step, over all ranks and micro-batches
    grad_accum: int = 1  # micro-batches per optimizer step (per rank)
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: Literal["constant", "linear", "cosine"] = "constant"  # after warmup, down to 0 at the last epoch
    max_grad_norm: float = 0.0  # 0 = no clipping
    max_steps: int = 0  # 0 = no budget; else stop after this many optimizer steps (reduced-budget runs)
    patience: int = 3  # epochs without a better validation metric before stopping; 0 = never stop early
    checkpoint_every: int = 0  # optimizer steps between mid-epoch checkpoints; 0 = at epoch ends only
    # Exponential moving average of the weights (0 = off): validation, early stopping and the saved best model use
    # the average, which smooths the epoch-to-epoch noise of small-data training.
    ema_decay: float = 0.0
    seed: int = 0


class TrainTask(Protocol):
    n_rows: int  # training rows of one epoch (the loop orders and cuts them)

    def make_micro(self, rows: np.ndarray) -> Any:
        """The micro-batch of these row indices (this rank's share)."""

    def loss(self, micro: Any, sync: bool) -> torch.Tensor:
        """Scalar loss of one micro-batch; `sync` = False inside accumulation (skip DDP's all-reduce)."""

    def before_optimizer_step(self, boundary: bool) -> None:
        """Runs once per optimizer step, after the k-th backward; `boundary` = a checkpoint or epoch end follows."""

    def validate(self) -> dict[str, float]:
        """Validation metrics (the loop maximises `metric` in them); the loop sets train mode again after."""


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
            t /= self.world
        return t

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def init_distributed() -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; without them this is a single process. CUDA when available."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    return Dist(rank=rank, world=world, device=device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class LoopState:
    epoch: int = 0  # epoch in progress (or next to start)
    micro_done: int = 0  # micro-batches of `epoch` already consumed (mid-epoch resume)
    step: int = 0  # optimizer steps so far
    best: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # training wall time so far (all sessions of a resumed run)
    finished: bool = False


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class WeightAverage:
    """An exponential moving average of parameters, swapped in for validation and saving.

    The decay ramps up as min(decay, (1 + t) / (10 + t)) over optimizer steps t, so the first steps are not pinned to
    the initial weights (the usual bias correction). Hand-written rather than `torch.optim.swa_utils.AveragedModel`:
    that keeps a deep copy of the whole model, frozen LM included, and the tasks validate the model they hold.
    """

    def __init__(self, params: list[nn.Parameter], decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.params, self.decay = params, decay
        self.shadow = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p, 1.0 - d)

    @contextlib.contextmanager
    def swapped_in(self):
        """The averaged weights in the model for the duration; the trained ones back after."""
        with torch.no_grad():
            live = [p.detach().clone() for p in self.params]
            for p, s in zip(self.params, self.shadow):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, v in zip(self.params, live):
                    p.copy_(v)


def lr_lambda(warmup: int, schedule: str = "constant", total: int = 0):
    """Multiplier of the base learning rate at optimizer step `step`: linear warmup, then constant or a linear /
    cosine decay reaching 0 at step `total` (the planned number of steps; early stopping may end sooner)."""
    def f(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant" or total <= warmup:
            return 1.0
        done = min(1.0, (step - warmup) / max(1, total - warmup))
        return 1.0 - done if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * done))
    return f


def train_loop(
    task: TrainTask,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: LoopConfig,
    out_dir: Path,
    dist: Dist | None = None,
    metric: str = "R@50",
    save_best=None,
    desc: str = "train",
    stop_after_epochs: int | None = None,
    fingerprint: str = "",
) -> LoopState:
    """Train until `cfg.epochs`, early stopping, or `cfg.max_steps`; resume from `out_dir/checkpoint.pt` if present.

    `model` holds every trained parameter (for clipping and the checkpoint); `save_best(state)` is called on rank 0
    whenever the validation `metric` improves. `stop_after_epochs` ends this session after that many epochs
    (simulates an interruption in tests; the checkpoint lets a later call continue). `fingerprint` names the data
    and settings: a checkpoint left by another one (the data re-prepared since, a changed config) is refused, not
    silently resumed (a finished run would otherwise "retrain" in no time on its old weights).
    """
    dist = dist or Dist()
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "checkpoint.pt"
    per_step_rows = cfg.batch_size
    planned = (task.n_rows // per_step_rows) * cfg.epochs
    if cfg.max_steps > 0:
        planned = min(planned, cfg.max_steps) if planned else cfg.max_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.warmup_steps, cfg.schedule, planned))
    state = LoopState()
    params = [p for p in model.parameters() if p.requires_grad]
    ema = WeightAverage(params, cfg.ema_decay) if cfg.ema_decay > 0 else None
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dist.device, weights_only=False)
        if fingerprint and ck.get("fingerprint") != fingerprint:
            raise EcrsError(f"{ckpt_path} was left by a run on other data or settings; delete {out_dir} to train "
                            "again (or restore what it was trained on to resume it)")
        model.load_state_dict(ck["model"], strict=False)
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        state = LoopState(**ck["state"])
        _set_rng_state(ck["rng"])
        if ema is not None and ck.get("ema") is not None:  # else (averaging newly turned on) it starts here
            for sh, v in zip(ema.shadow, ck["ema"]):
                sh.copy_(v)
        if dist.main:
            print(f"resumed from {ckpt_path} (epoch {state.epoch}, step {state.step})", flush=True)
    if state.finished:
        return state

    per_rank = cfg.batch_size // dist.world
    if per_rank * dist.world != cfg.batch_size or per_rank % cfg.grad_accum:
        raise ValueError(f"batch_size {cfg.batch_size} must split evenly over {dist.world} ranks × "
                         f"{cfg.grad_accum} micro-batches")
    k = cfg.grad_accum
    micro_size = per_rank // k
    steps_per_epoch = task.n_rows // cfg.batch_size  # the incomplete tail of an epoch is dropped
    if steps_per_epoch == 0:
        raise ValueError(f"{task.n_rows} training rows are fewer than one batch of {cfg.batch_size}")

    def save_checkpoint() -> None:
        if dist.main:
            out_dir.mkdir(parents=True, exist_ok=True)
            sd = {n: v for n, v in model.state_dict().items() if ".lm." not in n}  # the frozen LM is reloaded
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save({"model": sd, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "state": asdict(state), "rng": _rng_state(), "fingerprint": fingerprint,
                        "ema": ema.shadow if ema is not None else None}, tmp)
            tmp.replace(ckpt_path)
        dist.barrier()

    session_epochs = 0
    model.train()
    while state.epoch < cfg.epochs and not state.finished:
        t0 = time.time()
        epoch = state.epoch
        rows = micro_batch_rows(steps_per_epoch * cfg.batch_size, task.n_rows, cfg.seed, epoch, micro_size,
                                dist.rank, dist.world)
        bar = tqdm(total=steps_per_epoch, initial=state.micro_done // k, desc=f"{desc} epoch {epoch}",
                   unit="step", disable=not dist.main, mininterval=5, dynamic_ncols=True)
        running, n_loss = 0.0, 0
        budget_hit = False
        for i, micro_rows in enumerate(rows):
            if i < state.micro_done:  # resumed mid-epoch: consumed before the interruption
                continue
            last_of_step = (i + 1) % k == 0
            loss = task.loss(task.make_micro(micro_rows), sync=last_of_step)
            (loss / k).backward()
            running += float(loss.detach())
            n_loss += 1
            if last_of_step:
                state.step += 1
                budget_hit = cfg.max_steps > 0 and state.step >= cfg.max_steps
                mid_ckpt = cfg.checkpoint_every > 0 and state.step % cfg.checkpoint_every == 0
                epoch_end = (i + 1) // k == steps_per_epoch
                task.before_optimizer_step(boundary=mid_ckpt or budget_hit or epoch_end)
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update(state.step)
                state.micro_done = i + 1
                bar.update(1)
                bar.set_postfix(loss=f"{running / n_loss:.4f}", refresh=False)
                if budget_hit:
                    break
                if mid_ckpt and not epoch_end:
                    state.seconds += time.time() - t0
                    t0 = time.time()
                    save_checkpoint()
        bar.close()
        state.seconds += time.time() - t0
        with ema.swapped_in() if ema is not None else contextlib.nullcontext():
            metrics = task.validate()
            model.train()
            value = metrics[metric]
            record = {"epoch": epoch, "step": state.step, "train_loss": running / max(n_loss, 1),
                      "seconds": round(state.seconds, 1), **metrics}
            state.history.append(record)
            if value > state.best:
                state.best, state.best_epoch, state.bad_epochs = value, epoch, 0
                if dist.main and save_best is not None:
                    save_best(state)  # the averaged weights, when averaging
            else:
                state.bad_epochs += 1
        if dist.main:
            print(json.dumps({k_: (round(v, 4) if isinstance(v, float) else v) for k_, v in record.items()}),
                  flush=True)
        state.epoch, state.micro_done = epoch + 1, 0
        if budget_hit or (cfg.patience > 0 and state.bad_epochs >= cfg.patience) or state.epoch >= cfg.epochs:
            state.finished = True
        save_checkpoint()
        session_epochs += 1
        if stop_after_epochs is not None and session_epochs >= stop_after_epochs:
            break
    return state


def micro_batch_rows(n_used: int, n_rows: int, seed: int, epoch: int, micro_size: int, rank: int,
                     world: int) -> Iterator[np.ndarray]:
    """This rank's micro-batches of one epoch: a (seed, epoch)-seeded permutation of the `n_rows` rows, its first
    `n_used` cut into global micro-batches of `micro_size × world` rows; rank r takes every world-th row of each.
    The order depends only on (seed, epoch), so 1 rank × k micro-batches and N ranks see the same global batches."""
    order = np.random.default_rng([seed, epoch]).permutation(n_rows)[:n_used]
    g = micro_size * world
    for start in range(0, n_used - g + 1, g):
        yield order[start : start + g][rank::world]
