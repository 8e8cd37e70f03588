"""What training scripts written for a torchvision ``DataLoader`` read from it:
``loader.dataset``, ``loader.sampler`` and ``loader.batch_sampler`` views of a
:class:`~dali_gridaug.loader.DaliLoader`.

The loader draws the file order itself, so no view yields samples or indices: they answer
the questions scripts ask (how many images, which classes, this rank's share, how many
batches, ``set_epoch``).
"""

from __future__ import annotations

import math
import os
from typing import Protocol

from dali_gridaug.filelist import class_names
from dali_gridaug.reader import FileSource, TarSource


class EpochOwner(Protocol):
    """What a :class:`ShardSampler` reads back and forwards to (the loader)."""

    epoch: int
    drop_last: bool

    def set_epoch(self, epoch: int) -> None: ...


class BatchOwner(EpochOwner, Protocol):
    """What a :class:`ShardBatchSampler` reads back (the loader: ``len`` is its batch count)."""

    def __len__(self) -> int: ...


class LoaderDataset:
    """``loader.dataset``: the files of the loader's source, as an ``ImageFolder`` names them.

    Attributes:
        root: the ImageFolder root (the common folder of the class folders; file lists: of
            the files; tar shards: the folder of the first shard).
        classes: class names, ``classes[k]`` is class ``k`` (tar shards: the lines of the
            ``classes.txt`` beside the shards, else ``"0"``, ``"1"``, …).
        class_to_idx: ``{name: k}``.
        samples: ``[(path, class index), ...]`` in dataset order, the order of
            ``batch.index`` (tar shards: empty, the member names are known only to the reader).
        imgs: the same list as ``samples`` (torchvision's older name).
        targets: the class index of each sample (tar shards: empty).

    ``len(dataset)`` is the number of images per epoch over all ranks (tar shards: counted by
    the DALI reader when the loader was built). Items are not loadable (``dataset[i]`` raises
    ``TypeError``): DALI reads and decodes them.
    """

    def __init__(self, source: FileSource | TarSource, num_samples: int) -> None:
        self._len = num_samples
        if isinstance(source, FileSource):
            self.classes = list(source.classes)
            self.samples = list(zip(source.files, source.targets, strict=True))
            self.targets = list(source.targets)
            common = os.path.commonpath(source.files) if source.files else ""
            # one class: the common folder is that class's folder, the root is above it
            self.root = os.path.dirname(common) if len(self.classes) == 1 else common
        else:
            self.root = os.path.dirname(source.paths[0])
            self.classes = _tar_class_names(self.root, source.num_classes)
            self.samples, self.targets = [], []
        self.imgs = self.samples
        self.class_to_idx = {c: k for k, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> None:
        raise TypeError(
            "a DaliLoader's dataset holds no decoded samples (DALI reads them); use "
            "`dataset.samples[i]` for the (path, class) of sample i"
        )

    def __repr__(self) -> str:
        return f"LoaderDataset({len(self)} images, {len(self.classes)} classes, root={self.root!r})"


class ShardSampler:
    """``loader.sampler``: this rank's share of the dataset, like a ``DistributedSampler``.

    ``len(sampler)`` is ``ceil(len(dataset) / num_replicas)``, the size of the largest rank
    share (rank r reads the positions ``r, r + S, …`` of each epoch's order,
    :mod:`dali_gridaug.order`), so ``len(sampler) * num_replicas >= len(dataset)``: scripts
    that evaluate the remainder separately when that product is smaller see no remainder, and
    each image is evaluated exactly once over all ranks. ``set_epoch(e)`` is
    ``loader.set_epoch(e)``. Iterating it raises ``TypeError``: the loader draws the order.

    Attributes:
        num_replicas: number of ranks S.
        rank: this rank.
        shuffle: whether the order is reshuffled every epoch (training loaders).
        drop_last: whether the loader drops the last partial batch.
    """

    def __init__(
        self, loader: EpochOwner, *, num_replicas: int, rank: int, shuffle: bool, length: int
    ) -> None:
        self._loader = loader
        self.num_replicas, self.rank, self.shuffle = num_replicas, rank, shuffle
        self.drop_last = loader.drop_last
        self._length = length

    @property
    def epoch(self) -> int:
        return self._loader.epoch

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to :meth:`DaliLoader.set_epoch`."""
        self._loader.set_epoch(epoch)

    def __len__(self) -> int:
        return math.ceil(self._length / self.num_replicas)

    def __iter__(self) -> None:
        raise TypeError("a DaliLoader's sampler has no indices to iterate: iterate the loader")


class ShardBatchSampler:
    """``loader.batch_sampler``: this rank's batches, like a ``BatchSampler`` over
    ``loader.sampler``.

    ``len(batch_sampler)`` is ``len(loader)``, the batches of this rank in the current epoch;
    ``set_epoch(e)`` is ``loader.set_epoch(e)`` (timm's ``set_epoch`` helpers and
    ``_RepeatSampler`` reach the sampler through it). Iterating it raises ``TypeError``: the
    loader draws the order and forms the batches.

    Attributes:
        sampler: the :class:`ShardSampler` it batches (``loader.sampler``).
        batch_size: images per batch on this rank.
        drop_last: whether the loader drops the last partial batch.
    """

    def __init__(self, loader: BatchOwner, sampler: ShardSampler, *, batch_size: int) -> None:
        self._loader = loader
        self.sampler, self.batch_size = sampler, batch_size
        self.drop_last = loader.drop_last

    @property
    def epoch(self) -> int:
        return self._loader.epoch

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to :meth:`DaliLoader.set_epoch`."""
        self._loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self) -> None:
        raise TypeError(
            "a DaliLoader's batch_sampler has no indices to iterate: iterate the loader"
        )


def _tar_class_names(folder: str, num_classes: int) -> list[str]:
    names_file = os.path.join(folder, "classes.txt")
    if os.path.isfile(names_file):
        names = class_names(names_file)
        if len(names) == num_classes:
            return names
    return [str(k) for k in range(num_classes)]
