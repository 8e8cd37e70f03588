"""Stage 1, read: dataset sources (ImageFolder, file list, tar shards) → a DALI reader node.

Class indices are torchvision's ``ImageFolder`` ones: the position of the class folder in
sorted order. File-backed sources give each file an index; the reader emits that index and
the iterator looks the class up, so every sample keeps its identity through the pipeline.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from dali_gridaug.constants import IMG_EXTENSIONS, READER_NAME


@dataclasses.dataclass(frozen=True)
class FileSource:
    """A list of image files with class indices.

    Attributes:
        files: absolute image paths, in dataset order (index = position).
        targets: class index of each file.
        classes: class names; ``classes[k]`` is class ``k``.
    """

    files: tuple[str, ...]
    targets: tuple[int, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.files)

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def without(self, paths: Sequence[str]) -> FileSource:
        """The same source minus ``paths`` (e.g. the bad files ``check-data`` reported)."""
        drop = {os.path.abspath(p) for p in paths}
        keep = [i for i, f in enumerate(self.files) if f not in drop]
        return FileSource(
            tuple(self.files[i] for i in keep), tuple(self.targets[i] for i in keep), self.classes
        )


@dataclasses.dataclass(frozen=True)
class TarSource:
    """WebDataset tar shards whose samples hold an image (``jpg``/``jpeg``/``png``) and a
    ``cls`` member with the class index as ASCII decimal.

    Attributes:
        paths: shard paths.
        num_classes: number of classes K.
        index_paths: optional DALI index files (``wds2idx``), one per shard.
    """

    paths: tuple[str, ...]
    num_classes: int
    index_paths: tuple[str, ...] | None = None


Source = FileSource | TarSource


def image_folder(root: str | os.PathLike[str]) -> FileSource:
    """Scan ``root/<class>/**/<image>`` exactly as torchvision's ``ImageFolder`` does.

    Raises:
        FileNotFoundError: ``root`` is missing, has no class folders, or a class folder has
            no image file (the message names it).
    """
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset root {root!r} does not exist or is not a directory")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise FileNotFoundError(f"no class folders found in dataset root {root!r}")
    files: list[str] = []
    targets: list[int] = []
    empty = []
    for idx, name in enumerate(classes):
        count = 0
        for dirpath, _, fnames in sorted(os.walk(os.path.join(root, name), followlinks=True)):
            for fname in sorted(fnames):
                if fname.lower().endswith(IMG_EXTENSIONS):
                    files.append(os.path.join(dirpath, fname))
                    targets.append(idx)
                    count += 1
        if count == 0:
            empty.append(name)
    if empty:
        raise FileNotFoundError(
            f"class folder(s) with no image file in {root!r}: {', '.join(empty)} "
            f"(accepted extensions: {', '.join(IMG_EXTENSIONS)})"
        )
    return FileSource(tuple(files), tuple(targets), tuple(classes))


def file_list(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> FileSource:
    """Read a file list: one ``<path> <class index>`` per line (paths relative to ``root``,
    default the list's folder), the format ``check-data`` writes and DALI's ``file_list`` uses.

    Class names are the class indices as strings unless a ``classes.txt`` (one name per line)
    sits beside the list.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file list {str(path)!r} does not exist")
    base = Path(root) if root is not None else path.parent
    files, targets = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, _, label = line.rpartition(" ")
        if not name or not label.lstrip("-").isdigit() or int(label) < 0:
            raise ValueError(f"{path}:{n}: expected '<path> <class index ≥ 0>', got {line!r}")
        files.append(os.path.abspath(base / name))
        targets.append(int(label))
    if not files:
        raise ValueError(f"file list {str(path)!r} lists no files")
    names_file = path.parent / "classes.txt"
    if names_file.is_file():
        classes = tuple(names_file.read_text().split("\n")[: max(targets) + 1])
    else:
        classes = tuple(str(k) for k in range(max(targets) + 1))
    return FileSource(tuple(files), tuple(targets), classes)


def resolve_source(source: Source | str | os.PathLike[str] | Sequence[str]) -> Source:
    """Turn what a user passes to ``create_loader`` into a :class:`FileSource`/:class:`TarSource`.

    A folder is an ImageFolder root, a ``.txt`` file a file list, ``.tar`` path(s) tar shards
    (their class count is read from a ``classes.txt`` beside the first shard).
    """
    if isinstance(source, (FileSource, TarSource)):
        return source
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir():
            return image_folder(p)
        if p.suffix == ".txt":
            return file_list(p)
        if p.suffix == ".tar":
            return tar_shards([p])
        raise FileNotFoundError(f"`source` {str(p)!r} is not a folder, a .txt list or a .tar shard")
    if isinstance(source, Sequence) and source and all(str(s).endswith(".tar") for s in source):
        return tar_shards(source)
    raise TypeError(
        "`source` must be an ImageFolder root, a file list (.txt), tar shard path(s) or a "
        f"FileSource/TarSource, got {source!r}"
    )


def tar_shards(
    paths: Sequence[str | os.PathLike[str]], num_classes: int | None = None
) -> TarSource:
    """Tar shards; ``num_classes`` defaults to the line count of ``classes.txt`` beside them."""
    paths = tuple(os.path.abspath(os.fspath(p)) for p in paths)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"tar shard(s) not found: {', '.join(missing)}")
    if num_classes is None:
        names = Path(paths[0]).parent / "classes.txt"
        if not names.is_file():
            raise ValueError(
                "`num_classes` is needed for tar shards without a classes.txt beside them"
            )
        num_classes = len(names.read_text().split())
    return TarSource(paths, num_classes)


def read(
    source: Source,
    *,
    shard_id: int,
    num_shards: int,
    shuffle: bool,
    seed: int,
) -> tuple[object, object]:
    """Add the reader to the current DALI graph.

    Every shard uses the same ``seed`` so the shuffled order is one permutation split into
    disjoint shards (each file once per epoch over all ranks); ``pad_last_batch`` repeats the
    shard's last sample so the pipeline always produces full batches.

    Returns:
        ``(encoded, key)`` DataNodes: the encoded image bytes and, for a :class:`FileSource`,
        the file index (int32 scalar per sample); for a :class:`TarSource`, the ``cls`` bytes
        padded to 16 (decoded by :func:`dali_gridaug.labels.parse_ascii_labels`).
    """
    from nvidia.dali import fn

    common = dict(
        name=READER_NAME,
        shard_id=shard_id,
        num_shards=num_shards,
        pad_last_batch=True,
        shuffle_after_epoch=shuffle,
        seed=seed,
    )
    if isinstance(source, FileSource):
        return fn.readers.file(files=list(source.files), labels=list(range(len(source))), **common)
    encoded, cls = fn.readers.webdataset(
        paths=list(source.paths),
        index_paths=list(source.index_paths) if source.index_paths else None,
        ext=["jpg;jpeg;png", "cls"],
        missing_component_behavior="error",
        **common,
    )
    return encoded, fn.pad(cls, shape=[16], fill_value=0)
