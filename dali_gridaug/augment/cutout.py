"""Cutout (DeVries & Taylor, 2017, arXiv:1708.04552) and random erasing
(Zhong et al., 2020, arXiv:1708.04896; timm's area/aspect sampling).

Both drop boxes in normalized space (a 0 is the dataset's mean colour): Cutout one per
sample, random erasing one or more (timm's ``count``). In the graph the visibility mask is
``fn.erase`` on a ones image; a noise fill is blended in from ``fn.random.normal``, a
per-box colour painted box by box.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar, Literal

import numpy as np

from dali_gridaug._validate import check_choice, check_int, check_pair, check_range, check_type
from dali_gridaug.augment.base import (
    Backend,
    MaskAugment,
    Params,
    ParamSpec,
    SampleContext,
    ones_mask,
)
from dali_gridaug.geometry import centred_box
from dali_gridaug.kernels import box_visible_mask, mix_by_mask, normal_noise


class _BoxDrop(MaskAugment):
    """Shared application of a one-box drop; ``sample`` returns ``applied`` and ``box``."""

    def schema(self, height: int, width: int) -> tuple[ParamSpec, ...]:
        return (ParamSpec("applied", np.uint8), ParamSpec("box", np.int32, (4,)))

    def visible_mask_dali(
        self, params: Mapping[str, Any], height: int, width: int, device: str
    ) -> Any:
        from nvidia.dali import fn, types

        box = params["box"]
        return fn.erase(
            ones_mask(height, width, device),
            anchor=fn.cast(box[0:2], dtype=types.FLOAT),
            shape=fn.cast(box[2:4] - box[0:2], dtype=types.FLOAT),
            axis_names="HW",
            fill_value=0,
        )

    def apply_xp(self, xp: ModuleType, images: Any, params: Mapping[str, Any]) -> Any:
        b, h, w, c = images.shape
        visible = box_visible_mask(xp, h, w, params["box"])
        fill = self.fill()
        if fill == "noise":  # the seed stays on the device: same noise on NumPy and CuPy
            fill = normal_noise(xp, params["noise_seed"], images.shape, images.dtype)
        return mix_by_mask(xp, images, visible, fill=fill)


@dataclasses.dataclass(frozen=True)
class Cutout(_BoxDrop):
    """Cutout: a ``length×length`` box (official code: ``[c − length//2, c + length//2)``),
    centre uniform over all H·W pixels, clipped at the borders, filled with 0.

    Args:
        length: box side in pixels (CIFAR-10: 16), ≥ 1 and ≤ the image side.
        p: per-sample apply probability.
        backend: see :class:`~dali_gridaug.augment.base.Augment`.
    """

    length: int = 16
    p: float = 1.0
    backend: Backend = "auto"

    name: ClassVar[str] = "cutout"

    def __post_init__(self) -> None:
        check_type("length", self.length, int)
        check_range("length", self.length, 1)
        check_range("p", self.p, 0, 1)
        super().__post_init__()

    def check_geometry(self, height: int, width: int, batch_size: int) -> None:
        super().check_geometry(height, width, batch_size)
        if self.length > min(height, width):
            raise ValueError(
                f"Cutout: `length` must be in [1, {min(height, width)}] (the image side), "
                f"got {self.length}"
            )

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> Params:
        b, height, width = ctx.batch_size, ctx.height, ctx.width
        cy, cx = rng.integers(0, height, b), rng.integers(0, width, b)
        applied = rng.random(b) < self.p
        box = np.stack(centred_box(cy, cx, self.length, self.length, height, width), axis=1)
        box[~applied] = 0
        return {"applied": applied.astype(np.uint8), "box": box.astype(np.int32)}


@dataclasses.dataclass(frozen=True)
class RandomErasing(_BoxDrop):
    """Random erasing with timm's sampling (``timm.data.random_erasing.RandomErasing``).

    With probability ``p`` a sample gets ``n`` boxes (``count``: ``n`` fixed, or uniform in
    ``[min, max]``). Box ``j`` draws its own area ``u·H·W / n`` (``u`` uniform in ``scale``)
    and aspect ``h/w`` log-uniform in ``ratio`` (sides ``round(√(area·aspect))`` and
    ``round(√(area/aspect))``), up to ``max_attempts`` times until ``h < H`` and ``w < W``,
    else that box is skipped; its top-left corner is uniform over the positions that fit.
    Boxes may overlap (a later box paints over an earlier one, as timm's loop).

    The boxes are erased after normalization, so fills are in normalized units (``(x −
    mean) / std``, what timm's erasing sees after its normalize): ``mode`` ``"const"`` fills
    ``value`` (timm: 0, the mean colour), ``"rand"`` one standard-normal value per channel
    per box, ``"pixel"`` standard-normal noise per pixel and channel.

    With ``num_splits`` > 1 the first ``b // num_splits`` samples of each batch of ``b``
    (this rank's) are never erased: timm's clean split (``re_split``, AugMix/JSD). The draws
    themselves are per sample (the same file gets the same boxes at any world size); only
    which rows are clean follows the position in the rank's batch, as in timm.

    Emitted parameters (``"{i}.name"`` loader outputs): ``applied`` ``(B,)`` uint8 (1 = at
    least one box was erased); ``box`` ``(B, 4)`` int32 ``(y0, x0, y1, x1)`` half-open pixel
    coordinates of the output image, or ``(B, K, 4)`` when ``count`` allows ``K`` > 1 boxes
    (unused boxes are all zero); with ``mode="rand"``, ``color`` ``(B, K, 3)`` float32, the
    fill of each box (RGB, normalized units; zero for unused boxes).

    Args:
        p: per-sample apply probability (timm's ``probability``/``re_prob``).
        scale: erased area fraction range (timm's ``min_area``, ``max_area``), split over
            the sample's boxes.
        ratio: aspect (h/w) range, log-uniform (timm's ``min_aspect``, ``max_aspect``).
        value: the constant fill of ``mode="const"`` (normalized units; default 0), or
            ``"random"``, the older spelling of ``mode="pixel"``. A number without ``mode``
            means ``mode="const"``.
        max_attempts: tries per box to fit it inside the image (timm: 10).
        mode: ``"const"``, ``"rand"`` or ``"pixel"`` (timm's ``mode``/``re_mode``); None =
            ``"const"`` when ``value`` is a number, else ``"pixel"``.
        count: boxes per applied sample: an int, or a ``(min, max)`` pair of ints drawn
            uniformly (inclusive; timm's ``min_count``/``max_count``, ``re_count``).
        num_splits: timm's ``num_splits`` (``re_split``): > 1 leaves the first
            ``b // num_splits`` samples of every batch un-erased; 0 or 1 = no clean split.
        backend: see :class:`~dali_gridaug.augment.base.Augment`.
    """

    p: float = 0.5
    scale: tuple[float, float] = (0.02, 1 / 3)
    ratio: tuple[float, float] = (0.3, 1 / 0.3)
    value: float | str | None = None
    max_attempts: int = 10
    mode: Literal["const", "rand", "pixel"] | None = None
    count: int | tuple[int, int] = 1
    num_splits: int = 0
    backend: Backend = "auto"

    name: ClassVar[str] = "random_erasing"

    def __post_init__(self) -> None:
        check_range("p", self.p, 0, 1)
        check_pair("scale", self.scale, 0, 1)
        check_pair("ratio", self.ratio, 0)
        if self.ratio[0] <= 0:
            raise ValueError(f"`ratio` must be positive, got {self.ratio!r}")
        if isinstance(self.value, str) and self.value != "random":
            raise ValueError(f"`value` must be 'random' or a finite number, got {self.value!r}")
        if self.value is not None and not isinstance(self.value, str):
            check_range("value", self.value)  # a finite number (not bool, NaN or inf)
        check_type("max_attempts", self.max_attempts, int)
        check_range("max_attempts", self.max_attempts, 1)
        if self.mode is not None:
            check_choice("mode", self.mode, ("const", "rand", "pixel"))
        if self.value == "random" and self.mode not in (None, "pixel"):
            raise ValueError(
                f"`value`='random' means mode 'pixel', but `mode` is {self.mode!r}; drop `value`"
            )
        if isinstance(self.value, (int, float, np.number)) and self.mode in ("rand", "pixel"):
            raise ValueError(
                f"`value` is the constant fill of mode 'const', but `mode` is {self.mode!r} "
                f"(got value={self.value!r}); drop `value` or use mode='const'"
            )
        if isinstance(self.count, (tuple, list)):
            if len(self.count) != 2:
                raise TypeError(f"`count` must be an int or a (min, max) pair, got {self.count!r}")
            lo = check_int("count[0]", self.count[0], 1)
            hi = check_int("count[1]", self.count[1], 1)
            if lo > hi:
                raise ValueError(f"`count` must satisfy min ≤ max, got {self.count!r}")
        else:
            check_int("count", self.count, 1)
        check_int("num_splits", self.num_splits, 0)
        super().__post_init__()

    # --- resolved options ----------------------------------------------------------------

    @property
    def fill_mode(self) -> str:
        """``"const"``, ``"rand"`` or ``"pixel"``: ``mode``, or what ``value`` implies."""
        if self.mode is not None:
            return self.mode
        return "pixel" if self.value is None or self.value == "random" else "const"

    @property
    def count_range(self) -> tuple[int, int]:
        """``(min, max)`` boxes per applied sample, inclusive."""
        if isinstance(self.count, (tuple, list)):
            return int(self.count[0]), int(self.count[1])
        return int(self.count), int(self.count)

    @property
    def max_boxes(self) -> int:
        """K, the most boxes a sample can get."""
        return self.count_range[1]

    def fill(self) -> float | Literal["noise"]:
        mode = self.fill_mode
        if mode == "pixel":
            return "noise"
        if mode == "rand":
            return 0.0  # placed by :meth:`fill_dali`
        return 0.0 if self.value is None else float(self.value)

    def schema(self, height: int, width: int) -> tuple[ParamSpec, ...]:
        k = self.max_boxes
        specs: tuple[ParamSpec, ...] = (
            ParamSpec("applied", np.uint8),
            ParamSpec("box", np.int32, (4,) if k == 1 else (k, 4)),
        )
        if self.fill_mode == "rand":
            specs += (ParamSpec("color", np.float32, (k, 3)),)
        if self._noise_kernel():
            specs += (ParamSpec("noise_seed", np.int64, (1,), emitted=False),)
        elif self.fill_mode == "pixel":
            specs += (
                ParamSpec("noise_shape", np.int32, (3,), emitted=False),
                ParamSpec("noise_start", np.int32, (3,), emitted=False),
            )
        return specs

    # --- graph -------------------------------------------------------------------------------

    def visible_mask_dali(
        self, params: Mapping[str, Any], height: int, width: int, device: str
    ) -> Any:
        if self.max_boxes == 1:
            return super().visible_mask_dali(params, height, width, device)
        from nvidia.dali import fn, types

        box = params["box"]  # (K, 4): one fn.erase with K regions (empty ones erase nothing)
        return fn.erase(
            ones_mask(height, width, device),
            anchor=fn.reshape(fn.cast(box[:, 0:2], dtype=types.FLOAT), shape=[-1]),
            shape=fn.reshape(fn.cast(box[:, 2:4] - box[:, 0:2], dtype=types.FLOAT), shape=[-1]),
            axis_names="HW",
            fill_value=0,
        )

    def fill_dali(self, params: Mapping[str, Any], height: int, width: int, device: str) -> Any:
        """The placed fill, CHW ``(3, H, W)`` float, 0 outside the boxes: ``"pixel"`` noise
        drawn for the boxes' bounding box only (zero-padded into place by ``fn.slice``, and
        masked to the boxes when K > 1); ``"rand"`` each box's colour painted in order.
        """
        mode = self.fill_mode
        if mode == "const":
            return None
        from nvidia.dali import fn, types

        if mode == "rand":
            color = params["color"].gpu() if device == "gpu" else params["color"]
            fill = None
            for k in range(self.max_boxes):
                one = {"box": params["box"][k] if self.max_boxes > 1 else params["box"]}
                inside = 1 - fn.reshape(
                    _BoxDrop.visible_mask_dali(self, one, height, width, device),
                    shape=[1, height, width],
                )
                c = fn.reshape(color[k], shape=[3, 1, 1])
                fill = c * inside if fill is None else fill * (1 - inside) + c * inside
            return fn.reshape(fn.cast(fill, dtype=types.FLOAT), layout="CHW")
        noise = fn.random.normal(shape=params["noise_shape"], device=device)
        placed = fn.slice(
            noise,
            start=params["noise_start"],
            shape=[3, height, width],
            axes=[0, 1, 2],
            out_of_bounds_policy="pad",
            fill_values=0,
        )
        if self.max_boxes > 1:  # the bounding box holds pixels of no box
            visible = self.visible_mask_dali(params, height, width, device)
            placed = placed * (1 - fn.reshape(visible, shape=[1, height, width]))
        return fn.reshape(placed, layout="CHW")

    def _noise_kernel(self) -> bool:
        return self.fill_mode == "pixel" and self.resolve_backend() == "kernel"

    def apply_xp(self, xp: ModuleType, images: Any, params: Mapping[str, Any]) -> Any:
        if self.fill_mode != "rand":
            return super().apply_xp(xp, images, params)
        b, h, w, c = images.shape
        boxes = params["box"].reshape(b, -1, 4)
        color = params["color"].astype(images.dtype)
        out = images
        for k in range(boxes.shape[1]):  # later boxes paint over earlier ones
            visible = box_visible_mask(xp, h, w, boxes[:, k])
            out = mix_by_mask(xp, out, visible, fill=color[:, k, None, None, :])
        return out

    # --- host draws --------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> Params:
        b, height, width = ctx.batch_size, ctx.height, ctx.width
        k, a = self.max_boxes, self.max_attempts
        lo, hi = self.count_range
        # draw order: with count 1 the draws are those of the one-box version
        area = rng.uniform(*self.scale, size=(b, k, a)) * height * width
        aspect = np.exp(
            rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), size=(b, k, a))
        )
        coin = rng.random(b) < self.p
        fy, fx = rng.random((b, k)), rng.random((b, k))
        n = rng.integers(lo, hi + 1, b) if lo < hi else np.full(b, lo, np.int64)
        area = area / n[:, None, None]
        h = np.round(np.sqrt(area * aspect)).astype(np.int64)
        w = np.round(np.sqrt(area / aspect)).astype(np.int64)
        fits = (h < height) & (w < width)
        first = np.argmax(fits, axis=2)  # first attempt that fits, per box
        h = np.take_along_axis(h, first[..., None], 2)[..., 0]
        w = np.take_along_axis(w, first[..., None], 2)[..., 0]
        used = fits.any(axis=2) & (np.arange(k)[None, :] < n[:, None]) & coin[:, None]
        if self.num_splits > 1:  # timm's clean split: the batch's first b // num_splits
            used[: b // self.num_splits] = False
        y0 = (fy * (height - h + 1)).astype(np.int64)
        x0 = (fx * (width - w + 1)).astype(np.int64)
        box = np.stack([y0, x0, y0 + h, x0 + w], axis=2)
        box[~used] = 0
        applied = used.any(axis=1)
        params: Params = {
            "applied": applied.astype(np.uint8),
            "box": (box[:, 0] if k == 1 else box).astype(np.int32),
        }
        if self.fill_mode == "rand":
            color = rng.standard_normal((b, k, 3)).astype(np.float32)
            params["color"] = np.where(used[..., None], color, 0).astype(np.float32)
        if self.fill_mode == "pixel" and not self._noise_kernel():
            # noise for the bounding box of the sample's boxes (all-zero when none)
            top = np.where(used[..., None], box[..., :2], np.iinfo(np.int64).max).min(1)
            end = np.where(used[..., None], box[..., 2:], 0).max(1)
            top = np.where(applied[:, None], top, 0)
            sides = np.maximum(end - top, 0).astype(np.int32)
            params["noise_shape"] = np.concatenate([np.full((b, 1), 3, np.int32), sides], 1)
            params["noise_start"] = np.concatenate(
                [np.zeros((b, 1), np.int32), -top.astype(np.int32)], 1
            )
        if self._noise_kernel():
            # the kernel seeds the batch's noise field with the first row's seed
            params["noise_seed"] = rng.integers(2**31, size=(b, 1)).astype(np.int64)
        return params
