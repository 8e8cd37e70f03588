"""Every GPU graph the library can build, as a list of :class:`GraphCase` configurations.

The list is derived from the library's registries, so a new entry is covered without a change
here: every registered augmentation (:data:`~dali_gridaug.augment.AUGMENTATIONS`) with its
defaults and the variants in :data:`VARIANTS`, on each backend it can run on
(:meth:`~dali_gridaug.augment.base.Augment.backends`; the first is what ``"auto"`` picks); every
mask augmentation before a mixing one, and the arrangements that mix native and kernel ops;
every preset (:data:`~dali_gridaug.presets.PRESETS`, and its reflect fill where it pads), with
colour jitter and PCA lighting; every ``auto_augment`` policy with the Keep clean view; float16
output, evaluation, resuming from a loader state, the hardware-decoder share and tar-shard
sources.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from dali_gridaug import presets
from dali_gridaug.augment import AUGMENTATIONS, Augment, MaskAugment, MixAugment
from dali_gridaug.constants import HW_DECODER_LOAD

#: Images per batch of every checked graph (even: ``mode="pair"`` needs it).
BATCH = 4
#: Output side in pixels (a preset with a smaller default size uses its own).
SIZE = 64

#: Configurations beyond an augmentation's defaults that build a different graph
#: (registry name → field overrides). A newly registered augmentation is checked with its
#: defaults; add its graph-changing options here.
VARIANTS: dict[str, tuple[dict[str, Any], ...]] = {
    "gridmask": ({"mode": 0}, {"square_p": 0.5}),
    "random_erasing": (
        {"value": 0.0},
        {"mode": "rand"},
        {"mode": "rand", "count": (1, 3)},
        {"count": (1, 3)},
        {"mode": "const", "count": 2, "num_splits": 2},
    ),
    "cutmix": ({"mode": "elem"},),
    "mixup": ({"mode": "elem"},),
    "mixup_cutmix": ({"mode": "elem"}, {"mode": "pair"}),
}

#: RandomErasing options with a placed fill of their own (beyond the defaults' noise), also
#: checked in the per-op arrangement.
PLACED_FILLS: tuple[dict[str, Any], ...] = ({"mode": "rand", "count": (1, 3)}, {"count": 2})


@dataclasses.dataclass(frozen=True)
class GraphCase:
    """One pipeline configuration (the fields of ``PipelineSpec`` that shape the graph).

    Attributes:
        name: unique label, e.g. ``"gridmask mode=0 [kernel]"``.
        augments: augmentations in application order (fitted to :attr:`size`).
        train: training graph (random crop, flip, augmentations) or evaluation.
        half: float16 images.
        keep_clean: also output the un-augmented view.
        auto_augment: a DALI ``auto_aug`` policy name, or None.
        resume: the CPU twin is also rebuilt from a loader state (its feed restarted at the
            second batch) and must give the same second batch.
        preset: the input pipeline.
        hw_decoder_load: share of JPEGs for the hardware decoder, in [0, 1].
        source: ``"files"`` (an image folder) or ``"tar"`` (a webdataset shard).
        hflip: horizontal-flip probability (``create_loader``'s).
        vflip: vertical-flip probability (> 0 adds the ``fn.flip`` of the crop).
        problem: why no graph could be configured (e.g. a registered augmentation whose
            defaults do not construct), reported as a failure; empty when fine.
    """

    name: str
    augments: tuple[Augment, ...] = ()
    train: bool = True
    half: bool = False
    keep_clean: bool = False
    auto_augment: str | None = None
    resume: bool = False
    preset: presets.Preset = presets.IMAGENET
    hw_decoder_load: float = HW_DECODER_LOAD
    source: Literal["files", "tar"] = "files"
    hflip: float = 0.5
    vflip: float = 0.0
    problem: str = ""

    @property
    def size(self) -> int:
        """Output side in pixels: :data:`SIZE`, or the preset's own when smaller."""
        return min(SIZE, self.preset.size)


def make_augment(name: str, size: int = SIZE, **overrides: Any) -> Augment:
    """The registered augmentation ``name`` with ``overrides``, fitted to ``size``-pixel images
    (its ``scaled_to``, where it has one, rescales pixel lengths from ImageNet's 224).

    Raises:
        TypeError, ValueError: the configuration does not construct or does not fit.
    """
    aug = AUGMENTATIONS[name](**overrides)
    scaled = getattr(aug, "scaled_to", None)
    if scaled is not None:
        aug = scaled(size)
    aug.check_geometry(size, size, BATCH)
    return aug


def _label(name: str, overrides: dict[str, Any]) -> str:
    return name + "".join(f" {k}={v}" for k, v in overrides.items())


def augment_cases() -> Iterator[GraphCase]:
    """Each registered augmentation (defaults and :data:`VARIANTS`) on each of its backends,
    and with its defaults on float16 output.
    """
    for name in AUGMENTATIONS:
        for over in ({}, *VARIANTS.get(name, ())):
            label = _label(name, over)
            try:
                base = make_augment(name, **over)
            except (TypeError, ValueError) as e:
                yield GraphCase(label, problem=f"cannot configure {label}: {e}")
                continue
            for i, backend in enumerate(base.backends()):
                aug = dataclasses.replace(base, backend="auto" if i == 0 else backend)
                tag = f"auto={backend}" if i == 0 else backend
                yield GraphCase(f"{label} [{tag}]", (aug,))
            if not over:
                yield GraphCase(f"{label} fp16", (base,), half=True)


def combination_cases() -> Iterator[GraphCase]:
    """Masks before a mixing op (their masks travel through its paste), several masks, and the
    per-op arrangement that a kernel forces on native neighbours.
    """
    masks = [n for n, c in AUGMENTATIONS.items() if issubclass(c, MaskAugment)]
    mixes = [n for n, c in AUGMENTATIONS.items() if issubclass(c, MixAugment)]
    first_mix = make_augment(mixes[0])
    for m in masks:
        yield GraphCase(f"{m}+{mixes[0]} fp16", (make_augment(m), first_mix), half=True)
    for x in mixes[1:]:
        yield GraphCase(f"{masks[0]}+{x}", (make_augment(masks[0]), make_augment(x)))
    last = VARIANTS.get(mixes[-1], ({},))[0]
    yield GraphCase(
        f"{'+'.join(masks)}+{_label(mixes[-1], last)}",
        (*(make_augment(m) for m in masks), make_augment(mixes[-1], **last)),
    )
    kernel = {"backend": "kernel"}
    yield GraphCase(
        f"{masks[0]} [kernel]+{mixes[0]} fp16",
        (make_augment(masks[0], **kernel), first_mix),
        half=True,
    )
    yield GraphCase(
        f"{'+'.join(masks)} [kernel]+{mixes[-1]} [kernel]",
        (*(make_augment(m, **kernel) for m in masks), make_augment(mixes[-1], **kernel)),
    )
    # native masks in the per-op arrangement (after a kernel): their placed fills (noise,
    # RandomErasing's per-box colours) go in as HWC
    placed = [make_augment("random_erasing", **v) for v in PLACED_FILLS]
    yield GraphCase(
        f"{masks[0]} [kernel]+{'+'.join(masks[1:])}"
        + "".join(f"+{_label('random_erasing', v)}" for v in PLACED_FILLS),
        (make_augment(masks[0], **kernel), *(make_augment(m) for m in masks[1:]), *placed),
    )


def pipeline_cases() -> Iterator[GraphCase]:
    """Graphs that differ outside the augmentations: fp16, evaluation, presets and colour ops,
    Keep views with each ``auto_augment`` policy, resuming, decoder load, tar sources.
    """
    from dali_gridaug.policies import POLICIES

    mask = next(n for n, c in AUGMENTATIONS.items() if issubclass(c, MaskAugment))
    mix = next(n for n, c in AUGMENTATIONS.items() if issubclass(c, MixAugment))
    both = (make_augment(mask), make_augment(mix))
    yield GraphCase("train")
    yield GraphCase("train fp16", half=True)
    yield GraphCase("val", train=False)
    yield GraphCase("val fp16", train=False, half=True)
    for name, pre in presets.PRESETS.items():
        variants = [(name, pre)]
        if pre.crop == "pad":
            variants.append((f"{name} fill=reflect", dataclasses.replace(pre, fill="reflect")))
        for label, p in variants:
            if p is not presets.IMAGENET:
                yield GraphCase(f"preset {label}", preset=p)
                yield GraphCase(f"preset {label} val", train=False, preset=p)
    jitter = dataclasses.replace(presets.IMAGENET, color_jitter=presets.ColorJitter())
    light = dataclasses.replace(presets.IMAGENET, lighting=presets.Lighting())
    yield GraphCase("color_jitter", preset=jitter)
    yield GraphCase("lighting", preset=light)
    jl = dataclasses.replace(jitter, lighting=presets.Lighting())
    yield GraphCase(f"color_jitter+lighting {mask}+{mix} fp16", both, half=True, preset=jl)
    yield GraphCase("keep_clean", keep_clean=True)
    yield GraphCase(
        f"hflip=0.3 vflip=0.5 keep_clean {mix}", (both[1],), keep_clean=True, hflip=0.3, vflip=0.5
    )
    cubic = dataclasses.replace(presets.IMAGENET, interpolation="bicubic", crop_mode="squash")
    yield GraphCase("bicubic", preset=cubic)
    yield GraphCase("bicubic squash val", train=False, preset=cubic)
    rand = dataclasses.replace(presets.IMAGENET, interpolation="random")
    yield GraphCase(f"interpolation=random {mask}", (both[0],), preset=rand)
    jitter_p = dataclasses.replace(jitter, color_jitter=presets.ColorJitter(p=0.5))
    yield GraphCase("color_jitter p=0.5", preset=jitter_p)
    for i, policy in enumerate(POLICIES):
        if i == 0:  # the first also with a mixing op (conditionals + a paste)
            yield GraphCase(
                f"keep_clean {policy} {mix}", (both[1],), keep_clean=True, auto_augment=policy
            )
        else:
            yield GraphCase(f"keep_clean {policy}", keep_clean=True, auto_augment=policy)
    # a resume gives the same batch with the host-drawn crop (DALI's own draw restarts)
    keyed = dataclasses.replace(presets.IMAGENET, invariant_crop=True)
    yield GraphCase("resume invariant_crop", resume=True, preset=keyed)
    yield GraphCase(f"resume invariant_crop {mask}+{mix}", both, resume=True, preset=keyed)
    kernel = make_augment(mask, backend="kernel")
    yield GraphCase(f"resume invariant_crop {mask} [kernel]", (kernel,), resume=True, preset=keyed)
    yield GraphCase("hw_decoder_load=0", hw_decoder_load=0.0)
    yield GraphCase("hw_decoder_load=1 val", train=False, hw_decoder_load=1.0)
    yield GraphCase(f"tar {mix}", (both[1],), source="tar")
    yield GraphCase("tar val", train=False, source="tar")


def graph_cases() -> list[GraphCase]:
    """Every GPU graph configuration, names unique."""
    out = [*augment_cases(), *combination_cases(), *pipeline_cases()]
    names = [c.name for c in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RuntimeError(f"duplicate graph case names: {dup}")
    return out


# --- specs, parameters and data of a case -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sources:
    """Readable data for the graphs: ``train``/``val`` as an image folder and as tar shards."""

    files: dict[str, Any]
    tar: dict[str, Any]

    @classmethod
    def from_folder(cls, root: str | os.PathLike[str], workdir: str | os.PathLike[str]) -> Sources:
        """``root/train`` and ``root/val`` image folders, and a tar shard of each in
        ``workdir`` (``.jpg`` + ``.cls`` members, ``classes.txt`` beside them).
        """
        from dali_gridaug.reader import TarSource, image_folder

        files = {s: image_folder(Path(root) / s) for s in ("train", "val")}
        tar = {}
        for split, src in files.items():
            folder = Path(workdir) / split
            folder.mkdir(parents=True, exist_ok=True)
            shard = folder / "shard-000.tar"
            with tarfile.open(shard, "w") as out:
                for i, (f, y) in enumerate(zip(src.files, src.targets, strict=True)):
                    out.add(f, arcname=f"{i:06d}.jpg")
                    label = f"{y}\n".encode()
                    info = tarfile.TarInfo(f"{i:06d}.cls")
                    info.size = len(label)
                    out.addfile(info, io.BytesIO(label))
            tar[split] = TarSource((str(shard),), len(src.classes))
        return cls(files, tar)

    def get(self, case: GraphCase) -> Any:
        return getattr(self, case.source)["train" if case.train else "val"]


def make_spec(case: GraphCase, source: Any, device: str) -> Any:
    """The ``PipelineSpec`` ``create_loader`` builds for ``case`` (its argument checks and
    defaults included), placed on ``device`` (``"gpu"``: ``device_id=0``, which needs no GPU
    to define a graph).
    """
    import torch

    from dali_gridaug.config import LoaderConfig, resolve

    config = LoaderConfig(
        batch_size=BATCH,
        train=case.train,
        image_size=case.size,
        augment=case.augments,
        device="cpu",
        seed=0,
        num_threads=1,
        shard_id=0,
        num_shards=1,
        dtype=torch.float16 if case.half else torch.float32,
        keep_clean=case.keep_clean,
        auto_augment=case.auto_augment,
        preset=case.preset,
        hw_decoder_load=case.hw_decoder_load,
        hflip=case.hflip,
        vflip=case.vflip,
    )
    return placed(resolve(config, source), device)


def placed(spec: Any, device: str) -> Any:
    """``spec`` (a CPU-resolved :class:`~dali_gridaug.config.PipelineSpec`) on ``device``:
    ``"gpu"`` sets ``device_id=0``, which needs no GPU to define a graph.
    """
    return spec if device == "cpu" else dataclasses.replace(spec, device=device, device_id=0)


def builder(case: GraphCase, sources: Sources, device: str) -> Callable[..., Any]:
    """``build(position=0) -> (pipeline, output_names)`` for ``case`` on ``device``, its feed
    starting at ``position`` of epoch 0 (as a loader restored from a state there).
    """
    from dali_gridaug.feed import Feed
    from dali_gridaug.pipeline import build_pipeline

    def build(position: int = 0) -> tuple[Any, list[str]]:
        spec = make_spec(case, sources.get(case), device)
        feed = Feed.for_spec(spec)
        feed.start(0, position)
        return build_pipeline(spec, feed)

    return build


@contextlib.contextmanager
def sample_sources(data: str | os.PathLike[str] | None = None) -> Iterator[Sources]:
    """:class:`Sources` over ``data`` (a folder with ``train/`` and ``val/`` image folders), or
    over a small generated dataset when None; tar shards live in a temporary folder.
    """
    with tempfile.TemporaryDirectory(prefix="dali-gridaug-testing-") as tmp:
        if data is None:
            from dali_gridaug.tools.synthetic import make_sample_dataset

            data = Path(tmp) / "data"
            make_sample_dataset(data, num_classes=2, train_per_class=4, val_per_class=4)
        yield Sources.from_folder(data, Path(tmp) / "tar")
