"""A NumPy-backed stand-in for the ``cupy`` module that enforces CuPy's rules without a GPU.

The ``xp`` kernels run on the GPU as CuPy code inside DALI's GPU ``python_function``. CuPy
refuses things NumPy allows, and a kernel that only ever ran on NumPy can break on the first
GPU batch. :class:`StrictCuPy` runs the kernels on NumPy arrays wrapped as device arrays
(:class:`DeviceArray`) and applies these rules:

* **No implicit host conversion.** ``numpy.asarray(a)``/``numpy.array(a)`` of a device array
  raise ``TypeError`` with CuPy's own message.
* **No host synchronisation.** ``int(a)``, ``float(a)``, ``bool(a)``, ``complex(a)``,
  ``operator.index(a)``, ``a.item()``, ``a.tolist()``, ``a.get()``, ``cupy.asnumpy(a)``,
  boolean-mask indexing and the functions of :data:`DATA_DEPENDENT` (their output shape is
  a device value) wait for the GPU. They raise :class:`DeviceSynchronized`, as CuPy does
  inside ``cupyx.allow_synchronize(False)``; a kernel on DALI's GPU stage must never wait for
  the device. :meth:`StrictCuPy.allow_sync` lets them through (still logged).
* **No host arrays in device ops.** A ``numpy.ndarray`` operand of a device function, ufunc
  or operator raises :class:`HostArrayInDeviceOp` (CuPy never uploads implicitly there).
  NumPy arrays used as an index, or assigned into a device array, are uploaded as CuPy does
  and logged.
* **Only CuPy's API.** ``xp.name``, ``array.name`` or a NumPy function called on a device
  array that CuPy lacks raises :class:`MissingCuPyAPI`. The allowed names are a list of
  what CuPy 13 provides (:data:`CUPY_FUNCTIONS`, :data:`NDARRAY_ATTRIBUTES`, kept in
  :mod:`tests.oracles.cupy_api`); it is a subset, so a refusal may name a real but
  unlisted CuPy function (add it to the list).

The allowed names and the error classes live in :mod:`tests.oracles.cupy_api`; the
names of ``__all__`` are importable from here. ``cupy.random`` is :class:`RandomModule`:
``RandomState`` draws NumPy's numbers as device arrays; every other ``cupy.random`` name is known
but not emulated.

Every violation, sync and host→device upload is appended to :attr:`StrictCuPy.events`.
Install the stand-in as ``cupy`` (:meth:`StrictCuPy.installed`) so that the project's own
``get_xp`` dispatch picks it up exactly as it would pick up CuPy.

What it cannot check: GPU kernels, streams, memory, speed, and CuPy's own random numbers
(``cupy.random`` draws NumPy's numbers here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np

from tests.oracles.cupy_api import (
    CUPY_FUNCTIONS,
    CUPY_RANDOM,
    DATA_DEPENDENT,
    NDARRAY_ATTRIBUTES,
    RANDOM_STATE_METHODS,
    CuPyRuleError,
    DeviceSynchronized,
    HostArrayInDeviceOp,
    ImplicitHostConversion,
    MissingCuPyAPI,
)


def _reads_shape(xp: StrictCuPy, name: str, function: Any) -> Any:
    def reading(*args: Any, **kwargs: Any) -> Any:
        xp._sync(f"cupy.{name} (its shape is a device value)")
        return function(*args, **kwargs)

    return reading


@dataclasses.dataclass(frozen=True)
class Event:
    """One logged event.

    Attributes:
        kind: ``"sync"`` (a host read of device data), ``"upload"`` (host→device copy) or
            ``"violation"`` (a rule broken; the matching error was raised).
        what: what happened, e.g. ``"int()"`` or ``"cupy.asarray(ndarray (6,))"``.
        where: ``path:line`` of the innermost frame outside this module.
    """

    kind: str
    what: str
    where: str


def _where() -> str:
    for frame in reversed(traceback.extract_stack()):
        if frame.filename != __file__:
            return f"{frame.filename}:{frame.lineno}"
    return "?"


class DeviceArray:
    """A device array of the stand-in: a NumPy array that follows ``cupy.ndarray``'s rules."""

    __array_priority__ = 1000
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, data: np.ndarray, xp: StrictCuPy) -> None:
        self._d, self._xp = data, xp

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        self._xp._fail(
            ImplicitHostConversion,
            "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
            "construct a NumPy array explicitly.",
        )

    def _read(self, what: str) -> np.ndarray:
        self._xp._sync(what)
        return self._d

    def __int__(self) -> int:
        return int(self._read("int()"))

    def __index__(self) -> int:
        return self._read("operator.index()").__index__()

    def __float__(self) -> float:
        return float(self._read("float()"))

    def __complex__(self) -> complex:
        return complex(self._read("complex()"))

    def __bool__(self) -> bool:
        return bool(self._read("bool()"))

    def item(self) -> Any:
        return self._read(".item()").item()

    def tolist(self) -> Any:
        return self._read(".tolist()").tolist()

    def get(self, stream: Any = None, order: str = "C", out: Any = None) -> np.ndarray:
        return self._read(".get()").copy()

    def __len__(self) -> int:
        return len(self._d)

    def __iter__(self) -> Iterator[DeviceArray]:
        return (self._xp._wrap(np.asarray(v)) for v in self._d)

    def __repr__(self) -> str:
        return f"DeviceArray({self._d!r})"

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self._d.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._d.__dlpack_device__()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # protocol probes (numpy, copy, pickle): plainly absent
            raise AttributeError(name)
        if name not in NDARRAY_ATTRIBUTES:
            self._xp._fail(MissingCuPyAPI, f"'cupy.ndarray' object has no attribute {name!r}")
        attr = getattr(self._d, name)
        if not callable(attr):
            return self._xp._wrap(attr)
        if name in DATA_DEPENDENT:
            self._xp._sync(f"ndarray.{name} (its shape is a device value)")

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._xp._wrap(attr(*self._xp._unwrap(args), **self._xp._unwrap(kwargs)))

        return method

    def __getitem__(self, index: Any) -> DeviceArray:
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(i, DeviceArray) and i.dtype == bool and i.ndim for i in parts):
            self._xp._sync("boolean-mask indexing (its shape is a device value)")
        return self._xp._wrap(self._d[self._xp._unwrap(index, upload="index")])

    def __setitem__(self, index: Any, value: Any) -> None:
        xp = self._xp
        self._d[xp._unwrap(index, upload="index")] = xp._unwrap(value, upload="value")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method != "__call__" or ufunc.__name__ not in CUPY_FUNCTIONS:
            self._xp._fail(MissingCuPyAPI, f"numpy.{ufunc.__name__}.{method}: not in cupy")
        return self._xp._call(ufunc, inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func.__name__ not in CUPY_FUNCTIONS:
            self._xp._fail(
                MissingCuPyAPI,
                f"numpy.{func.__name__} on a device array: cupy has no {func.__name__}",
            )
        return self._xp._call(func, args, kwargs)


def _operator(name: str) -> Any:
    def op(self: DeviceArray, *others: Any) -> Any:
        return self._xp._call(getattr(np.ndarray, name), (self, *others), {})

    op.__name__ = name
    return op


_OPERATORS = "add sub mul truediv floordiv mod pow and or xor lshift rshift matmul".split()
for _name in _OPERATORS:
    for _dunder in (f"__{_name}__", f"__r{_name}__", f"__i{_name}__"):
        setattr(DeviceArray, _dunder, _operator(_dunder))
_UNARY_AND_COMPARISONS = "lt le gt ge eq ne neg pos abs invert".split()
for _dunder in (f"__{_name}__" for _name in _UNARY_AND_COMPARISONS):
    setattr(DeviceArray, _dunder, _operator(_dunder))
DeviceArray.__module__, DeviceArray.__qualname__ = "cupy", "ndarray"


class StrictCuPy:
    """The ``cupy`` module stand-in (see the module docstring for its rules).

    Attributes:
        events: every sync, upload and violation, in order.
    """

    __name__ = "cupy"
    ndarray = DeviceArray

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.random = RandomModule(self)
        self._sync_allowed = False

    # -- the log --------------------------------------------------------------------------

    def of(self, kind: str) -> list[Event]:
        """The events of one ``kind``."""
        return [e for e in self.events if e.kind == kind]

    def _fail(self, error: type[CuPyRuleError], message: str) -> Any:
        where = _where()
        self.events.append(Event("violation", f"{error.__name__}: {message}", where))
        raise error(f"{message} (under the CuPy rules stand-in, at {where})")

    def _sync(self, what: str) -> None:
        if not self._sync_allowed:
            message = f"{what} on a device array waits for the GPU (a device→host read)"
            self._fail(DeviceSynchronized, message + "; keep the value on the device")
        self.events.append(Event("sync", what, _where()))

    def _upload(self, what: str) -> None:
        self.events.append(Event("upload", what, _where()))

    @contextlib.contextmanager
    def allow_sync(self) -> Iterator[None]:
        """Let host reads through (logged as ``"sync"`` events), like
        ``cupyx.allow_synchronize(True)``.
        """
        before, self._sync_allowed = self._sync_allowed, True
        try:
            yield
        finally:
            self._sync_allowed = before

    @contextlib.contextmanager
    def installed(self) -> Iterator[StrictCuPy]:
        """Make ``import cupy`` return this stand-in inside the block."""
        saved = sys.modules.get("cupy")
        sys.modules["cupy"] = self  # type: ignore[assignment]
        try:
            yield self
        finally:
            if saved is None:
                sys.modules.pop("cupy", None)
            else:
                sys.modules["cupy"] = saved

    # -- conversions ----------------------------------------------------------------------

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, (np.ndarray, np.generic)):  # CuPy returns 0-d arrays
            return DeviceArray(np.asarray(value), self)
        if isinstance(value, (tuple, list)):
            return type(value)(self._wrap(v) for v in value)
        return value

    def _unwrap(self, value: Any, upload: str | None = None) -> Any:
        if isinstance(value, DeviceArray):
            return value._d
        if isinstance(value, np.ndarray):
            if upload is None:
                self._fail(
                    HostArrayInDeviceOp,
                    f"a host numpy.ndarray {value.dtype}"
                    f"{value.shape} is an operand of a device op; "
                    "upload it with cupy.asarray",
                )
            self._upload(f"numpy.ndarray {value.dtype}{value.shape} as {upload}")
            return value
        if isinstance(value, (tuple, list)):
            return type(value)(self._unwrap(v, upload) for v in value)
        if isinstance(value, dict):
            return {k: self._unwrap(v, upload) for k, v in value.items()}
        return value

    def _call(self, fn: Any, args: Any, kwargs: Any) -> Any:
        return self._wrap(fn(*self._unwrap(args), **self._unwrap(kwargs)))

    # -- the explicit transfers -----------------------------------------------------------

    def asarray(self, a: Any, dtype: Any = None, order: Any = None) -> DeviceArray:
        """Device array of ``a``; an upload (logged) unless ``a`` already is one."""
        if isinstance(a, DeviceArray):
            return self._wrap(np.asarray(a._d, dtype=dtype, order=order))
        if isinstance(a, (list, tuple)) and any(isinstance(v, DeviceArray) for v in a):
            self._fail(
                ImplicitHostConversion,
                "cupy.asarray of a sequence holding device arrays; use cupy.stack",
            )
        host = np.asarray(a, dtype=dtype, order=order)
        self._upload(f"cupy.asarray({type(a).__name__} {host.dtype}{host.shape})")
        return self._wrap(host)

    array = asarray

    def asnumpy(self, a: Any, stream: Any = None) -> np.ndarray:
        """Host copy of ``a`` (a sync for a device array)."""
        return a.get() if isinstance(a, DeviceArray) else np.asarray(a)

    def from_dlpack(self, x: Any) -> DeviceArray:
        """Zero-copy device array of a DLPack producer."""
        return self._wrap(np.from_dlpack(x))

    def device(self, data: np.ndarray) -> DeviceArray:
        """``data`` as a device array that is already on the GPU (no upload logged): what
        DALI hands a GPU ``python_function``.
        """
        return DeviceArray(np.array(data, copy=True), self)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # import-system probes (__spec__, __path__): plainly absent
            raise AttributeError(name)
        if name not in CUPY_FUNCTIONS:
            self._fail(MissingCuPyAPI, f"module 'cupy' has no attribute {name!r}")
        obj = getattr(np, name)
        if isinstance(obj, type) or not callable(obj):
            return obj  # dtypes and constants

        def function(*args: Any, **kwargs: Any) -> Any:
            return self._call(obj, args, kwargs)

        function.__name__ = name
        if name in DATA_DEPENDENT:
            return _reads_shape(self, name, function)
        return function


# -- cupy.random ----------------------------------------------------------------------------


class StandInRandomState:
    """``cupy.random.RandomState`` with NumPy's numbers; the seed must be a host integer."""

    def __init__(self, xp: StrictCuPy, seed: Any) -> None:
        self._xp, self._rng = xp, np.random.default_rng(seed)

    def standard_normal(self, size: Any = None, dtype: Any = float) -> DeviceArray:
        return self._xp._wrap(self._rng.standard_normal(size).astype(dtype))

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None, dtype: Any = float):
        return self._xp._wrap(self._rng.uniform(low, high, size).astype(dtype))

    def __getattr__(self, name: str) -> Any:
        if name not in RANDOM_STATE_METHODS:
            self._xp._fail(MissingCuPyAPI, f"cupy.random.RandomState has no attribute {name!r}")
        raise NotImplementedError(f"the stand-in does not emulate RandomState.{name}")


class RandomModule:
    """The stand-in's ``cupy.random``: ``RandomState`` is emulated, any other name of
    :data:`CUPY_RANDOM` raises ``NotImplementedError`` and a name CuPy lacks raises
    :class:`MissingCuPyAPI`.
    """

    def __init__(self, xp: StrictCuPy) -> None:
        self._xp = xp

    def RandomState(self, seed: Any = None) -> StandInRandomState:  # noqa: N802 (CuPy's name)
        if isinstance(seed, self._xp.ndarray):  # CuPy converts it with int(): a sync
            seed = int(seed)
        return StandInRandomState(self._xp, seed)

    def __getattr__(self, name: str) -> Any:
        if name not in CUPY_RANDOM:
            self._xp._fail(MissingCuPyAPI, f"module 'cupy.random' has no attribute {name!r}")
        raise NotImplementedError(f"the stand-in does not emulate cupy.random.{name}")


__all__ = [
    "CUPY_FUNCTIONS",
    "NDARRAY_ATTRIBUTES",
    "CuPyRuleError",
    "DeviceArray",
    "DeviceSynchronized",
    "Event",
    "HostArrayInDeviceOp",
    "ImplicitHostConversion",
    "MissingCuPyAPI",
    "RandomModule",
    "StandInRandomState",
    "StrictCuPy",
]
