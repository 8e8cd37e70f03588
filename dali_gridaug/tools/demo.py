"""``dali-gridaug demo``: the full train pipeline on the sample data, with throughput.

Builds the sample dataset in the user cache dir if missing (or uses ``--root``), runs a few
epochs of the training loader (GPU when usable, else DALI's CPU backend) with a progress bar,
prints images/s per epoch (numbered from 0), and writes a PNG grid of the last batch to
``--out`` (default: ``demo_batch.png`` in the user cache dir). Needs only the base install:
the grid is drawn with Pillow.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dali_gridaug.augment import AUGMENTATIONS
from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD
from dali_gridaug.errors import UsageError
from dali_gridaug.loader import create_loader
from dali_gridaug.tools.args import ArgParser
from dali_gridaug.tools.common import cache_dir, ensure_sample_data, fit_to_size
from dali_gridaug.tools.viz import save_grid


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = ArgParser(prog="dali-gridaug demo", description=__doc__)
    ap.add_argument("--root", type=Path, help="sample data folder (default: in the user cache)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument(
        "--augment",
        default="gridmask,gridmix",
        help=f"comma-separated, from {', '.join(AUGMENTATIONS)}, or 'none'",
    )
    ap.add_argument("--device", default="auto", choices=("auto", "gpu", "cpu"))
    ap.add_argument("--out", type=Path, help="PNG to write (default: in the user cache dir)")
    a = ap.parse_args(argv)
    for flag in ("epochs", "batch_size", "image_size"):
        if getattr(a, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be ≥ 1, got {getattr(a, flag)}")
    a.names = [] if a.augment == "none" else a.augment.split(",")
    unknown = [n for n in a.names if n not in AUGMENTATIONS]
    if unknown:
        raise UsageError(f"unknown augmentation(s) {unknown}; choose from {list(AUGMENTATIONS)}")
    return a


def main(argv: list[str] | None = None) -> int:
    """Run the demo; see ``dali-gridaug demo --help``.

    Raises:
        UsageError: a bad flag value or ``--root`` (the dispatcher exits 2).
    """
    from tqdm import tqdm

    a = _parse(argv)
    names = a.names
    out = a.out or cache_dir() / "demo_batch.png"
    paths = ensure_sample_data(a.root)
    augment = [AUGMENTATIONS[n](**({"ramp_epochs": 0} if n == "gridmask" else {})) for n in names]
    loader = create_loader(
        paths["train"],
        batch_size=a.batch_size,
        image_size=a.image_size,
        augment=[fit_to_size(aug, a.image_size) for aug in augment],
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
            out,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            classes=loader.classes,
            title=f"dali-gridaug demo, last batch of epoch {a.epochs - 1}: "
            f"{', '.join(names) or 'no augmentation'}",
        )
        print(f"wrote {out}")
    return 0
