"""Draw a batch as a labelled PNG grid (matplotlib, Agg): λ, partner and GridMix cells."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from dali_gridaug.batch import Batch


def to_uint8(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(B, 3, H, W)`` normalized → ``(B, H, W, 3)`` uint8 pixels."""
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    x = images.detach().float().cpu() * s + m
    return x.clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy()


def save_grid(
    batch: Batch,
    path: str | os.PathLike[str],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    classes: Sequence[str] | None = None,
    title: str = "",
    max_images: int = 16,
) -> None:
    """Save up to ``max_images`` samples with their label, λ and (GridMix) per-cell labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pix = to_uint8(batch.images[:max_images], mean, std)
    n = len(pix)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.5 * rows), squeeze=False)
    name = (lambda k: classes[k][:12]) if classes else str
    for ax, i in zip(axes.flat, range(n), strict=False):
        ax.imshow(pix[i])
        y, yp = int(batch.labels[i]), int(batch.labels[batch.partner[i]])
        lam = float(batch.lam[i])
        text = f"{name(y)}" if lam >= 1 else f"{name(y)} λ={lam:.2f}\n+ {name(yp)} {1 - lam:.2f}"
        ax.set_title(text, fontsize=8)
        if batch.patch_labels is not None:
            cells = batch.patch_labels[i].cpu().numpy()
            h, w = pix[i].shape[:2]
            g = cells.shape[0]
            for r in range(g):
                for c in range(g):
                    y0, y1 = r * h // g, (r + 1) * h // g
                    x0, x1 = c * w // g, (c + 1) * w // g
                    own = cells[r, c] == y
                    ax.add_patch(
                        plt.Rectangle(
                            (x0, y0),
                            x1 - x0,
                            y1 - y0,
                            fill=False,
                            ec="lime" if own else "red",
                            lw=0.8,
                        )
                    )
                    ax.text(
                        (x0 + x1) / 2,
                        (y0 + y1) / 2,
                        str(cells[r, c]),
                        color="white",
                        ha="center",
                        va="center",
                        fontsize=7,
                        bbox=dict(fc="black", alpha=0.4, pad=0.5, lw=0),
                    )
        if batch.boxes is not None:
            y0, x0, y1, x1 = (int(v) for v in batch.boxes[i])
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=1))
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
