"""Stage 1, read: dataset sources (ImageFolder, file list, tar shards) → a DALI reader node.

Class indices are torchvision's ``ImageFolder`` ones: the position of the class folder in
sorted order. File-backed sources give each file an index; the reader emits that index and
the iterator looks the class up, so every sample keeps its identity through the pipeline.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dali_gridaug.constants import IMG_EXTENSIONS
from dali_gridaug.filelist import class_names, read_list
from dali_gridaug.tarindex import TarIndex, index_shards, read_members


@dataclasses.dataclass(frozen=True)
class FileSource:
    """A list of image files with class indices.

    Attributes:
        files: absolute image paths, in dataset order (index = position).
        targets: class index of each file.
        classes: class names; ``classes[k]`` is class ``k``.
        root: the folder relative paths are taken from (the ImageFolder root, or the folder
            of a file list); None when unknown.
    """

    files: tuple[str, ...]
    targets: tuple[int, ...]
    classes: tuple[str, ...]
    root: str | None = None

    def __len__(self) -> int:
        return len(self.files)

    @property
    def labels(self) -> tuple[int, ...]:
        """Class index of each sample (the same as :attr:`targets`)."""
        return self.targets

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def without(self, paths: Sequence[str | bytes | os.PathLike[str]]) -> FileSource:
        """The same source minus ``paths`` (e.g. the bad files ``check-data`` reported).

        A path matches a file when it names it: absolute, or relative to :attr:`root` (as
        ``check-data`` reports them; tried first) or to the current folder, and through
        symlinks (the folders are compared by their real path). ``bytes`` paths are decoded
        with ``os.fsdecode``.

        Raises:
            ValueError: some paths match no file of the source (all of them are named).
        """
        exact = {f: i for i, f in enumerate(self.files)}
        real: dict[str, str] = {}
        keys: dict[str, int] = {}  # by real folder, built only when an exact match misses
        drop: set[int] = set()
        unmatched = []
        for p in paths:
            candidates = [os.path.abspath(c) for c in self._candidates(os.fsdecode(p))]
            hit = next((exact[c] for c in candidates if c in exact), None)
            if hit is None:
                keys = keys or {_file_key(f, real): i for i, f in enumerate(self.files)}
                found = (keys.get(_file_key(c, real)) for c in candidates)
                hit = next((h for h in found if h is not None), None)
            if hit is None:
                unmatched.append(os.fsdecode(p))
            else:
                drop.add(hit)
        if unmatched:
            where = f" (relative paths are taken from {self.root!r})" if self.root else ""
            raise ValueError(
                f"`exclude` has {len(unmatched)} path(s) matching no file of the source{where}: "
                + ", ".join(repr(u) for u in unmatched[:10])
                + (" …" if len(unmatched) > 10 else "")
            )
        keep = [i for i in range(len(self.files)) if i not in drop]
        return FileSource(
            tuple(self.files[i] for i in keep),
            tuple(self.targets[i] for i in keep),
            self.classes,
            self.root,
        )

    def _candidates(self, path: str) -> list[str]:
        if os.path.isabs(path):
            return [path]
        return ([os.path.join(self.root, path)] if self.root else []) + [os.path.abspath(path)]


def _file_key(path: str, real: dict[str, str]) -> str:
    """The real path of ``path``'s folder joined with its name; ``real`` caches one
    ``realpath`` per folder (an ImageNet source has 1000 folders, 1.28M files).
    """
    head, name = os.path.split(os.path.abspath(path))
    if head not in real:
        real[head] = os.path.realpath(head)
    return os.path.join(real[head], name)


@dataclasses.dataclass(frozen=True)
class TarSource:
    """WebDataset tar shards whose samples hold an image (``jpg``/``jpeg``/``png``) and a
    ``cls`` member with the class index as ASCII decimal.

    Attributes:
        paths: shard paths.
        num_classes: number of classes K.
        index: the host-side :class:`~dali_gridaug.tarindex.TarIndex` of the samples (stable
            indices, image byte ranges, labels < ``num_classes``); built from ``paths`` when
            not given.
    """

    paths: tuple[str, ...]
    num_classes: int
    index: TarIndex = dataclasses.field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.index is None:
            object.__setattr__(self, "index", index_shards(self.paths, self.num_classes))

    def __len__(self) -> int:
        return len(self.index)

    @property
    def labels(self) -> np.ndarray:
        """``(N,)`` int64 class index of each sample, in stable-index order."""
        return self.index.label

    def member_name(self, i: int) -> str:
        """``"<shard path>:<image member name>"`` of sample ``i``."""
        return self.index.where(i)


Source = FileSource | TarSource


def image_folder(root: str | os.PathLike[str]) -> FileSource:
    """Scan ``root/<class>/**/<image>`` as torchvision's ``ImageFolder`` does (same classes,
    same order), following symlinks without loops (:func:`scan_folder`); each loop is
    reported with a ``UserWarning``.

    Raises:
        FileNotFoundError: ``root`` is missing, has no class folders, or a class folder has
            no image file (the message names it).
    """
    root = os.path.abspath(os.fspath(root))
    scan = scan_folder(root)
    if scan.loops:
        warnings.warn(loop_message(scan.loops), UserWarning, stacklevel=2)
    if scan.empty:
        raise FileNotFoundError(
            f"class folder(s) with no image file in {root!r}: {', '.join(scan.empty)} "
            f"(accepted extensions: {', '.join(IMG_EXTENSIONS)})"
        )
    files = tuple(f for f, _ in scan.images)
    return FileSource(files, tuple(k for _, k in scan.images), scan.classes, root)


class FolderScan(NamedTuple):
    """What :func:`scan_folder` finds under an ImageFolder root (absolute paths).

    Attributes:
        classes: class folder names, sorted; ``classes[k]`` is class ``k``.
        images: ``(path, class index)`` of each file with an image extension, in
            ``ImageFolder`` order.
        others: the other files in class folders, in the same order.
        empty: class folders without an image file.
        loops: ``(link path, real path it points back to)`` of the folder symlinks not
            entered.
    """

    classes: tuple[str, ...]
    images: list[tuple[str, int]]
    others: list[str]
    empty: list[str]
    loops: list[tuple[str, str]]


def scan_folder(root: str) -> FolderScan:
    """Walk the ImageFolder ``root`` (absolute) as torchvision does, following symlinks but
    never entering a folder again that is already on the path from its class folder (a
    symlink loop would otherwise list each file many times, under the wrong sub-paths).

    Raises:
        FileNotFoundError: ``root`` is missing or has no class folder.
    """
    scan = FolderScan(tuple(class_folders(root)), [], [], [], [])
    for idx, name in enumerate(scan.classes):
        folders, found = walk(os.path.join(root, name), above=(root,))
        scan.loops.extend(found)
        count = len(scan.images)
        for dirpath, fnames in folders:
            for fname in fnames:
                path = os.path.join(dirpath, fname)
                if fname.lower().endswith(IMG_EXTENSIONS):
                    scan.images.append((path, idx))
                else:
                    scan.others.append(path)
        if len(scan.images) == count:
            scan.empty.append(name)
    return scan


def class_folders(root: str) -> list[str]:
    """Sorted names of the folders (or symlinks to folders) in ``root``.

    Raises:
        FileNotFoundError: ``root`` is missing or has none.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset root {root!r} does not exist or is not a directory")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise FileNotFoundError(f"no class folders found in dataset root {root!r}")
    return classes


def walk(
    top: str, above: Sequence[str] = ()
) -> tuple[list[tuple[str, list[str]]], list[tuple[str, str]]]:
    """Every folder under ``top`` with its file names, following symlinks without loops.

    The order is ``sorted(os.walk(top, followlinks=True))`` with sorted file names (the order
    torchvision's ``ImageFolder`` lists files in). A symlinked folder whose real path is
    already on the current path (an ancestor, or the folder itself) is not entered.

    Returns:
        ``(folders, loops)``: ``[(folder path, sorted file names)]`` and ``[(link path,
        real path it points back to)]``.
    """
    folders: list[tuple[str, list[str]]] = []
    loops: list[tuple[str, str]] = []
    stack = [(top, (*(os.path.realpath(a) for a in above), os.path.realpath(top)))]
    while stack:
        path, ancestors = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue  # as os.walk: an unreadable folder is skipped
        fnames, subdirs = [], []
        for e in entries:
            (subdirs if e.is_dir() else fnames).append(e.name)
        folders.append((path, sorted(fnames)))
        for d in subdirs:
            sub = os.path.join(path, d)
            real = os.path.realpath(sub)
            if real in ancestors:
                loops.append((sub, real))
            else:
                stack.append((sub, (*ancestors, real)))
    folders.sort(key=lambda f: f[0])
    loops.sort()
    return folders, loops


def loop_message(loops: Sequence[tuple[str, str]]) -> str:
    """One line naming the symlink loops :func:`walk` skipped."""
    shown = "; ".join(f"{link!r} → {target!r}" for link, target in loops[:5])
    more = f" (and {len(loops) - 5} more)" if len(loops) > 5 else ""
    return (
        f"skipped {len(loops)} folder symlink(s) pointing back to a folder on their own path "
        f"(a loop): {shown}{more}"
    )


def file_list(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> FileSource:
    """Read a file list (the format :mod:`dali_gridaug.filelist` describes, the one
    ``check-data`` writes): one ``<path> <class index>`` per line, paths relative to ``root``
    (default the list's folder). Class names come from a ``classes.txt`` beside the list,
    else they are the class indices as strings.

    Raises:
        FileNotFoundError: ``path`` is missing.
        ValueError: a malformed line (named with its line number) or an empty list.
    """
    names, targets, classes = read_list(path)
    base = os.path.abspath(Path(root) if root is not None else Path(path).parent)
    files = tuple(os.path.abspath(os.path.join(base, n)) for n in names)
    return FileSource(files, tuple(targets), classes, base)


def utf8_name(path: str) -> bool:
    """False when ``path`` holds bytes that are not UTF-8 (DALI's readers cannot open it)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def resolve_source(
    source: Source | str | os.PathLike[str] | Sequence[str], num_classes: int | None = None
) -> Source:
    """Turn what a user passes to ``create_loader`` into a :class:`FileSource`/:class:`TarSource`.

    A folder is an ImageFolder root, a ``.txt`` file a file list, ``.tar`` path(s) tar shards
    (their class count is ``num_classes``, else read from a ``classes.txt`` beside the first
    shard). ``num_classes`` is not used for the other sources.
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
            return tar_shards([p], num_classes)
        raise FileNotFoundError(f"`source` {str(p)!r} is not a folder, a .txt list or a .tar shard")
    if isinstance(source, Sequence) and source and all(str(s).endswith(".tar") for s in source):
        return tar_shards(source, num_classes)
    raise TypeError(
        "`source` must be an ImageFolder root, a file list (.txt), tar shard path(s) or a "
        f"FileSource/TarSource, got {source!r}"
    )


def tar_shards(
    paths: Sequence[str | os.PathLike[str]], num_classes: int | None = None
) -> TarSource:
    """Tar shards, indexed on the host (:func:`~dali_gridaug.tarindex.index_shards`);
    ``num_classes`` defaults to the number of names in the ``classes.txt`` beside them (one
    per line, :func:`~dali_gridaug.filelist.class_names`).

    Raises:
        FileNotFoundError: a shard is missing.
        ValueError: neither ``num_classes`` nor a ``classes.txt`` gives the class count, or
            ``num_classes`` is not an int ≥ 1.
        TarShardError: a shard cannot be indexed, or a label is ≥ the class count (one line
            naming the shard and member; a ``ValueError``).
    """
    paths = tuple(os.path.abspath(os.fspath(p)) for p in paths)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"tar shard(s) not found: {', '.join(missing)}")
    if num_classes is None:
        names = Path(paths[0]).parent / "classes.txt"
        if not names.is_file():
            raise ValueError(
                "`num_classes` is needed for tar shards without a classes.txt beside them "
                f"(none in {str(names.parent)!r}): pass num_classes=K"
            )
        num_classes = len(class_names(names))
    elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"`num_classes` must be an int ≥ 1, got {num_classes!r}")
    return TarSource(paths, num_classes, index=index_shards(paths, num_classes))


def source_identity(source: Source) -> tuple[int, str]:
    """What a saved loader state must match: the sample count and the SHA-256 (hex) of the
    sample list: for files, each sample's name (relative to the source's root, so a moved
    dataset still matches) and class index, one per line; for tar shards,
    :meth:`~dali_gridaug.tarindex.TarIndex.digest`.
    """
    import hashlib

    if isinstance(source, TarSource):
        return len(source), source.index.digest()
    digest = hashlib.sha256()
    prefix = os.path.join(source.root, "") if source.root else "\0"
    names = (f.removeprefix(prefix) for f in source.files)
    lines = (f"{n}\t{t}" for n, t in zip(names, source.targets, strict=True))
    for line in lines:
        digest.update(os.fsencode(line) + b"\n")
    return len(source), digest.hexdigest()


def check_readable(source: Source) -> None:
    """Refuse file names DALI's file reader cannot open.

    Raises:
        ValueError: a file name is not valid UTF-8 (``fn.io.file.read`` takes UTF-8 paths
            only); the message names the files and the way out (``exclude=`` or renaming).
    """
    if isinstance(source, FileSource):
        bad = [f for f in source.files if not utf8_name(f)]
        if bad:
            raise ValueError(
                f"{len(bad)} file name(s) are not valid UTF-8 and DALI's file reader cannot "
                f"open them: {', '.join(repr(b) for b in bad[:5])}; rename them or pass them "
                "in `exclude` (`dali-gridaug check-data` lists them as `non-utf8-name`)"
            )


def read(source: Source, data: object) -> object:
    """The encoded images of the fed ``data`` (a DALI node, see :mod:`dali_gridaug.feed`):
    a :class:`FileSource` feeds UTF-8 paths that DALI's multithreaded C++ ``fn.io.file.read``
    reads; a :class:`TarSource` feeds the member bytes themselves.

    Returns:
        CPU ``DataNode``: 1-D uint8 encoded image per sample.
    """
    if isinstance(source, TarSource):
        return data
    from nvidia.dali import fn

    return fn.io.file.read(data)


def read_tar_members(source: TarSource, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
    """The encoded image bytes of samples ``indices`` of tar shards, read by byte range.

    Returns:
        One ``(size,)`` uint8 array per index.
    """
    return read_members(source.index, indices)
