"""Where the augmentations sit in the DALI graph.

Native arrangement (every augmentation on DALI's operators, the default): few full passes
over float images.

1. The mixing paste (``fn.multi_paste``) runs on the uint8 HWC pixels before
   ``crop_mirror_normalize``: exact, a paste commutes with per-channel normalization. The
   paste arguments are mirrored where the sample's flip coin is 1, so after the flip every
   emitted box and cell is where the labels say.
2. Mask augmentations build small ``(H, W, 1)`` uint8 visibility masks in output coordinates
   (``fn.grid_mask``/``fn.erase`` on a ones image; random GridMask ORs in its square coins
   warped onto the grid by ``fn.warp_affine``), folded into one visibility mask (and fill
   regions) in the given order. Before a mixing op they travel with the pixels:
   flip → the images' own paste → flip (paste(x⊙M) = paste(x)⊙paste(M)). A noise fill is
   drawn only for its box and placed (CHW float, 0 outside the box) by a zero-padding
   ``fn.slice``; before a paste it travels too: ``crop_mirror_normalize`` un-flips it to HWC,
   the images' own paste moves it, and a second one flips it back to CHW.
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
from typing import TYPE_CHECKING, Any

from dali_gridaug.augment.base import Augment, MaskAugment, MixAugment
from dali_gridaug.decode import normalize

if TYPE_CHECKING:  # the spec is built above this package (config imports augment.base)
    from dali_gridaug.config import PipelineSpec


def is_native(augments: Sequence[Augment]) -> bool:
    """True when every augmentation runs on DALI operators (the native arrangement)."""
    return all(a.resolve_backend() == "dali" for a in augments)


@dataclasses.dataclass
class _Masks:
    """Masks folded in order: ``out = x·visible + Σ fill·region``; ``visible`` (the
    visibility mask, 1 where the pixel stays) and the regions are uint8 ``(H, W, 1)`` (a
    region None = everywhere). A fill is a constant, ``"noise"`` (a
    standard-normal field of the images' shape: the per-op fallback) or a placed fill, a CHW
    float node that is 0 outside its own drop (box noise, placed by the augmentation).
    """

    visible: Any = None
    terms: list[list[Any]] = dataclasses.field(default_factory=list)

    def add(self, mask: Any, fill: Any, fill_node: Any = None) -> None:
        from nvidia.dali import fn, types

        def u8(node: Any) -> Any:
            return fn.cast(node, dtype=types.UINT8)

        self.visible = mask if self.visible is None else u8(self.visible * mask)
        for term in self.terms:
            term[1] = mask if term[1] is None else u8(term[1] * mask)
        if fill_node is not None:
            self.terms.append([fill_node, None])
        elif fill != 0:
            self.terms.append([fill, u8(1 - mask)])

    def map(self, f: Any, placed: Any) -> None:
        """Move every mask through ``f`` and every placed fill through ``placed`` (a paste)."""
        self.visible = f(self.visible)
        self.terms = [
            [v if isinstance(v, (int, float, str)) else placed(v), None if r is None else f(r)]
            for v, r in self.terms
        ]

    def apply(self, images: Any, layout: str, size: tuple[int, int]) -> Any:
        """Fold the masks into float32 ``images`` (DALI arithmetic has no float16)."""
        from nvidia.dali import fn

        def shaped(m: Any) -> Any:
            return m if layout == "HWC" else fn.reshape(m, shape=[1, *size], layout="CHW")

        out = images * shaped(self.visible)
        for fill, region in self.terms:
            if isinstance(fill, str):
                fill = fn.random.normal(images)
            out = out + (fill if region is None else fill * shaped(region))
        return out


def unused_params(augments: Sequence[Augment]) -> set[str]:
    """Flattened names of declared parameters this graph does not read: the kernel-only
    parameters (:attr:`Augment.kernel_params`) of augmentations on DALI's operators.
    """
    return {
        f"{i}.{name}"
        for i, a in enumerate(augments)
        if a.resolve_backend() == "dali"
        for name in a.kernel_params
    }


def check_kernel_dependencies(augments: Sequence[Augment], device: str) -> None:
    """Raise ``ValueError`` when a GPU pipeline needs an ``xp`` kernel and CuPy is missing
    (``backend="auto"`` never silently picks a path that cannot run).
    """
    kernels = [type(a).__name__ for a in augments if a.resolve_backend() == "kernel"]
    if device != "gpu" or not kernels:
        return
    try:
        import cupy  # noqa: F401
    except ImportError as e:
        raise ValueError(
            f"{', '.join(kernels)} run as CuPy kernels on the GPU (backend 'kernel'), but "
            "`cupy` is not installed: install the `cuda12` or `cuda13` extra "
            "(pip install \"dali-gridaug[cuda12]\"), or use backend 'auto' or `device`='cpu'"
        ) from e


def augment_graph(pixels: Any, nodes: Any, mirror: Any, mean: Any, spec: PipelineSpec) -> Any:
    """Augment, flip and normalize ``pixels`` (HWC uint8 crops of ``spec.size``).

    Args:
        pixels: HWC uint8 DataNode.
        nodes: the batch's :class:`~dali_gridaug.params.ParamNodes`.
        mirror: ``(B,)`` int32 flip-coin node.
        mean: per-channel mean (a sequence, or a per-sample node: PCA lighting).
        spec: the :class:`~dali_gridaug.config.PipelineSpec`.

    Returns:
        ``(B, 3, H, W)`` CHW float32 (float16 when ``spec.half``) DataNode.
    """
    if not is_native(spec.augments):
        return _per_op(pixels, nodes, mirror, mean, spec)
    from nvidia.dali import fn, types

    h, w = spec.size
    masks = _Masks()
    mixer: tuple[MixAugment, Any] | None = None
    for aug, p in zip(spec.augments, nodes.augments):  # noqa: B905 (autograph: no strict)
        if isinstance(aug, MixAugment):
            mixer = (aug, p)
        elif isinstance(aug, MaskAugment):
            placed = aug.fill_dali(p, h, w, spec.device)
            masks.add(aug.visible_mask_dali(p, h, w, spec.device), aug.fill(), placed)
        else:
            raise TypeError(f"{type(aug).__name__} is neither a mask nor a mixing augmentation")
    plain_pixels, plain_masks = pixels, masks
    if mixer is not None and mixer[0].pastes():
        aug, p = mixer
        pixels = aug.paste_dali(pixels, p)
        if masks.visible is not None:
            masks = dataclasses.replace(masks, terms=[list(t) for t in masks.terms])
            masks.map(
                lambda m: fn.flip(
                    aug.paste_dali(fn.flip(m, horizontal=mirror), p), horizontal=mirror
                ),
                lambda v: _unflip(aug.paste_dali(_unflip(v, mirror, "HWC"), p), mirror, "CHW"),
            )

    # DALI's arithmetic operators have no float16 (CPU and GPU alike): when a mask multiply or
    # a blend follows, normalize to float32 and cast once at the end.
    arith = masks.visible is not None or (mixer is not None and _blends(mixer[0]))

    def finish(pix: Any, folded: _Masks) -> Any:
        x = normalize(
            pix,
            mean=mean,
            std=spec.std,
            mirror=mirror,
            crop=None,
            layout="CHW",
            half=spec.half and not arith,
        )
        return x if folded.visible is None else folded.apply(x, "CHW", spec.size)

    images = finish(pixels, masks)
    if mixer is not None:
        aug, p = mixer
        plain = finish(plain_pixels, plain_masks) if aug.blend_plain() else images
        images = _blend(aug, images, p, plain)
    return fn.cast(images, dtype=types.FLOAT16) if spec.half and arith else images


def _unflip(fill: Any, mirror: Any, layout: str) -> Any:
    """A float fill flipped where ``mirror`` is 1 and written in ``layout``: one
    ``crop_mirror_normalize`` pass (mean 0, std 1), float32.
    """
    from nvidia.dali import fn, types

    return fn.crop_mirror_normalize(fill, mirror=mirror, output_layout=layout, dtype=types.FLOAT)


def _blends(aug: MixAugment) -> bool:
    """Whether ``aug`` overrides :meth:`MixAugment.blend_dali` (a blend follows the paste)."""
    return type(aug).blend_dali is not MixAugment.blend_dali


def _blend(aug: MixAugment, images: Any, params: Any, plain: Any) -> Any:
    """``aug``'s blend of float32 ``images``, or ``images`` when it has none."""
    out = aug.blend_dali(images, params, plain)
    return images if out is None else out


def _per_op(pixels: Any, nodes: Any, mirror: Any, mean: Any, spec: PipelineSpec) -> Any:
    """Fallback when some augmentation runs as a kernel: each op in order on normalized HWC
    float images (paste arguments in output coordinates), then one transpose to CHW.
    """
    from nvidia.dali import fn, types

    h, w = spec.size
    images = normalize(
        pixels, mean=mean, std=spec.std, mirror=mirror, crop=None, layout="HWC", half=False
    )
    for aug, p in zip(spec.augments, nodes.augments):  # noqa: B905 (autograph: no strict)
        if aug.resolve_backend() == "kernel":
            images = _kernel(aug, images, p, spec.device)
        elif isinstance(aug, MixAugment):
            plain = images
            if aug.pastes():
                images = aug.paste_dali(images, p)
            images = _blend(aug, images, p, plain)
        else:
            masks = _Masks()
            placed = aug.fill_dali(p, h, w, spec.device)  # CHW: this path runs in HWC
            if placed is not None:
                placed = fn.transpose(placed, perm=[1, 2, 0], output_layout="HWC")
            masks.add(aug.visible_mask_dali(p, h, w, spec.device), aug.fill(), placed)
            images = masks.apply(images, "HWC", spec.size)
    images = fn.transpose(images, perm=[2, 0, 1], output_layout="CHW")
    return fn.cast(images, dtype=types.FLOAT16) if spec.half else images


def _kernel(aug: Augment, images: Any, params: dict[str, Any], device: str) -> Any:
    """``aug.apply_xp`` as a batched ``python_function``; GPU images get GPU-side params."""
    from nvidia.dali import fn

    names = sorted(params)
    inputs = [params[k].gpu() if device == "gpu" else params[k] for k in names]
    return fn.python_function(
        images,
        *inputs,
        function=KernelCall(aug, names),
        batch_processing=True,
        output_layouts="HWC",
        device=device,
    )


class KernelCall:
    """``python_function`` body: stack the batch, run ``aug.apply_xp``, split it again (the
    kernel tests call it as DALI would).
    """

    def __init__(self, aug: Augment, names: Sequence[str]) -> None:
        self.aug, self.names = aug, list(names)

    def __call__(self, images: list[Any], *params: list[Any]) -> list[Any]:
        from dali_gridaug.kernels import get_xp

        xp = get_xp(images[0])
        batch = xp.stack(images)
        args = {k: xp.stack(v) for k, v in zip(self.names, params, strict=True)}
        return list(self.aug.apply_xp(xp, batch, args))
