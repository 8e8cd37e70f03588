"""Test helpers: provenance of pixels in flat-colour datasets."""

from __future__ import annotations

import numpy as np
import torch


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
