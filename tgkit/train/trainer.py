"""The training loop: Adam + ReduceLROnPlateau on the paper's loss, with hooks and exact resume.

One :class:`Trainer` runs in every process (``torchrun`` for several). The batch order of
epoch ``e`` is a permutation drawn from ``seed + e`` (``DistributedSampler``), cut into
``batch_size / world_size`` structures per process, so process ``r``'s part of global batch
``k`` is structures ``perm[k*batch_size + r :: world_size]`` and the union over processes is
exactly the batch a single process sees. Together with the globally normalised loss
(:mod:`tgkit.train.loss`) and averaged gradients (:mod:`tgkit.train.distributed`), N processes
reproduce one process to float rounding.

Exact resume: a checkpoint stores the model, optimizer and scheduler states, the position in
the epoch (batches done), the running epoch loss, the smoothed validation loss, every hook's
state and the RNG states. Because the batch order is a function of (seed, epoch), resuming
skips the batches already done without reading them, and an interrupted run continues bit
for bit on CPU.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from tgkit import keys as K
from tgkit.config import TrainConfig
from tgkit.data.graph import collate, to_device
from tgkit.errors import ConfigError
from tgkit.nn.model import load_weights
from tgkit.train.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from tgkit.train.distributed import SINGLE, DistEnv, all_reduce_sum, average_gradients
from tgkit.train.hooks import Hook, StepRecord
from tgkit.train.loss import TraceGradLoss
from tgkit.train.metrics import EvalResult, MetricAccumulator
from tgkit.train.schedule import WeightAverage, cosine_lr


def _loader(dataset: Dataset, batches: Sequence[Sequence[int]], num_workers: int,
            device: torch.device) -> DataLoader:
    # pinned host memory lets the host-to-GPU copy of the next batch run asynchronously
    return DataLoader(dataset, batch_sampler=list(batches), collate_fn=collate,
                      num_workers=num_workers, pin_memory=device.type == "cuda")


def _chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    return [list(indices[k:k + size]) for k in range(0, len(indices), size)]


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    dataset: Dataset,
    device: torch.device | str = "cpu",
    env: DistEnv = SINGLE,
    batch_size: int = 1,
    num_workers: int = 0,
) -> EvalResult:
    """Metrics of ``model`` on ``dataset`` (a :class:`tgkit.data.store.GraphDataset`).

    Each process evaluates every ``world_size``-th structure; the sums are reduced over
    processes, so every process returns the metrics of the whole set. Runs under
    ``torch.no_grad`` (Grad's v is in closed form and needs no autograd).
    """
    device = torch.device(device)
    acc = MetricAccumulator(dataset.basis, dataset.all_names, device)
    mine = list(range(len(dataset)))[env.rank::env.world_size]
    was_training = model.training
    model.eval()
    try:
        for graph in _loader(dataset, _chunks(mine, batch_size), num_workers, device):
            graph = to_device(graph, device)
            acc.update(graph, model(graph))
    finally:
        model.train(was_training)
    acc.reduce(all_reduce_sum)
    return acc.result()


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam, with PyTorch's fused kernel where the parameters' device has one (CPU and CUDA in
    torch >= 2.4): one kernel per step for all tensors instead of about 12 operations per
    tensor (the "ATen ops per step" of ``bench/bench_step.py --optimizer plain`` against
    ``tgkit``). The same update rule (tested); where fusing is unavailable, Adam's default."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


class Trainer:
    """Trains ``model`` on ``train_set``, validating on ``val_set``.

    Args:
        model: returns the dict of :mod:`tgkit.keys` outputs (``H_PRED``, ``H_MASK``, ...).
            It is moved to ``device``; its dtype must match the datasets'.
        train_set, val_set: graph datasets (``basis`` and ``all_names`` attributes, items from
            :func:`tgkit.data.graph.structure_to_graph`). Without ``val_set`` the training set
            is used for validation metrics.
        config: optimisation settings (:class:`tgkit.config.TrainConfig`).
        hooks: called in list order; :class:`tgkit.train.hooks.Checkpoint` hooks run last, so
            the state they save includes what the other hooks did at that step.
        env: process rank and world size (:func:`tgkit.train.distributed.init_distributed`).
        device: where the model and batches live.
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train_set: Dataset,
        val_set: Dataset | None,
        config: TrainConfig,
        hooks: Sequence[Hook] = (),
        env: DistEnv = SINGLE,
        device: torch.device | str = "cpu",
        num_workers: int = 0,
    ) -> None:
        if config.batch_size % env.world_size:
            raise ConfigError(f"train.batch_size: {config.batch_size} is not a multiple of the "
                              f"{env.world_size} processes")
        if len(train_set) == 0:
            raise ConfigError("data: the training set is empty")
        self.config, self.env, self.device = config, env, torch.device(device)
        self.num_workers = num_workers
        self._t0 = time.time()
        self.model = model.to(self.device)
        self.train_set = train_set
        self.val_set = val_set if val_set is not None and len(val_set) else train_set
        names = [type(h).__name__ for h in hooks]
        self.hooks = sorted(hooks, key=lambda h: getattr(h, "order", 0))
        self._hook_keys = [h.name if names.count(h.name) == 1 else f"{h.name}.{k}"
                           for k, h in enumerate(self.hooks)]
        self.loss_fn = TraceGradLoss(config.trace_lambda)
        self.optimizer = adam(self.model.parameters(), config.lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience,
            cooldown=config.lr_cooldown, threshold=config.lr_threshold, threshold_mode="rel")
        self.local_batch = config.batch_size // env.world_size
        self.sampler = DistributedSampler(train_set, num_replicas=env.world_size, rank=env.rank,
                                          shuffle=True, seed=config.seed, drop_last=False)
        self.steps_per_epoch = math.ceil(len(self.sampler) / self.local_batch)
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        self.ema = WeightAverage(self.model, config.ema_decay) if config.ema_decay > 0 else None
        # progress; all saved in checkpoints
        self.epoch = 0
        self.batch_in_epoch = 0
        self.global_step = 0
        self.smoothed_val = math.nan
        self.last_val_step = -1
        self.stop_reason = ""
        self.epoch_loss = torch.zeros(2, dtype=torch.float64, device=self.device)  # sum, count
        self.last_metrics: dict[str, float] = {}
        self.cpu_s = 0.0  # process CPU seconds of training so far, across resumes
        self._cpu0 = time.process_time()
        self.extra_state: dict[str, Any] = {}  # e.g. config and basis, saved as they are

    # ------------------------------------------------------------------ state
    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def cpu_seconds(self) -> float:
        """CPU seconds this process spent in the run so far (summed over resumes): the cost
        measure of the converged benchmarks, less sensitive than wall time to a busy machine."""
        return self.cpu_s + time.process_time() - self._cpu0

    def stop(self, reason: str) -> None:
        """Ask the loop to stop after the current step (hooks call this)."""
        self.stop_reason = reason

    def _call(self, event: str, *args: Any) -> None:
        for h in self.hooks:
            getattr(h, event)(self, *args)

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            **self.extra_state,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "trainer": {
                "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "global_step": self.global_step, "smoothed_val": self.smoothed_val,
                "last_val_step": self.last_val_step, "stop_reason": self.stop_reason,
                "epoch_loss": self.epoch_loss.detach().cpu(), "world_size": self.env.world_size,
                "last_metrics": dict(self.last_metrics), "cpu_s": self.cpu_seconds(),
            },
            "hooks": {k: h.state_dict() for k, h in zip(self._hook_keys, self.hooks, strict=True)},
            "rng": rng_state(),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_weights(self.model, state["model"])
        fused = [g.get("fused") for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])
        for group, f in zip(self.optimizer.param_groups, fused, strict=True):
            group["fused"] = f  # the saved flag (older checkpoints: None) must not switch it off
        self.scheduler.load_state_dict(state["scheduler"])
        t = state["trainer"]
        if t["world_size"] != self.env.world_size and t["batch_in_epoch"]:
            raise ConfigError(f"cannot resume mid-epoch with {self.env.world_size} processes from "
                              f"a checkpoint written by {t['world_size']}")
        self.epoch, self.batch_in_epoch = int(t["epoch"]), int(t["batch_in_epoch"])
        self.global_step, self.smoothed_val = int(t["global_step"]), float(t["smoothed_val"])
        self.last_val_step, self.stop_reason = int(t["last_val_step"]), str(t["stop_reason"])
        if self.stop_reason.startswith(("reached max_steps", "completed epochs")):
            self.stop_reason = ""  # re-evaluated against this run's max_steps and epochs
        self.epoch_loss = t["epoch_loss"].to(self.device, torch.float64)
        self.last_metrics = dict(t["last_metrics"])
        self.cpu_s, self._cpu0 = float(t.get("cpu_s", 0.0)), time.process_time()
        if self.ema is not None:
            if "ema" not in state:
                raise ConfigError("train.ema_decay: the checkpoint has no weight average; "
                                  "resume with the ema_decay it was trained with")
            self.ema.load_state_dict(state["ema"])
        for k, h in zip(self._hook_keys, self.hooks, strict=True):
            if k in state["hooks"]:
                h.load_state_dict(state["hooks"][k])
        set_rng_state(state["rng"])

    def save_checkpoint(self, path: str | Path) -> None:
        """Write the full training state atomically (main process only)."""
        if self.env.is_main:
            save_checkpoint(self.state_dict(), path)

    def resume(self, path: str | Path) -> None:
        self.load_state_dict(load_checkpoint(path, map_location=self.device))

    # ------------------------------------------------------------------ loop
    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        self.sampler.set_epoch(epoch)
        return _chunks(list(self.sampler), self.local_batch)

    def _step(self, graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        graph = to_device(graph, self.device)
        out = self.model(graph)
        parts = self.loss_fn(out, graph[K.HAMILTONIAN], all_reduce_sum, self.env.world_size)
        self.optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        average_gradients(self.model)
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        c = self.config
        if c.lr_schedule == "cosine":
            lr = cosine_lr(self.global_step, self.total_steps, c.lr, c.min_lr, c.warmup_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        # stays on the device: no host sync unless a hook logs it
        self.epoch_loss += torch.stack([parts.loss_q.detach().to(torch.float64),
                                        torch.ones((), dtype=torch.float64, device=self.device)])
        return {"loss": parts.loss_q, "loss_t": parts.loss_t, "mu": parts.mu}

    def validate(self) -> dict[str, float]:
        """Validate, step the scheduler on the smoothed loss, call ``on_validation_end``."""
        with self.inference_weights():
            res = evaluate(self.model, self.val_set, self.device, self.env, self.local_batch,
                           self.num_workers)
        a = self.config.lr_smoothing
        v = res.loss_q
        prev = self.smoothed_val
        self.smoothed_val = v if math.isnan(prev) else a * v + (1 - a) * prev
        plateau = self.config.lr_schedule == "plateau"
        if plateau and math.isfinite(self.smoothed_val):
            self.scheduler.step(self.smoothed_val)
        s, n = self.epoch_loss.tolist()
        metrics = {
            "epoch": self.epoch, "step": self.global_step,
            "train_loss": s / n if n else math.nan,  # mean loss_Q since last validation
            "val_loss": res.loss_q, "val_loss_t": res.loss_t, "val_mae_all": res.mae_all,
            "time": round(time.time() - self._t0, 3), "cpu_s": round(self.cpu_seconds(), 3),
        }
        self.epoch_loss.zero_()
        self.last_val_step = self.global_step
        self.last_metrics = metrics
        if plateau and self.lr < self.config.min_lr:
            self.stop(f"learning rate {self.lr:.3g} fell below min_lr {self.config.min_lr:.3g}")
        self._call("on_validation_end", metrics)
        return metrics

    def inference_weights(self):
        """Context in which the model holds the weights it is evaluated with (the average,
        when ``ema_decay`` is set); hooks that evaluate use it too. Never save a checkpoint
        inside it: the raw weights are what training resumes from."""
        return self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext()

    def _done(self) -> bool:
        c = self.config
        if not self.stop_reason and c.max_steps and self.global_step >= c.max_steps:
            self.stop_reason = f"reached max_steps={c.max_steps}"
        return bool(self.stop_reason)

    def fit(self, resume: str | Path | None = None) -> dict[str, float]:
        """Train until ``epochs``, ``max_steps``, ``min_lr`` or a hook stops it.

        Args:
            resume: a checkpoint (``last.pt``) to continue from exactly.

        Returns:
            The metrics of the last validation (which always runs at the end).
        """
        if resume is not None:
            self.resume(resume)
        self._t0 = time.time()
        self.model.train()
        try:
            self._call("on_fit_start")
            self._loop()
            if not self.stop_reason and self.epoch >= self.config.epochs:
                self.stop_reason = f"completed epochs={self.config.epochs}"
            if self.last_val_step != self.global_step:
                self.validate()
            self._call("on_fit_end")
        except BaseException as exc:
            self._call("on_exception", exc)
            raise
        return self.last_metrics

    def _loop(self) -> None:
        c = self.config
        while self.epoch < c.epochs and not self._done():
            epoch = self.epoch
            batches = self._epoch_batches(epoch)
            self._call("on_epoch_start", epoch)
            todo = batches[self.batch_in_epoch:]
            loader = _loader(self.train_set, todo, self.num_workers, self.device) if todo else ()
            for graph in loader:
                parts = self._step(graph)
                self.global_step += 1
                self.batch_in_epoch += 1
                log = self.global_step % c.log_every == 0
                metrics = StepRecord(epoch, self.global_step,
                                     {k: float(v) for k, v in parts.items()} if log else None)
                self._call("on_batch_end", metrics)
                if self._done():
                    break
            epoch_complete = self.batch_in_epoch >= len(batches)
            if epoch_complete:
                validate = (epoch + 1) % c.val_every == 0 or epoch + 1 == c.epochs
                # advance first, so a checkpoint written at validation resumes at the next epoch
                self.epoch, self.batch_in_epoch = epoch + 1, 0
                if validate:
                    self.validate()
                self._call("on_epoch_end", epoch)
