"""``dali-gridaug demo``: the full train pipeline on the sample data, with throughput.

Builds the sample dataset if missing, runs a few epochs of the training loader (GPU when
usable, else DALI's CPU backend) with a progress bar, prints images/s, and writes a PNG grid
of the last batch.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from dali_gridaug.augment import AUGMENTATIONS, Augment, Cutout, GridMask
from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD
from dali_gridaug.loader import create_loader
from dali_gridaug.synthetic import make_sample_dataset
from dali_gridaug.viz import save_grid

DEFAULT_ROOT = Path("data/sample")


def ensure_sample_data(root: Path) -> dict[str, Path]:
    """The sample dataset under ``root``, generated on first use."""
    if not (root / "READY").exists():
        print(f"generating the sample dataset in {root} ...")
        return make_sample_dataset(root)
    return {"train": root / "train", "val": root / "val"}


def _fit(aug: Augment, size: int) -> Augment:
    """ImageNet defaults scaled to ``size`` (GridMask's period, Cutout's length)."""
    if isinstance(aug, GridMask):
        return aug.scaled_to(size)
    if isinstance(aug, Cutout):
        return dataclasses.replace(aug, length=max(1, min(aug.length, size // 2)))
    return aug


def main(argv: list[str] | None = None) -> int:
    """Run the demo; see ``dali-gridaug demo --help``."""
    from tqdm import tqdm

    ap = argparse.ArgumentParser(prog="dali-gridaug demo", description=__doc__)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="sample data folder")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument(
        "--augment",
        default="gridmask,gridmix",
        help=f"comma-separated, from {', '.join(AUGMENTATIONS)}, or 'none'",
    )
    ap.add_argument("--device", default="auto", choices=("auto", "gpu", "cpu"))
    ap.add_argument("--out", type=Path, default=Path("demo_batch.png"))
    a = ap.parse_args(argv)

    paths = ensure_sample_data(a.root)
    names = [] if a.augment == "none" else a.augment.split(",")
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        ap.error(f"unknown augmentation(s) {unknown}; choose from {list(AUGMENTATIONS)}")
    augment = [AUGMENTATIONS[n](**({"ramp_epochs": 0} if n == "gridmask" else {})) for n in names]
    augment = [_fit(aug, a.image_size) for aug in augment]
    loader = create_loader(
        paths["train"],
        batch_size=a.batch_size,
        image_size=a.image_size,
        augment=augment,
        device=a.device,
    )
    print(
        f"device={loader.spec.device} images={len(loader.source)} classes={loader.num_classes} "
        f"batch={a.batch_size} augment={names or 'none'}"
    )
    batch = None
    for epoch in range(a.epochs):
        loader.set_epoch(epoch)
        count, start = 0, time.perf_counter()
        for batch in tqdm(loader, desc=f"epoch {epoch}", unit="batch", leave=False):
            count += len(batch)
        rate = count / (time.perf_counter() - start)
        print(f"epoch {epoch}: {count} images, {rate:,.0f} images/s")
    if batch is not None:
        save_grid(
            batch,
            a.out,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            classes=loader.classes,
            title=f"dali-gridaug demo: {', '.join(names) or 'no augmentation'}",
        )
        print(f"wrote {a.out}")
    return 0
