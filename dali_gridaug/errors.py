"""Errors that name the dataset file behind a DALI failure.

When a file cannot be read or decoded, DALI stops the pipeline with a ``RuntimeError``
("Critical error in pipeline: …") whose text names the file for some failures (truncated
JPEG: ``Failed to decode sample #k : <path>``; zero-byte file: ``File mapping failed:
<path>``) but not for others (not an image, GIF content: ``nvImageCodec failure: '#4'``).
:class:`DecodeError` re-raises it with the file(s) it could recover, their index in the
loader's file list, and the way out: ``dali-gridaug check-data`` and ``exclude=``.
The pipeline cannot continue after such an error; build a new loader.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
#: A sample in flight: its name and a function returning its encoded bytes.
Suspect = tuple[str, Callable[[], bytes]]

#: DALI messages that carry the failing file's path.
_PATH_PATTERNS = (
    re.compile(r"Failed to decode sample #\d+[ \t]*:[ \t]*(?P<path>\S.*?)[ \t]*$", re.M),
    re.compile(r"File mapping failed:[ \t]*(?P<path>\S.*?)[ \t]*$", re.M),
)
#: Fragments that mark a failure of the reader or the decoder (not of an augmentation).
_DATA_MARKERS = (
    "fn.decoders.",
    "fn.readers.",
    "nvImageCodec",
    "Failed to decode",
    "File mapping failed",
)


class UsageError(ValueError):
    """A user mistake on the command line or in a recipe (bad path, unknown name, bad value).

    The ``dali-gridaug`` dispatcher prints it as one line and exits with status 2, without a
    traceback; library callers can catch it as a ``ValueError``.
    """


class DecodeError(RuntimeError):
    """A dataset file could not be read or decoded by the DALI pipeline.

    Attributes:
        paths: the failing files, when DALI's message names them (else empty).
        indices: their positions in ``loader.source.files`` (``-1`` where not found).
        reason: DALI's own description of the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        paths: tuple[str, ...] = (),
        indices: tuple[int, ...] = (),
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.paths = paths
        self.indices = indices
        self.reason = reason


def decode_error(
    exc: BaseException, source: object = None, suspects: Sequence[Suspect] = ()
) -> DecodeError | None:
    """Turn DALI's pipeline error into a :class:`DecodeError`; None if it is not a read or
    decode failure (e.g. an error inside an augmentation kernel).

    Args:
        exc: the exception DALI raised.
        source: the loader's source; a :class:`~dali_gridaug.reader.FileSource` lets the
            message give each file's index and the dataset root to check.
        suspects: ``(name, read)`` of the samples in flight (``read()`` returns the encoded
            bytes); when DALI's message names no file, those that fail to read or decode on
            the host (Pillow) are named.
    """
    text = str(exc)
    if not any(marker in text for marker in _DATA_MARKERS):
        return None
    paths: list[str] = []
    for pattern in _PATH_PATTERNS:
        paths += [m.group("path") for m in pattern.finditer(text) if m.group("path") not in paths]
    if not paths:
        paths = list(dict.fromkeys(name for name, read in suspects if not _decodes(read)))
    files = getattr(source, "files", None)
    indices = tuple(_index_of(files, p) for p in paths) if files is not None else ()
    reason = _dali_reason(text)
    if paths:
        where = ", ".join(
            p + (f" (index {i} in loader.source.files)" if i >= 0 else "")
            for p, i in zip(paths, indices or (-1,) * len(paths), strict=True)
        )
        head = f"DALI could not read or decode {where}"
    else:
        head = "DALI could not read or decode a file of this dataset (its message names none)"
    root = _dataset_root(files)
    message = (
        f"{head}: {reason}. Run `dali-gridaug check-data {root}` to list every file the "
        "pipeline cannot decode, then build the loader from the clean list it writes, or "
        "pass exclude=[<bad files>] to create_loader. This loader cannot continue."
    )
    return DecodeError(message, paths=tuple(paths), indices=indices, reason=reason)


def name_bad_files(
    outputs: Iterable[T],
    source: object = None,
    suspects: Callable[[], Sequence[Suspect]] | None = None,
) -> Iterator[T]:
    """Iterate ``outputs`` (a DALI iterator), re-raising its read/decode failures as
    :class:`DecodeError` (``from`` the original); other errors pass unchanged.
    ``suspects()`` gives the samples in flight (see :func:`decode_error`).
    """
    it = iter(outputs)
    while True:
        try:
            out = next(it)
        except StopIteration:
            return
        except RuntimeError as exc:
            err = decode_error(exc, source, suspects() if suspects is not None else ())
            if err is None:
                raise
            raise err from exc
        yield out


def _decodes(read: Callable[[], bytes]) -> bool:
    """Whether the bytes ``read()`` returns open and fully decode with Pillow."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(read())) as im:
            im.load()
    except Exception:  # noqa: BLE001 (any failure to read or decode counts)
        return False
    return True


def _index_of(files: Iterable[str], path: str) -> int:
    target = os.path.abspath(path)
    for i, f in enumerate(files):
        if f == path or f == target:
            return i
    return -1


def _dali_reason(text: str) -> str:
    """The lines after DALI's ``encountered:``, without C++ context and the epilogue."""
    tail = text.rsplit("encountered:", 1)[-1]
    lines = [
        line.strip()
        for line in tail.splitlines()
        if line.strip()
        and not line.startswith("C++ context")
        and "pipeline object is no longer valid" not in line
    ]
    return " ".join(lines) or text.strip().splitlines()[0]


def _dataset_root(files: Iterable[str] | None) -> str:
    """The common folder of the files (the ImageFolder root for ≥ 2 classes), else ROOT."""
    files = list(files or ())
    if not files:
        return "ROOT"
    try:
        return os.path.commonpath([os.path.dirname(f) for f in files]) or "ROOT"
    except ValueError:
        return "ROOT"


__all__ = ["DecodeError", "decode_error", "name_bad_files"]
