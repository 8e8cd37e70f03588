"""Argument checks that fail at construction, naming the argument, its range and the value."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def check_type(name: str, value: Any, types: type | tuple[type, ...]) -> None:
    """Raise ``TypeError`` unless ``value`` is an instance of ``types`` (bool is not a number)."""
    numeric = types in (int, float, (int, float))
    if not isinstance(value, types) or (numeric and isinstance(value, bool)):
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
    """Raise ``ValueError`` unless ``low ≤ value ≤ high`` (strict where ``*_open``)."""
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


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, choices))}; got {value!r}")


def check_pair(name: str, value: Any, low: float, high: float | None = None) -> tuple[Any, Any]:
    """A ``(min, max)`` pair with ``low ≤ min < max (≤ high)``; returns it as a tuple."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"`{name}` must be a (min, max) pair, got {value!r}")
    lo, hi = value
    check_range(f"{name}[0]", lo, low, high)
    check_range(f"{name}[1]", hi, low, high)
    if not lo < hi:
        raise ValueError(f"`{name}` must satisfy min < max, got {value!r}")
    return lo, hi
