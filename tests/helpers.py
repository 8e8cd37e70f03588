"""Test helpers: flat-colour datasets and the provenance of their pixels; a small eval loader;
datasets, argument lists and environments for training-CLI runs; tiny models, batches and
statistics for the Keep stage and saliency tests; a mixing augmentation written against the
augmentation contract alone."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import dali_gridaug
from dali_gridaug.augment.base import MixAugment, ParamSpec, paste_args, paste_specs
from dali_gridaug.batch import Batch
from dali_gridaug.geometry import random_partner
from dali_gridaug.loader import create_loader
from dali_gridaug.presets import IMAGENET
from dali_gridaug.tools import make_sample_dataset

#: The folder holding the ``dali_gridaug`` package, for subprocesses' ``PYTHONPATH``.
PACKAGE_ROOT = str(Path(dali_gridaug.__file__).resolve().parents[1])
#: ImageNet's preset with the host-drawn, position-keyed crop: what tests comparing pixels
#: across a rebuild, a resume, two graphs or two world sizes need (DALI's own crop draw is
#: seeded per rank and restarts with its pipeline)
INVARIANT_CROP = dataclasses.replace(IMAGENET, invariant_crop=True)


def make_constant_dataset(
    root: str | os.PathLike[str],
    colors: list[tuple[int, int, int]],
    per_class: int,
    size: tuple[int, int] = (64, 48),
) -> Path:
    """An ImageFolder whose class-``k`` images are the flat colour ``colors[k]`` (JPEG
    quality 100; flat colours survive compression exactly). For pixel-provenance tests.
    """
    root = Path(root)
    for k, color in enumerate(colors):
        folder = root / f"class{k:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(np.full((size[0], size[1], 3), color, np.uint8))
        for i in range(per_class):
            img.save(folder / f"{i:04d}.jpg", quality=100)
    return root


def color_ids(images: torch.Tensor, colors: list[tuple[int, int, int]]) -> np.ndarray:
    """``(B, H, W)`` index of the palette colour of each pixel (raw-pixel CHW images);
    −1 for pixels matching no colour within ±2 (e.g. dropped pixels, which are 0)."""
    x = images.float().permute(0, 2, 3, 1).cpu().numpy()  # B H W C
    pal = np.asarray(colors, np.float32)  # K 3
    dist = np.abs(x[..., None, :] - pal).max(-1)  # B H W K
    ids = dist.argmin(-1)
    return np.where(dist.min(-1) <= 2, ids, -1)


def collect(loader, epochs: int, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Concatenate raw loader outputs (images + the given parameter keys) over epochs."""
    out: dict[str, list[np.ndarray]] = {"images": [], "key": [], **{k: [] for k in keys}}
    for _ in range(epochs):
        for raw in loader.raw():
            for k in out:
                out[k].append(raw[k].cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def training_data(
    root: Path,
    recipe: str,
    *,
    num_classes: int,
    train_per_class: int,
    val_per_class: int,
    size_range: tuple[int, int],
) -> dict[str, Path]:
    """A sample ``train``/``val`` ImageFolder pair under ``root`` (JPEGs with sides drawn in
    ``size_range`` pixels), with the TOML text ``recipe`` written to ``root/recipe.toml``.
    """
    paths = make_sample_dataset(
        root,
        num_classes=num_classes,
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        size_range=size_range,
    )
    (root / "recipe.toml").write_text(recipe)
    return paths


def training_data_fixture(
    name: str,
    recipe: str,
    *,
    num_classes: int,
    train_per_class: int,
    val_per_class: int,
    size_range: tuple[int, int],
) -> object:
    """A module-scoped ``data`` fixture: :func:`training_data` in a fresh ``name`` folder,
    built once per test module (assign it to ``data`` in the module).
    """
    sizes = dict(
        num_classes=num_classes,
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        size_range=size_range,
    )

    @pytest.fixture(scope="module")
    def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
        return training_data(tmp_path_factory.mktemp(name), recipe, **sizes)

    return data


def train_argv(
    data: dict[str, Path], out: Path, *extra: str, val: bool = False, seed: int | None = None
) -> list[str]:
    """Training-CLI arguments for a short CPU run of :func:`training_data`'s recipe into
    ``out``: one DALI and one torch thread, each step's sample ids logged to
    ``out/samples/rank<r>.tsv``, no progress bar; with ``val`` the val folder is evaluated,
    ``seed`` sets ``--seed``, and ``extra`` is appended.
    """
    argv = ["--train", str(data["train"])] + (["--val", str(data["val"])] if val else [])
    argv += ["--recipe", str(data["train"].parent / "recipe.toml"), "--out", str(out)]
    argv += ["--device", "cpu", "--workers", "1", "--torch-threads", "1"]
    argv += ["--seed", str(seed)] if seed is not None else []
    return [*argv, "--log-samples", "--no-progress", *extra]


def rank_env(rank: int = 0, world: int = 1, port: int | None = None) -> dict[str, str]:
    """This process's environment for a training subprocess that is rank ``rank`` of
    ``world`` (``torchrun``'s variables; ``port`` is the rendezvous port on 127.0.0.1 when
    ``world`` > 1), with :data:`PACKAGE_ROOT` first on ``PYTHONPATH``.
    """
    path = os.pathsep.join([PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path, RANK=str(rank), WORLD_SIZE=str(world))
    env.update(LOCAL_RANK=str(rank))
    if world > 1:
        env.update(LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    return env


def small_loader(root: Path | str, **kw: object):
    """:func:`create_loader` for quick checks: an eval loader of batches of 4 at 32×32 on the
    CPU with 2 threads; ``kw`` overrides any of these and adds the rest."""
    kw = {
        "batch_size": 4,
        "train": False,
        "image_size": 32,
        "device": "cpu",
        "num_threads": 2,
        **kw,
    }
    return create_loader(root, **kw)


def graph_spec(source: object, device: str, **options: object):
    """The :class:`~dali_gridaug.config.PipelineSpec` ``create_loader`` resolves for a 4-image,
    32×32, raw-pixel (mean 0, std 1) one-thread loader with ``options``, placed on ``device``
    (``"gpu"``: ``device_id=0``, which needs no GPU to define a graph).
    """
    from dali_gridaug.config import LoaderConfig, resolve
    from dali_gridaug.testing.cases import placed

    defaults = dict(batch_size=4, image_size=32, mean=0.0, std=1.0, num_threads=1)
    config = LoaderConfig(**{**defaults, **options, "device": "cpu"})
    return placed(resolve(config, source), device)


def tiny_model(num_classes: int, seed: int = 0, dropout: float = 0.0) -> nn.Sequential:
    """A two-convolution classifier of ``(B, 3, H, W)`` images into ``num_classes`` logits,
    initialised from ``torch.manual_seed(seed)``. BatchNorm (and, when ``dropout`` > 0, a
    Dropout layer of that rate before the pooling) make train and eval mode differ.
    """
    torch.manual_seed(seed)
    layers: list[nn.Module] = [
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2),
        nn.ReLU(),
    ]
    layers += [nn.Dropout(dropout)] if dropout > 0 else []
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes)]
    return nn.Sequential(*layers)


def make_batch(
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    clean: torch.Tensor | None = None,
    num_classes: int = 16,
) -> Batch:
    """An unmixed :class:`Batch` of ``images`` (``(B, 3, H, W)``): ``labels`` (default
    ``arange(B) % num_classes``) as hard targets, ``lam`` 1, each sample its own partner, and
    ``clean`` as the clean view."""
    n = images.shape[0]
    labels = torch.arange(n) % num_classes if labels is None else labels
    return Batch(
        images=images,
        target=labels,
        labels=labels,
        index=torch.arange(n),
        lam=torch.ones(n),
        partner=torch.arange(n),
        clean=clean,
    )


def random_images(
    seed: int, n: int = 16, height: int = 32, width: int | None = None
) -> torch.Tensor:
    """``(n, 3, height, width)`` float32 standard-normal images (``width`` defaults to
    ``height``) from a CPU generator seeded with ``seed``."""
    width = height if width is None else width
    return torch.randn(n, 3, height, width, generator=torch.Generator().manual_seed(seed))


def gen(seed: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def box_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, H, W)`` bool, True inside each ``(y0, x0, y1, x1)`` box of ``boxes`` (``(B, 4)``
    int64, end-exclusive), computed independently of the library's kernels."""
    y = torch.arange(height)[None, :, None]
    x = torch.arange(width)[None, None, :]
    y0, x0, y1, x1 = (boxes[:, i, None, None] for i in range(4))
    return (y >= y0) & (y < y1) & (x >= x0) & (x < x1)


def chi_square_p_ok(counts: np.ndarray, expected: np.ndarray, p_min: float = 1e-3) -> bool:
    """Two-sided-enough goodness of fit: True when p > p_min (scipy, else Wilson–Hilferty)."""
    counts = np.asarray(counts, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert abs(counts.sum() - expected.sum()) < 1e-6 * counts.sum()
    try:
        from scipy.stats import chisquare
    except ImportError:
        stat = float(((counts - expected) ** 2 / expected).sum())
        dof = len(counts) - 1
        z = 3.090  # one-sided normal quantile for p = 0.001
        critical = dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3
        return stat < critical
    return float(chisquare(counts, expected).pvalue) > p_min


@dataclasses.dataclass(frozen=True)
class RightHalfMix(MixAugment):
    """A mixing augmentation written against the contract alone: the right half of every
    image comes from its partner (λ = 0.5 up to rounding). It has no ``xp`` kernel, although
    its default backend is ``auto``."""

    backend: str = "auto"
    name: ClassVar[str] = "right_half"

    def schema(self, height: int, width: int) -> tuple[ParamSpec, ...]:
        return (ParamSpec("lam", np.float32), ParamSpec("partner", np.int32), *paste_specs(1))

    def sample(self, rng, ctx):
        b, h, w = ctx.batch_size, ctx.height, ctx.width
        partner = random_partner(rng, b, derangement=True)
        box = np.broadcast_to(np.array([[[0, w // 2, h, w]]]), (b, 1, 4))
        lam = np.full(b, (w // 2) / w, np.float32)
        return {"lam": lam, "partner": partner, **paste_args(partner, box, h, w, ctx.flip)}
