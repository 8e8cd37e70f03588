"""A small, deterministic, learnable JPEG dataset in ImageFolder layout.

Each class is a hue plus a texture (stripes at one of several orientations/frequencies,
checkerboard or rings) with random phase, scale, tint and noise, so a small CNN can tell the
classes apart after random-resized crops, but not from one pixel. Image sides are drawn from
``size_range`` independently (both orientations, ImageNet-like aspect ratios).
"""

from __future__ import annotations

import colorsys
import os
from pathlib import Path

import numpy as np
from PIL import Image

_PATTERNS = ("hstripes", "vstripes", "diagonal", "checker", "rings")


def class_names(num_classes: int) -> list[str]:
    """``["c00_hstripes", …]``: sortable names, so class index = position."""
    return [f"c{k:02d}_{_PATTERNS[k % len(_PATTERNS)]}" for k in range(num_classes)]


def render(
    k: int, num_classes: int, height: int, width: int, rng: np.random.Generator
) -> np.ndarray:
    """One ``(height, width, 3)`` uint8 image of class ``k``."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    period = rng.uniform(18, 30) * (1 + (k // len(_PATTERNS)) % 3) * 0.7
    phase = rng.uniform(0, 2 * np.pi)
    pattern = _PATTERNS[k % len(_PATTERNS)]
    if pattern == "hstripes":
        t = np.sin(2 * np.pi * y / period + phase)
    elif pattern == "vstripes":
        t = np.sin(2 * np.pi * x / period + phase)
    elif pattern == "diagonal":
        t = np.sin(2 * np.pi * (x + y) / (period * 1.4) + phase)
    elif pattern == "checker":
        t = np.sin(2 * np.pi * x / period + phase) * np.sin(2 * np.pi * y / period)
    else:
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        t = np.sin(2 * np.pi * np.hypot(y - cy, x - cx) / period + phase)
    hue = (k / num_classes + rng.normal(0, 0.01)) % 1.0
    fg = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 0.9), rng.uniform(0.7, 1.0)))
    bg = np.array(colorsys.hsv_to_rgb((hue + 0.5) % 1.0, 0.3, rng.uniform(0.2, 0.4)))
    w = (t[..., None] > 0).astype(np.float32) * 0.8 + 0.1
    img = w * fg + (1 - w) * bg + rng.normal(0, 0.04, (height, width, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_sample_dataset(
    root: str | os.PathLike[str],
    *,
    num_classes: int = 10,
    train_per_class: int = 40,
    val_per_class: int = 10,
    size_range: tuple[int, int] = (300, 500),
    quality: int = 90,
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg``.

    Deterministic from ``seed``. Returns ``{"train": path, "val": path}``.
    """
    root = Path(root)
    names = class_names(num_classes)
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for k, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                h, w = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, 2))
                Image.fromarray(render(k, num_classes, h, w, rng)).save(
                    folder / f"{split}_{k:02d}_{i:04d}.jpg", quality=quality
                )
    (root / "READY").write_text(f"{num_classes} {train_per_class} {val_per_class} {seed}\n")
    return {"train": root / "train", "val": root / "val"}


def main(argv: list[str] | None = None) -> int:
    """``dali-gridaug sample-data ROOT``.

    Raises:
        UsageError: a bad flag value (the dispatcher exits 2).
    """
    from dali_gridaug.errors import UsageError
    from dali_gridaug.tools.args import ArgParser

    ap = ArgParser(prog="dali-gridaug sample-data", description=__doc__)
    ap.add_argument("root", help="output folder (train/ and val/ are created inside)")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--train-per-class", type=int, default=40)
    ap.add_argument("--val-per-class", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.classes < 1 or a.train_per_class < 0 or a.val_per_class < 0 or a.seed < 0:
        raise UsageError(
            "--classes must be ≥ 1 and --train-per-class, --val-per-class, --seed ≥ 0, got "
            f"{a.classes}, {a.train_per_class}, {a.val_per_class}, {a.seed}"
        )
    paths = make_sample_dataset(
        a.root,
        num_classes=a.classes,
        train_per_class=a.train_per_class,
        val_per_class=a.val_per_class,
        seed=a.seed,
    )
    print(f"wrote {paths['train']} and {paths['val']}")
    return 0
