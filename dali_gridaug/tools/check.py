r"""``dali-gridaug check-data ROOT``: find the files the pipeline cannot decode, before training.

One bad file stops a DALI pipeline for good (see :mod:`dali_gridaug.errors`), so scan the
ImageFolder once, in parallel, and train from the clean file list this writes. The scan itself
(:func:`~dali_gridaug.datacheck.check_dataset`, :func:`~dali_gridaug.datacheck.check_shards`)
is library code in :mod:`dali_gridaug.datacheck`, which the trainer also uses; this module is
the command: arguments, the JSON report, the clean list and the summary.

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
``corrupt-data``           bad    the JPEG decodes, but its decoder reports damaged
                                  entropy-coded data ("Corrupt JPEG data: …"): DALI
                                  gives grey or garbage pixels and only prints that
``non-utf8-name``          bad    the path is not valid UTF-8: DALI's file reader
                                  takes UTF-8 paths only (rename the file)
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
``exif-rotated``           warn   EXIF orientation ≠ 1: DALI rotates/flips the image,
                                  torchvision's Pillow loader does not
========================== ====== ===================================================

Folder symlinks are followed, but a link back to a folder on its own path (a loop: without
this check a 40-file class becomes thousands of files) is not entered and is listed in
``loops`` (``reason`` ``symlink-loop``), exactly as :func:`~dali_gridaug.reader.image_folder`
skips it.

File names: any name the OS allows is handled. In Python a path is a ``str`` where bytes
that are not UTF-8 are lone surrogates (``os.fsdecode``, ``surrogateescape``;
``os.fsencode(path)`` gives the bytes back). The JSON report is ASCII (JSON ``\u`` escapes),
so such a path reads back as the same ``str``, and the report's paths (relative to ROOT)
can be passed to ``create_loader(ROOT, exclude=...)`` as they are. The clean list quotes
paths with control characters (newlines) or undecodable bytes as
:func:`~dali_gridaug.filelist.quote_path` describes; :func:`~dali_gridaug.reader.file_list`
reads them back.

Files without an image extension are listed as ``ignored`` (the loader skips them, as
torchvision's ``ImageFolder`` does), and so are files directly in ROOT. Class folders without
any image file are listed in ``empty_classes`` (``image_folder`` refuses them); the clean
list keeps every class index of ``image_folder``: the sorted position of the class folder.

Nothing in the dataset is deleted or modified, and nothing is written beside it: the report
and the clean list (with a ``classes.txt`` beside it, when none exists there) go to
``--report``/``--list``; by default the list goes beside the report, and the report to the
user cache dir (``$XDG_CACHE_HOME/dali-gridaug/check-data/<root name>-<hash>/``).
Tar shards (one ``.tar``, several, or a folder holding only ``.tar`` files) are indexed with
:func:`~dali_gridaug.tarindex.index_shards` (nothing is extracted) and each sample's image
member is checked as a file would be; a bad member is reported as ``<shard>:<member>`` (the
shard relative to ROOT, the shards' common folder), and a sample the index refuses with the
:class:`~dali_gridaug.tarindex.TarShardError` reason prefixed ``tar-`` (``tar-not-a-file``,
``tar-missing-cls``, ``tar-bad-cls``, ``tar-truncated``, …). Labels are checked against the
``classes.txt`` beside the shards when there is one. No clean list is written for shards
(``--list`` is refused): rebuild the shards without the bad members.
Exit status: 0 when no file is bad, 1 when some are, 2 when ROOT cannot be scanned or a flag
is wrong (one line on stderr).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dali_gridaug.datacheck import (
    MAX_PIXELS,
    MIN_SIDE,
    Issue,
    Report,
    check_dataset,
    check_shards,
    sniff,
)
from dali_gridaug.errors import UsageError
from dali_gridaug.filelist import quote_path
from dali_gridaug.tools.args import ArgParser
from dali_gridaug.tools.common import cache_dir


def shard_paths(args: Sequence[str]) -> list[str] | None:
    """The tar shards ``args`` names (``.tar`` files, or one folder holding ``.tar`` files and
    no class folder, sorted by name), or None when ``args`` is one ImageFolder root.

    Raises:
        FileNotFoundError: several arguments that are not all ``.tar`` files.
    """
    if len(args) == 1 and os.path.isdir(args[0]):
        entries = list(os.scandir(args[0]))
        tars = sorted(e.path for e in entries if e.is_file() and e.name.endswith(".tar"))
        return tars if tars and not any(e.is_dir() for e in entries) else None
    if all(a.endswith(".tar") for a in args):
        return list(args)
    if len(args) == 1:
        return None  # an ImageFolder root (check_dataset names what is wrong with it)
    raise FileNotFoundError(
        f"check-data takes one ImageFolder root, one folder of .tar shards, or .tar shard "
        f"files; got {', '.join(repr(a) for a in args)}"
    )


def default_report_path(root: str | os.PathLike[str]) -> Path:
    """``<user cache dir>/check-data/<root name>-<8 hex of the absolute root>/report.json``:
    one folder per dataset root, never beside the dataset.
    """
    root = os.path.abspath(os.fspath(root))
    digest = hashlib.sha256(os.fsencode(root)).hexdigest()[:8]
    name = os.path.basename(root).encode("ascii", "replace").decode()
    return cache_dir() / "check-data" / f"{name}-{digest}" / "report.json"


def default_list_path(report: str | os.PathLike[str]) -> Path:
    """The clean list beside the report: ``out/report.json`` → ``out/report_clean.txt``."""
    report = Path(report)
    return report.with_name(f"{report.stem}_clean.txt")


def main(argv: Sequence[str] | None = None) -> int:
    """``dali-gridaug check-data ROOT [--report FILE.json] [--list FILE.txt] [--workers N]
    [--min-side N] [--max-pixels N] [--quiet]``; returns the exit status (0 clean, 1 bad
    files).

    Raises:
        UsageError: ROOT cannot be scanned, or a flag is bad (the dispatcher exits 2).
    """
    ap = ArgParser(
        prog="dali-gridaug check-data",
        description="Report the files of an ImageFolder that the DALI pipeline cannot decode "
        "and write a clean file list. Exit status: 0 no bad file, 1 bad files, 2 error.",
    )
    ap.add_argument(
        "root",
        nargs="+",
        help="ImageFolder root (ROOT/<class>/**/<image>), a folder of .tar shards, or .tar "
        "shard file(s)",
    )
    ap.add_argument("--report", type=Path, help="JSON report (default: in the user cache dir)")
    ap.add_argument(
        "--list",
        type=Path,
        help="clean file list to write (default: beside the report, <report>_clean.txt); "
        "use it as create_loader(LIST)",
    )
    ap.add_argument("--workers", type=int, default=None, help="decoding processes (0: inline)")
    ap.add_argument("--min-side", type=int, default=MIN_SIDE, help="warn below this side (px)")
    ap.add_argument("--max-pixels", type=int, default=MAX_PIXELS, help="warn above (px)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    try:
        shards = shard_paths(a.root)
        if shards is not None and a.list is not None:
            raise ValueError(
                "`--list` is for ImageFolder roots: no clean list is written for tar shards"
            )
        if shards is not None:
            report = check_shards(
                shards,
                workers=a.workers,
                min_side=a.min_side,
                max_pixels=a.max_pixels,
                progress=not a.quiet,
            )
            return _finish(report, a.report or default_report_path(a.root[0]), None)
        report = check_dataset(
            a.root[0],
            workers=a.workers,
            min_side=a.min_side,
            max_pixels=a.max_pixels,
            progress=not a.quiet,
        )
    except (FileNotFoundError, ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    report_path = a.report or default_report_path(a.root[0])
    return _finish(report, report_path, a.list or default_list_path(report_path))


def _finish(report: Report, report_path: Path, list_path: Path | None) -> int:
    """Write the report (and the clean list unless ``list_path`` is None), print the summary;
    the exit status.
    """
    payload = report.to_json()
    if list_path is not None:
        list_path = report.write_list(list_path)
    payload["list"] = None if list_path is None else str(list_path)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(payload, indent=2, ensure_ascii=True) + "\n")
    _summary(report, payload["counts"])
    listed = "none (tar shards)" if list_path is None else quote_path(str(list_path))
    print(f"clean list: {listed}; report: {quote_path(str(report_path))}")
    return 0 if report.ok else 1


def _summary(report: Report, c: dict[str, Any]) -> None:
    """Print the counts and the first 50 bad files (names quoted as in the clean list)."""
    print(
        f"{quote_path(report.root)}: {c['scanned']} images in {c['classes']} classes: "
        f"{c['good']} good, {c['bad']} bad, {c['warned_files']} with warnings, "
        f"{c['ignored']} ignored, {c['empty_classes']} empty classes, {c['loops']} symlink "
        f"loops (decoder: {report.decoder})"
    )
    for issue in report.bad[:50]:
        print(f"  BAD  {issue.reason:<20} {quote_path(issue.path)}  ({issue.detail})")
    if len(report.bad) > 50:
        print(f"  … and {len(report.bad) - 50} more (see the report)")
    for name in report.empty_classes:
        print(f"  EMPTY CLASS {quote_path(name)}")
    for issue in report.loops:
        print(f"  LOOP {quote_path(issue.path)} ({issue.detail})")


__all__ = [
    "Issue",
    "Report",
    "check_dataset",
    "check_shards",
    "default_list_path",
    "default_report_path",
    "main",
    "shard_paths",
    "sniff",
]
