"""``dali-gridaug preview``: a labelled grid of augmented samples, to see what each op does.

Captions show the label, λ (written ``lam``) and the partner's label; GridMix cells are
outlined by source image (green = own, red = partner) with their patch label. The sample data
lives in the user cache dir unless ``--root`` is given; only ``--out`` is written besides.
"""

from __future__ import annotations

from pathlib import Path

from dali_gridaug.augment import AUGMENTATIONS
from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD
from dali_gridaug.errors import UsageError
from dali_gridaug.loader import create_loader
from dali_gridaug.tools.args import ArgParser
from dali_gridaug.tools.common import ensure_sample_data, fit_to_size
from dali_gridaug.tools.viz import save_grid

#: Preview settings that make each op visible on one batch (apply every time).
_VISIBLE = {
    "gridmask": {"p": 1.0, "ramp_epochs": 0},
    "cutout": {"length": 64, "p": 1.0},
    "random_erasing": {"p": 1.0},
    "cutmix": {"mode": "elem"},
    "gridmix": {},
}


def main(argv: list[str] | None = None) -> int:
    """Write the preview grid; see ``dali-gridaug preview --help``.

    Raises:
        UsageError: a bad flag value or ``--root`` (the dispatcher exits 2).
    """
    ap = ArgParser(prog="dali-gridaug preview", description=__doc__)
    ap.add_argument("--augment", required=True, choices=sorted(AUGMENTATIONS))
    ap.add_argument("--out", type=Path, required=True, help="PNG file to write")
    ap.add_argument("--root", type=Path, help="sample data folder (default: in the user cache)")
    ap.add_argument("--n", type=int, default=8, help="images in the grid")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", choices=("auto", "gpu", "cpu"))
    a = ap.parse_args(argv)
    if a.n < 1 or a.image_size < 1:
        raise UsageError(f"--n and --image-size must be ≥ 1, got {a.n} and {a.image_size}")
    paths = ensure_sample_data(a.root)
    aug = fit_to_size(AUGMENTATIONS[a.augment](**_VISIBLE.get(a.augment, {})), a.image_size)
    loader = create_loader(
        paths["train"],
        batch_size=max(a.n, 2),
        image_size=a.image_size,
        augment=[aug],
        device=a.device,
        seed=a.seed,
    )
    # The raw outputs carry GridMix's per-cell source ("<i>.cells", true = own image), which
    # the Batch does not: the preview colours cells by source, not by label.
    out = next(iter(loader.raw()))
    batch = loader._to_batch(out)
    cells = next((v for k, v in out.items() if k.endswith(".cells")), None)
    save_grid(
        batch,
        a.out,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        classes=loader.classes,
        title=repr(aug),
        max_images=a.n,
        cell_source=cells,
    )
    print(f"wrote {a.out}")
    return 0
