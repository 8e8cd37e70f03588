"""``dali-gridaug check-data ROOT``: find the files the pipeline cannot decode, before training.

One bad file stops a DALI pipeline for good (see :mod:`dali_gridaug.errors`), so scan the
ImageFolder once, in parallel, and train from the clean file list this writes.

Each file with an image extension is read whole, its format sniffed from the magic bytes, its
header read with Pillow, and it is decoded by DALI's own CPU decoder (``decoders.image``,
``output_type=RGB``, through DALI's dynamic mode; Pillow's full decode where that is
unavailable). The decoder's verdict decides "bad"; the rest only names the reason.

Verdicts (``reason`` keys of the JSON report), as measured with DALI 2.4's CPU backend:

========================== ====== ===================================================
reason                     kind   meaning
========================== ====== ===================================================
``zero-byte``              bad    empty file (DALI's reader cannot map it)
``unreadable``             bad    the file cannot be read (permissions, I/O error)
``not-an-image``           bad    no known image signature
``unsupported-format``     bad    an image DALI cannot decode, e.g. GIF (any name)
``truncated``              bad    cut short: JPEG without its EOI marker, PNG without
                                  ``IEND``, or the decoder hit the end of the data
``corrupt``                bad    any other decode failure
``<fmt>-named-<ext>``      warn   e.g. ``png-named-jpg``: DALI detects the format from
                                  the content and decodes PNG, WebP, BMP, TIFF and PNM
                                  under any name; tools trusting the extension may not
``cmyk``                   warn   CMYK JPEG: decoded to RGB (same pixels as Pillow's
                                  ``convert("RGB")``)
``grayscale``              warn   one channel: replicated to 3 equal RGB channels
``alpha-dropped``          warn   RGBA/LA/transparent palette: the alpha is dropped
``high-bit-depth``         warn   16-bit samples: scaled to 8 bits (value / 257)
``huge``                   warn   more pixels than ``max_pixels`` (nvJPEG's
                                  preallocation hint): GPU decode buffers reallocate
``small``                  warn   shorter side below ``min_side``: the crop upsamples
========================== ====== ===================================================

Files without an image extension are listed as ``ignored`` (the loader skips them, as
torchvision's ``ImageFolder`` does), and so are files directly in ROOT. Class folders without
any image file are listed in ``empty_classes`` (``image_folder`` refuses them); the clean
list keeps every class index of ``image_folder``: the sorted position of the class folder.

Nothing is deleted or modified, except that the clean list (and a ``classes.txt`` beside
it, when none exists there) is written. Exit status: 0 when no file is bad, 1 when some are,
2 when ROOT cannot be scanned.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import io
import json
import multiprocessing
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from dali_gridaug._validate import check_range, check_type
from dali_gridaug.constants import IMG_EXTENSIONS, PREALLOCATE_HEIGHT_HINT, PREALLOCATE_WIDTH_HINT

#: Default ``max_pixels``: the nvJPEG preallocation hints of the GPU decoder.
MAX_PIXELS: int = PREALLOCATE_WIDTH_HINT * PREALLOCATE_HEIGHT_HINT
#: Default ``min_side``: the default crop of ``create_loader``.
MIN_SIDE: int = 224
#: Formats DALI's decoders read (``gif`` is sniffed only to be reported as unsupported).
DALI_FORMATS: frozenset[str] = frozenset({"jpeg", "png", "bmp", "tiff", "webp", "pnm", "jpeg2000"})
#: Format an extension promises.
EXT_FORMATS: dict[str, str] = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".png": "png",
    ".ppm": "pnm",
    ".pgm": "pnm",
    ".pbm": "pnm",
    ".bmp": "bmp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".webp": "webp",
    ".jp2": "jpeg2000",
}
_END = {
    "jpeg": "no EOI marker after the last scan",
    "png": "no IEND chunk",
    "webp": "shorter than its RIFF size",
    "bmp": "shorter than its header's file size",
}
BAD_REASONS: tuple[str, ...] = (
    "zero-byte",
    "unreadable",
    "not-an-image",
    "unsupported-format",
    "truncated",
    "corrupt",
)


@dataclasses.dataclass(frozen=True)
class Issue:
    """One finding about one file.

    Attributes:
        path: path relative to ROOT, ``/``-separated.
        reason: short machine-friendly key (see the module docstring).
        detail: human-readable explanation.
    """

    path: str
    reason: str
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class _Result:
    """What a worker found about one file (picklable)."""

    rel: str
    bad: Issue | None
    warnings: tuple[Issue, ...]
    decoder: str


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
        """The JSON report: ``bad``/``warnings``/``ignored`` are lists of
        ``{"path", "reason", "detail"}`` with paths relative to ``root``.
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
                "bad_by_reason": _count(i.reason for i in self.bad),
                "warnings_by_reason": _count(i.reason for i in self.warnings),
            },
            "bad": [dataclasses.asdict(i) for i in self.bad],
            "warnings": [dataclasses.asdict(i) for i in self.warnings],
            "ignored": [dataclasses.asdict(i) for i in self.ignored],
            "empty_classes": list(self.empty_classes),
            "classes_without_good_files": list(self.classes_without_good_files),
        }

    def write_list(self, path: str | os.PathLike[str]) -> Path:
        """Write the clean file list: ``<path> <class index>`` per line, paths relative to
        the list's folder (what :func:`~dali_gridaug.reader.file_list` and
        ``create_loader(path)`` read). Also writes ``classes.txt`` beside it unless one
        exists (an existing one with other names is left alone and reported on stderr).

        Note:
            ``file_list`` infers the class count from the largest index listed, so when the
            last classes have no good file the loader sees fewer classes (pass
            ``num_classes`` to your model explicitly).

        Returns:
            The list's path.
        """
        path = Path(path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        base = str(path.parent)
        lines = [
            f"{os.path.relpath(os.path.join(self.root, *rel.split('/')), base)} {k}\n"
            for rel, k in self.good
        ]
        path.write_text("".join(lines))
        names = path.parent / "classes.txt"
        wanted = "\n".join(self.classes) + "\n"
        if not names.exists():
            names.write_text(wanted)
        elif names.read_text().split("\n")[: len(self.classes)] != list(self.classes):
            print(
                f"check-data: left the existing {names} alone (its class names differ); "
                "the loader names classes from it",
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
    classes, entries, ignored, empty = _scan(root_abs)
    probe = functools.partial(_probe, root=root_abs, max_pixels=max_pixels, min_side=min_side)
    rels = [rel for rel, _ in entries]
    results = _run(probe, rels, workers, progress)
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
    )


def default_list_path(root: str | os.PathLike[str]) -> Path:
    """``ROOT/../<root name>_clean.txt`` (``data/train`` → ``data/train_clean.txt``)."""
    root = Path(os.path.abspath(os.fspath(root)))
    return root.parent / f"{root.name}_clean.txt"


def _scan(
    root: str,
) -> tuple[tuple[str, ...], list[tuple[str, int]], list[Issue], list[str]]:
    """Walk ``root`` exactly as :func:`~dali_gridaug.reader.image_folder` does, without
    failing on empty class folders.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset root {root!r} does not exist or is not a directory")
    listing = sorted(os.scandir(root), key=lambda e: e.name)
    classes = tuple(e.name for e in listing if e.is_dir())
    if not classes:
        raise FileNotFoundError(f"no class folders found in dataset root {root!r}")
    ignored = [
        Issue(e.name, "outside-class-folder", "files directly in ROOT belong to no class")
        for e in listing
        if not e.is_dir()
    ]
    entries: list[tuple[str, int]] = []
    empty: list[str] = []
    for idx, name in enumerate(classes):
        count = 0
        for dirpath, _, fnames in sorted(os.walk(os.path.join(root, name), followlinks=True)):
            for fname in sorted(fnames):
                rel = Path(os.path.relpath(os.path.join(dirpath, fname), root)).as_posix()
                if fname.lower().endswith(IMG_EXTENSIONS):
                    entries.append((rel, idx))
                    count += 1
                else:
                    ignored.append(
                        Issue(rel, "not-an-image-extension", "the loader skips this file")
                    )
        if count == 0:
            empty.append(name)
    return classes, entries, ignored, empty


def _run(probe: Any, rels: Sequence[str], workers: int, progress: bool) -> list[_Result]:
    from tqdm import tqdm

    bar = tqdm(total=len(rels), desc="check-data", unit="img", disable=not progress)
    out: list[_Result] = []
    with bar:
        if workers == 0 or len(rels) == 0:
            for rel in rels:
                out.append(probe(rel))
                bar.update()
            return out
        # spawn: the caller may hold DALI/torch threads, which fork would copy mid-state
        ctx = multiprocessing.get_context("spawn")
        workers = min(workers, len(rels))
        chunk = max(1, min(64, len(rels) // (workers * 8)))
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
            for result in pool.map(probe, rels, chunksize=chunk):
                out.append(result)
                bar.update()
    return out


def _init_worker() -> None:
    """Worker setup: nvImageCodec logs every failed decode on fd 2 from C++; the verdicts
    come back in the results, so silence the worker's stderr.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def sniff(head: bytes) -> str | None:
    """The image format a file's first bytes announce, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head.startswith(b"BM") and len(head) >= 26:
        return "bmp"
    if head[:1] == b"P" and head[1:2] in b"123456" and head[2:3] in (b" ", b"\t", b"\n", b"\r"):
        return "pnm"
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "jpeg2000"
    return None


def _probe(rel: str, *, root: str, max_pixels: int, min_side: int) -> _Result:
    """Check one file (runs in a worker)."""
    path = os.path.join(root, *rel.split("/"))
    decoder = "dali-cpu" if _dali_decoder() is not None else "pillow"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return _Result(rel, Issue(rel, "unreadable", str(exc)), (), decoder)
    if not data:
        return _Result(rel, Issue(rel, "zero-byte", "empty file"), (), decoder)
    ext = os.path.splitext(rel)[1].lower()
    fmt = sniff(data[:32])
    header = _pil_header(data)
    if fmt is None:
        if header.get("format"):
            detail = f"{header['format']} image; DALI's decoders cannot read it"
            return _Result(rel, Issue(rel, "unsupported-format", detail), (), decoder)
        return _Result(
            rel, Issue(rel, "not-an-image", "no image signature in the file"), (), decoder
        )
    if fmt not in DALI_FORMATS:
        detail = f"{fmt.upper()} content (named {ext}); DALI's decoders cannot read {fmt.upper()}"
        return _Result(rel, Issue(rel, "unsupported-format", detail), (), decoder)
    ok, size, error = _decode(data)
    complete = _complete(fmt, data)
    if not ok or (not complete and decoder == "pillow"):
        why = error or "the data ends early"
        if decoder != "pillow":
            pil_ok, _, pil_error = _pil_decode(data)
            why += "" if pil_ok else f"; Pillow: {pil_error}"
        truncated = not complete or "truncated" in why.lower()
        reason = "truncated" if truncated else "corrupt"
        if not complete:
            why = f"{fmt.upper()} data ends early ({_END[fmt]}); decoder: {why}"
        return _Result(rel, Issue(rel, reason, why), (), decoder)
    found = tuple(_warnings(rel, ext, fmt, header, size, max_pixels, min_side))
    return _Result(rel, None, found, decoder)


def _warnings(
    rel: str,
    ext: str,
    fmt: str,
    header: dict[str, Any],
    size: tuple[int, int] | None,
    max_pixels: int,
    min_side: int,
) -> Iterable[Issue]:
    expected = EXT_FORMATS.get(ext)
    if expected is not None and expected != fmt:
        yield Issue(
            rel,
            f"{fmt}-named-{ext.lstrip('.')}",
            f"{fmt.upper()} content named {ext}: DALI detects the format from the content and "
            "decodes it; tools that trust the extension may not",
        )
    mode = header.get("mode", "")
    if mode == "CMYK":
        yield Issue(rel, "cmyk", "CMYK JPEG: DALI decodes it to RGB (output_type=RGB)")
    if mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
        yield Issue(rel, "grayscale", "one channel: DALI replicates it to 3 equal RGB channels")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or header.get("transparency"):
        yield Issue(rel, "alpha-dropped", "DALI decodes to RGB and drops the alpha channel")
    if mode.startswith("I;16") or mode in ("I", "F"):
        yield Issue(rel, "high-bit-depth", "16-bit samples: DALI scales them to 8 bits")
    size = size or header.get("size")
    if size is not None:
        w, h = size
        if w * h > max_pixels:
            yield Issue(
                rel,
                "huge",
                f"{w}×{h} px = {w * h} > max_pixels {max_pixels} (the nvJPEG preallocation "
                "hint): GPU decoding reallocates its buffers",
            )
        if min(w, h) < min_side:
            yield Issue(
                rel,
                "small",
                f"{w}×{h} px: shorter side {min(w, h)} < min_side {min_side}; the crop "
                "upsamples it",
            )


def _pil_header(data: bytes) -> dict[str, Any]:
    """Format, mode, ``(width, height)`` and transparency from the header ({} if unreadable)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return {
                    "format": im.format,
                    "mode": im.mode,
                    "size": im.size,
                    "transparency": "transparency" in im.info,
                }
    except Exception:  # noqa: BLE001  (any header Pillow cannot parse)
        return {}


def _complete(fmt: str, data: bytes) -> bool:
    """False when the data ends before the format says it should: a JPEG without an EOI
    marker after its last scan, a PNG without ``IEND``, a WebP/BMP shorter than its header's
    file size.
    """
    if fmt == "jpeg":
        # an EXIF thumbnail carries its own EOI, so look after the last start-of-scan
        return data.rfind(b"\xff\xd9") > data.rfind(b"\xff\xda")
    if fmt == "png":
        return data.rfind(b"IEND") >= 0
    if fmt == "webp":
        return len(data) >= int.from_bytes(data[4:8], "little") + 8
    if fmt == "bmp":
        return len(data) >= int.from_bytes(data[2:6], "little")
    return True


def _decode(data: bytes) -> tuple[bool, tuple[int, int] | None, str]:
    """Decode with DALI's CPU decoder (Pillow when DALI's dynamic mode is unavailable).

    Returns:
        ``(ok, (width, height) or None, error message)``.
    """
    decoder = _dali_decoder()
    if decoder is not None:
        try:
            h, w = decoder(data)
        except Exception as exc:  # noqa: BLE001  (DALI raises RuntimeError; keep any as bad)
            return False, None, str(exc).strip().splitlines()[-1] if str(exc).strip() else "?"
        return True, (w, h), ""
    return _pil_decode(data)


def _pil_decode(data: bytes) -> tuple[bool, tuple[int, int] | None, str]:
    """Pillow's full decode: ``(ok, (width, height) or None, error message)``."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                return True, im.size, ""
    except Exception as exc:  # noqa: BLE001
        return False, None, f"{type(exc).__name__}: {exc}"


@functools.cache
def _dali_decoder() -> Any:
    """``data → (height, width)`` with DALI's CPU ``decoders.image``, or None."""
    try:
        import numpy as np
        import nvidia.dali.experimental.dynamic as ndd
        from nvidia.dali import types
    except ImportError:
        return None

    def decode(data: bytes) -> tuple[int, int]:
        encoded = ndd.as_tensor(np.frombuffer(data, np.uint8))
        image = ndd.decoders.image(encoded, device="cpu", output_type=types.RGB)
        shape = tuple(np.asarray(image.cpu()).shape)
        return int(shape[0]), int(shape[1])

    return decode


def _count(reasons: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in reasons:
        out[r] = out.get(r, 0) + 1
    return dict(sorted(out.items()))


def main(argv: Sequence[str] | None = None) -> int:
    """``dali-gridaug check-data ROOT [--report FILE.json] [--list FILE.txt] [--workers N]
    [--min-side N] [--max-pixels N]``; returns the exit status (0 clean, 1 bad files, 2 error).
    """
    ap = argparse.ArgumentParser(
        prog="dali-gridaug check-data",
        description="Report the files of an ImageFolder that the DALI pipeline cannot decode "
        "and write a clean file list. Exit status: 0 no bad file, 1 bad files, 2 error.",
    )
    ap.add_argument("root", help="ImageFolder root: ROOT/<class>/**/<image>")
    ap.add_argument("--report", help="write the JSON report here")
    ap.add_argument(
        "--list",
        help="clean file list to write (default ROOT/../<root name>_clean.txt); "
        "use it as create_loader(LIST)",
    )
    ap.add_argument("--workers", type=int, default=None, help="decoding processes (0: inline)")
    ap.add_argument("--min-side", type=int, default=MIN_SIDE, help="warn below this side (px)")
    ap.add_argument("--max-pixels", type=int, default=MAX_PIXELS, help="warn above (px)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    try:
        report = check_dataset(
            a.root,
            workers=a.workers,
            min_side=a.min_side,
            max_pixels=a.max_pixels,
            progress=not a.quiet,
        )
    except (FileNotFoundError, ValueError, TypeError) as exc:
        print(f"check-data: {exc}", file=sys.stderr)
        return 2
    list_path = report.write_list(a.list or default_list_path(a.root))
    payload = report.to_json()
    payload["list"] = str(list_path)
    if a.report:
        Path(a.report).parent.mkdir(parents=True, exist_ok=True)
        Path(a.report).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    c = payload["counts"]
    print(
        f"{report.root}: {c['scanned']} images in {c['classes']} classes: {c['good']} good, "
        f"{c['bad']} bad, {c['warned_files']} with warnings, {c['ignored']} ignored, "
        f"{c['empty_classes']} empty classes (decoder: {report.decoder})"
    )
    for issue in report.bad[:50]:
        print(f"  BAD  {issue.reason:<20} {issue.path}  ({issue.detail})")
    if len(report.bad) > 50:
        print(f"  … and {len(report.bad) - 50} more (see --report)")
    for name in report.empty_classes:
        print(f"  EMPTY CLASS {name}")
    print(f"clean list: {list_path}" + (f"; report: {a.report}" if a.report else ""))
    return 0 if report.ok else 1


__all__ = ["Issue", "Report", "check_dataset", "default_list_path", "main", "sniff"]
