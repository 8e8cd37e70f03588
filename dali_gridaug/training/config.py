"""The run configuration of ``dali-gridaug train``: a frozen, validated dataclass built from
the command line (:func:`dali_gridaug.training.cli.parse_config`).

The recipe (model, optimizer, schedule, data, augmentations, loss) is separate: these are the
settings of one run of a recipe (where the data is, where outputs go, how it checkpoints).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from dali_gridaug.errors import UsageError


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Settings of one training run; each field is the flag of the same name.

    Attributes:
        train: training ImageFolder root (or file list / tar shards).
        val: validation source; None: no evaluation.
        recipe: packaged recipe name or a ``.toml`` path.
        overrides: ``SECTION.KEY=VALUE`` recipe overrides (``--set``), VALUE in TOML syntax.
        image_size: crop side in pixels (overrides ``data.image_size``).
        batch_size: global batch size, split over ranks (overrides ``data.batch_size``).
        workers: DALI CPU threads per rank; None: min(8, CPU cores per rank).
        model: torchvision model name (overrides ``model.name``).
        epochs: overrides ``schedule.epochs``.
        lr: peak learning rate (overrides ``optim.lr``).
        weight_decay: overrides ``optim.weight_decay``.
        warmup_epochs: overrides ``schedule.warmup_epochs``.
        out: output folder; nothing is written outside it.
        resume: ``"auto"`` (newest valid checkpoint in ``OUT``, fresh start if none) or a
            checkpoint path; None: start fresh (refused if ``OUT`` holds checkpoints). A
            checkpoint resumes at any world size that divides its global batch. On a
            torchelastic restart (``TORCHELASTIC_RESTART_COUNT`` > 0) None acts as ``"auto"``.
        init_from: a checkpoint whose model weights alone start a new run (fine-tuning, a
            new schedule): any world size, any recipe; optimizer, schedule and loader start
            fresh. Not with ``resume``.
        device: ``"auto"``, ``"cpu"`` or ``"gpu"``.
        amp: autocast dtype, ``"bf16"``, ``"fp16"`` (with a GradScaler) or ``"none"``.
        channels_last: NHWC memory format for model and images.
        sync_bn: SyncBatchNorm across ranks (GPU).
        eval_every: evaluate every N epochs (and after the last).
        check_val: check the validation folder for undecodable files before epoch 0.
        seed: run seed (weights, file order, augmentation streams).
        ckpt_every_steps: also checkpoint every N steps within an epoch (0: off).
        ckpt_every_minutes: also checkpoint when this many minutes passed since the last
            checkpoint (0: off).
        ckpt_reserve_mb: MiB that must stay free on the checkpoint disk besides the
            checkpoint itself (checked before each write).
        keep_last: checkpoints kept, newest first.
        torch_threads: torch CPU threads per rank; None: CPU cores per rank.
        deterministic: deterministic algorithms (bitwise-reproducible CPU runs; on CUDA
            ops without a deterministic kernel warn instead of failing).
        log_samples: write the sample ids of every step to ``OUT/samples/``.
        log_every: steps between progress updates (the only per-interval host reads).
        progress: show a progress bar.
    """

    train: str
    val: str | None = None
    recipe: str = "demo"
    overrides: tuple[str, ...] = ()
    image_size: int | None = None
    batch_size: int | None = None
    workers: int | None = None
    model: str | None = None
    epochs: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    warmup_epochs: float | None = None
    out: str = "runs/train"
    resume: str | None = None
    init_from: str | None = None
    device: Literal["auto", "cpu", "gpu"] = "auto"
    amp: Literal["bf16", "fp16", "none"] = "none"
    channels_last: bool = False
    sync_bn: bool = False
    eval_every: int = 1
    check_val: bool = True
    seed: int = 0
    ckpt_every_steps: int = 0
    ckpt_every_minutes: float = 10.0
    ckpt_reserve_mb: float = 0.0
    keep_last: int = 3
    torch_threads: int | None = None
    deterministic: bool = False
    log_samples: bool = False
    log_every: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        if self.init_from is not None and self.resume is not None:
            raise UsageError(
                f"`--init-from` {self.init_from!r} starts a new run from a checkpoint's "
                f"weights; it cannot be combined with `--resume` {self.resume!r} (pass one)"
            )
        minimum = {
            "eval_every": 1,
            "keep_last": 1,
            "log_every": 1,
            "seed": 0,
            "ckpt_every_steps": 0,
            "workers": 1,
            "torch_threads": 1,
            "image_size": 1,
            "batch_size": 1,
            "epochs": 1,
        }
        for name, low in minimum.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise UsageError(f"`--{_flag(name)}` must be ≥ {low}, got {value}")
        for name in (
            "ckpt_every_minutes",
            "ckpt_reserve_mb",
            "lr",
            "weight_decay",
            "warmup_epochs",
        ):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise UsageError(f"`--{_flag(name)}` must be a finite number ≥ 0, got {value}")

    @property
    def ckpt_reserve_bytes(self) -> int:
        """``ckpt_reserve_mb`` in bytes."""
        return int(self.ckpt_reserve_mb * 2**20)


def _flag(name: str) -> str:
    return name.replace("_", "-")
