"""Everything a run is built from, in build order: torch settings, the checkpoint to resume,
the loaders, then model, optimizer, schedule, scaler, loss and Keep stage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dali_gridaug.errors import UsageError
from dali_gridaug.models import Criterion, build_criterion, build_model
from dali_gridaug.recipes import Recipe
from dali_gridaug.training.checkpoint import (
    CHECKPOINT_DIR,
    clean_stale_temp,
    find_checkpoint,
    load_checkpoint,
    pipeline_changes,
)
from dali_gridaug.training.config import RunConfig
from dali_gridaug.training.dist import DistEnv, broadcast
from dali_gridaug.training.evaluate import ValSet
from dali_gridaug.training.schedule import build_optimizer, build_scheduler


def configure_torch(cfg: RunConfig, env: DistEnv) -> None:
    """CPU threads per rank, deterministic algorithms or cuDNN autotuning.

    With ``--deterministic`` on CUDA, ``torch.use_deterministic_algorithms(True,
    warn_only=True)``: some ops of torchvision models have no deterministic CUDA kernel
    (``AdaptiveAvgPool2d``'s backward among them), and refusing them would refuse every
    ResNet; they warn once instead and the rest runs deterministically. On CPU the setting is
    strict.
    """
    if env.device.type == "cpu":
        threads = max(1, (os.cpu_count() or 1) // env.local_world_size)
        torch.set_num_threads(cfg.torch_threads or threads)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read by cuBLAS lazily
        torch.use_deterministic_algorithms(True, warn_only=env.device.type == "cuda")
        torch.backends.cudnn.benchmark = False
    elif env.device.type == "cuda":
        torch.backends.cudnn.benchmark = True


@dataclasses.dataclass(frozen=True)
class Resume:
    """The checkpoint a run continues from.

    Attributes:
        path: its file.
        state: its content (model, optimizer, …, ``ranks``).
        rank: this rank's part of ``state["ranks"]`` (loader, RNG states, meter).
    """

    path: Path
    state: dict[str, Any]
    rank: dict[str, Any]


def open_resume(
    cfg: RunConfig, recipe: Recipe, env: DistEnv, log: Callable[[str], None]
) -> Resume | None:
    """Rank 0 removes stale temporary files from ``OUT``, then finds the checkpoint
    ``--resume`` names (``auto``: the newest valid one, torn ones reported and moved aside);
    every rank loads it and checks that it fits this job.

    Raises:
        UsageError: another world size or another data/augmentation pipeline.
    """
    out = Path(cfg.out)
    path = None
    if env.main:
        for folder in (out, out / CHECKPOINT_DIR):
            for name, size in clean_stale_temp(folder):
                log(f"removed {folder / name} ({size} bytes), left by an interrupted write")
        if cfg.resume == "auto":
            found = find_checkpoint(out / CHECKPOINT_DIR, log)
            path = found[0] if found else None
        elif cfg.resume is not None:
            path = Path(cfg.resume)
    path = broadcast(env, path)
    if path is None:
        return None
    try:
        state = load_checkpoint(path)
    except Exception as e:  # a torn or foreign file named by --resume PATH
        raise UsageError(f"`--resume`: cannot load {path}: {e}") from None
    if state["world_size"] != env.world_size:
        raise UsageError(
            f"{path} was written by {state['world_size']} ranks; resume it with the same "
            f"number (got {env.world_size}): each rank restores its own DALI reader position"
        )
    changed = pipeline_changes(state["recipe"], recipe.to_dict())
    if changed:
        raise UsageError(
            f"{path} was trained with other data/augmentation settings ({', '.join(changed)}); "
            "its DALI reader position cannot be restored into a different pipeline"
        )
    return Resume(path, state, state["ranks"][env.rank])


def build_loaders(
    cfg: RunConfig, recipe: Recipe, env: DistEnv, resume: Resume | None,
    log: Callable[[str], None],
) -> tuple[Any, ValSet | None]:  # fmt: skip
    """This rank's training loader (restored from ``resume``) and validation set.

    Raises:
        UsageError: the batch does not split over the ranks, or the class folders differ.
    """
    from dali_gridaug.loader import create_loader

    threads = max(1, (os.cpu_count() or 1) // env.local_world_size)
    common: dict[str, Any] = dict(
        device="gpu" if env.device.type == "cuda" else "cpu", seed=cfg.seed,
    )  # fmt: skip

    def kwargs(train: bool) -> dict[str, Any]:
        out = recipe.loader_kwargs(train, env.world_size)
        out["num_threads"] = cfg.workers or out.get("num_threads") or min(8, threads)
        return out | common

    train = create_loader(
        cfg.train,
        train=True,
        resume=resume.rank["loader"] if resume is not None else None,
        **kwargs(True),
    )
    if cfg.val is None:
        return train, None

    def make_val(exclude: Sequence[str]) -> Any:
        return create_loader(cfg.val, train=False, exclude=tuple(exclude), **kwargs(False))

    val = ValSet(cfg.val, make_val, env, Path(cfg.out), cfg.check_val, log)
    if val.loader.classes != train.classes:
        raise UsageError("`--train` and `--val` have different class folders")
    return train, val


@dataclasses.dataclass
class Parts:
    """The trained objects of a run.

    Attributes:
        model: the bare model (checkpoints, evaluation, Keep saliency).
        ddp: the model the training step calls (``model`` itself on one process).
        optimizer: SGD.
        scheduler: the per-step learning-rate schedule.
        scaler: ``GradScaler`` (enabled with ``--amp fp16``).
        criterion: the recipe's loss on ``(output, batch)``.
        keep: the Keep stage, or None.
        keep_generator: the Keep stage's random generator, or None.
    """

    model: nn.Module
    ddp: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    criterion: Criterion
    keep: Any
    keep_generator: torch.Generator | None


def build_parts(
    cfg: RunConfig, recipe: Recipe, env: DistEnv, num_classes: int, steps_per_epoch: int
) -> Parts:
    """Model (identical initial weights on every rank), optimizer, schedule, scaler, loss,
    DDP wrapper and Keep stage; then seeds this rank's own random streams.
    """
    dev = env.device
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = build_model(recipe, num_classes)
    if cfg.sync_bn and env.distributed and dev.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(dev)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, recipe)
    scheduler = build_scheduler(optimizer, recipe, steps_per_epoch)
    ddp: nn.Module = model
    if env.distributed:
        ids = [dev.index] if dev.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    # per-rank streams for anything random after initialisation
    seed = int(np.random.SeedSequence([cfg.seed, env.rank]).generate_state(1)[0])
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    generator = None
    if recipe.keep is not None:
        generator = torch.Generator(device=dev).manual_seed(seed + 1)
    keep = None
    if generator is not None and recipe.keep is not None:
        from dali_gridaug.saliency import KeepStage

        # the bare model: saliency needs no gradient synchronisation
        keep = KeepStage(model, generator=generator, **recipe.keep_kwargs())
    scaler = torch.amp.GradScaler(dev.type, enabled=cfg.amp == "fp16")
    return Parts(model, ddp, optimizer, scheduler, scaler, build_criterion(recipe), keep, generator)


def autocast_factory(amp: str, device: torch.device) -> Callable[[], Any]:
    """A callable returning the autocast context of ``--amp`` (a null context for none)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)
