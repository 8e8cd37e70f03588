"""Benchmark datasets: every loader under test reads the same JPEG files.

* ``imagenet-like``: ``num_images`` JPEGs of 500×375 (75 %) or 375×500 (25 %) pixels, quality
  90, in ``classes`` ImageFolder classes, rendered with :func:`dali_gridaug.synthetic.render`;
  generated once (in parallel) and cached.
* ``sample``: the package's sample dataset (``make_sample_dataset``, its ``train`` split).
* any other value: the path of your own ImageFolder root (or a folder holding ``train/``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

#: ImageNet's typical JPEG: 500×375, landscape three times out of four.
IMAGENET_LIKE_SIZE: tuple[int, int] = (375, 500)
IMAGENET_LIKE_QUALITY: int = 90


def default_cache_dir() -> Path:
    """``$DALI_GRIDAUG_CACHE``, else ``$XDG_CACHE_HOME/dali-gridaug`` (``~/.cache/…``), else
    the temp folder."""
    env = os.environ.get("DALI_GRIDAUG_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "dali-gridaug"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only home: fall back to the temp folder
        path = Path(tempfile.gettempdir()) / "dali-gridaug"
    return path


def _render_one(job: tuple[str, int, int, int, int, int]) -> int:
    from PIL import Image

    from dali_gridaug.synthetic import render

    path, k, classes, index, seed, quality = job
    rng = np.random.default_rng([seed, index])
    h, w = IMAGENET_LIKE_SIZE if rng.random() < 0.75 else IMAGENET_LIKE_SIZE[::-1]
    Image.fromarray(render(k, classes, h, w, rng)).save(path, quality=quality)
    return index


def make_imagenet_like(
    root: str | os.PathLike[str],
    *,
    num_images: int,
    classes: int = 10,
    seed: int = 0,
    quality: int = IMAGENET_LIKE_QUALITY,
    processes: int | None = None,
) -> Path:
    """Write (or reuse) ``root/<class>/<index>.jpg``; returns the ImageFolder root."""
    from dali_gridaug.synthetic import class_names

    root = Path(root)
    stamp = f"{num_images} {classes} {seed} {quality}\n"
    if (root / "READY").is_file() and (root / "READY").read_text() == stamp:
        return root
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    names = class_names(classes)
    jobs = []
    for i in range(num_images):
        k = i % classes
        (tmp / names[k]).mkdir(parents=True, exist_ok=True)
        jobs.append((str(tmp / names[k] / f"{i:07d}.jpg"), k, classes, i, seed, quality))
    workers = max(1, min(processes or os.cpu_count() or 1, num_images // 8 or 1))
    if workers == 1:
        for job in jobs:
            _render_one(job)
    else:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_render_one, jobs, chunksize=16))
    (tmp / "READY").write_text(stamp)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def resolve_dataset(
    spec: str,
    *,
    num_images: int,
    classes: int = 10,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Materialize the dataset named by ``spec``; returns its JSON description (with ``root``)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if spec == "imagenet-like":
        root = make_imagenet_like(
            cache / f"imagenet-like-n{num_images}-c{classes}-s{seed}-q{IMAGENET_LIKE_QUALITY}",
            num_images=num_images,
            classes=classes,
            seed=seed,
        )
        desc = {
            "kind": "imagenet-like",
            "generator": "dali_gridaug.synthetic.render",
            "jpeg_quality": IMAGENET_LIKE_QUALITY,
            "nominal_size_hw": "375x500 (75%) / 500x375 (25%)",
            "seed": seed,
        }
    elif spec == "sample":
        from dali_gridaug.synthetic import make_sample_dataset

        base = cache / "sample"
        if not (base / "READY").is_file():
            make_sample_dataset(base)
        root = base / "train"
        desc = {"kind": "sample", "generator": "dali_gridaug.synthetic.make_sample_dataset"}
    else:
        root = Path(spec).expanduser()
        if (root / "train").is_dir():
            root = root / "train"
        desc = {"kind": "imagefolder"}
    return {"root": str(root.resolve()), **desc, **_stats(root)}


def _stats(root: Path, sample: int = 256) -> dict[str, Any]:
    """File count, classes, mean file size and mean resolution (over up to ``sample`` files)."""
    from PIL import Image

    from dali_gridaug.reader import image_folder

    src = image_folder(root)
    step = max(1, len(src.files) // sample)
    picked = src.files[::step][:sample]
    sizes = [os.path.getsize(f) for f in picked]
    dims = []
    for f in picked:
        with Image.open(f) as im:
            dims.append(im.size)  # (W, H)
    dims_a = np.asarray(dims, np.float64)
    return {
        "images": len(src.files),
        "classes": len(src.classes),
        "mean_file_kib": round(float(np.mean(sizes)) / 1024, 1),
        "mean_width": round(float(dims_a[:, 0].mean()), 1),
        "mean_height": round(float(dims_a[:, 1].mean()), 1),
    }
