"""One file's verdict for ``check-data`` (sniff, header, strict decode, warnings), and
running it over every file in spawned worker processes.

:func:`probe` runs in the workers, so this module imports nothing heavy at module level.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import multiprocessing
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from dali_gridaug.constants import PREALLOCATE_HEIGHT_HINT, PREALLOCATE_WIDTH_HINT
from dali_gridaug.reader import utf8_name

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
#: EXIF tag of the orientation (1 = as stored).
_ORIENTATION = 0x0112
_END = {
    "jpeg": "no EOI marker after the last scan",
    "png": "no IEND chunk",
    "webp": "shorter than its RIFF size",
    "bmp": "shorter than its header's file size",
}


@dataclasses.dataclass(frozen=True)
class Issue:
    """One finding about one file.

    Attributes:
        path: path relative to ROOT, ``/``-separated; bytes that are not UTF-8 are lone
            surrogates (``os.fsencode(path)`` gives the file name's bytes back).
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


def probe(rel: str, *, root: str, max_pixels: int, min_side: int) -> _Result:
    """Check one file (runs in a worker)."""
    path = os.path.join(root, *rel.split("/"))
    decoder = "dali-cpu" if _dali_decoder() is not None else "pillow"
    if not utf8_name(path):
        detail = "the path is not valid UTF-8; DALI's file reader cannot open it (rename it)"
        return _Result(rel, Issue(rel, "non-utf8-name", detail), (), decoder)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return _Result(rel, Issue(rel, "unreadable", str(exc)), (), decoder)
    return probe_data(rel, data, os.path.splitext(rel)[1].lower(), max_pixels, min_side)


def probe_member(item: tuple[str, str, int, int], *, max_pixels: int, min_side: int) -> _Result:
    """Check one tar member (runs in a worker): ``item`` is ``(rel, shard path, byte offset,
    size in bytes)``, ``rel`` the ``shard:member`` name reported.
    """
    rel, shard, offset, size = item
    try:
        fd = os.open(shard, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.pread(fd, size, offset)
        finally:
            os.close(fd)
    except OSError as exc:
        decoder = "dali-cpu" if _dali_decoder() is not None else "pillow"
        return _Result(rel, Issue(rel, "unreadable", str(exc)), (), decoder)
    ext = "." + rel.rsplit(".", 1)[-1].lower() if "." in rel else ""
    return probe_data(rel, data, ext, max_pixels, min_side)


def probe_data(rel: str, data: bytes, ext: str, max_pixels: int, min_side: int) -> _Result:
    """The verdict on one image's bytes; ``ext`` (``".jpg"``) is the extension it is named
    with, ``rel`` the name reported.
    """
    decoder = "dali-cpu" if _dali_decoder() is not None else "pillow"
    if not data:
        return _Result(rel, Issue(rel, "zero-byte", "empty file"), (), decoder)
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
    ok, size, error, said = _decode(data)
    complete = _complete(fmt, data)
    if ok and complete and _damaged(said):
        detail = f"the decoder reported {said!r}: DALI decodes it to grey or garbage pixels"
        return _Result(rel, Issue(rel, "corrupt-data", detail), (), decoder)
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
    if header.get("orientation", 1) not in (1, None):
        yield Issue(
            rel,
            "exif-rotated",
            f"EXIF orientation {header['orientation']}: DALI applies it (rotates/flips the "
            "image); torchvision's ImageFolder loader (Pillow) does not",
        )
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
                    "orientation": im.getexif().get(_ORIENTATION, 1),
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


def _decode(data: bytes) -> tuple[bool, tuple[int, int] | None, str, str]:
    """Decode with DALI's CPU decoder (Pillow when DALI's dynamic mode is unavailable).

    Returns:
        ``(ok, (width, height) or None, error message, what the decoder printed)``: DALI's
        libjpeg prints damaged entropy-coded data ("Corrupt JPEG data: …") on the process's
        stderr and decodes anyway, so that output is captured (Pillow prints nothing).
    """
    decoder = _dali_decoder()
    if decoder is None:
        return (*_pil_decode(data), "")
    with _captured_fd2() as said:
        try:
            h, w = decoder(data)
        except Exception as exc:  # noqa: BLE001  (DALI raises RuntimeError; keep any as bad)
            text = str(exc).strip()
            return False, None, text.splitlines()[-1] if text else "?", ""
    return True, (w, h), "", said.text


#: Decoder messages (libjpeg warnings) that mean the pixels are not the image's.
_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG", "Invalid SOS", "Bogus")


def _damaged(said: str) -> bool:
    return any(marker in said for marker in _DAMAGE)


class _Said:
    text = ""


@contextlib.contextmanager
def _captured_fd2() -> Iterator[_Said]:
    """Capture what C/C++ code writes to file descriptor 2 in the block (``.text``)."""
    said = _Said()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            said.text = tmp.read().decode("utf-8", "replace").strip()


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


def probe_all(check: Any, rels: Sequence[Any], workers: int, progress: bool) -> list[_Result]:
    """``check(rel)`` for every path (or tar member item), in order: inline
    (``workers == 0``) or in ``workers`` spawned processes, with a tqdm bar on stderr unless
    ``progress`` is false.
    """
    from tqdm import tqdm

    bar = tqdm(total=len(rels), desc="check-data", unit="img", disable=not progress)
    out: list[_Result] = []
    with bar:
        if workers == 0 or len(rels) == 0:
            for rel in rels:
                out.append(check(rel))
                bar.update()
            return out
        # spawn: the caller may hold DALI/torch threads, which fork would copy mid-state
        ctx = multiprocessing.get_context("spawn")
        workers = min(workers, len(rels))
        chunk = max(1, min(64, len(rels) // (workers * 8)))
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
            for result in pool.map(check, rels, chunksize=chunk):
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
