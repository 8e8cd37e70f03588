"""``dali-gridaug train``: the command line, turned into a :class:`RunConfig` and a recipe,
with every user mistake reported as a one-line :class:`~dali_gridaug.errors.UsageError`
before any loader is built.

Order of the checks: flags (``RunConfig``), recipe and overrides, the model the recipe names
(built on the ``meta`` device: no memory, no time), the paths, the checkpoints in ``OUT``.

Exit status: 0 when the run finished; ``128 + signal`` when ``SIGTERM``/``SIGINT`` stopped it
after a checkpoint (see :mod:`dali_gridaug.training.preempt`); 1 when the disk is too full
for a checkpoint (checked before writing; the message names the folder, the bytes needed and
free) or for another output; 2 for a usage error (through the ``dali-gridaug``
dispatcher).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dali_gridaug.errors import UsageError
from dali_gridaug.recipes import Recipe, load_recipe, parse_value
from dali_gridaug.training.checkpoint import CHECKPOINT_DIR, list_checkpoints
from dali_gridaug.training.config import RunConfig


def build_parser() -> argparse.ArgumentParser:
    """The ``train`` argument parser; recipe values are the defaults the flags override."""
    ap = argparse.ArgumentParser(
        prog="dali-gridaug train",
        description="Train a torchvision model with a DALI loader from a recipe "
        "(torchrun-ready: reads RANK, WORLD_SIZE, LOCAL_RANK). SIGTERM/SIGINT stop it after "
        "the current step with a checkpoint (exit status 128+signal).",
    )
    data = ap.add_argument_group("data")
    data.add_argument("--train", required=True, help="training ImageFolder root (or file list)")
    data.add_argument("--val", help="validation ImageFolder root (no evaluation without it)")
    data.add_argument("--image-size", type=int, help="crop side (recipe: data.image_size)")
    data.add_argument(
        "--batch-size", type=int, help="global batch size, split over ranks (data.batch_size)"
    )
    data.add_argument("--workers", type=int, help="DALI CPU threads per rank")
    recipe = ap.add_argument_group("recipe")
    recipe.add_argument(
        "--recipe", default="demo", help="packaged recipe name or a .toml path (default: demo)"
    )
    recipe.add_argument("--model", help="torchvision model name (model.name)")
    recipe.add_argument("--epochs", type=int, help="schedule.epochs")
    recipe.add_argument("--lr", type=float, help="peak learning rate (optim.lr)")
    recipe.add_argument("--weight-decay", type=float, help="optim.weight_decay")
    recipe.add_argument("--warmup-epochs", type=float, help="schedule.warmup_epochs")
    recipe.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override any recipe value, VALUE in TOML syntax (repeatable), e.g. "
        "--set optim.nesterov=true --set schedule.milestones=[30,60] --set augment[0].d=[16,40]",
    )
    _run_flags(ap.add_argument_group("run"))
    _checkpoint_flags(ap.add_argument_group("checkpoints"))
    return ap


def _run_flags(run: Any) -> None:
    run.add_argument("--out", default="runs/train", help="output folder (default: runs/train)")
    run.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    run.add_argument("--amp", choices=("bf16", "fp16", "none"), default="none")
    run.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    run.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across ranks (GPU)")
    run.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs (and last)")
    run.add_argument(
        "--check-val",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check the --val folder for undecodable files once before epoch 0 (default: on)",
    )
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--torch-threads", type=int, help="torch CPU threads per rank")
    run.add_argument(
        "--deterministic",
        action="store_true",
        help="torch.use_deterministic_algorithms (bitwise-reproducible CPU runs; on CUDA, "
        "ops without a deterministic kernel such as AdaptiveAvgPool2d's backward warn)",
    )
    run.add_argument(
        "--log-samples", action="store_true", help="write the sample ids of every step"
    )
    run.add_argument("--log-every", type=int, default=10, help="steps between progress updates")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)


def _checkpoint_flags(ckpt: Any) -> None:
    ckpt.add_argument(
        "--resume",
        metavar="auto|PATH",
        help="'auto': continue from the newest valid checkpoint in OUT (start fresh if none); "
        "or a checkpoint file. Any world size dividing the global batch; implied on a "
        "torchelastic restart (TORCHELASTIC_RESTART_COUNT > 0)",
    )
    ckpt.add_argument(
        "--init-from",
        metavar="PATH",
        help="start a new run from this checkpoint's model weights alone (fine-tuning, a new "
        "schedule): any world size and recipe; optimizer, schedule and loader start fresh",
    )
    ckpt.add_argument(
        "--ckpt-every-minutes",
        type=float,
        default=10.0,
        help="checkpoint mid-epoch when this many minutes passed since the last one "
        "(default: 10; 0: off)",
    )
    ckpt.add_argument(
        "--ckpt-every-steps", type=int, default=0, help="also checkpoint every N steps (0: off)"
    )
    ckpt.add_argument(
        "--ckpt-reserve-mb",
        type=float,
        default=0.0,
        help="MiB to leave free on the checkpoint disk besides the checkpoint (default: 0)",
    )
    ckpt.add_argument("--keep-last", type=int, default=3, help="checkpoints kept (latest first)")


def parse_config(argv: Sequence[str] | None = None) -> RunConfig:
    """Parse the command line into a validated :class:`RunConfig`.

    Raises:
        UsageError: a flag value out of range.
    """
    ns = build_parser().parse_args(argv)
    values = vars(ns)
    values["overrides"] = tuple(values["overrides"])
    names = {f.name for f in dataclasses.fields(RunConfig)}
    return RunConfig(**{k: v for k, v in values.items() if k in names})


def resolve_recipe(cfg: RunConfig) -> Recipe:
    """The recipe named by ``--recipe`` with the command-line overrides applied.

    Raises:
        UsageError: unknown recipe, bad override or invalid value (the recipe's message).
    """
    values: dict[str, Any] = {
        "model.name": cfg.model,
        "schedule.epochs": cfg.epochs,
        "optim.lr": cfg.lr,
        "optim.weight_decay": cfg.weight_decay,
        "schedule.warmup_epochs": cfg.warmup_epochs,
        "data.batch_size": cfg.batch_size,
        "data.image_size": cfg.image_size,
    }
    try:
        recipe = load_recipe(cfg.recipe)
        for item in cfg.overrides:
            key, sep, text = item.partition("=")
            if not sep:
                raise UsageError(f"`--set` expects SECTION.KEY=VALUE, got {item!r}")
            values[key.strip()] = parse_value(text.strip())
        return recipe.override(values)
    except ValueError as e:  # RecipeError, or the validation library's error
        raise UsageError(str(e)) from None


def check_model(recipe: Recipe) -> None:
    """Build the recipe's model on the ``meta`` device (no memory, no time) so that an
    unknown model name or a head that does not fit it fails before any loader is built.

    Raises:
        UsageError: the model cannot be built (the builder's message).
    """
    from dali_gridaug.recipes import build_model

    try:
        with torch.device("meta"):
            build_model(recipe, 2)
    except ValueError as e:
        raise UsageError(str(e)) from None


def check_paths(cfg: RunConfig, restart: int = 0) -> None:
    """Data and output paths: each source exists and is not a root of ``train/`` and ``val/``;
    ``OUT`` holds no checkpoints unless ``--resume`` is given or this is a torchelastic
    restart (``restart`` > 0, :func:`~dali_gridaug.training.dist.restart_count`), which
    continues from them; ``--init-from`` names a file.

    Raises:
        UsageError: naming the flag, the path and what to pass instead.
    """
    for flag, value in (("--train", cfg.train), ("--val", cfg.val)):
        if value is None:
            continue
        path = Path(value)
        if not path.exists():
            raise UsageError(f"`{flag}` {value!r} does not exist")
        split = flag.lstrip("-")
        if (path / "train").is_dir() and (path / "val").is_dir():
            raise UsageError(
                f"`{flag}` {value!r} holds train/ and val/ (it would train a 2-class "
                f"'train vs val' model); pass {flag} {path / split}"
                + (f" --val {path / 'val'}" if flag == "--train" and cfg.val is None else "")
            )
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"`--out` {cfg.out!r} is a file, not a folder")
    if cfg.resume is None and restart == 0 and list_checkpoints(out / CHECKPOINT_DIR):
        raise UsageError(
            f"{out / CHECKPOINT_DIR} already holds checkpoints: pass --resume auto to continue "
            "that run, or choose another --out"
        )
    if cfg.resume not in (None, "auto") and not Path(cfg.resume).is_file():
        raise UsageError(f"`--resume`: checkpoint {cfg.resume!r} does not exist")
    if cfg.init_from is not None and not Path(cfg.init_from).is_file():
        raise UsageError(f"`--init-from`: checkpoint {cfg.init_from!r} does not exist")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dali-gridaug train`` and ``python -m dali_gridaug.training``.

    Returns:
        The exit status (see the module docstring).
    """
    from dali_gridaug.training.checkpoint import CheckpointSpaceError
    from dali_gridaug.training.dist import restart_count, setup_distributed, teardown
    from dali_gridaug.training.loop import Trainer

    cfg = parse_config(argv)
    recipe = resolve_recipe(cfg)
    check_model(recipe)
    check_paths(cfg, restart_count())
    env = setup_distributed(cfg.device)
    try:
        trainer = Trainer(cfg, recipe, env)
        trainer.fit()
        return trainer.exit_status
    except CheckpointSpaceError as e:
        print(f"dali-gridaug train: error: {e.strerror}", file=sys.stderr, flush=True)
        return 1
    except OSError as e:  # any other write on a full disk: one line, not a traceback
        if e.errno != errno.ENOSPC:
            raise
        print(f"dali-gridaug train: error: disk full: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        teardown(env)
