"""``dali-gridaug preview``: a labelled grid of augmented samples, to see what each op does.

Titles show the label, λ and the partner's label; GridMix cells show their patch label (green
= own image, red = partner).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dali_gridaug.augment import AUGMENTATIONS
from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD
from dali_gridaug.demo import DEFAULT_ROOT, _fit, ensure_sample_data
from dali_gridaug.loader import create_loader
from dali_gridaug.viz import save_grid

#: Preview settings that make each op visible on one batch (apply every time).
_VISIBLE = {
    "gridmask": {"p": 1.0, "ramp_epochs": 0},
    "cutout": {"length": 64, "p": 1.0},
    "random_erasing": {"p": 1.0},
    "cutmix": {"mode": "elem"},
    "gridmix": {},
}


def main(argv: list[str] | None = None) -> int:
    """Write the preview grid; see ``dali-gridaug preview --help``."""
    ap = argparse.ArgumentParser(prog="dali-gridaug preview", description=__doc__)
    ap.add_argument("--augment", required=True, choices=sorted(AUGMENTATIONS))
    ap.add_argument("--out", type=Path, required=True, help="PNG file to write")
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--n", type=int, default=8, help="images in the grid")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", choices=("auto", "gpu", "cpu"))
    a = ap.parse_args(argv)
    paths = ensure_sample_data(a.root)
    aug = _fit(AUGMENTATIONS[a.augment](**_VISIBLE.get(a.augment, {})), a.image_size)
    loader = create_loader(
        paths["train"],
        batch_size=max(a.n, 2),
        image_size=a.image_size,
        augment=[aug],
        device=a.device,
        seed=a.seed,
    )
    batch = next(iter(loader))
    save_grid(
        batch,
        a.out,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        classes=loader.classes,
        title=repr(aug),
        max_images=a.n,
    )
    print(f"wrote {a.out}")
    return 0
