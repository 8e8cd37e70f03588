"""Stage 5, iterator: ``create_loader`` builds the pipeline and a drop-in replacement for a
torchvision ``DataLoader``: ``for images, target in loader`` (a :class:`Batch`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from dali_gridaug._validate import check_choice, check_range, check_type
from dali_gridaug.augment.base import Augment, LabelUpdate
from dali_gridaug.augment.graph import is_native
from dali_gridaug.batch import Batch
from dali_gridaug.constants import HW_DECODER_LOAD, IMAGENET_MEAN, IMAGENET_STD, READER_NAME
from dali_gridaug.errors import name_bad_files
from dali_gridaug.labels import parse_ascii_labels, smooth_target
from dali_gridaug.params import ParamSource
from dali_gridaug.pipeline import PipelineSpec, build_pipeline
from dali_gridaug.reader import FileSource, Source, resolve_source


def create_loader(
    source: Source | str | os.PathLike[str] | Sequence[str],
    *,
    batch_size: int,
    train: bool = True,
    image_size: int | tuple[int, int] = 224,
    augment: Sequence[Augment] = (),
    device: str = "auto",
    seed: int = 0,
    num_threads: int | None = None,
    shard_id: int | None = None,
    num_shards: int | None = None,
    mean: float | Sequence[float] = IMAGENET_MEAN,
    std: float | Sequence[float] = IMAGENET_STD,
    dtype: torch.dtype = torch.float32,
    drop_last: bool | None = None,
    keep_clean: bool = False,
    auto_augment: str | None = None,
    exclude: Sequence[str] = (),
    checkpointing: bool = False,
    resume: Mapping[str, Any] | None = None,
    hw_decoder_load: float = HW_DECODER_LOAD,
    label_smoothing: float = 0.0,
) -> DaliLoader:
    """Build a DALI loader over ``source``.

    Args:
        source: ImageFolder root, file list (``.txt``), tar shard path(s), or a
            :class:`~dali_gridaug.reader.FileSource`/:class:`~dali_gridaug.reader.TarSource`.
        batch_size: images per batch per rank.
        train: random-resized crop + flip + ``augment`` (True) or resize + centre crop.
        image_size: output side in pixels, or ``(H, W)``.
        augment: augmentation configs; per-sample ones apply in order, one mixing op last.
        device: ``"gpu"``, ``"cpu"`` (DALI's CPU backend) or ``"auto"`` (GPU when usable).
        seed: run seed; rank r's pipeline uses ``seed + r`` (the file order uses ``seed``).
        num_threads: DALI CPU threads (default: the CPU count, at most 8).
        shard_id: this rank; default the ``torch.distributed`` rank, else 0.
        num_shards: number of ranks; default the ``torch.distributed`` world size, else 1.
        mean: per-channel mean in 0–255 pixel units (``0`` with ``std=1`` gives raw pixels).
        std: per-channel std in 0–255 pixel units.
        dtype: ``torch.float32`` or ``torch.float16`` images.
        drop_last: drop the last partial batch; default True for train, False for eval.
        keep_clean: also return the un-augmented crop as ``Batch.clean`` (Keep stage).
        auto_augment: ``"rand_augment"``, ``"auto_augment"`` or ``"trivial_augment"`` applied
            (with DALI's ``auto_aug``) before normalization; the clean view stays available.
        exclude: file paths to leave out (e.g. the bad files ``dali-gridaug check-data`` found).
        checkpointing: enable DALI pipeline checkpoints (:meth:`DaliLoader.state_dict`).
        resume: a :meth:`DaliLoader.state_dict` of this rank's loader (same source, batch
            size, shards and seed; implies ``checkpointing``): continue exactly where it was
            taken, mid-epoch included.
        hw_decoder_load: share of JPEGs in [0, 1] the GPU decoder sends to the hardware JPEG
            decoder where the GPU has one (A100/H100); ignored on the CPU.
        label_smoothing: ε in [0, 1), the one label-smoothing knob: every target, soft
            (mixing) or hard, becomes ``(1 − ε)·t + ε/K``, ``(B, K)`` float32 (timm's
            formula). A mixing augmentation's own ``label_smoothing`` (timm compatibility) is
            used only when this is 0.

    Returns:
        A :class:`DaliLoader`.
    """
    check_type("batch_size", batch_size, int)
    check_range("batch_size", batch_size, 1)
    check_choice("device", device, ("auto", "gpu", "cpu"))
    check_choice("dtype", dtype, (torch.float32, torch.float16))
    check_type("train", train, bool)
    check_type("keep_clean", keep_clean, bool)
    if drop_last is not None:
        check_type("drop_last", drop_last, bool)
    check_type("seed", seed, int)
    check_range("seed", seed, 0)
    if num_threads is not None:
        check_type("num_threads", num_threads, int)
        check_range("num_threads", num_threads, 1)
    if not isinstance(image_size, (int, tuple, list)) or (
        not isinstance(image_size, int) and len(image_size) != 2
    ):
        raise TypeError(f"`image_size` must be an int or an (H, W) pair, got {image_size!r}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    for i, s in enumerate(size):
        check_type(f"image_size[{i}]", s, int)
        check_range(f"image_size[{i}]", s, 1)
    if isinstance(augment, Augment):
        raise TypeError(f"`augment` must be a sequence of configs, e.g. [{augment!r}]")
    if isinstance(exclude, (str, os.PathLike)):
        raise TypeError(f"`exclude` must be a sequence of file paths, got one path {exclude!r}")
    augment = tuple(augment)
    for a in augment:
        if not isinstance(a, Augment):
            raise TypeError(f"`augment` items must be augmentation configs, got {a!r}")
        a.check_geometry(size[0], size[1], batch_size)
    mixing = [a for a in augment if a.mixing]
    if len(mixing) > 1 or (mixing and augment[-1] is not mixing[0]):
        raise ValueError("`augment`: at most one mixing augmentation (CutMix/GridMix), placed last")
    if augment and not train:
        raise ValueError("`augment` is for training loaders; pass train=True or augment=()")
    src = resolve_source(source)
    if exclude:
        if not isinstance(src, FileSource):
            raise ValueError("`exclude` needs a file-backed source (ImageFolder or file list)")
        src = src.without(exclude)
    rank, world = _distributed(shard_id, num_shards)
    mean_t, std_t = _channels("mean", mean), _channels("std", std)
    if any(s <= 0 for s in std_t):
        raise ValueError(f"`std` must be positive, got {std}")
    dev = _resolve_device(device)
    check_range("hw_decoder_load", hw_decoder_load, 0, 1)
    smoothing = _label_smoothing(label_smoothing, augment)
    spec = PipelineSpec(
        source=src, batch_size=batch_size, train=train, size=size, augments=augment, device=dev,
        device_id=_device_id() if dev == "gpu" else None, seed=seed,
        num_threads=num_threads or max(1, min(8, os.cpu_count() or 1)),
        shard_id=rank, num_shards=world, mean=mean_t, std=std_t,
        half=dtype == torch.float16, keep_clean=keep_clean, auto_augment=auto_augment,
        checkpointing=checkpointing or resume is not None,
        hw_decoder_load=float(hw_decoder_load), label_smoothing=smoothing,
    )
    if isinstance(src, FileSource) and len(src) < world:
        raise ValueError(f"dataset has {len(src)} files, fewer than `num_shards`={world}")
    return DaliLoader(spec, drop_last=train if drop_last is None else drop_last, state=resume)


class DaliLoader:
    """Iterates :class:`Batch` es; ``len()`` is batches per epoch on this rank.

    The loader resets itself at each epoch end. ``set_epoch(e)`` declares the epoch about to
    start (as a ``DistributedSampler``): it moves epoch schedules and, when it skips ahead
    (resume), the parameter stream, without rebuilding or stalling the pipeline.
    """

    def __init__(
        self, spec: PipelineSpec, *, drop_last: bool, state: Mapping[str, Any] | None = None
    ) -> None:
        self.spec = spec
        self.source = spec.source
        self.drop_last = drop_last
        self.num_classes = (
            len(spec.source.classes) if isinstance(spec.source, FileSource)
            else spec.source.num_classes
        )
        self.classes = getattr(spec.source, "classes", None)
        self.params = (
            ParamSource(
                spec.augments, batch_size=spec.batch_size, height=spec.size[0],
                width=spec.size[1], seed=spec.seed, rank=spec.shard_id, steps_per_epoch=1,
                paste_before_flip=is_native(spec.augments),
            )
            if spec.train else None
        )
        self.device = (
            torch.device("cuda", spec.device_id) if spec.device == "gpu" else torch.device("cpu")
        )
        targets = getattr(spec.source, "targets", ())
        self._class_of = torch.tensor(targets, dtype=torch.int64, device=self.device)
        self.epoch = 0
        self._batches_done = 0
        self._build(state)

    def _build(self, state: Mapping[str, Any] | None) -> None:
        """(Re)build the pipeline and its DALI iterator, restored from ``state`` if given."""
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        spec, checkpoint = self.spec, None
        if state is not None:
            self._check_state(state)
            checkpoint = state["dali"]
            self.epoch, self._batches_done = int(state["epoch"]), int(state["batches_done"])
            if self.params is not None:
                # DALI restores the external_source iteration counter with the checkpoint
                # (pipeline_data["iter"]); these offsets complete the (epoch, step) mapping
                self.params.first_epoch = int(state["first_epoch"])
                self.params.first_step = int(state["first_step"])
        self.pipe, self.output_names = build_pipeline(spec, self.params, checkpoint=checkpoint)
        self.pipe.build()
        # DALI shards are [floor(i·N/S), floor((i+1)·N/S)); the reader pads each to the largest
        shard_size = math.ceil(self.pipe.reader_meta(READER_NAME)["epoch_size"] / spec.num_shards)
        if self.drop_last and shard_size < spec.batch_size:
            raise ValueError(
                f"`batch_size`={spec.batch_size} is larger than this rank's shard of "
                f"{shard_size} files; with drop_last every batch would be dropped"
            )
        if self.params is not None:
            self.params.steps_per_epoch = math.ceil(shard_size / spec.batch_size)
        self._iter = DALIGenericIterator(
            self.pipe, self.output_names, reader_name=READER_NAME, auto_reset=True,
            last_batch_policy=LastBatchPolicy.DROP if self.drop_last else LastBatchPolicy.PARTIAL,
            last_batch_padded=False,
            # no prefetch before the first batch is asked for: set_epoch/resume offsets set
            # after construction still reach the first batches' parameters
            prepare_first_batch=False,
        )

    def _identity(self) -> dict[str, int]:
        """What a saved state must match to be restorable into this loader."""
        s = self.spec
        return {
            "batch_size": s.batch_size, "shard_id": s.shard_id, "num_shards": s.num_shards,
            "seed": s.seed, "num_files": len(s.source) if isinstance(s.source, FileSource) else -1,
        }

    def _check_state(self, state: Mapping[str, Any]) -> None:
        if not self.spec.checkpointing:
            raise ValueError("restoring a loader state needs `checkpointing`=True")
        missing = {"dali", "epoch", "batches_done", "first_epoch", "first_step", *self._identity()}
        missing -= set(state)
        if missing:
            raise ValueError(f"loader state is missing {', '.join(sorted(missing))}")
        for key, value in self._identity().items():
            if state[key] != value:
                raise ValueError(
                    f"loader state was saved with `{key}`={state[key]}, this loader has {value}; "
                    "a DALI checkpoint restores only into the same pipeline"
                )

    def state_dict(self) -> dict[str, Any]:
        """This rank's position: the DALI checkpoint (reader position and every operator's
        random state, net of batches DALI prefetched but the loader did not hand out), the
        epoch, and the parameter-stream offsets. Restore with ``create_loader(resume=...)``
        or :meth:`load_state_dict`. Needs ``checkpointing=True``.

        Taken between two batches of an epoch, the restored loader yields the rest of that
        epoch (``set_epoch`` with the same epoch is a no-op); taken after an epoch ended, it
        starts the next one.
        """
        if not self.spec.checkpointing:
            raise ValueError("`state_dict` needs a loader created with `checkpointing`=True")
        return {
            "dali": self._iter.checkpoints()[0],
            "epoch": self.epoch,
            "batches_done": self._batches_done,
            "first_epoch": self.params.first_epoch if self.params is not None else 0,
            "first_step": self.params.first_step if self.params is not None else 0,
            **self._identity(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Rebuild the pipeline from a :meth:`state_dict`.

        ``create_loader(resume=...)`` does the same without building a pipeline first.
        """
        self._check_state(state)
        del self._iter, self.pipe
        self._build(state)

    def __len__(self) -> int:
        return len(self._iter)

    @property
    def batch_size(self) -> int:
        return self.spec.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Declare the epoch about to start (call before iterating it)."""
        check_type("epoch", epoch, int)
        check_range("epoch", epoch, 0)
        if self.params is not None and epoch != self.epoch:
            # the parameter stream counts pipeline runs; shift it so runs from now map to `epoch`
            self.params.first_epoch += epoch - self.epoch
        self.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        for out in name_bad_files(self._iter, self.source):
            yield self._to_batch(out[0])
            self._batches_done += 1
        self.epoch += 1

    def _to_batch(self, out: dict[str, torch.Tensor]) -> Batch:
        """The labels stage: hard labels from the key, the mixing augmentation's
        :meth:`~dali_gridaug.augment.base.MixAugment.labels`, then label smoothing. Every
        tensor already is on the images' device (GPU pipelines emit GPU outputs), so nothing
        here waits for the host.
        """
        images = out["images"]
        dev = images.device
        key = out["key"].to(dev, non_blocking=True)
        k = self.num_classes
        if isinstance(self.source, FileSource):
            index = key.view(-1).long()
            labels = self._class_of[index]
        else:
            labels = parse_ascii_labels(key)
            index = torch.full_like(labels, -1)
        update = LabelUpdate(labels, torch.ones(len(labels), device=dev),
                             torch.arange(len(labels), device=dev))  # fmt: skip
        if self.params is not None:
            for aug, params in zip(self.spec.augments, self.params.unflatten(out), strict=True):
                if aug.mixing:
                    params = {n: t.to(dev, non_blocking=True) for n, t in params.items()}
                    update = aug.labels(params, labels, k)
        return Batch(
            images=images,
            target=smooth_target(update.target, k, self.spec.label_smoothing),
            labels=labels, index=index, lam=update.lam, partner=update.partner,
            patch_labels=update.patch_labels, clean=out.get("clean"), epoch=self.epoch,
        )  # fmt: skip

    def params_of(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The augmentation parameters in a raw iterator output (for tests and previews)."""
        return {k: v for k, v in out.items() if "." in k}

    def raw(self) -> Iterator[dict[str, torch.Tensor]]:
        """Iterate DALI's raw output dicts (images, key, clean, parameters) for one epoch."""
        for out in name_bad_files(self._iter, self.source):
            yield out[0]
        self.epoch += 1


def _channels(name: str, value: float | Sequence[float]) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    vals = tuple(float(v) for v in value)
    if len(vals) != 3:
        raise ValueError(f"`{name}` must be a number or 3 per-channel values, got {value!r}")
    return vals  # type: ignore[return-value]


def _distributed(shard_id: int | None, num_shards: int | None) -> tuple[int, int]:
    dist = torch.distributed
    initialized = dist.is_available() and dist.is_initialized()
    world = num_shards if num_shards is not None else (dist.get_world_size() if initialized else 1)
    rank = shard_id if shard_id is not None else (dist.get_rank() if initialized else 0)
    check_type("num_shards", world, int)
    check_range("num_shards", world, 1)
    check_type("shard_id", rank, int)
    if not 0 <= rank < world:
        raise ValueError(f"`shard_id` must be in [0, {world - 1}] (num_shards={world}), got {rank}")
    return rank, world


def _label_smoothing(smoothing: float, augment: Sequence[Augment]) -> float:
    """The one ε of the labels stage: the loader's, else a mixing augmentation's own."""
    check_range("label_smoothing", smoothing, 0, 1, high_open=True)
    own = {a.target_smoothing() for a in augment} - {0.0}
    if smoothing and own and own != {smoothing}:
        raise ValueError(
            f"`label_smoothing`={smoothing} of the loader and `label_smoothing`="
            f"{', '.join(map(str, sorted(own)))} of the augmentation differ; set one of them"
        )
    return float(smoothing or (own.pop() if own else 0.0))


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if device == "gpu" and not torch.cuda.is_available():
        raise ValueError("`device`='gpu' but no CUDA device is usable; use 'cpu' or 'auto'")
    return device


def _device_id() -> int:
    local = os.environ.get("LOCAL_RANK")
    return int(local) if local is not None else torch.cuda.current_device()


__all__ = ["DaliLoader", "create_loader"]
