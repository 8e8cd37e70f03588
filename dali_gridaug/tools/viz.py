"""Draw a batch as a labelled PNG grid with Pillow: label, λ, partner, GridMix cells, boxes.

Every caption is measured (``ImageDraw.textbbox``) and shortened with "..." to fit its tile,
so no two texts overlap. GridMix cells are outlined by their *source image* (green: the
image's own pixels, red: the partner's), not by label, so a partner of the same class is
still visible. Pillow's built-in font has no Greek letters, so λ is written ``lam``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from dali_gridaug.batch import Batch

#: Outline colours of GridMix cells, by source image; boxes of a Keep stage.
OWN, PARTNER, BOX = (40, 220, 40), (235, 40, 40), (250, 220, 0)
_PAD, _FONT, _SMALL, _TILE = 6, 13, 10, 192


def to_uint8(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(B, 3, H, W)`` normalized float → ``(B, H, W, 3)`` uint8 pixels (``x·std + mean``)."""
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    x = images.detach().float().cpu() * s + m
    return x.clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy()


def captions(
    batch: Batch,
    classes: Sequence[str] | None,
    n: int,
    fit: Callable[[str, str], str] = lambda name, suffix: name + suffix,
) -> list[list[str]]:
    """Caption lines of the first ``n`` samples: the label, then (mixed) ``lam`` and the
    partner's label with its weight ``1 - lam``. ``fit(name, suffix)`` joins a class name
    and the numbers after it (the drawer shortens the name so that the numbers stay).
    """
    name = (lambda k: classes[k]) if classes else str
    out = []
    for i in range(n):
        y, lam = int(batch.labels[i]), float(batch.lam[i])
        if lam >= 1:
            out.append([fit(name(y), "")])
        else:
            yp = int(batch.labels[int(batch.partner[i])])
            out.append([fit(name(y), f"  lam={lam:.2f}"), fit(f"+ {name(yp)}", f"  {1 - lam:.2f}")])
    return out


def save_grid(
    batch: Batch,
    path: str | os.PathLike[str],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    classes: Sequence[str] | None = None,
    title: str = "",
    max_images: int = 16,
    cell_source: torch.Tensor | np.ndarray | None = None,
) -> None:
    """Save up to ``max_images`` samples, 4 per row, each with its caption under it.

    Args:
        batch: the batch to draw (images normalized with ``mean``/``std``, 0–255 scale).
        path: PNG file to write (its folder is created).
        mean: per-channel mean the images were normalized with.
        std: per-channel std the images were normalized with.
        classes: class names (default: the indices).
        title: line(s) above the grid, wrapped to its width.
        max_images: at most this many samples.
        cell_source: GridMix ``(B, n, n)`` bool/uint8, true where the cell holds the image's
            own pixels; draws each cell's outline by source with its patch label. None: no
            cells drawn.
    """
    pix = to_uint8(batch.images[:max_images], mean, std)
    n, h, w = pix.shape[:3]
    scale = max(1, math.ceil(_TILE / w))
    tw, th = w * scale, h * scale
    font, small = ImageFont.load_default(_FONT), ImageFont.load_default(_SMALL)
    # text is drawn 1 px in from its box and fit to 2 px less: glyphs ink a pixel beyond
    # their origin and advance (anti-aliasing)
    lines = captions(batch, classes, n, lambda name, tail: _shorten(name, font, tw - 2, tail))
    line_h = _height(font) + 3
    cap_h = line_h * max(len(c) for c in lines) + _PAD
    cols = min(4, n)
    rows = math.ceil(n / cols)
    width = cols * (tw + _PAD) + _PAD
    head = _wrap(title, font, width - 2 * _PAD - 2) if title else []
    if cell_source is not None:
        legend = "cells: green = own image, red = partner image; number = patch label"
        head += _wrap(legend, font, width - 2 * _PAD - 2)
    head_h = line_h * len(head) + (_PAD if head else 0)
    sheet = Image.new("RGB", (width, head_h + rows * (th + cap_h + _PAD) + _PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for k, text in enumerate(head):
        draw.text((_PAD + 1, _PAD + k * line_h), text, fill="black", font=font)
    for i in range(n):
        x0 = _PAD + (i % cols) * (tw + _PAD)
        y0 = head_h + _PAD + (i // cols) * (th + cap_h + _PAD)
        sheet.paste(Image.fromarray(pix[i]).resize((tw, th), Image.NEAREST), (x0, y0))
        if cell_source is not None and batch.patch_labels is not None:
            own = np.asarray(torch.as_tensor(cell_source[i]).cpu()).astype(bool)
            cells = batch.patch_labels[i].cpu().numpy()
            _cells(draw, (x0, y0, tw, th), own, cells, small)
        if batch.boxes is not None:
            by0, bx0, by1, bx1 = (int(v) * scale for v in batch.boxes[i])
            draw.rectangle((x0 + bx0, y0 + by0, x0 + bx1 - 1, y0 + by1 - 1), outline=BOX, width=2)
        for k, text in enumerate(lines[i]):
            draw.text((x0 + 1, y0 + th + 3 + k * line_h), text, fill="black", font=font)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sheet.save(path, format="PNG")


def _cells(
    draw: ImageDraw.ImageDraw,
    tile: tuple[int, int, int, int],
    own: np.ndarray,
    labels: np.ndarray,
    font: ImageFont.FreeTypeFont,
) -> None:
    """Outline each of the ``g × g`` cells by source and write its patch label where it fits."""
    x0, y0, tw, th = tile
    g = own.shape[0]
    for r in range(g):
        for c in range(g):
            cx0, cx1 = x0 + c * tw // g, x0 + (c + 1) * tw // g
            cy0, cy1 = y0 + r * th // g, y0 + (r + 1) * th // g
            color = OWN if own[r, c] else PARTNER
            draw.rectangle((cx0 + 1, cy0 + 1, cx1 - 2, cy1 - 2), outline=color, width=2)
            draw.rectangle((cx0 + 3, cy0 + 3, cx1 - 4, cy1 - 4), outline="black", width=1)
            text = str(int(labels[r, c]))
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            if right - left + 8 <= cx1 - cx0 and bottom - top + 8 <= cy1 - cy0:
                tx, ty = cx0 + 4, cy0 + 4
                draw.rectangle((tx - 1, ty - 1, tx + right + 1, ty + bottom + 1), fill=color)
                draw.text((tx, ty), text, fill="black", font=font)


def _height(font: ImageFont.FreeTypeFont) -> int:
    left, top, right, bottom = font.getbbox("Ag|")
    return bottom


def _shorten(text: str, font: ImageFont.FreeTypeFont, width: int, tail: str = "") -> str:
    """``text + tail``, with ``text`` shortened with "..." until the inked width of the whole
    fits ``width`` pixels (``tail`` is kept whole).
    """
    if _ink(text + tail, font) <= width:
        return text + tail
    while text and _ink(text + "..." + tail, font) > width:
        text = text[:-1]
    return text + "..." + tail


def _ink(text: str, font: ImageFont.FreeTypeFont) -> int:
    """Rightmost inked pixel of ``text`` drawn at x = 0 (anti-aliasing included)."""
    return int(font.getbbox(text)[2]) + 1


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """``text`` broken at spaces into lines that each fit ``width`` pixels."""
    out: list[str] = []
    for word in text.split(" "):
        if out and _ink(f"{out[-1]} {word}", font) <= width:
            out[-1] += f" {word}"
        else:
            out.append(_shorten(word, font, width))
    return out
