"""The scan behind ``dali-gridaug check-data`` and the trainer's validation check: every file of
an ImageFolder root (:func:`check_dataset`) or every image member of tar shards
(:func:`check_shards`) sorted into good, bad, warned and ignored, as a :class:`Report`.

Each file is judged by :func:`~dali_gridaug.datacheck.probe.probe` in spawned worker
processes; the verdicts (``reason`` keys) are listed in :mod:`dali_gridaug.tools.check`, the
command that writes the report and the clean list.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dali_gridaug._validate import check_range, check_type
from dali_gridaug.datacheck.probe import (
    MAX_PIXELS,
    MIN_SIDE,
    Issue,
    probe,
    probe_all,
    probe_member,
)
from dali_gridaug.filelist import class_names, write_list
from dali_gridaug.reader import scan_folder
from dali_gridaug.tarindex import index_shards


@dataclasses.dataclass(frozen=True)
class Report:
    """Outcome of :func:`check_dataset`.

    Attributes:
        root: absolute dataset root.
        classes: class folder names, sorted; ``classes[k]`` is class ``k``.
        good: ``(path relative to root, class index)`` of every decodable file, in
            ``image_folder`` order.
        bad: files the pipeline cannot decode, one :class:`Issue` each.
        warnings: decodable files worth a look (a file may have several).
        ignored: files the loader skips (no image extension, or not in a class folder).
        empty_classes: class folders without any image file.
        loops: folder symlinks not followed because they point back to a folder on their
            own path (``reason`` ``symlink-loop``; ``detail`` names the target).
        decoder: ``"dali-cpu"`` or ``"pillow"`` (what decided decodability).
        max_pixels: ``huge`` threshold in pixels.
        min_side: ``small`` threshold in pixels.
    """

    root: str
    classes: tuple[str, ...]
    good: tuple[tuple[str, int], ...]
    bad: tuple[Issue, ...]
    warnings: tuple[Issue, ...]
    ignored: tuple[Issue, ...]
    empty_classes: tuple[str, ...]
    decoder: str
    max_pixels: int
    min_side: int
    loops: tuple[Issue, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no file is bad."""
        return not self.bad

    @property
    def classes_without_good_files(self) -> tuple[str, ...]:
        """Classes with no decodable file (empty ones included); their indices stay taken."""
        used = {k for _, k in self.good}
        return tuple(c for k, c in enumerate(self.classes) if k not in used)

    def bad_paths(self) -> list[str]:
        """Absolute paths of the bad files (for ``create_loader(exclude=...)``)."""
        return [os.path.join(self.root, *i.path.split("/")) for i in self.bad]

    def to_json(self) -> dict[str, Any]:
        """The JSON report: ``bad``/``warnings``/``ignored``/``loops`` are lists of
        ``{"path", "reason", "detail"}`` with paths relative to ``root``, ``/``-separated
        (write it with ``ensure_ascii=True`` to keep undecodable bytes, see the module doc).
        """
        scanned = len(self.good) + len(self.bad)
        return {
            "root": self.root,
            "decoder": self.decoder,
            "max_pixels": self.max_pixels,
            "min_side": self.min_side,
            "classes": list(self.classes),
            "counts": {
                "scanned": scanned,
                "good": len(self.good),
                "bad": len(self.bad),
                "warned_files": len({i.path for i in self.warnings}),
                "warnings": len(self.warnings),
                "ignored": len(self.ignored),
                "classes": len(self.classes),
                "empty_classes": len(self.empty_classes),
                "loops": len(self.loops),
                "bad_by_reason": _count(i.reason for i in self.bad),
                "warnings_by_reason": _count(i.reason for i in self.warnings),
            },
            "bad": [dataclasses.asdict(i) for i in self.bad],
            "warnings": [dataclasses.asdict(i) for i in self.warnings],
            "ignored": [dataclasses.asdict(i) for i in self.ignored],
            "loops": [dataclasses.asdict(i) for i in self.loops],
            "empty_classes": list(self.empty_classes),
            "classes_without_good_files": list(self.classes_without_good_files),
        }

    def write_list(self, path: str | os.PathLike[str]) -> Path:
        """Write the clean file list: ``<path> <class index>`` per line, paths relative to
        the list's folder, quoted by :func:`~dali_gridaug.filelist.quote_path` where needed
        (what :func:`~dali_gridaug.reader.file_list` and ``create_loader(path)`` read; UTF-8).
        Also writes ``classes.txt`` beside it unless one exists (an existing one with other
        names is left alone and reported on stderr).

        Note:
            ``file_list`` infers the class count from the largest index listed, so when the
            last classes have no good file the loader sees fewer classes (pass
            ``num_classes`` to your model explicitly).

        Returns:
            The list's path.
        """
        path = Path(path).absolute()
        files = [(os.path.join(self.root, *rel.split("/")), k) for rel, k in self.good]
        if not write_list(path, files, self.classes):
            print(
                f"check-data: left the existing {path.parent / 'classes.txt'} alone (its class "
                "names differ); the loader names classes from it",
                file=sys.stderr,
            )
        return path


def check_dataset(
    root: str | os.PathLike[str],
    *,
    workers: int | None = None,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
    progress: bool = True,
) -> Report:
    """Scan an ImageFolder root and sort every file into good, bad, warned and ignored.

    Args:
        root: dataset root, ``root/<class>/**/<image>``.
        workers: decoding processes; ``0`` decodes in this process; default the CPU count
            (at most 16).
        max_pixels: warn (``huge``) above this many pixels (width × height).
        min_side: warn (``small``) when the shorter side is below this many pixels.
        progress: show a tqdm progress bar on stderr.

    Returns:
        A :class:`Report`.

    Raises:
        FileNotFoundError: ``root`` is missing or has no class folder.
    """
    if workers is None:
        workers = max(1, min(16, os.cpu_count() or 1))
    check_type("workers", workers, int)
    check_range("workers", workers, 0)
    check_type("max_pixels", max_pixels, int)
    check_range("max_pixels", max_pixels, 1)
    check_type("min_side", min_side, int)
    check_range("min_side", min_side, 1)
    root_abs = os.path.abspath(os.fspath(root))
    classes, entries, ignored, empty, loops = _scan(root_abs)
    check = functools.partial(probe, root=root_abs, max_pixels=max_pixels, min_side=min_side)
    rels = [rel for rel, _ in entries]
    results = probe_all(check, rels, workers, progress)
    by_rel = {r.rel: r for r in results}
    good, bad, warned = [], [], []
    for rel, k in entries:
        r = by_rel[rel]
        if r.bad is not None:
            bad.append(r.bad)
        else:
            good.append((rel, k))
            warned += r.warnings
    return Report(
        root=root_abs,
        classes=classes,
        good=tuple(good),
        bad=tuple(bad),
        warnings=tuple(warned),
        ignored=tuple(ignored),
        empty_classes=tuple(empty),
        decoder=results[0].decoder if results else "none",
        max_pixels=max_pixels,
        min_side=min_side,
        loops=tuple(loops),
    )


def check_shards(
    paths: Sequence[str | os.PathLike[str]],
    *,
    workers: int | None = None,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
    progress: bool = True,
) -> Report:
    """Index WebDataset tar shards and check every sample's image member.

    Args:
        paths: shard paths; the report's root is their common folder.
        workers, max_pixels, min_side, progress: as for :func:`check_dataset`.

    Returns:
        A :class:`Report` whose paths are ``<shard relative to root>:<member name>``; ``good``
        holds ``(that name, label)``; a sample the index refuses is bad with reason
        ``tar-<TarShardError.reason>`` (a shard-wide problem names the shard alone).

    Raises:
        FileNotFoundError: a shard is missing.
    """
    if workers is None:
        workers = max(1, min(16, os.cpu_count() or 1))
    check_type("workers", workers, int)
    check_range("workers", workers, 0)
    check_type("max_pixels", max_pixels, int)
    check_range("max_pixels", max_pixels, 1)
    check_type("min_side", min_side, int)
    check_range("min_side", min_side, 1)
    abs_paths = [os.path.abspath(os.fspath(p)) for p in paths]
    root = os.path.commonpath([os.path.dirname(p) for p in abs_paths])
    names_file = os.path.join(root, "classes.txt")
    classes = class_names(names_file) if os.path.isfile(names_file) else None
    index = index_shards(abs_paths, len(classes) if classes else None, strict=False)
    shard_rel = [_rel(p, root) for p in index.paths]
    bad = [
        Issue(
            shard_rel[index.paths.index(e.shard)] + (f":{e.member}" if e.member else ""),
            f"tar-{e.reason}",
            e.detail,
        )
        for e in index.problems
    ]
    items = [
        (f"{shard_rel[s]}:{n}", index.paths[s], o, z)
        for s, n, o, z in zip(
            index.shard.tolist(),
            index.names,
            index.offset.tolist(),
            index.size.tolist(),
            strict=True,
        )
    ]
    check = functools.partial(probe_member, max_pixels=max_pixels, min_side=min_side)
    results = probe_all(check, items, workers, progress)
    good, warned = [], []
    for r, label in zip(results, index.label.tolist(), strict=True):
        if r.bad is not None:
            bad.append(r.bad)
        else:
            good.append((r.rel, label))
            warned += r.warnings
    if classes is None:
        classes = [str(k) for k in range(int(index.label.max()) + 1 if len(index) else 0)]
    return Report(
        root=root,
        classes=tuple(classes),
        good=tuple(good),
        bad=tuple(bad),
        warnings=tuple(warned),
        ignored=(),
        empty_classes=(),
        decoder=results[0].decoder if results else "none",
        max_pixels=max_pixels,
        min_side=min_side,
    )


def _scan(
    root: str,
) -> tuple[tuple[str, ...], list[tuple[str, int]], list[Issue], list[str], list[Issue]]:
    """Walk ``root`` exactly as :func:`~dali_gridaug.reader.image_folder` does, without
    failing on empty class folders: ``(classes, entries, ignored, empty, loops)``.
    """
    scan = scan_folder(root)
    ignored = [
        Issue(e.name, "outside-class-folder", "files directly in ROOT belong to no class")
        for e in sorted(os.scandir(root), key=lambda e: e.name)
        if not e.is_dir()
    ]
    ignored += [
        Issue(_rel(p, root), "not-an-image-extension", "the loader skips this file")
        for p in scan.others
    ]
    loops = [
        Issue(_rel(link, root), "symlink-loop", f"points back to {real!r}: not entered")
        for link, real in scan.loops
    ]
    entries = [(_rel(p, root), k) for p, k in scan.images]
    return scan.classes, entries, ignored, scan.empty, loops


def _rel(path: str, root: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _count(reasons: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in reasons:
        out[r] = out.get(r, 0) + 1
    return dict(sorted(out.items()))
