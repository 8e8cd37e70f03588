"""Input-pipeline presets as data: crop rules, normalization statistics and colour ops.

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

The graph functions take and return DALI ``DataNode`` s of HWC uint8 RGB images (before
normalization); every operator used has a CPU and a GPU kernel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from dali_gridaug._validate import check_choice, check_pair, check_range, check_type
from dali_gridaug.augment.base import Params, ParamSpec
from dali_gridaug.constants import CROP_PCT, IMAGENET_MEAN, IMAGENET_STD, RRC_RATIO, RRC_SCALE
from dali_gridaug.constants import HW_DECODER_LOAD as HW_LOAD
from dali_gridaug.decode import (
    INTERPOLATIONS,
    RANDOM_INTERPOLATIONS,
    RRC_ATTEMPTS,
    decode,
    decode_random_crop,
    decode_window,
    random_interp_type,
    resize_to,
    rrc_draws,
    rrc_window,
)
from dali_gridaug.decode import decode_val as decode_resize

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
#: Luma weights of torchvision's ``rgb_to_grayscale`` (ITU-R 601-2).
_GRAY = (0.299, 0.587, 0.114)


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


def preset_schema(preset: Preset) -> tuple[ParamSpec, ...]:
    """The per-sample training draws of ``preset``, fed from the host.

    A file's crop and colour draws then do not depend on its rank:

    - under ``invariant_crop``, the random-resized crop's ``A`` attempts and offsets,
      ``rrc``, ``rrc_rank``, ``rrc_u``, ``rrc_fallback``
      (:func:`~dali_gridaug.decode.rrc_draws`); with the pad crop, ``pad`` ``(2,)`` float32
      uniforms of its offsets (y, x);
    - ``jitter`` ``(3,)`` float32 brightness, contrast, saturation factors, with colour jitter;
    - ``lighting`` ``(3,)`` float32 standard-normal PCA coefficients α, with lighting;
    - ``interp`` ``()`` int32 index into :data:`~dali_gridaug.decode.RANDOM_INTERPOLATIONS`,
      for the random-resized crop under ``interpolation="random"``.
    """
    a = RRC_ATTEMPTS
    rrc = [("rrc", (a, 2)), ("rrc_rank", (a,)), ("rrc_u", (2,)), ("rrc_fallback", (2,))]
    specs = []
    if preset.host_window:
        specs += [ParamSpec(n, np.float32, shape, emitted=False) for n, shape in rrc]
    elif preset.crop == "pad":
        specs.append(ParamSpec("pad", np.float32, (2,), emitted=False))
    if preset.color_jitter is not None:
        specs.append(ParamSpec("jitter", np.float32, (3,)))
    if preset.lighting is not None:
        specs.append(ParamSpec("lighting", np.float32, (3,)))
    if _random_filter(preset):
        specs.append(ParamSpec("interp", np.int32, (), emitted=False))
    return tuple(specs)


def _random_filter(preset: Preset) -> bool:
    """The train crop resizes with a per-sample filter (timm's ``"random"``)."""
    return preset.crop == "random_resized" and preset.interpolation == "random"


def sample_preset(preset: Preset, rng: Any, batch_size: int) -> Params:
    """Draw :func:`preset_schema`'s arrays for a batch of ``batch_size`` (``rng``: a
    per-sample :class:`~dali_gridaug.rows.RowGenerator` or a NumPy generator).
    """
    b = batch_size
    out: Params = {}
    if preset.host_window:
        out = rrc_draws(rng.random((b, 2 * RRC_ATTEMPTS + 2)), preset.scale, preset.ratio)
    elif preset.crop == "pad":
        out = {"pad": rng.random((b, 2)).astype(np.float32)}
    cj = preset.color_jitter
    if cj is not None:
        x = np.array([cj.brightness, cj.contrast, cj.saturation])
        out["jitter"] = rng.uniform(np.maximum(0.0, 1.0 - x), 1.0 + x, (b, 3)).astype(np.float32)
    if preset.lighting is not None:
        out["lighting"] = rng.standard_normal((b, 3)).astype(np.float32)
    if cj is not None and cj.p < 1:  # drawn last: every earlier draw stays as it was
        skip = rng.random(b) >= cj.p
        out["jitter"][skip] = 1.0
    if _random_filter(preset):  # drawn last, as the coin above
        out["interp"] = rng.integers(0, len(RANDOM_INTERPOLATIONS), b).astype(np.int32)
    return out


def decode_train(
    encoded: Any,
    preset: Preset,
    draws: dict[str, Any],
    *,
    device: str,
    size: tuple[int, int],
    hw_load: float = HW_LOAD,
) -> tuple[Any, Any]:
    """Decode and crop for training (no flip: the normalization step flips), with the
    host-fed ``draws`` of :func:`preset_schema`.

    Returns:
        ``(pixels, window)``: HWC uint8 RGB ``DataNode`` of shape ``(size[0], size[1], 3)``,
        and the crop window ``(anchor, size)``, each ``(2,)`` float32 in source pixels
        (the host-drawn random-resized crop, ``invariant_crop``; else None).
    """
    from nvidia.dali import fn, types

    if preset.crop == "random_resized":
        interp = preset.interpolation
        if _random_filter(preset):
            interp = random_interp_type(draws["interp"])
        if not preset.invariant_crop:
            images = decode_random_crop(
                encoded, device=device, scale=preset.scale, ratio=preset.ratio, hw_load=hw_load
            )
            return resize_to(images, size, interp), None
        window = rrc_window(fn.peek_image_shape(encoded, dtype=types.FLOAT64), draws)
        pixels = decode_window(
            encoded, window, device=device, size=size, hw_load=hw_load, interpolation=interp
        )
        return pixels, window
    images = decode(encoded, device=device, hw_load=hw_load)
    return pad_crop(images, fn.peek_image_shape(encoded), preset, size, draws["pad"]), None


def decode_val(
    encoded: Any, preset: Preset, *, device: str, size: tuple[int, int], hw_load: float = HW_LOAD
) -> Any:
    """Decode for evaluation: resize the shorter side to ``size / crop_pct``, or nothing when
    ``crop_pct`` is None (the centre crop to ``size`` happens in normalization).

    Returns:
        HWC uint8 RGB ``DataNode``.
    """
    if preset.crop_pct is None:
        return decode(encoded, device=device, hw_load=hw_load)
    return decode_resize(
        encoded, device=device, size=size, crop_pct=preset.crop_pct, hw_load=hw_load,
        interpolation="bilinear" if preset.interpolation == "random" else preset.interpolation,
        crop_mode=preset.crop_mode,
    )  # fmt: skip


def pad_crop(images: Any, shape: Any, preset: Preset, size: tuple[int, int], u: Any) -> Any:
    """As torchvision ``RandomCrop(size, padding=p)``: offsets ``i ~ U{0 … H + 2p − th}``,
    ``j ~ U{0 … W + 2p − tw}`` into the padded image (sources at least ``size − 2p``).

    Args:
        images: HWC uint8 ``DataNode``.
        shape: CPU ``DataNode`` of each image's ``(H, W, C)`` (``fn.peek_image_shape``).
        preset: gives ``padding`` and ``fill``.
        size: ``(th, tw)`` output size.
        u: ``(2,)`` float32 uniforms in [0, 1) per sample (host-fed), the offsets' draws.

    Returns:
        HWC uint8 ``DataNode`` of shape ``(th, tw, 3)``.
    """
    from nvidia.dali import fn, types
    from nvidia.dali import math as dmath

    p = preset.padding
    slots = fn.cast(shape[0:2], dtype=types.FLOAT) + fn.cast(
        fn.constant(fdata=[2.0 * p - size[0] + 1, 2.0 * p - size[1] + 1], shape=[2]),
        dtype=types.FLOAT,
    )
    offset = fn.cast(dmath.floor(u * slots), dtype=types.INT32)  # into the padded image
    if preset.fill == "reflect":
        images = _reflect_pad(images, shape, p)
        start = offset
    else:
        start = offset - p
    return fn.slice(
        images, start=start, shape=list(size), axes=[0, 1], out_of_bounds_policy="pad",
        fill_values=0,
    )  # fmt: skip


def _reflect_pad(images: Any, shape: Any, p: int) -> Any:
    """Pad ``p`` pixels per side mirroring without the edge pixel (``numpy.pad`` "reflect"):
    padded column ``−k`` is column ``k``, ``W−1+k`` is ``W−1−k`` (needs ``p < H, W``).
    """
    from nvidia.dali import fn, types

    if p == 0:
        return images
    for axis, flip in ((1, {"horizontal": 1}), (0, {"vertical": 1, "horizontal": 0})):
        side = fn.cast(shape[axis : axis + 1], dtype=types.INT32)
        low = fn.slice(images, start=[1], shape=[p], axes=[axis])
        high = fn.slice(images, start=side - (p + 1), shape=[p], axes=[axis])
        images = fn.cat(fn.flip(low, **flip), images, fn.flip(high, **flip), axis=axis)
    return images


def color_ops(images: Any, preset: Preset, draws: dict[str, Any]) -> Any:
    """Apply ``preset.color_jitter`` (see :class:`ColorJitter`) to HWC uint8 images with the
    host-fed factors ``draws["jitter"]`` (``(3,)`` float32 per sample).

    Returns:
        HWC uint8 ``DataNode`` (the input itself when the preset has no jitter).
    """
    cj = preset.color_jitter
    if cj is None:
        return images
    from nvidia.dali import fn, types

    def factor(i: int) -> Any:
        f = draws["jitter"][i]
        return f.gpu() if images.device == "gpu" else f

    b, c, s = factor(0), factor(1), factor(2)
    gray = fn.coord_transform(images, M=list(_GRAY))  # HW1 float
    means = fn.reshape(fn.reductions.mean(images, axes=[0, 1]), shape=[1, 3])
    m = fn.reshape(fn.coord_transform(means, M=list(_GRAY)), shape=[1])
    out = (images * s + gray * (1.0 - s)) * (b * c) + m * (b * (1.0 - c))
    return fn.cast(out, dtype=types.UINT8)  # rounds to nearest, saturates to [0, 255]


def normalize_mean(preset: Preset, mean: Sequence[float], draws: dict[str, Any]) -> Any:
    """The per-channel mean to normalize with: ``mean`` itself, or with ``preset.lighting``
    a per-sample CPU ``DataNode`` ``mean − eigvec·(α·eigval)·255`` (``(x + shift − mean)/std``
    equals ``(x − (mean − shift))/std``, so lighting costs no pass over the pixels), α the
    host-fed ``draws["lighting"]``.
    """
    if preset.lighting is None:
        return tuple(mean)
    from nvidia.dali import fn

    alpha = fn.reshape(draws["lighting"], shape=[1, 3])
    shift = fn.coord_transform(
        alpha, M=(-preset.lighting.matrix()).ravel().tolist(), T=[float(v) for v in mean]
    )
    return fn.reshape(shift, shape=[3])
