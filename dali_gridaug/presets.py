"""Input-pipeline presets as data: crop rules, normalization statistics and colour-op
settings. No DALI op lives here: :mod:`dali_gridaug.decode` builds the stage's graph from a
:class:`Preset`, and :mod:`dali_gridaug.params` draws its per-sample values.

- ``"imagenet"`` (torchvision's ImageNet recipe): train = random-resized crop, area ∈
  [0.08, 1], aspect ∈ [3/4, 4/3]; val = resize the shorter side to ``size / 0.875``, centre
  crop ``size``. ImageNet mean/std.
- ``"cifar"`` (the Cutout, GridMask and CutMix official CIFAR code): train = pad 4 pixels on
  each side (zero fill, or ``fill="reflect"``), random ``size`` crop, i.e. torchvision's
  ``RandomCrop(32, padding=4)``; val = the image unchanged (a centre crop to ``size``, a no-op
  for ``size × size`` sources; no resize). Mean/std (125.3, 123.0, 113.9)/(63.0, 62.1, 66.7)
  as in that code.
- Horizontal flips (p = 0.5) are applied by the normalization step, one coin per sample.
- Optional clovaai ImageNet colour ops (CutMix recipes): :class:`ColorJitter` (torchvision
  semantics) and :class:`Lighting` (AlexNet PCA noise).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from dali_gridaug._validate import check_choice, check_pair, check_range, check_type
from dali_gridaug.constants import CROP_PCT, IMAGENET_MEAN, IMAGENET_STD, RRC_RATIO, RRC_SCALE

#: timm's ``interpolation`` names of the resize filters (DALI's, always antialiased when
#: shrinking; :func:`~dali_gridaug.decode.interp_type`).
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
#: The filters timm's ``"random"`` picks from per sample, in the order of the host draw's
#: index (timm's ``_RANDOM_INTERPOLATION``).
RANDOM_INTERPOLATIONS = ("bilinear", "bicubic")
#: CIFAR statistics in 0–255 pixel units (official Cutout/CutMix CIFAR code).
CIFAR_MEAN: tuple[float, float, float] = (125.3, 123.0, 113.9)
CIFAR_STD: tuple[float, float, float] = (63.0, 62.1, 66.7)
#: AlexNet PCA of ImageNet RGB pixels in [0, 1] (fb.resnet.torch / clovaai ``Lighting``).
PCA_EIGVAL: tuple[float, float, float] = (0.2175, 0.0188, 0.0045)
PCA_EIGVEC: tuple[tuple[float, float, float], ...] = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


@dataclasses.dataclass(frozen=True)
class ColorJitter:
    """torchvision ``ColorJitter(brightness, contrast, saturation)`` (no hue).

    Per sample, factors ``b ~ U[max(0, 1−brightness), 1+brightness]``, ``c``, ``s`` likewise;
    with ``g(x) = 0.299R + 0.587G + 0.114B`` and ``m`` the mean of ``g`` over the image:
    brightness ``b·x``, contrast ``c·x + (1−c)·m``, saturation ``s·x + (1−s)·g(x)``.
    torchvision applies them in a random order, clamping to [0, 255] after each. Without the
    clamps the three maps commute exactly (``g`` and ``m`` are linear and ``g`` of a grey
    image is itself), so the order matters only through pixels that saturate mid-way; this
    implementation composes them in closed form, ``b·c·(s·x + (1−s)·g(x)) + b·(1−c)·m``, and
    clamps and rounds once.

    ``p`` (timm's ``color_jitter_prob``, in [0, 1]): the whole jitter applies to a sample with
    probability ``p`` (a host-drawn coin; the others get factors 1, the identity); ``p=1``
    draws exactly what it drew before ``p`` existed. No hue: torchvision's hue shift works in
    HSV, outside this closed linear form.
    """

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    p: float = 1.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            check_range(f"color_jitter.{name}", getattr(self, name), 0)
        check_range("color_jitter.p", self.p, 0, 1)


@dataclasses.dataclass(frozen=True)
class Lighting:
    """AlexNet PCA lighting (Krizhevsky et al., 2012; clovaai ``Lighting``): per sample
    ``α ~ N(0, std²)`` per eigenvector, ``eigvec·(α·eigval)`` added to every pixel of the
    [0, 1] image (no clamp). Applied by shifting the normalization mean per sample.
    """

    std: float = 0.1
    eigval: tuple[float, float, float] = PCA_EIGVAL
    eigvec: tuple[tuple[float, float, float], ...] = PCA_EIGVEC

    def __post_init__(self) -> None:
        check_range("lighting.std", self.std, 0)
        if np.shape(self.eigval) != (3,) or np.shape(self.eigvec) != (3, 3):
            raise ValueError(
                "`lighting` needs 3 `eigval` and a 3×3 `eigvec`, got shapes "
                f"{np.shape(self.eigval)} and {np.shape(self.eigvec)}"
            )

    def matrix(self) -> np.ndarray:
        """``(3, 3)`` float64 map from α/std ~ N(0, I) to the shift in 0–255 units."""
        return 255.0 * self.std * np.asarray(self.eigvec) * np.asarray(self.eigval)[None, :]


def _check_interpolation(name: str, value: Any) -> None:
    check_choice(name, value, (*INTERPOLATIONS, "random"))


@dataclasses.dataclass(frozen=True)
class Preset:
    """One input pipeline, as data.

    Args:
        name: label (``"imagenet"``, ``"cifar"`` or your own).
        crop: train crop, ``"random_resized"`` (area ``scale``, aspect ``ratio``, resized to
            the output size) or ``"pad"`` (pad ``padding`` pixels per side with ``fill``, then
            a uniformly placed output-size crop).
        scale: random-resized crop area range (fractions of the image).
        ratio: random-resized crop aspect (w/h) range.
        padding: pixels added on each side before the ``"pad"`` crop (≥ 0).
        fill: padding values, ``"zero"`` or ``"reflect"`` (mirror without the edge pixel).
        crop_pct: val resizes the shorter side to ``size / crop_pct``; ``None``: no resize.
        mean: per-channel mean, 0–255 units (the loader's default).
        std: per-channel std, 0–255 units (the loader's default).
        size: output side in pixels, or ``(H, W)`` (the loader's default ``image_size``; the
            final preset of a :class:`~dali_gridaug.config.LoaderConfig` holds the pair).
        color_jitter: optional train colour jitter.
        lighting: optional train PCA lighting.
        interpolation: resize filter of the train random-resized crop and the val resize,
            ``"bilinear"`` (default, today's output), ``"bicubic"`` or ``"nearest"`` (DALI's
            ``INTERP_LINEAR``/``INTERP_CUBIC``/``INTERP_NN``, antialiased), or timm's
            ``"random"``: the train crop's filter is bilinear or bicubic per sample (a host
            draw, ``interp``), the val resize bilinear (timm's rule without augmentation).
        invariant_crop: where the random-resized crop window is drawn. ``False``
            (default, the fastest): DALI's decoder draws it (``image_random_crop``, seeded
            per rank), so a file's window depends on the world size and changes across a
            resume. ``True``: torchvision's ``get_params`` exactly, its uniforms drawn on the
            host keyed by the sample's global position (the same window at any world size
            and across a resume, emitted as ``crop``); on DALI's CPU backend it measured
            about 6 % slower (README, Elastic runs).
        crop_mode: val crop, timm's ``crop_mode``: ``"center"`` (default: the shorter side
            to ``size / crop_pct``, centre crop) or ``"squash"`` (each side to
            ``floor(side / crop_pct)``, aspect not kept, centre crop; needs ``crop_pct``);
            timm's ``"border"`` is refused by name.
    """

    name: str
    crop: Literal["random_resized", "pad"] = "random_resized"
    scale: tuple[float, float] = RRC_SCALE
    ratio: tuple[float, float] = RRC_RATIO
    padding: int = 0
    fill: Literal["zero", "reflect"] = "zero"
    crop_pct: float | None = CROP_PCT
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    size: int | tuple[int, int] = 224
    color_jitter: ColorJitter | None = None
    lighting: Lighting | None = None
    interpolation: str = "bilinear"
    crop_mode: str = "center"
    invariant_crop: bool = False

    def __post_init__(self) -> None:
        if self.crop_mode == "border":
            raise ValueError(
                "`preset.crop_mode` 'border' (timm's resize-longest-and-pad) is not supported; "
                "use 'center' or 'squash'"
            )
        check_choice("preset.crop_mode", self.crop_mode, ("center", "squash"))
        if self.crop_mode == "squash" and self.crop_pct is None:
            raise ValueError("`preset.crop_mode` 'squash' needs a `preset.crop_pct`, got None")
        _check_interpolation("preset.interpolation", self.interpolation)
        check_type("preset.name", self.name, str)
        check_choice("preset.crop", self.crop, ("random_resized", "pad"))
        check_pair("preset.scale", self.scale, 0, 1)
        check_pair("preset.ratio", self.ratio, 0)
        check_type("preset.padding", self.padding, int)
        check_range("preset.padding", self.padding, 0)
        check_choice("preset.fill", self.fill, ("zero", "reflect"))
        sizes = self.size if isinstance(self.size, tuple) and len(self.size) == 2 else (self.size,)
        for side in sizes:
            check_type("preset.size", side, int)
            check_range("preset.size", side, 1)
        if self.crop_pct is not None:
            check_range("preset.crop_pct", self.crop_pct, 0, 1, low_open=True)
        check_type("preset.color_jitter", self.color_jitter, (ColorJitter, type(None)))
        check_type("preset.lighting", self.lighting, (Lighting, type(None)))
        check_type("preset.invariant_crop", self.invariant_crop, bool)

    @property
    def host_window(self) -> bool:
        """The random-resized crop window is drawn on the host (``invariant_crop``)."""
        return self.crop == "random_resized" and self.invariant_crop

    @property
    def random_filter(self) -> bool:
        """The train crop resizes with a per-sample filter (timm's ``"random"``)."""
        return self.crop == "random_resized" and self.interpolation == "random"


IMAGENET = Preset("imagenet")
CIFAR = Preset(
    "cifar",
    crop="pad",
    padding=4,
    fill="zero",
    crop_pct=None,
    mean=CIFAR_MEAN,
    std=CIFAR_STD,
    size=32,
)
#: name → preset, for ``create_loader(preset=...)`` and recipe files.
PRESETS: dict[str, Preset] = {p.name: p for p in (IMAGENET, CIFAR)}


def resolve_preset(
    preset: str | Preset,
    *,
    color_jitter: ColorJitter | float | None = None,
    lighting: Lighting | float | None = None,
    interpolation: str | None = None,
) -> Preset:
    """The :class:`Preset` named by ``preset`` (or ``preset`` itself), with the colour ops
    replaced where given: ``color_jitter=x`` means ``ColorJitter(x, x, x)``, ``lighting=x``
    means ``Lighting(std=x)``, ``interpolation`` replaces the resize filter (checked as
    ``interpolation``); ``None`` keeps the preset's.
    """
    if isinstance(preset, str):
        check_choice("preset", preset, tuple(PRESETS))
        preset = PRESETS[preset]
    check_type("preset", preset, (str, Preset))
    changes: dict[str, Any] = {}
    if color_jitter is not None:
        if not isinstance(color_jitter, ColorJitter):
            check_type("color_jitter", color_jitter, (int, float))
            color_jitter = ColorJitter(*(float(color_jitter),) * 3)
        changes["color_jitter"] = color_jitter
    if lighting is not None:
        if not isinstance(lighting, Lighting):
            check_type("lighting", lighting, (int, float))
            lighting = Lighting(std=float(lighting))
        changes["lighting"] = lighting
    if interpolation is not None:
        _check_interpolation("interpolation", interpolation)
        changes["interpolation"] = interpolation
    return dataclasses.replace(preset, **changes) if changes else preset
