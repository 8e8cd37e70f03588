"""Where the augmentations sit in the DALI graph.

Native arrangement (every augmentation on DALI's operators, the default): few full passes
over float images.

1. The mixing paste (``fn.multi_paste``) runs on the uint8 HWC pixels before
   ``crop_mirror_normalize``: exact, a paste commutes with per-channel normalization. The
   paste arguments are mirrored where the sample's flip coin is 1, so after the flip every
   emitted box and cell is where the labels say.
2. Mask augmentations build small ``(H, W, 1)`` uint8 keep-masks in output coordinates
   (``fn.grid_mask``/``fn.erase`` on a ones image), folded into one keep-mask (and fill
   regions) in the given order. Before a mixing op they travel with the pixels:
   flip → the images' own paste → flip (paste(x⊙M) = paste(x)⊙paste(M)).
3. ``crop_mirror_normalize`` flips and writes CHW (float16 when asked) directly.
4. One broadcast multiply ``x·M`` with the mask reshaped to ``(1, H, W)``: a dropped pixel is
   exactly 0; fills add ``v·R`` (constant) or ``N·R`` (``fn.random.normal`` noise).

When any augmentation resolves to the ``"kernel"`` backend, the pipeline falls back to
per-op application on normalized HWC float images (``python_function`` for the kernels),
then one transpose to CHW.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from dali_gridaug.augment.base import Augment, MaskAugment, MixAugment
from dali_gridaug.decode import normalize


def is_native(augments: Sequence[Augment]) -> bool:
    """True when every augmentation runs on DALI operators (the native arrangement)."""
    return all(a.resolve_backend() == "dali" for a in augments)


@dataclasses.dataclass
class _Masks:
    """Folded masks: ``out = x·keep + Σ value·region (+ noise·noise_region)``; uint8 HW1."""

    keep: Any = None
    fills: list[tuple[float, Any]] = dataclasses.field(default_factory=list)
    noise: Any = None

    def add(self, mask: Any, fill: float | str) -> None:
        from nvidia.dali import fn, types

        def u8(node: Any) -> Any:
            return fn.cast(node, dtype=types.UINT8)

        self.keep = mask if self.keep is None else u8(self.keep * mask)
        self.fills = [(v, u8(r * mask)) for v, r in self.fills]
        if self.noise is not None:
            self.noise = u8(self.noise * mask)
        if fill == "noise":
            self.noise = u8(1 - mask) if self.noise is None else u8(self.noise + (1 - mask))
        elif fill != 0:
            self.fills.append((float(fill), u8(1 - mask)))

    def map(self, f: Any) -> None:
        self.keep = f(self.keep)
        self.fills = [(v, f(r)) for v, r in self.fills]
        self.noise = f(self.noise) if self.noise is not None else None

    def apply(self, images: Any, layout: str, size: tuple[int, int], half: bool) -> Any:
        from nvidia.dali import fn, types

        def shaped(m: Any) -> Any:
            if layout == "HWC":
                return m
            return fn.reshape(m, shape=[1, *size], layout="CHW")

        out = images * shaped(self.keep)
        for value, region in self.fills:
            out = out + value * shaped(region)
        if self.noise is not None:
            out = out + fn.random.normal(images) * shaped(self.noise)
        if half and (self.fills or self.noise is not None):
            out = fn.cast(out, dtype=types.FLOAT16)
        return out


def augment_graph(pixels: Any, nodes: Any, mirror: Any, spec: Any) -> Any:
    """Augment, flip and normalize ``pixels`` (HWC uint8 crops of ``spec.size``).

    Args:
        pixels: HWC uint8 DataNode.
        nodes: the batch's :class:`~dali_gridaug.params.ParamNodes`.
        mirror: ``(B,)`` int32 flip-coin node.
        spec: the :class:`~dali_gridaug.pipeline.PipelineSpec`.

    Returns:
        ``(B, 3, H, W)`` CHW float32 (float16 when ``spec.half``) DataNode.
    """
    if not is_native(spec.augments):
        return _per_op(pixels, nodes, mirror, spec)
    from nvidia.dali import fn

    h, w = spec.size
    masks = _Masks()
    mixer: tuple[MixAugment, dict[str, Any]] | None = None
    for aug, p in zip(spec.augments, nodes.augments, strict=True):
        if isinstance(aug, MixAugment):
            mixer = (aug, p)
        elif isinstance(aug, MaskAugment):
            masks.add(aug.keep_mask_dali(p, h, w, spec.device), aug.fill())
        else:
            raise TypeError(f"{type(aug).__name__} is neither a mask nor a mixing augmentation")
    if mixer is not None:
        aug, p = mixer
        pixels = aug.paste_dali(pixels, p)
        if masks.keep is not None:
            masks.map(
                lambda m: fn.flip(aug.paste_dali(fn.flip(m, horizontal=mirror), p),
                                  horizontal=mirror)
            )  # fmt: skip
    images = normalize(
        pixels, mean=spec.mean, std=spec.std, mirror=mirror, crop=None, layout="CHW",
        half=spec.half,
    )  # fmt: skip
    if masks.keep is None:
        return images
    return masks.apply(images, "CHW", spec.size, spec.half)


def _per_op(pixels: Any, nodes: Any, mirror: Any, spec: Any) -> Any:
    """Fallback when some augmentation runs as a kernel: each op in order on normalized HWC
    float images (paste arguments in output coordinates), then one transpose to CHW.
    """
    from nvidia.dali import fn, types

    h, w = spec.size
    images = normalize(
        pixels, mean=spec.mean, std=spec.std, mirror=mirror, crop=None, layout="HWC", half=False
    )
    for aug, p in zip(spec.augments, nodes.augments, strict=True):
        if aug.resolve_backend() == "kernel":
            images = _kernel(aug, images, p, spec.device)
        elif isinstance(aug, MixAugment):
            images = aug.paste_dali(images, p)
        else:
            masks = _Masks()
            masks.add(aug.keep_mask_dali(p, h, w, spec.device), aug.fill())
            images = masks.apply(images, "HWC", spec.size, False)
    images = fn.transpose(images, perm=[2, 0, 1], output_layout="CHW")
    return fn.cast(images, dtype=types.FLOAT16) if spec.half else images


def _kernel(aug: Augment, images: Any, params: dict[str, Any], device: str) -> Any:
    """``aug.apply_xp`` as a batched ``python_function``; GPU images get GPU-side params."""
    from nvidia.dali import fn

    names = sorted(params)
    inputs = [params[k].gpu() if device == "gpu" else params[k] for k in names]
    return fn.python_function(
        images, *inputs, function=_KernelCall(aug, names), batch_processing=True,
        output_layouts="HWC", device=device,
    )  # fmt: skip


class _KernelCall:
    """``python_function`` body: stack the batch, run ``aug.apply_xp``, split it again."""

    def __init__(self, aug: Augment, names: Sequence[str]) -> None:
        self.aug, self.names = aug, list(names)

    def __call__(self, images: list[Any], *params: list[Any]) -> list[Any]:
        from dali_gridaug.kernels import get_xp

        xp = get_xp(images[0])
        batch = xp.stack(images)
        args = {k: xp.stack(v) for k, v in zip(self.names, params, strict=True)}
        return list(self.aug.apply_xp(xp, batch, args))
