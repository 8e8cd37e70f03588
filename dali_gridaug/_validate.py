"""Argument checks that fail at construction, naming the argument, its range and the value.

Numbers: ``int`` accepts any integral scalar (Python ``int``, NumPy integer scalars), ``float``
any real scalar (Python ``float``, NumPy floating scalars); ``bool`` (Python or NumPy) is never
a number. NaN and ±inf fail every range check.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _matches(value: Any, types: type | tuple[type, ...]) -> bool:
    wanted = types if isinstance(types, tuple) else (types,)
    if _is_bool(value):
        return bool in wanted
    if float in wanted and isinstance(value, numbers.Real):
        return True
    if int in wanted and isinstance(value, numbers.Integral):
        return True
    return isinstance(value, types)


def check_type(name: str, value: Any, types: type | tuple[type, ...]) -> None:
    """Raise ``TypeError`` unless ``value`` is an instance of ``types`` (numbers as in the
    module docstring: NumPy scalars count, bool is not a number).
    """
    if not _matches(value, types):
        want = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        raise TypeError(f"`{name}` must be {want}, got {value!r} ({type(value).__name__})")


def check_range(
    name: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ``ValueError`` unless ``low ≤ value ≤ high`` (strict where ``*_open``) and finite."""
    check_type(name, value, (int, float))
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        interval = f"{left}{lo}, {hi}{right}"
        raise ValueError(f"`{name}` must be in {interval}, got {value!r}")


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """An integral scalar in ``[low, high]``, returned as a Python ``int``."""
    check_type(name, value, int)
    check_range(name, value, low, high)
    return int(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    try:
        ok = value in choices
    except (TypeError, ValueError):  # e.g. an array compared with strings
        ok = False
    if not ok:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, choices))}; got {value!r}")


def check_pair(
    name: str, value: Any, low: float, high: float | None = None, *, integer: bool = False
) -> tuple[Any, Any]:
    """A ``(min, max)`` pair with ``low ≤ min < max (≤ high)``, of ints if ``integer``;
    returns it as a tuple.
    """
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"`{name}` must be a (min, max) pair, got {value!r}")
    lo, hi = value
    if integer:
        check_type(f"{name}[0]", lo, int)
        check_type(f"{name}[1]", hi, int)
    check_range(f"{name}[0]", lo, low, high)
    check_range(f"{name}[1]", hi, low, high)
    if not lo < hi:
        raise ValueError(f"`{name}` must satisfy min < max, got {value!r}")
    return lo, hi


def check_channels(name: str, value: Any) -> tuple[float, float, float]:
    """A number or 3 per-channel finite numbers (RGB), returned as 3 Python floats."""
    if _matches(value, (int, float)):
        values: Sequence[Any] = (value,) * 3
    elif not isinstance(value, (tuple, list, np.ndarray)):
        raise TypeError(f"`{name}` must be a number or 3 per-channel values, got {value!r}")
    elif len(value) != 3:
        raise ValueError(f"`{name}` must be a number or 3 per-channel values, got {value!r}")
    else:
        values = value
    for i, v in enumerate(values):
        check_range(name if values is not value else f"{name}[{i}]", v)
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def check_sequence(name: str, value: Any, what: str) -> tuple[Any, ...]:
    """A list or tuple (not a string or a single object), returned as a tuple."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(f"`{name}` must be a sequence of {what}, got {value!r}")
    return tuple(value)
