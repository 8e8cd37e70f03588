"""Replay of DALI's GPU ``multi_paste`` on the paste arguments the library emits, checked
against the CPU operator's result without a GPU.

DALI's CPU ``MultiPaste`` pastes the regions of a sample in order (a later region wins;
a region of zero height or width pastes nothing). Its GPU kernel instead cuts the output into
patches at every region edge and, sweeping bands of rows top to bottom and patches left to
right, fills each patch from the highest-numbered region open there. A region's column events
are registered in the band of its top edge and withdrawn after the band before its bottom
edge; it opens at its left edge and closes after its right one. A zero-size region breaks
this: with zero height its events are withdrawn before they are registered, so it pastes over
its columns from its top edge to the image's bottom; with zero width it closes before it
opens, so it stays open and wins every later patch of the sweep. Where it is the highest
region it copies from its source sample, which differs from the CPU result unless that source
is the sample itself at the same place.

:func:`gpu_provenance` replays that sweep, :func:`cpu_provenance` the in-order paste; both say
for every output pixel which sample and pixel it comes from. :func:`check_augmentation` draws
an augmentation's parameters and compares the two on every sample.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from dali_gridaug.augment.base import SampleContext

#: One paste region: ``(source sample, in_anchor (y, x), shape (h, w), out_anchor (y, x))``.
Region = tuple[int, tuple[int, int], tuple[int, int], tuple[int, int]]


def _fill(out: np.ndarray, region: Region, y0: int, y1: int, x0: int, x1: int) -> None:
    src, (iy, ix), _, (oy, ox) = region
    yy, xx = np.mgrid[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = np.stack([np.full_like(yy, src), iy + yy - oy, ix + xx - ox], -1)


def cpu_provenance(height: int, width: int, regions: Sequence[Region]) -> np.ndarray:
    """``(H, W, 3)`` int64 ``(sample, y, x)`` each output pixel comes from on DALI's CPU
    ``multi_paste`` (regions in order, later wins); ``-1`` where nothing is pasted (zeros).
    """
    out = np.full((height, width, 3), -1, np.int64)
    for region in regions:
        (h, w), (oy, ox) = region[2], region[3]
        if h > 0 and w > 0:
            _fill(out, region, oy, oy + h, ox, ox + w)
    return out


def gpu_provenance(height: int, width: int, regions: Sequence[Region]) -> np.ndarray:
    """As :func:`cpu_provenance`, for the patch sweep of DALI's GPU ``multi_paste`` kernel.

    The output is cut at every region edge; rows of patches are swept top to bottom. A region
    registers its column open/close events in the row where its top edge lies and withdraws
    them after the row before its bottom edge; within a row, columns are swept left to right,
    a patch is filled from the highest open region (or zeros), then the regions whose right
    edge follows the patch close. Open regions carry over from row to row.
    """
    xs = sorted({0, width, *(r[3][1] for r in regions), *(r[3][1] + r[2][1] for r in regions)})
    ys = sorted({0, height, *(r[3][0] for r in regions), *(r[3][0] + r[2][0] for r in regions)})
    xi, yi = {v: i for i, v in enumerate(xs)}, {v: i for i, v in enumerate(ys)}
    nx, ny = len(xs) - 1, len(ys) - 1
    y_start: list[list[tuple[int, int, int]]] = [[] for _ in range(ny + 1)]
    y_end: list[list[tuple[int, int, int]]] = [[] for _ in range(ny + 1)]
    for i, (_, _, (h, w), (oy, ox)) in enumerate(regions):
        event = (i, xi[ox], xi[ox + w])
        y_start[yi[oy]].append(event)
        y_end[yi[oy + h]].append(event)
    y_start[0].append((-1, 0, nx))  # the background: zeros
    starting: list[set[int]] = [set() for _ in range(nx + 1)]
    ending: list[set[int]] = [set() for _ in range(nx + 1)]
    open_: set[int] = set()
    out = np.full((height, width, 3), -1, np.int64)
    for y in range(ny):
        for i, a, b in y_start[y]:
            starting[a].add(i)
            ending[b].add(i)
        for x in range(nx):
            open_ |= starting[x]
            top = max(open_)
            if top >= 0:
                _fill(out, regions[top], ys[y], ys[y + 1], xs[x], xs[x + 1])
            open_ -= ending[x + 1]
        for i, a, b in y_end[y + 1]:
            starting[a].discard(i)
            ending[b].discard(i)
    return out


def regions_of(params: dict[str, np.ndarray], sample: int) -> list[Region]:
    """The ``multi_paste`` regions of ``sample`` from the library's paste arguments
    (``paste_ids``, ``paste_anchors``, ``paste_shapes``; in and out anchors are equal).
    """
    ids, anchors = params["paste_ids"][sample], params["paste_anchors"][sample]
    shapes = params["paste_shapes"][sample]
    return [
        (int(i), (int(a[0]), int(a[1])), (int(s[0]), int(s[1])), (int(a[0]), int(a[1])))
        for i, a, s in zip(ids, anchors, shapes, strict=True)
    ]


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """A sample whose GPU paste differs from the CPU one.

    Attributes:
        sample: batch position.
        pixels: number of output pixels with a different source.
        regions: the sample's regions.
    """

    sample: int
    pixels: int
    regions: tuple[Region, ...]


def compare(height: int, width: int, params: dict[str, np.ndarray]) -> list[Mismatch]:
    """Samples of a batch whose paste arguments give different pixels on the GPU kernel."""
    out = []
    for b in range(len(params["paste_ids"])):
        regions = regions_of(params, b)
        differ = gpu_provenance(height, width, regions) != cpu_provenance(height, width, regions)
        if differ.any():
            out.append(Mismatch(b, int(differ.any(-1).sum()), tuple(regions)))
    return out


def check_augmentation(
    aug: object, *, height: int, width: int, batch_size: int = 8, draws: int = 10, seed: int = 0
) -> list[Mismatch]:
    """Draw ``draws`` batches of ``aug``'s parameters (a pasting mixing augmentation; the
    flip coins drawn too, as the graph pastes before the flip) and compare every sample.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        flip = rng.integers(0, 2, batch_size)
        ctx = SampleContext(batch_size, height, width, flip=flip)
        params = aug.sample(rng, ctx)  # type: ignore[attr-defined]
        out += compare(height, width, params)
    return out
