"""Test helpers: flat-colour datasets and the provenance of their pixels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image


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
