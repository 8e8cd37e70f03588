"""Stage 5, iterator: ``create_loader`` builds the pipeline and a drop-in replacement for a
torchvision ``DataLoader``: ``for images, target in loader`` (a :class:`Batch`).
"""

from __future__ import annotations

import dataclasses
import os
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from dali_gridaug import loader_args
from dali_gridaug._validate import check_int, check_type
from dali_gridaug.augment.base import LabelUpdate
from dali_gridaug.batch import Batch
from dali_gridaug.config import FIELDS, LoaderConfig, PipelineSpec, resolve
from dali_gridaug.errors import name_bad_files
from dali_gridaug.feed import Feed
from dali_gridaug.interrupts import surface_interrupts
from dali_gridaug.labels import smooth_target
from dali_gridaug.pipeline import build_pipeline
from dali_gridaug.reader import Source, source_identity
from dali_gridaug.views import LoaderDataset, ShardBatchSampler, ShardSampler


def create_loader(
    source: Source | str | os.PathLike[str] | Sequence[str],
    config: LoaderConfig | None = None,
    /,
    *,
    resume: Mapping[str, Any] | None = None,
    **options: Any,
) -> DaliLoader:
    """Build a DALI loader over ``source``.

    ``create_loader(root, batch_size=256, augment=[GridMask()])`` or, the same,
    ``create_loader(root, LoaderConfig(batch_size=256, augment=[GridMask()]))``; options
    given beside a config replace its fields (``dataclasses.replace``).

    Args:
        source: ImageFolder root, file list (``.txt``), tar shard path(s), or a
            :class:`~dali_gridaug.reader.FileSource`/:class:`~dali_gridaug.reader.TarSource`.
        config: the options as a :class:`~dali_gridaug.config.LoaderConfig`.
        resume: a :meth:`DaliLoader.state_dict` of a loader over the same source with the
            same seed, taken at any world size: continue where it was taken, mid-epoch
            included (the rest of that epoch's order is split over this loader's ranks).
        options: :class:`~dali_gridaug.config.LoaderConfig`'s fields (``batch_size`` is
            required without a ``config``), documented there.

    Returns:
        A :class:`DaliLoader`.

    Raises:
        TypeError, ValueError: a bad option (the message names it, its range and the value),
            or one :class:`~dali_gridaug.config.LoaderConfig` does not have.
    """
    unknown = sorted(set(options) - set(FIELDS))
    if unknown:
        raise TypeError(f"create_loader() got an unexpected keyword argument {unknown[0]!r}")
    if config is None:
        if "batch_size" not in options:
            raise TypeError(
                "create_loader() missing 1 required keyword-only argument: 'batch_size'"
            )
        config = LoaderConfig(**options)
    else:
        check_type("config", config, LoaderConfig)
        config = dataclasses.replace(config, **options) if options else config
    return DaliLoader(resolve(config, source), state=resume)


class DaliLoader:
    """Iterates :class:`Batch` es; ``len()`` is batches per epoch on this rank.

    The loader owns the sample order (:mod:`dali_gridaug.order`): epoch ``e`` reads one
    global permutation drawn from ``(seed, e)``, each global step takes the next ``B·W``
    positions and rank ``r`` the positions ``r, r + W, …`` of them. ``set_epoch(e)``
    declares the epoch about to start (as a ``DistributedSampler``). :meth:`state_dict` is
    the epoch and the global position, free of the world size: loaded at any number of
    ranks, the rest of the epoch is split over the new ranks.

    Epochs are whole: a ``for`` loop left early (``break``, a step limit) abandons the rest
    of that epoch; the next iteration (or ``set_epoch``) discards the batches DALI had
    already prepared and starts the next epoch at its first batch, stamped ``e + 1``. To
    continue an interrupted epoch instead, save :meth:`state_dict` and restore it. One loader
    runs one iteration at a time: a second ``for`` over it while the first is open (nested
    loops) raises ``RuntimeError``.

    Like a ``DataLoader``, it has every public attribute of ``torch.utils.data.DataLoader``
    that scripts read, each with a truthful value:

    - ``dataset`` (:class:`~dali_gridaug.views.LoaderDataset`), ``sampler``
      (:class:`~dali_gridaug.views.ShardSampler`) and ``batch_sampler``
      (:class:`~dali_gridaug.views.ShardBatchSampler`, ``.sampler`` the sampler): views
      whose ``set_epoch`` forwards here; iterating them raises ``TypeError``;
    - ``batch_size``, ``drop_last``: this loader's; ``len(loader)``: batches this epoch;
    - ``num_workers``: the DALI CPU threads of this process (``num_threads`` resolved, the
      same number a script's ``--workers`` maps onto). No worker process is ever started, so
      ``persistent_workers`` is False and ``worker_init_fn``, ``multiprocessing_context`` are
      None;
    - ``prefetch_factor``: batches DALI prepares ahead, in all (a ``DataLoader``'s is per
      worker): the pipeline's prefetch queue depth;
    - ``pin_memory`` False (batches are never copied to pinned host memory: a GPU pipeline
      returns them on the GPU, a CPU one in pageable memory), ``pin_memory_device`` ``""``;
    - ``collate_fn`` None (DALI forms the batches), ``generator`` None (the order is drawn
      from ``seed``), ``timeout`` 0 (no timeout), ``in_order`` True (batches come in order).
    """

    def __init__(
        self,
        spec: PipelineSpec,
        *,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        self.spec = spec
        self.source = spec.source
        self.drop_last = spec.drop_last
        self.batch_size = spec.batch_size
        self.num_classes = spec.num_classes
        self.classes = getattr(spec.source, "classes", None)
        self.feed = Feed.for_spec(spec)
        self.params, self.split = self.feed.params, self.feed.split
        self.device = (
            torch.device("cuda", spec.device_id) if spec.device == "gpu" else torch.device("cpu")
        )
        self._class_of = torch.as_tensor(spec.source.labels, dtype=torch.int64, device=self.device)
        self.epoch = 0
        #: positions of the current epoch's order consumed so far, over all ranks
        self.position = 0
        self._active: weakref.ref[Iterator[Any]] | None = None  # the open iteration
        self._in_epoch = False  # DALI holds batches of an epoch this object started
        self._identity: dict[str, Any] | None = None
        self._mixup = True  # the mixup_enabled switch (see the property)
        self._refeed = False  # the switch moved while DALI held prefetched batches
        if state is not None:
            self._restore(state)
        self.pipe, self.output_names = build_pipeline(spec, self.feed)
        self.pipe.build()
        self._iter = DALIGenericIterator(
            self.pipe,
            self.output_names,
            auto_reset=False,
            last_batch_policy=LastBatchPolicy.PARTIAL,
            # no prefetch before the first batch is asked for: set_epoch/resume after
            # construction still reach the first batches
            prepare_first_batch=False,
        )
        self._fresh = True  # DALI's iterator has not run an epoch yet (no reset needed)
        self.dataset = LoaderDataset(spec.source, len(spec.source))
        # the rest of a DataLoader's public attributes (see the class docstring)
        self.num_workers = spec.num_threads
        self.prefetch_factor = spec.prefetch
        self.pin_memory, self.pin_memory_device = False, ""
        self.persistent_workers, self.in_order = False, True
        self.timeout = 0
        self.collate_fn: Callable[..., Any] | None = None
        self.worker_init_fn: Callable[[int], None] | None = None
        self.generator: torch.Generator | None = None
        self.multiprocessing_context: Any = None

    def identity(self) -> dict[str, Any]:
        """What a saved state must match: the seed and the source (its sample count and the
        SHA-256 of its list, :func:`~dali_gridaug.reader.source_identity`).
        """
        if self._identity is None:
            count, digest = source_identity(self.source)
            self._identity = {"seed": self.spec.seed, "num_samples": count, "source": digest}
        return self._identity

    def state_dict(self) -> dict[str, Any]:
        """The loader's position, free of the world size: ``epoch``, ``position`` (samples
        of that epoch's global order consumed over all ranks), ``mixup_enabled`` (the
        switch as set, see :attr:`mixup_enabled`), ``seed`` and the source's identity
        (``num_samples``, ``source``). Restore with ``create_loader(resume=...)`` or
        :meth:`load_state_dict`, at any world size.

        Taken between two batches of an epoch (inside the loop, or after leaving it early),
        the restored loader yields the rest of that epoch (``set_epoch`` with the same epoch
        is a no-op); taken after an epoch ended, it starts the next one.
        """
        return {
            "epoch": self.epoch,
            "position": self.position,
            "mixup_enabled": self._mixup,
            **self.identity(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (of this or another world size), without a
        rebuild: batches DALI had prepared are discarded.
        """
        self._check_idle("load_state_dict")
        self._flush()
        self._restore(state)

    def _restore(self, state: Mapping[str, Any]) -> None:
        epoch, position, mixup = loader_args.check_state(state, self.identity())
        length = self.feed.length(epoch)
        if position > length:
            raise ValueError(
                f"loader state `position`={position} is past the end of epoch {epoch}'s "
                f"{length} positions"
            )
        self.epoch, self.position = epoch, position
        self._set_mixup(mixup)

    @property
    def mixup_enabled(self) -> bool:
        """Whether mixing augmentations mix, like timm's ``PrefetchLoader.mixup_enabled``
        (timm's ``train.py`` sets it False at ``--mixup-off-epoch``).

        Set False, every mixing augmentation (CutMix, Mixup, MixupCutMix, GridMix) is off
        from the next batch on, without a rebuild: its host draw becomes the no-mix one
        (:meth:`~dali_gridaug.augment.base.MixAugment.unmixed`: λ 1, partner itself, nothing
        pasted or blended), so images are unmixed, ``lam`` is 1, ``partner`` the own position
        and ``target`` the (label-smoothed) one-hot labels; every other draw is unchanged.
        Switched inside an epoch, the batches DALI had already prepared with the old setting
        are discarded and the rest of the epoch is fed again from the current position (at
        most the prefetch depth is decoded twice); between epochs nothing is in flight. True
        turns mixing back on the same way. Part of :meth:`state_dict`.

        Reads False on a loader without a mixing augmentation (as timm's does without a
        mixing collate); setting it there is accepted, kept in :meth:`state_dict`, and
        changes no batch.

        Raises:
            TypeError: the value set is not a bool.
        """
        return self._mixup and any(a.mixing for a in self.spec.augments)

    @mixup_enabled.setter
    def mixup_enabled(self, enabled: bool) -> None:
        check_type("mixup_enabled", enabled, bool)
        if bool(enabled) != self._mixup:
            self._set_mixup(bool(enabled))
            # batches DALI prepared under the old setting: re-fed at the next batch
            self._refeed = self._in_epoch

    def _set_mixup(self, enabled: bool) -> None:
        self._mixup = enabled
        if self.params is not None:
            self.params.mixing_enabled = enabled

    @property
    def sampler(self) -> ShardSampler:
        """This rank's share, like a ``DistributedSampler`` (a fresh view on each access, so
        the loader holds no reference cycle and is freed as soon as it is dropped).
        """
        s = self.spec
        return ShardSampler(
            self,
            num_replicas=s.num_shards,
            rank=s.shard_id,
            shuffle=s.train,
            length=len(self.dataset),
        )

    @property
    def batch_sampler(self) -> ShardBatchSampler:
        """This rank's batches, like a ``BatchSampler`` over :attr:`sampler` (a fresh view on
        each access, as :attr:`sampler`).
        """
        return ShardBatchSampler(self, self.sampler, batch_size=self.batch_size)

    def check_worker_number_rationality(self) -> None:
        """A ``DataLoader`` warns here about more worker processes than CPUs; this loader
        starts no worker process, so there is nothing to check (a no-op).
        """

    def __len__(self) -> int:
        return self.split.num_batches(self.feed.length(self.epoch))

    def set_epoch(self, epoch: int) -> None:
        """Declare the epoch about to start (call before iterating it).

        After a loop left early, the abandoned epoch ends (see the class docstring), so
        ``set_epoch(e + 1)`` then starts epoch ``e + 1`` whole.
        """
        epoch = check_int("epoch", epoch, 0)
        self._check_idle("set_epoch")
        self._finish_abandoned_epoch()
        if epoch != self.epoch:
            self.epoch, self.position = epoch, 0

    def __iter__(self) -> Iterator[Batch]:
        return self._open(self._to_batch)

    def raw(self) -> Iterator[dict[str, torch.Tensor]]:
        """Iterate DALI's raw output dicts (images, key, crop, clean, parameters) for one
        epoch.
        """
        return self._open(lambda out: out)

    def _open(self, convert: Callable[[dict[str, torch.Tensor]], Any]) -> Iterator[Any]:
        """Start one epoch's iteration: refuse a second open one, finish an abandoned one."""
        self._check_idle("iterating")
        self._finish_abandoned_epoch()
        run = self._run(convert)
        self._active = weakref.ref(run)
        return run

    def _start(self) -> None:
        """Point the feed at the current position and (after an epoch) reset DALI's iterator,
        which starts prefetching from there.
        """
        self.feed.start(self.epoch, self.position)
        if not self._fresh:
            self._iter.reset()
        self._fresh, self._in_epoch, self._refeed = False, True, False

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        named = name_bad_files(self._iter, self.source, self.feed.pending)
        for out in surface_interrupts(named):
            yield out[0]

    def _run(self, convert: Callable[[dict[str, torch.Tensor]], Any]) -> Iterator[Any]:
        self._start()
        for out in self._batches():
            step = self.feed.handed_out()
            self.position = step.start + step.size
            yield convert(out)
            if self._refeed:
                self._feed_again()
        self._in_epoch = False
        self.epoch, self.position = self.epoch + 1, 0

    def _feed_again(self) -> None:
        """After :attr:`mixup_enabled` moved mid-epoch: discard the batches DALI prepared
        with the old setting and feed the rest of the epoch again from :attr:`position`.
        """
        self._refeed = False
        if self.feed.in_flight():
            self._flush()
            self._start()

    def _check_idle(self, what: str) -> None:
        run = self._active() if self._active is not None else None
        if run is not None and run.gi_frame is not None:  # created or suspended, not closed
            raise RuntimeError(
                f"{what}: this DaliLoader is already being iterated (a `for` over it is still "
                "open, e.g. nested loops over one loader); one loader runs one epoch at a "
                "time: finish or leave the first loop, or build a second loader"
            )

    def _flush(self) -> None:
        """Stop the feed and discard the batches DALI already prepared (at most its prefetch
        depth: the rest of the epoch is never decoded).
        """
        if not self._in_epoch:
            return
        self.feed.stop()
        for _ in self._batches():
            self.feed.handed_out()
        self._in_epoch = self._refeed = False

    def _finish_abandoned_epoch(self) -> None:
        """End the epoch a loop left early, and count it."""
        if self._in_epoch:
            self._flush()
            self.epoch, self.position = self.epoch + 1, 0

    def _to_batch(self, out: dict[str, torch.Tensor]) -> Batch:
        """The labels stage: hard labels from the sample index, then the mixing
        augmentation's :meth:`~dali_gridaug.augment.base.MixAugment.labels` (or the hard
        labels), with the loader's label smoothing ε applied to either (the one place it is
        applied). Every tensor already is on the images' device (GPU pipelines emit GPU
        outputs), so nothing here waits for the host.
        """
        images = out["images"]
        dev = images.device
        index = out["key"].to(dev, non_blocking=True).view(-1).long()
        labels = self._class_of[index]
        k = self.num_classes
        eps = self.spec.label_smoothing
        n = len(labels)
        ones, own = torch.ones(n, device=dev), torch.arange(n, device=dev)
        update = LabelUpdate(smooth_target(labels, k, eps), ones, own)
        if self.params is not None:
            for aug, params in zip(self.spec.augments, self.params.unflatten(out), strict=True):
                if aug.mixing:
                    params = {n: t.to(dev, non_blocking=True) for n, t in params.items()}
                    update = aug.labels(params, labels, k, eps)
        return Batch(
            images=images,
            target=update.target,
            labels=labels,
            index=index,
            position=out["position"].to(dev, non_blocking=True).view(-1).long(),
            lam=update.lam,
            partner=update.partner,
            patch_labels=update.patch_labels,
            clean=out.get("clean"),
            epoch=self.epoch,
        )


__all__ = ["DaliLoader", "LoaderConfig", "create_loader"]
