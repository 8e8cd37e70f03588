"""Helpers the tool commands share: the user cache dir, the sample data in it, and sizing the
ImageNet augmentation defaults to a small demo image.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dali_gridaug.errors import UsageError

if TYPE_CHECKING:
    from dali_gridaug.augment import Augment


def cache_dir() -> Path:
    """The user cache dir: ``$XDG_CACHE_HOME/dali-gridaug``, else ``~/.cache/dali-gridaug``.

    Tools write their default outputs here (sample data, demo grid, check-data report), never
    into the current folder. The folder is not created here.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).absolute() / "dali-gridaug"


def default_sample_root() -> Path:
    """Where ``demo`` and ``preview`` keep the sample dataset by default."""
    return cache_dir() / "sample"


def ensure_sample_data(root: Path | None) -> dict[str, Path]:
    """``{"train": …, "val": …}`` of the sample dataset under ``root`` (default
    :func:`default_sample_root`), generated on first use.

    Raises:
        UsageError: ``root`` exists but holds neither the sample dataset nor ``train/``.
    """
    root = default_sample_root() if root is None else Path(root)
    if (root / "READY").exists():
        return {"train": root / "train", "val": root / "val"}
    if root.exists() and not root.is_dir():
        raise UsageError(f"--root {str(root)!r} is a file, not a folder")
    if root.exists() and any(root.iterdir()):
        if (root / "train").is_dir():
            return {"train": root / "train", "val": root / "val"}
        raise UsageError(
            f"--root {str(root)!r} is neither the sample dataset nor a folder holding train/"
        )
    from dali_gridaug.tools.synthetic import make_sample_dataset

    print(f"generating the sample dataset in {root} ...")
    return make_sample_dataset(root)


def fit_to_size(aug: Augment, size: int) -> Augment:
    """ImageNet defaults scaled to an ``size``-pixel square crop: GridMask's period range
    (:meth:`GridMask.scaled_to`) and Cutout's side (at most ``size // 2``); others unchanged.
    """
    from dali_gridaug.augment import Cutout, GridMask

    if isinstance(aug, GridMask):
        return aug.scaled_to(size)
    if isinstance(aug, Cutout):
        return dataclasses.replace(aug, length=max(1, min(aug.length, size // 2)))
    return aug
