"""Cutout (DeVries & Taylor, 2017, arXiv:1708.04552) and random erasing
(Zhong et al., 2020, arXiv:1708.04896; timm's area/aspect sampling).

Both drop one box per sample, in normalized space (a 0 is the dataset's mean colour).
In the graph the keep-mask is ``fn.erase`` on a ones image; the noise fill is blended in from
``fn.random.normal``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar, Literal

import numpy as np

from dali_gridaug._validate import check_pair, check_range, check_type
from dali_gridaug.augment.base import Backend, MaskAugment, Params, ParamSpec, ones_mask
from dali_gridaug.geometry import centred_box
from dali_gridaug.kernels import box_keep_mask, mix_by_mask, normal_noise


class _BoxDrop(MaskAugment):
    """Shared application of a one-box drop; ``sample`` returns ``applied`` and ``box``."""

    def schema(self, height: int, width: int) -> tuple[ParamSpec, ...]:
        return (ParamSpec("applied", np.uint8), ParamSpec("box", np.int32, (4,)))

    def keep_mask_dali(
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
        keep = box_keep_mask(xp, h, w, params["box"])
        fill = self.fill()
        if fill == "noise":  # the seed stays on the device: same noise on NumPy and CuPy
            fill = normal_noise(xp, params["noise_seed"], images.shape, images.dtype)
        return mix_by_mask(xp, images, keep, fill=fill)


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

    def sample(
        self,
        rng: np.random.Generator,
        batch_size: int,
        height: int,
        width: int,
        epoch: int,
        flip: np.ndarray | None = None,
    ) -> Params:
        b = batch_size
        cy, cx = rng.integers(0, height, b), rng.integers(0, width, b)
        applied = rng.random(b) < self.p
        box = np.stack(centred_box(cy, cx, self.length, self.length, height, width), axis=1)
        box[~applied] = 0
        return {"applied": applied.astype(np.uint8), "box": box.astype(np.int32)}


@dataclasses.dataclass(frozen=True)
class RandomErasing(_BoxDrop):
    """Random erasing with timm's sampling: area ∈ ``scale``·H·W, log-uniform aspect in
    ``ratio``, up to ``max_attempts`` tries for a box that fits; else nothing is erased.

    Args:
        p: per-sample apply probability.
        scale: erased area fraction range.
        ratio: aspect (h/w) range.
        value: ``"random"`` = per-pixel standard-normal noise, or a constant fill.
        max_attempts: tries per sample to fit a box inside the image.
        backend: see :class:`~dali_gridaug.augment.base.Augment`.
    """

    p: float = 0.5
    scale: tuple[float, float] = (0.02, 1 / 3)
    ratio: tuple[float, float] = (0.3, 1 / 0.3)
    value: float | str = "random"
    max_attempts: int = 10
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
        if not isinstance(self.value, str):
            check_range("value", self.value)  # a finite number (not bool, NaN or inf)
        check_type("max_attempts", self.max_attempts, int)
        check_range("max_attempts", self.max_attempts, 1)
        super().__post_init__()

    def fill(self) -> float | Literal["noise"]:
        return "noise" if self.value == "random" else float(self.value)

    def schema(self, height: int, width: int) -> tuple[ParamSpec, ...]:
        specs = super().schema(height, width)
        if self._noise_kernel():
            specs += (ParamSpec("noise_seed", np.int64, (1,), emitted=False),)
        elif self.value == "random":
            specs += (
                ParamSpec("noise_shape", np.int32, (3,), emitted=False),
                ParamSpec("noise_start", np.int32, (3,), emitted=False),
            )
        return specs

    def fill_dali(self, params: Mapping[str, Any], height: int, width: int, device: str) -> Any:
        """Noise drawn only for the box, ``(3, h, w)``, zero-padded to ``(3, H, W)`` at it."""
        if self.value != "random":
            return None
        from nvidia.dali import fn

        noise = fn.random.normal(shape=params["noise_shape"], device=device)
        placed = fn.slice(
            noise, start=params["noise_start"], shape=[3, height, width], axes=[0, 1, 2],
            out_of_bounds_policy="pad", fill_values=0,
        )  # fmt: skip
        return fn.reshape(placed, layout="CHW")

    def _noise_kernel(self) -> bool:
        return self.value == "random" and self.resolve_backend() == "kernel"

    def sample(
        self,
        rng: np.random.Generator,
        batch_size: int,
        height: int,
        width: int,
        epoch: int,
        flip: np.ndarray | None = None,
    ) -> Params:
        b, k = batch_size, self.max_attempts
        area = rng.uniform(*self.scale, size=(b, k)) * height * width
        aspect = np.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), size=(b, k)))
        h = np.round(np.sqrt(area * aspect)).astype(np.int64)
        w = np.round(np.sqrt(area / aspect)).astype(np.int64)
        fits = (h < height) & (w < width)
        first = np.argmax(fits, axis=1)  # first attempt that fits
        rows = np.arange(b)
        h, w = h[rows, first], w[rows, first]
        applied = (rng.random(b) < self.p) & fits.any(axis=1)
        y0 = (rng.random(b) * (height - h + 1)).astype(np.int64)
        x0 = (rng.random(b) * (width - w + 1)).astype(np.int64)
        box = np.stack([y0, x0, y0 + h, x0 + w], axis=1)
        box[~applied] = 0
        params: Params = {"applied": applied.astype(np.uint8), "box": box.astype(np.int32)}
        if self.value == "random" and not self._noise_kernel():
            sides = (box[:, 2:] - box[:, :2]).astype(np.int32)
            params["noise_shape"] = np.concatenate([np.full((b, 1), 3, np.int32), sides], 1)
            params["noise_start"] = np.concatenate(
                [np.zeros((b, 1), np.int32), -box[:, :2].astype(np.int32)], 1
            )
        if self._noise_kernel():
            # the kernel seeds the batch's noise field with the first row's seed
            params["noise_seed"] = rng.integers(2**31, size=(b, 1)).astype(np.int64)
        return params
