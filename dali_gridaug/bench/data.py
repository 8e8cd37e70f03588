"""The benchmark dataset: natural photographs, as ImageNet's JPEGs are.

``photos``: random 500×375 crops of the photographs scikit-image ships (each photo, scaled
by a random factor so that the crop fits, is one class), saved as quality-90 JPEGs in an
ImageFolder. Synthetic renders compress very differently from photographs, and JPEG
decoding is most of a loader's work. Generated once into the user cache dir (or ``--data``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

#: scikit-image's photographs (files in ``skimage/data``); grey ones are made RGB.
PHOTOS: tuple[str, ...] = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)
SIZE_WH: tuple[int, int] = (500, 375)
QUALITY = 90


def cache_dir() -> Path:
    """``$DALI_GRIDAUG_CACHE``, else ``$XDG_CACHE_HOME/dali-gridaug`` (``~/.cache/…``)."""
    env = os.environ.get("DALI_GRIDAUG_CACHE")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(env) if env else Path(base) / "dali-gridaug"


def make_photos(root: str | os.PathLike[str], num_images: int, seed: int = 0) -> Path:
    """Write (or reuse) ``root/<photo>/<index>.jpg``: ``num_images`` random crops.

    Raises:
        UsageError: scikit-image is not installed.
    """
    from importlib.resources import files

    from PIL import Image

    root = Path(root)
    stamp = f"{num_images} {seed} {QUALITY} {SIZE_WH}\n"
    if (root / "READY").is_file() and (root / "READY").read_text() == stamp:
        return root
    try:
        data = files("skimage.data")
    except ModuleNotFoundError as err:
        from dali_gridaug.errors import UsageError

        raise UsageError(
            "the natural-photo dataset needs scikit-image (pip install "
            "scikit-image); or pass `--dataset sample` or an ImageFolder"
        ) from err
    sources = [Image.open(data.joinpath(name)).convert("RGB") for name in PHOTOS]
    rng = np.random.default_rng(seed)
    tmp = Path(
        tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent if root.parent.exists() else None)
    )
    for i in range(num_images):
        k = i % len(sources)
        im, (w, h) = sources[k], SIZE_WH
        scale = max(w / im.width, h / im.height) * rng.uniform(1.0, 1.6)
        big = im.resize((round(im.width * scale) + 1, round(im.height * scale) + 1), Image.BILINEAR)
        x, y = rng.integers(0, big.width - w + 1), rng.integers(0, big.height - h + 1)
        crop = big.crop((x, y, x + w, y + h))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        folder = tmp / PHOTOS[k].split(".")[0]
        folder.mkdir(exist_ok=True)
        crop.save(folder / f"{i:06d}.jpg", quality=QUALITY)
    (tmp / "READY").write_text(stamp)
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(tmp), root)
    return root


def resolve(
    spec: str, *, num_images: int, data: str | None = None, seed: int = 0
) -> dict[str, Any]:
    """Materialize the dataset ``spec`` (``photos``, ``sample`` or an ImageFolder path).

    Args:
        spec: dataset name or path.
        num_images: photos to generate (``photos`` only).
        data: where to generate it (default: the user cache dir).
        seed: crop seed.

    Returns:
        Its JSON description: ``root``, ``kind``, ``images``, ``classes``, mean file size.
    """
    base = Path(data) if data else cache_dir()
    if spec == "photos":
        root = make_photos(base / f"photos-n{num_images}-s{seed}", num_images, seed)
        desc = {
            "kind": "photos",
            "source": "scikit-image data photographs",
            "crop_wh": list(SIZE_WH),
            "jpeg_quality": QUALITY,
            "seed": seed,
        }
    elif spec == "sample":
        from dali_gridaug.tools import make_sample_dataset

        if not (base / "sample" / "train").is_dir():
            make_sample_dataset(base / "sample")
        root, desc = base / "sample" / "train", {"kind": "sample"}
    else:
        root = Path(spec).expanduser()
        root = root / "train" if (root / "train").is_dir() else root
        desc = {"kind": "imagefolder"}
    files = sorted(root.glob("*/*.*"))
    if not files:
        from dali_gridaug.errors import UsageError

        raise UsageError(f"`--dataset` {spec!r}: no images in {root}")
    return {
        "root": str(root.resolve()),
        **desc,
        "images": len(files),
        "classes": len({f.parent for f in files}),
        "mean_file_kib": round(sum(f.stat().st_size for f in files) / len(files) / 1024, 1),
    }
