"""Stage 5, iterator: ``create_loader`` builds the pipeline and a drop-in replacement for a
torchvision ``DataLoader``: ``for images, target in loader`` (a :class:`Batch`).
"""

from __future__ import annotations

import hashlib
import math
import os
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from dali_gridaug import _loader_args as checks
from dali_gridaug._validate import as_bytes, check_int
from dali_gridaug.augment.base import Augment, LabelUpdate
from dali_gridaug.batch import Batch
from dali_gridaug.compat import LoaderDataset, ShardSampler
from dali_gridaug.constants import HW_DECODER_LOAD, READER_NAME
from dali_gridaug.errors import name_bad_files
from dali_gridaug.interrupts import surface_interrupts
from dali_gridaug.labels import parse_ascii_labels, smooth_target
from dali_gridaug.params import ParamSource
from dali_gridaug.pipeline import PipelineSpec, build_pipeline
from dali_gridaug.presets import ColorJitter, Lighting, Preset
from dali_gridaug.reader import FileSource, Source


def create_loader(
    source: Source | str | os.PathLike[str] | Sequence[str],
    *,
    batch_size: int,
    train: bool = True,
    image_size: int | tuple[int, int] | None = None,
    augment: Sequence[Augment] = (),
    device: str = "auto",
    seed: int = 0,
    num_threads: int | None = None,
    shard_id: int | None = None,
    num_shards: int | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    dtype: torch.dtype = torch.float32,
    drop_last: bool | None = None,
    keep_clean: bool = False,
    auto_augment: str | None = None,
    exclude: Sequence[str] = (),
    checkpointing: bool = False,
    resume: Mapping[str, Any] | None = None,
    preset: str | Preset = "imagenet",
    color_jitter: ColorJitter | float | None = None,
    lighting: Lighting | float | None = None,
    hw_decoder_load: float = HW_DECODER_LOAD,
    label_smoothing: float = 0.0,
    num_classes: int | None = None,
) -> DaliLoader:
    """Build a DALI loader over ``source``.

    Long only by its 25 documented arguments: the body hands them, by name, to the checks
    and defaults of ``dali_gridaug._loader_args.loader_spec``.

    Args:
        source: ImageFolder root, file list (``.txt``), tar shard path(s), or a
            :class:`~dali_gridaug.reader.FileSource`/:class:`~dali_gridaug.reader.TarSource`.
        batch_size: images per batch per rank.
        train: random-resized crop + flip + ``augment`` (True) or resize + centre crop.
        image_size: output side in pixels, or ``(H, W)``; default the preset's (224, CIFAR 32).
        augment: augmentation configs; per-sample ones apply in order, one mixing op last.
        device: ``"gpu"``, ``"cpu"`` (DALI's CPU backend) or ``"auto"`` (GPU when usable).
        seed: run seed; rank r's pipeline uses ``seed + r`` (the file order uses ``seed``).
        num_threads: DALI CPU threads; ``None`` or ``0`` (a ``DataLoader``'s
            ``num_workers=0``, e.g. a script's ``--workers 0``) mean the default, the CPU
            count, at most 8. So ``num_threads=args.workers`` maps a DataLoader worker count.
        shard_id: this rank; default the ``torch.distributed`` rank, else 0.
        num_shards: number of ranks; default the ``torch.distributed`` world size, else 1.
        mean: per-channel mean in 0–255 pixel units (``0`` with ``std=1`` gives raw pixels);
            default the preset's.
        std: per-channel std in 0–255 pixel units; default the preset's.
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
        preset: input pipeline, ``"imagenet"`` (random-resized crop; val resize + centre crop),
            ``"cifar"`` (pad 4 + random crop; val unchanged) or a
            :class:`~dali_gridaug.presets.Preset`.
        color_jitter: train colour jitter, a :class:`~dali_gridaug.presets.ColorJitter` or
            ``x`` for ``ColorJitter(x, x, x)`` (clovaai ImageNet: 0.4); None: the preset's.
        lighting: train PCA lighting, a :class:`~dali_gridaug.presets.Lighting` or its ``std``
            (clovaai ImageNet: 0.1); None: the preset's.
        num_classes: K, the width of soft targets ``(B, K)``: the model's class count
            (default: the dataset's). Must be ≥ the dataset's class count (every label < K).

    Returns:
        A :class:`DaliLoader`.

    Raises:
        TypeError, ValueError: a bad argument (the message names it, its range and the value).
    """
    spec, drop_last = checks.loader_spec(
        source,
        batch_size=batch_size,
        train=train,
        image_size=image_size,
        augment=augment,
        device=device,
        seed=seed,
        num_threads=num_threads,
        shard_id=shard_id,
        num_shards=num_shards,
        mean=mean,
        std=std,
        dtype=dtype,
        drop_last=drop_last,
        keep_clean=keep_clean,
        auto_augment=auto_augment,
        exclude=exclude,
        checkpointing=checkpointing,
        resume=resume,
        preset=preset,
        color_jitter=color_jitter,
        lighting=lighting,
        hw_decoder_load=hw_decoder_load,
        label_smoothing=label_smoothing,
        num_classes=num_classes,
    )
    return DaliLoader(
        spec, drop_last=drop_last, state=resume, num_classes=num_classes, batch_size=batch_size
    )


class DaliLoader:
    """Iterates :class:`Batch` es; ``len()`` is batches per epoch on this rank.

    The loader resets itself at each epoch end. ``set_epoch(e)`` declares the epoch about to
    start (as a ``DistributedSampler``): it moves epoch schedules and, when it skips ahead
    (resume), the parameter stream, without rebuilding or stalling the pipeline.

    Epochs are whole: a ``for`` loop left early (``break``, a step limit) abandons the rest
    of that epoch; the next iteration (or ``set_epoch``) first runs the pipeline to the
    epoch's end, discarding those batches (the same decode work they would have cost), so
    the next epoch starts at its first batch, stamped ``e + 1``, with its own shuffle and
    parameters. To continue an interrupted epoch instead, save :meth:`state_dict` and
    restore it. One loader runs one iteration at a time: a second ``for`` over it while
    the first is open (nested loops) raises ``RuntimeError``.

    Like a ``DataLoader``, it has ``dataset`` (:class:`~dali_gridaug.compat.LoaderDataset`),
    ``sampler`` (:class:`~dali_gridaug.compat.ShardSampler`, whose ``set_epoch`` forwards
    here) and ``batch_size``.
    """

    def __init__(
        self,
        spec: PipelineSpec,
        *,
        drop_last: bool,
        state: Mapping[str, Any] | None = None,
        num_classes: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.spec = spec
        self.source = spec.source
        self.drop_last = drop_last
        self.batch_size = spec.batch_size if batch_size is None else batch_size
        self.num_classes = checks.num_classes(num_classes, spec.source)
        self.classes = getattr(spec.source, "classes", None)
        self.params = ParamSource.for_spec(spec)
        self.device = (
            torch.device("cuda", spec.device_id) if spec.device == "gpu" else torch.device("cpu")
        )
        targets = getattr(spec.source, "targets", ())
        self._class_of = torch.tensor(targets, dtype=torch.int64, device=self.device)
        self.epoch = 0
        self._batches_done = 0
        self._active: weakref.ref[Iterator[Any]] | None = None  # the open iteration
        self._in_epoch = False  # DALI's iterator is inside an epoch this object started
        self._build(state)
        self.dataset = LoaderDataset(spec.source, self._num_samples)

    def _build(self, state: Mapping[str, Any] | None) -> None:
        """(Re)build the pipeline and its DALI iterator, restored from ``state`` if given."""
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        spec, checkpoint = self.spec, None
        if state is not None:
            checks.check_state(state, self._identity(), self.spec.checkpointing)
            checkpoint = state["dali"]
            self.epoch, self._batches_done = int(state["epoch"]), int(state["batches_done"])
            if self.params is not None:
                # DALI restores the external_source iteration counter with the checkpoint
                # (pipeline_data["iter"]); these offsets complete the (epoch, step) mapping
                self.params.first_epoch = int(state["first_epoch"])
                self.params.first_step = int(state["first_step"])
        self._in_epoch = False  # a restored mid-epoch position yields the rest of its epoch
        self.pipe, self.output_names = build_pipeline(spec, self.params, checkpoint=checkpoint)
        self.pipe.build()
        self._num_samples = int(self.pipe.reader_meta(READER_NAME)["epoch_size"])
        # DALI shards are [floor(i·N/S), floor((i+1)·N/S)); the reader pads each to the largest
        shard_size = math.ceil(self._num_samples / spec.num_shards)
        if self.drop_last and shard_size < spec.batch_size:
            raise ValueError(
                f"`batch_size`={spec.batch_size} is larger than this rank's shard of "
                f"{shard_size} files; with drop_last every batch would be dropped"
            )
        if self.params is not None:
            self.params.steps_per_epoch = math.ceil(shard_size / spec.batch_size)
        self._iter = DALIGenericIterator(
            self.pipe,
            self.output_names,
            reader_name=READER_NAME,
            auto_reset=True,
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
            "batch_size": self.batch_size,
            "shard_id": s.shard_id,
            "num_shards": s.num_shards,
            "seed": s.seed,
            "num_files": len(s.source) if isinstance(s.source, FileSource) else -1,
        }

    def state_dict(self) -> dict[str, Any]:
        """This rank's position: the DALI checkpoint (reader position and every operator's
        random state, net of batches DALI prefetched but the loader did not hand out) with
        its SHA-256, the epoch, and the parameter-stream offsets. Restore with
        ``create_loader(resume=...)`` or :meth:`load_state_dict`. Needs ``checkpointing=True``.

        Taken between two batches of an epoch (inside the loop, or after leaving it early),
        the restored loader yields the rest of that epoch (``set_epoch`` with the same epoch
        is a no-op); taken after an epoch ended, it starts the next one.
        """
        if not self.spec.checkpointing:
            raise ValueError("`state_dict` needs a loader created with `checkpointing`=True")
        dali = self._iter.checkpoints()[0]
        return {
            "dali": dali,
            "dali_sha256": hashlib.sha256(as_bytes(dali)).hexdigest(),
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
        self._check_idle("load_state_dict")
        checks.check_state(state, self._identity(), self.spec.checkpointing)
        del self._iter, self.pipe
        self._build(state)

    @property
    def sampler(self) -> ShardSampler:
        """This rank's share, like a ``DistributedSampler`` (a fresh view on each access, so
        the loader holds no reference cycle and is freed as soon as it is dropped).
        """
        return ShardSampler(self)

    def __len__(self) -> int:
        if self.drop_last:
            return len(self._iter)
        # DALI runs every rank for the largest shard's batches; a smaller shard's last run
        # can hold only padding, which is trimmed to an empty batch and skipped
        n, world, rank = self._num_samples, self.spec.num_shards, self.spec.shard_id
        return math.ceil(((rank + 1) * n // world - rank * n // world) / self.spec.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Declare the epoch about to start (call before iterating it).

        After a loop left early, the abandoned epoch is first run to its end (see the class
        docstring), so ``set_epoch(e + 1)`` then starts epoch ``e + 1`` whole.
        """
        epoch = check_int("epoch", epoch, 0)
        self._check_idle("set_epoch")
        self._finish_abandoned_epoch()
        if self.params is not None and epoch != self.epoch:
            # the parameter stream counts pipeline runs; shift it so runs from now map to `epoch`
            self.params.first_epoch += epoch - self.epoch
        self.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        return self._open(self._to_batch)

    def raw(self) -> Iterator[dict[str, torch.Tensor]]:
        """Iterate DALI's raw output dicts (images, key, clean, parameters) for one epoch."""
        return self._open(lambda out: out)

    def _open(self, convert: Callable[[dict[str, torch.Tensor]], Any]) -> Iterator[Any]:
        """Start one epoch's iteration: refuse a second open one, finish an abandoned one."""
        self._check_idle("iterating")
        self._finish_abandoned_epoch()
        run = self._run(convert)
        self._active = weakref.ref(run)
        return run

    def _run(self, convert: Callable[[dict[str, torch.Tensor]], Any]) -> Iterator[Any]:
        for out in surface_interrupts(name_bad_files(self._iter, self.source)):
            self._in_epoch = True
            if out[0]["images"].shape[0] == 0:  # only padding (see __len__)
                continue
            yield convert(out[0])
            self._batches_done += 1
        self._in_epoch = False
        self.epoch += 1

    def _check_idle(self, what: str) -> None:
        run = self._active() if self._active is not None else None
        if run is not None and run.gi_frame is not None:  # created or suspended, not closed
            raise RuntimeError(
                f"{what}: this DaliLoader is already being iterated (a `for` over it is still "
                "open, e.g. nested loops over one loader); one loader runs one epoch at a "
                "time: finish or leave the first loop, or build a second loader"
            )

    def _finish_abandoned_epoch(self) -> None:
        """Run DALI's iterator to the end of an epoch a loop left early, and count it."""
        if not self._in_epoch:
            return
        # next(), not a for loop: iter() on DALI's iterator at the epoch's end would reset it
        # and this loop would run the whole next epoch
        rest = iter(lambda: next(self._iter, None), None)
        for _ in surface_interrupts(name_bad_files(rest, self.source)):
            pass
        self._in_epoch = False
        self.epoch += 1

    def _to_batch(self, out: dict[str, torch.Tensor]) -> Batch:
        """The labels stage: hard labels from the key, then the mixing augmentation's
        :meth:`~dali_gridaug.augment.base.MixAugment.labels` (or the hard labels), with the
        loader's label smoothing ε applied to either (the one place it is applied). Every
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
        eps = self.spec.label_smoothing
        update = LabelUpdate(smooth_target(labels, k, eps), torch.ones(len(labels), device=dev),
                             torch.arange(len(labels), device=dev))  # fmt: skip
        if self.params is not None:
            for aug, params in zip(self.spec.augments, self.params.unflatten(out), strict=True):
                if aug.mixing:
                    params = {n: t.to(dev, non_blocking=True) for n, t in params.items()}
                    update = aug.labels(params, labels, k, eps)
        return Batch(
            images=images,
            target=update.target,
            labels=labels, index=index, lam=update.lam, partner=update.partner,
            patch_labels=update.patch_labels, clean=out.get("clean"), epoch=self.epoch,
        )  # fmt: skip


__all__ = ["DaliLoader", "create_loader"]
