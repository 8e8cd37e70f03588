"""The training loop: :class:`Trainer` runs the epochs of one rank.

One step: DALI batch (this rank's shard, augmentations in the graph) → optional Keep stage
(under the step's autocast) → model → loss → scaled backward, SGD step, per-step schedule.
The loss is accumulated on the device; the host reads it only every ``--log-every`` steps
(progress bar) and at checkpoints. After every step the ranks agree (host-side) whether a
stop signal arrived or a time-based checkpoint is due.

At the end of an epoch: metrics row, checkpoint (before evaluation), evaluation, metrics
files, and the same checkpoint again with the validation numbers. A run stopped during an
evaluation redoes it on resume, before training on.
"""

from __future__ import annotations

import errno
import json
import signal
import sys
from pathlib import Path
from typing import Any

import torch

from dali_gridaug.errors import UsageError
from dali_gridaug.recipes import Recipe
from dali_gridaug.training import parts
from dali_gridaug.training.checkpoint import (
    CHECKPOINT_DIR,
    FORMAT,
    CheckpointSpaceError,
    atomic_write_bytes,
    checkpoint_name,
    merged_meter,
    rng_state,
    save_checkpoint,
    seed_rank_streams,
    set_rng_state,
)
from dali_gridaug.training.config import RunConfig
from dali_gridaug.training.dist import DistEnv, all_sum, any_rank, broadcast, gather, min_max
from dali_gridaug.training.evaluate import eval_sums
from dali_gridaug.training.metrics import EpochMeter, SampleLog, epoch_line, write_metrics
from dali_gridaug.training.preempt import CheckpointTimer, Preemption
from dali_gridaug.training.schedule import restore_scheduler


class Trainer:
    """One training run on this rank: builds everything (:mod:`~dali_gridaug.training.parts`),
    resumes if asked, trains, checkpoints, evaluates and writes metrics.

    Attributes:
        exit_status: 0, or ``128 + signal`` after a stop signal (set by :meth:`fit`).
    """

    def __init__(self, cfg: RunConfig, recipe: Recipe, env: DistEnv) -> None:
        self.cfg, self.recipe, self.env = cfg, recipe, env
        self.out = Path(cfg.out)
        parts.configure_torch(cfg, env)
        resume = parts.open_resume(cfg, recipe, env, self.log)
        self.train_loader, self.val = parts.build_loaders(cfg, recipe, env, resume, self.log)
        self.steps_per_epoch = self._steps_per_epoch()
        self.parts = parts.build_parts(
            cfg, recipe, env, self.train_loader.num_classes, self.steps_per_epoch
        )
        self.epoch, self.step, self.history = 0, 0, []
        self.meter = EpochMeter(env.device)
        self.resumed_from = resume.path if resume is not None else None
        # rank 0: the last checkpoint's content, re-saved with the validation numbers
        self._saved: dict[str, Any] | None = None
        if resume is not None:
            self._restore(resume)
        elif cfg.init_from is not None:
            parts.init_weights(self.parts.model, Path(cfg.init_from), self.log)
        self.samples = SampleLog(self.out, env.rank) if cfg.log_samples else None
        self.autocast = parts.autocast_factory(cfg.amp, env.device)
        self.stop, self.timer = Preemption(), CheckpointTimer(cfg.ckpt_every_minutes)
        self.exit_status = 0

    def _steps_per_epoch(self) -> int:
        steps = len(self.train_loader)
        lo, hi = min_max(self.env, steps)
        if lo != hi or lo == 0:
            raise UsageError(
                f"ranks have {lo}–{hi} steps per epoch; need the same non-zero count on all "
                "(dataset too small for the batch size?)"
            )
        return steps

    def _restore(self, resume: parts.Resume) -> None:
        """Load a checkpoint into the fresh model, optimizer, schedule and scaler (the loader
        was restored already); the step within the epoch is the loader's position // the
        global batch.

        RNG policy: at the writer's world size each rank restores its own saved states (a
        bitwise continuation); at another world size they are reseeded from (seed, global
        step, rank) and the writers' epoch meters are merged.
        """
        ckpt, p, env = resume.state, self.parts, self.env
        p.model.load_state_dict(ckpt["model"])
        p.optimizer.load_state_dict(ckpt["optimizer"])
        restore_scheduler(p.scheduler, ckpt["scheduler"])
        p.scaler.load_state_dict(ckpt["scaler"])
        loader = self.train_loader
        self.epoch, self.step = loader.epoch, loader.position // ckpt["global_batch"]
        if (self.epoch, self.step) != (ckpt["epoch"], ckpt["step"]):
            raise RuntimeError(
                f"{resume.path}: its loader state (epoch {loader.epoch}, position "
                f"{loader.position}) is not epoch {ckpt['epoch']} step {ckpt['step']}"
            )
        self.history = list(ckpt["metrics"])
        if resume.same_world:
            mine = ckpt["ranks"][env.rank]
            self.meter = EpochMeter(env.device, mine["meter"])
            set_rng_state(mine["rng"], env)
        else:
            self.meter = EpochMeter(env.device, merged_meter(ckpt["ranks"], env.rank))
            global_step = self.epoch * self.steps_per_epoch + self.step
            seed_rank_streams(self.cfg.seed, global_step, env.rank)
            self.log(
                f"{resume.path.name} was written by {ckpt['world_size']} rank(s), resumed on "
                f"{env.world_size}: batch {ckpt['global_batch'] // env.world_size} per rank, "
                f"random streams reseeded at global step {global_step}"
            )
        self._saved = resume.state if env.main else None

    def log(self, message: str) -> None:
        """Print ``message`` on rank 0 (stderr)."""
        if self.env.main:
            print(message, file=sys.stderr, flush=True)

    def fit(self) -> list[dict[str, Any]]:
        """Train from the current (epoch, step) to the end, or until a stop signal; returns
        the metrics rows.
        """
        self._announce()
        try:
            with self.stop.installed():
                running = self._pending_evaluation()
                for epoch in range(self.epoch, self.recipe.schedule.epochs):
                    if not running:
                        break
                    running = self.train_epoch(epoch) and self.end_epoch(epoch)
        finally:
            if self.samples is not None:
                self.samples.close()
        if not running:
            if not self.stop.requested:  # another rank was signalled
                self.stop.signum = signal.SIGTERM
            self.exit_status = self.stop.exit_status
            where = f"checkpoint {checkpoint_name(self.epoch, self.step)}"
            self.log(
                f"dali-gridaug train: {self.stop.name}: stopped at step {self.step} of "
                f"epoch {self.epoch}, {where} written; continue with --resume auto "
                f"(exit status {self.exit_status})"
            )
        return self.history

    def _announce(self) -> None:
        r, env = self.recipe, self.env
        if env.main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.out / "recipe.json", json.dumps(r.to_dict(), indent=1).encode())
        where = f", resumed from {self.resumed_from.name}" if self.resumed_from else ""
        self.log(
            f"recipe {r.name}: {r.model.name}, {self.train_loader.num_classes} classes, "
            f"{r.schedule.epochs} epochs × {self.steps_per_epoch} steps, batch "
            f"{r.data.batch_size} on {env.world_size} rank(s) ({env.device.type}), loss "
            f"{r.loss_kind}{where}"
        )

    def train_epoch(self, epoch: int) -> bool:
        """Train the remaining steps of ``epoch``; False when a stop signal ended it early
        (after a checkpoint).
        """
        from tqdm import tqdm

        cfg, loader = self.cfg, self.train_loader
        loader.set_epoch(epoch)
        self.parts.ddp.train()
        first = self.step if epoch == self.epoch else 0
        self.epoch, self.step = epoch, first
        if first == 0:
            self.meter = EpochMeter(self.env.device)
        show = self.env.main and cfg.progress
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=first,
            desc=f"epoch {epoch}",
            unit="step",
            disable=not show,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        self.meter.start()
        stopped = False
        for batch in loader:
            loss = self.train_step(batch)
            self.meter.add(loss, len(batch))
            if self.samples is not None:
                self.samples.write(epoch, self.step, batch.index)
            self.step += 1
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == self.steps_per_epoch:
                if show:  # the one host read of the loss per log interval
                    bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{self.current_lr():.3g}")
                if self.samples is not None:
                    self.samples.flush()
            if self.step < self.steps_per_epoch and self._mid_epoch_checkpoint():
                stopped = True
                break
        bar.close()
        self.meter.pause()
        return not stopped

    def train_step(self, batch: Any) -> torch.Tensor:
        """One optimizer step on ``batch``; returns the loss (a 0-d device tensor). No device
        value is read on the host (on CUDA the optimizer is fused, so ``GradScaler.step`` with
        ``--amp fp16`` does not read its inf/NaN flag either).
        """
        loss = self.forward_loss(batch)
        self.update(loss)
        return loss

    def forward_loss(self, batch: Any) -> torch.Tensor:
        """The step's forward half under its autocast: Keep stage, model, criterion."""
        p = self.parts
        with self.autocast():
            if p.keep is not None:
                batch = p.keep(batch)
            images = batch.images
            if self.cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            return p.criterion(p.ddp(images), batch)

    def update(self, loss: torch.Tensor) -> None:
        """The step's backward half: scaled backward, optimizer step, per-step schedule."""
        p = self.parts
        p.optimizer.zero_grad(set_to_none=True)
        p.scaler.scale(loss).backward()
        p.scaler.step(p.optimizer)
        p.scaler.update()
        p.scheduler.step()

    def _mid_epoch_checkpoint(self) -> bool:
        """Checkpoint when a stop signal arrived (on any rank), the time interval passed or the
        step count says so; True when the run must stop.
        """
        stop, due = any_rank(self.env, [self.stop.requested, self.timer.due()])
        every = self.cfg.ckpt_every_steps
        if stop or due or (every and self.step % every == 0):
            self.save(self.epoch, self.step)
        return stop

    def current_lr(self) -> float:
        """The learning rate of the first parameter group."""
        return float(self.parts.optimizer.param_groups[0]["lr"])

    def end_epoch(self, epoch: int) -> bool:
        """Metrics row, checkpoint, evaluation, metrics files, checkpoint with the validation
        numbers; False when a stop signal ended the run here.
        """
        loss_sum, count, seconds = all_sum(self.env, list(self.meter.state().values()))
        seconds /= self.env.world_size
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": loss_sum / max(count, 1),
            "lr": self.current_lr(),
            "val_loss": None,
            "top1": None,
            "top5": None,
            "val_images": None,
            "images_per_s": count / seconds if seconds > 0 else None,
            "epoch_time_s": seconds,
            "steps": self.steps_per_epoch,
        }
        self.history = [h for h in self.history if h["epoch"] < epoch] + [row]
        self.meter = EpochMeter(self.env.device)
        self.epoch, self.step = epoch + 1, 0
        self.save(epoch + 1, 0)
        if not self._evaluate(row):
            return False
        self.log(epoch_line(row))
        last = epoch + 1 == self.recipe.schedule.epochs
        return last or not any_rank(self.env, [self.stop.requested])[0]

    def _pending_evaluation(self) -> bool:
        """Redo the evaluation a stop interrupted (resumed at step 0 after an epoch whose
        row lacks the validation numbers it should have); False when stopped again.
        """
        if self.step != 0 or not self.history or self.history[-1]["epoch"] != self.epoch - 1:
            return True
        row = self.history[-1]
        if row.get("top1") is None and self._wants_eval(row["epoch"]):
            if not self._evaluate(row):
                return False
            self.log(epoch_line(row))
        return True

    def _wants_eval(self, epoch: int) -> bool:
        last = epoch + 1 == self.recipe.schedule.epochs
        return self.val is not None and ((epoch + 1) % self.cfg.eval_every == 0 or last)

    def _evaluate(self, row: dict[str, Any]) -> bool:
        """Evaluate into ``row`` if this epoch wants it, write the metrics files and re-save
        the epoch's checkpoint with them; False when a stop signal interrupted it.
        """
        if self._wants_eval(row["epoch"]):
            p, cfg = self.parts, self.cfg

            def run(model: Any, loader: Any, stop: Any) -> torch.Tensor | None:
                return eval_sums(
                    model, loader, self.env.device, self.autocast, cfg.channels_last, stop
                )

            result = self.val.evaluate(p.model, run, lambda: self.stop.requested)
            if result is None:
                return False
            row.update(result)
            if self._saved is not None and self.env.main:
                error = self._write(dict(self._saved, metrics=self.history))
                if error is not None:  # the checkpoint written before evaluation stays
                    self.log(f"warning: validation numbers not saved in the checkpoint: {error}")
        if self.env.main:
            write_metrics(self.history, self.out)
        return True

    def save(self, epoch: int, step: int) -> None:
        """Checkpoint after ``step`` batches of ``epoch`` (a collective: every rank sends its
        RNG states and meter to rank 0, which writes the file with the loader state, the same
        on every rank and saved once; see :mod:`~dali_gridaug.training.checkpoint`).

        Raises:
            CheckpointSpaceError: on every rank, when rank 0 lacks the disk space.
        """
        self.meter.pause()
        if self.samples is not None:
            self.samples.flush()
        loader = self.train_loader.state_dict()
        mine = {
            "loader": loader,
            "rng": rng_state(self.env),
            "meter": self.meter.state(),
        }
        ranks = gather(self.env, mine)
        error = None
        if self.env.main:
            states = [r.pop("loader") for r in ranks]
            if any(s != loader for s in states):
                raise RuntimeError(
                    f"ranks disagree on the loader state at epoch {epoch} step {step}: {states}"
                )
            p = self.parts
            self._saved = {
                "format": FORMAT,
                "epoch": epoch,
                "step": step,
                "steps_per_epoch": self.steps_per_epoch,
                "global_batch": self.recipe.data.batch_size,
                "seed": self.cfg.seed,
                "world_size": self.env.world_size,
                "recipe": self.recipe.to_dict(),
                "model": p.model.state_dict(),
                "optimizer": p.optimizer.state_dict(),
                "scheduler": p.scheduler.state_dict(),
                "scaler": p.scaler.state_dict(),
                "metrics": self.history,
                "loader": loader,
                "ranks": ranks,
            }
            error = self._write(self._saved)
        error = broadcast(self.env, error)
        if error is not None:
            raise CheckpointSpaceError(errno.ENOSPC, error)
        self.timer.reset()
        self.meter.start()

    def _write(self, state: dict[str, Any]) -> str | None:
        folder = self.out / CHECKPOINT_DIR
        try:
            save_checkpoint(state, folder, self.cfg.keep_last, self.cfg.ckpt_reserve_bytes)
        except CheckpointSpaceError as e:
            return e.strerror
        return None


__all__ = ["Trainer"]
