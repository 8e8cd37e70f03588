"""Everything a run is built from, in build order: torch settings, the checkpoint to resume
(checked against this job), the loaders, then model, optimizer, schedule, scaler, loss and
Keep stage, and ``--init-from``'s weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dali_gridaug.errors import UsageError
from dali_gridaug.models import Criterion
from dali_gridaug.recipes import Recipe, build_criterion, build_model
from dali_gridaug.training.checkpoint import (
    CHECKPOINT_DIR,
    FORMAT,
    clean_stale_temp,
    find_checkpoint,
    load_checkpoint,
    pipeline_changes,
    same_world,
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
        state: its content (format 2: model, optimizer, …, ``loader``, ``ranks``).
        same_world: written by this job's number of ranks: every rank restores its saved
            RNG states and meter; otherwise they are reseeded by global step and merged
            (:func:`~dali_gridaug.training.checkpoint.seed_rank_streams`,
            :func:`~dali_gridaug.training.checkpoint.merged_meter`).
    """

    path: Path
    state: dict[str, Any]
    same_world: bool


def resume_wanted(cfg: RunConfig, env: DistEnv) -> str | None:
    """What to resume from: ``--resume``, or ``"auto"`` on a torchelastic restart (a worker
    died and torchrun restarted them all: continue from the newest checkpoint, if any).
    """
    if cfg.resume is None and env.restart > 0:
        return "auto"
    return cfg.resume


def open_resume(
    cfg: RunConfig, recipe: Recipe, env: DistEnv, log: Callable[[str], None]
) -> Resume | None:
    """Rank 0 removes stale temporary files from ``OUT``, then finds the checkpoint to resume
    (:func:`resume_wanted`; ``auto``: the newest valid one, torn ones reported and moved
    aside); every rank loads it and checks that it fits this job. Nothing in ``OUT`` is
    written before these checks pass.

    Raises:
        UsageError: an older checkpoint format, another seed, another global batch, a world
            size that does not divide the global batch, or another data/augmentation
            pipeline (each names the field and both values).
    """
    out = Path(cfg.out)
    wanted = resume_wanted(cfg, env)
    path = None
    if env.main:
        for folder in (out, out / CHECKPOINT_DIR):
            for name, size in clean_stale_temp(folder):
                log(f"removed {folder / name} ({size} bytes), left by an interrupted write")
        if wanted == "auto":
            found = find_checkpoint(out / CHECKPOINT_DIR, log)
            path = found[0] if found else None
        elif wanted is not None:
            path = Path(wanted)
    path = broadcast(env, path)
    if path is None:
        return None
    try:
        state = load_checkpoint(path)
    except Exception as e:  # a torn or foreign file named by --resume PATH
        raise UsageError(f"`--resume`: cannot load {path}: {e}") from None
    check_resumable(path, state, cfg, recipe, env.world_size)
    if env.restart > 0 and cfg.resume is None:
        log(f"torchelastic restart {env.restart}: continuing from {path.name}")
    return Resume(path, state, same_world(state, env.world_size))


def check_resumable(
    path: Path, state: dict[str, Any], cfg: RunConfig, recipe: Recipe, world_size: int
) -> None:
    """Refuse a checkpoint this job cannot continue; the data source's identity is checked
    against the loader in :func:`build_loaders`.

    Raises:
        UsageError: naming the field, the checkpoint's value and this run's.
    """
    fmt = state.get("format")
    if fmt != FORMAT:
        raise UsageError(
            f"`--resume` {path}: checkpoint format {fmt}, this dali-gridaug resumes format "
            f"{FORMAT}; start a new run from its weights with --init-from {path}"
        )
    if state["seed"] != cfg.seed:
        raise UsageError(
            f"`--seed`: {path} was trained with --seed {state['seed']}, this run has --seed "
            f"{cfg.seed}; resume with the same seed (or --init-from for a new run)"
        )
    saved, now = state["global_batch"], recipe.data.batch_size
    if saved != now:
        raise UsageError(
            f"`--batch-size` (data.batch_size, the global batch): {path} was trained with "
            f"{saved}, this run has {now}; resume with the same global batch (the per-rank "
            f"batch is global / world size)"
        )
    if saved % world_size:
        raise UsageError(
            f"`--resume` {path}: its global batch {saved} does not split over {world_size} "
            f"ranks; resume on a number of ranks that divides {saved}"
        )
    changed = pipeline_changes(state["recipe"], recipe.to_dict())
    if changed:
        raise UsageError(
            f"{path} was trained with other data/augmentation settings ({', '.join(changed)}); "
            "resume with the recipe it was written with (or --init-from for a new run)"
        )


def check_source(path: Path, saved: Mapping[str, Any], loader: Any) -> None:
    """The resumed loader state ``saved`` belongs to ``loader``'s data source.

    Raises:
        UsageError: another file count or file list (naming both values).
    """
    have = loader.identity()
    if saved["num_samples"] != have["num_samples"]:
        raise UsageError(
            f"`--train`: {path} was trained on {saved['num_samples']} files, this run's "
            f"--train has {have['num_samples']}; resume with the same dataset"
        )
    if saved["source"] != have["source"]:
        raise UsageError(
            f"`--train`: {path} was trained on a file list with SHA-256 {saved['source']}, "
            f"this run's --train has {have['source']}; resume with the same dataset"
        )


def build_loaders(
    cfg: RunConfig,
    recipe: Recipe,
    env: DistEnv,
    resume: Resume | None,
    log: Callable[[str], None],
) -> tuple[Any, ValSet | None]:
    """This rank's training loader (restored from ``resume``'s world-size-free loader
    state, the rest of its epoch split over this job's ranks) and validation set.

    Raises:
        UsageError: the batch does not split over the ranks, the checkpoint is of another
            dataset, or the class folders differ.
    """
    from dali_gridaug.loader import LoaderConfig, create_loader

    threads = max(1, (os.cpu_count() or 1) // env.local_world_size)
    common: dict[str, Any] = dict(
        device="gpu" if env.device.type == "cuda" else "cpu",
        seed=cfg.seed,
    )

    def config(train: bool) -> LoaderConfig:
        base = recipe.loader_config(train, env.world_size)
        workers = cfg.workers or base.num_threads or min(8, threads)
        return dataclasses.replace(base, num_threads=workers, **common)

    train = create_loader(cfg.train, config(True))
    if resume is not None:
        check_source(resume.path, resume.state["loader"], train)
        train.load_state_dict(resume.state["loader"])
    if cfg.val is None:
        return train, None

    def make_val(exclude: Sequence[str]) -> Any:
        return create_loader(cfg.val, config(False), exclude=tuple(exclude))

    val = ValSet(cfg.val, make_val, env, Path(cfg.out), cfg.check_val, log)
    if val.loader.classes != train.classes:
        raise UsageError("`--train` and `--val` have different class folders")
    return train, val


def init_weights(model: nn.Module, path: Path, log: Callable[[str], None]) -> None:
    """``--init-from``: load the model weights of the checkpoint ``path`` (any format) into
    ``model``. Tensors whose shape differs (a classifier for another class count) keep
    their fresh initialisation and are reported; every other tensor must be there.

    Raises:
        UsageError: the file does not load, or its model has other parameters (naming
            both models).
    """
    try:
        state = load_checkpoint(path)
        weights = state["model"]
    except Exception as e:
        raise UsageError(f"`--init-from`: cannot load {path}: {e}") from None
    own = model.state_dict()
    missing, unexpected = sorted(own.keys() - weights.keys()), sorted(weights.keys() - own)
    if missing or unexpected:
        saved = state.get("recipe", {}).get("model", {}).get("name", "?")
        raise UsageError(
            f"`--init-from` {path}: its model ({saved}) does not fit this recipe's: "
            f"{len(missing)} tensors missing (e.g. {missing[:1]}), {len(unexpected)} "
            f"unexpected (e.g. {unexpected[:1]})"
        )
    fresh = [k for k, v in own.items() if tuple(v.shape) != tuple(weights[k].shape)]
    model.load_state_dict({k: v for k, v in weights.items() if k not in fresh}, strict=False)
    kept = f"; kept fresh (other shape): {', '.join(fresh)}" if fresh else ""
    log(f"initialised the model from {path} (weights only; new optimizer and schedule){kept}")


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
        keep: the Keep stage (keyed by the run seed, the epoch and each sample's position:
            no random state of its own), or None.
    """

    model: nn.Module
    ddp: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    criterion: Criterion
    keep: Any


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
    keep = None
    if recipe.keep is not None:
        from dali_gridaug.saliency import KeepStage

        # the bare model: saliency needs no gradient synchronisation; the run seed keys the
        # draws with the batch's epoch and positions, so a resume (at any world size) is exact
        keep = KeepStage(model, seed=cfg.seed, **recipe.keep_kwargs())
    scaler = torch.amp.GradScaler(dev.type, enabled=cfg.amp == "fp16")
    return Parts(model, ddp, optimizer, scheduler, scaler, build_criterion(recipe), keep)


def autocast_factory(amp: str, device: torch.device) -> Callable[[], Any]:
    """A callable returning the autocast context of ``--amp`` (a null context for none)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)
