"""Optimizer and learning-rate schedule: SGD with optional no-decay groups, and a per-step
``LambdaLR`` whose factor (:class:`LRFactor`) is linear warmup then step or cosine decay.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from dali_gridaug.recipes import Recipe


def build_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.SGD:
    """SGD with momentum; with ``no_wd_bn_bias`` the 1-D parameters (BN, biases) get no decay.

    On CUDA parameters the optimizer is ``fused``: with an fp16 ``GradScaler`` a non-fused
    ``step`` reads the inf flag on the host (``.item()``) every step, a fused one does not.
    Build it after the model has moved to its device.
    """
    cfg = recipe.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.no_wd_bn_bias:
        groups: list[dict[str, Any]] = [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
    else:
        groups = [{"params": params, "weight_decay": cfg.weight_decay}]
    fused = bool(params) and all(p.device.type == "cuda" for p in params)
    return torch.optim.SGD(
        groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, fused=fused or None
    )


class LRFactor:
    """Learning-rate multiplier of optimizer step ``t`` (for ``LambdaLR``, stepped per batch).

    Linear warmup over the first ``warmup_epochs`` (from ``1/warmup_steps`` to 1), then
    ``gamma ** (milestones passed)`` (step) or a half cosine from 1 to ``min_lr / lr``
    (cosine). Milestones are epochs; the decay happens at the first step of that epoch.
    A plain object (not a lambda), so the scheduler's ``state_dict`` saves it.
    """

    def __init__(self, recipe: Recipe, steps_per_epoch: int) -> None:
        s = recipe.schedule
        self.kind = s.name
        self.steps_per_epoch = steps_per_epoch
        self.total = s.epochs * steps_per_epoch
        self.warmup = round(s.warmup_epochs * steps_per_epoch)
        self.milestones = [m * steps_per_epoch for m in s.milestones]
        self.gamma = s.gamma
        self.final = s.min_lr / recipe.optim.lr

    def __call__(self, step: int) -> float:
        """The factor for optimizer step ``step`` (0-based count of steps taken)."""
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "step":
            return self.gamma ** sum(step >= m for m in self.milestones)
        t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * t))


def build_scheduler(
    optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step ``LambdaLR`` over :class:`LRFactor` (call ``step()`` after every batch)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LRFactor(recipe, steps_per_epoch))


def restore_scheduler(
    scheduler: torch.optim.lr_scheduler.LambdaLR, saved: Mapping[str, Any]
) -> None:
    """Continue ``scheduler`` at the saved step count with its own (current) schedule.

    The step count comes from ``saved``, the factor from the scheduler's current
    :class:`LRFactor` (identical for an exact resume; lets ``--epochs`` extend a finished
    run). Loads the state one step back and steps once, so the scheduler itself sets every
    group's learning rate and its last-lr record (nothing private is written). Call it after
    the optimizer's state is loaded.
    """
    steps = int(saved["last_epoch"])
    groups = scheduler.optimizer.param_groups
    scheduler.load_state_dict(dict(saved, lr_lambdas=[None] * len(groups), last_epoch=steps - 1))
    scheduler.step()
