"""The file-list format: one ``<path> <class index>`` per line, with an optional
``classes.txt`` beside the list naming the classes, one per line.

``check-data`` writes it and ``create_loader(path.txt)`` reads it (through
:func:`dali_gridaug.reader.file_list`); DALI's ``file_list`` uses the same two columns.

A path is taken literally up to the last space of its line, unless it starts with ``"``: then
it is quoted as :func:`quote_path` writes it (any file name the OS allows, newlines and
undecodable bytes included). Blank lines and lines starting with ``#`` are skipped. The files
are UTF-8.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

#: Escapes inside a quoted path (besides ``\xHH``, one raw byte of the name).
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: The escaped character of each escape letter (``n`` → newline).
_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}


def read_list(path: str | os.PathLike[str]) -> tuple[list[str], list[int], tuple[str, ...]]:
    """Parse a file list.

    Returns:
        ``(names, targets, classes)``: each line's path as written (relative paths stay
        relative), its class index, and the class names: the first ``max(targets) + 1``
        names of the ``classes.txt`` beside the list, else the indices as strings.

    Raises:
        FileNotFoundError: ``path`` is missing.
        ValueError: a malformed line (``path:line: …`` names it) or no entry at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file list {str(path)!r} does not exist")
    names, targets = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip() or line.startswith("#"):
            continue
        try:
            name, label = _split_line(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: {exc}, got {line!r}") from None
        names.append(name)
        targets.append(int(label))
    if not names:
        raise ValueError(f"file list {str(path)!r} lists no files")
    count = max(targets) + 1
    names_file = path.parent / "classes.txt"
    if names_file.is_file():
        classes = tuple(class_names(names_file)[:count])
    else:
        classes = tuple(str(k) for k in range(count))
    return names, targets, classes


def write_list(
    path: str | os.PathLike[str], entries: Iterable[tuple[str, int]], classes: Sequence[str]
) -> bool:
    """Write a file list and, unless one exists, the ``classes.txt`` beside it.

    Args:
        path: the list to write (its folder is created).
        entries: ``(file path, class index)``; written relative to the list's folder and
            quoted by :func:`quote_path` where needed.
        classes: class names; ``classes[k]`` is class ``k``.

    Returns:
        False when an existing ``classes.txt`` names other classes (it is left alone, and
        :func:`read_list` names the classes from it), else True.
    """
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    base = str(path.parent)
    lines = [f"{quote_path(os.path.relpath(f, base))} {k}\n" for f, k in entries]
    path.write_text("".join(lines), encoding="utf-8")
    names = path.parent / "classes.txt"
    if not names.exists():
        names.write_text("".join(quote_path(c) + "\n" for c in classes), encoding="utf-8")
        return True
    return class_names(names)[: len(classes)] == list(classes)


def class_names(path: str | os.PathLike[str]) -> list[str]:
    """The names in a ``classes.txt``: one per line, each plain or quoted (:func:`quote_path`);
    the newline ending the last line ends the list.
    """
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    if lines[-1] == "":
        lines.pop()
    return [unquote_path(n)[0] if n.startswith('"') else n for n in lines]


def _split_line(line: str) -> tuple[str, str]:
    if line.startswith('"'):
        name, rest = unquote_path(line)
        label = rest[1:] if rest.startswith(" ") else "?"
    else:
        name, _, label = line.rpartition(" ")
    if not name or not label.isdigit():
        raise ValueError("expected '<path> <class index ≥ 0>'")
    return name, label


def quote_path(path: str) -> str:
    r"""A file-list entry for ``path``: the path itself when it is plain, else quoted.

    A path is plain unless it starts with ``"`` or ``#``, or holds a control character or a
    byte that is not UTF-8 (Python spells those as lone surrogates, ``os.fsdecode``'s
    ``surrogateescape``). Quoted: ``"…"`` with ``\\``, ``\"``, ``\n``, ``\r``, ``\t``, and
    ``\xHH`` for one raw byte of the name (other control characters, and the undecodable
    bytes). :func:`unquote_path` reads it back to the same ``str`` (so ``os.fsencode`` gives
    the same bytes).
    """
    if not (path.startswith(('"', "#")) or any(_special(c) for c in path)):
        return path
    out = []
    for c in path:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif "\udc80" <= c <= "\udcff":
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif _special(c):
            out.append("".join(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogatepass")))
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def unquote_path(text: str) -> tuple[str, str]:
    """Read a quoted path (see :func:`quote_path`) from the start of ``text``.

    Returns:
        ``(path, rest of text after the closing quote)``.

    Raises:
        ValueError: no closing quote, or an unknown escape.
    """
    raw = bytearray()
    i = 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return os.fsdecode(bytes(raw)), text[i + 1 :]
        if c != "\\":
            raw += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "x" and len(text) >= i + 4:
            raw.append(int(text[i + 2 : i + 4], 16))
            i += 4
            continue
        if nxt not in _UNESCAPES:
            raise ValueError(f"unknown escape \\{nxt} in a quoted path")
        raw += _UNESCAPES[nxt].encode()
        i += 2
    raise ValueError("quoted path without its closing quote")


def _special(c: str) -> bool:
    """Control characters and the lone surrogates that stand for undecodable bytes."""
    return unicodedata.category(c) in ("Cc", "Cs")
