"""Host↔device synchronisation audit of per-batch torch code, without a GPU.

On a GPU the host queues kernels and runs ahead of the device; any operation that needs a
result on the host stops it until the device has caught up. :class:`SyncAudit` is a
``TorchDispatchMode`` that sees every ATen op the audited code runs and records those that
block the host on CUDA:

* ``"scalar_read"``: ``aten._local_scalar_dense`` (``.item()``, ``int()``, ``float()``,
  ``bool()``, ``.tolist()``, ``if tensor:``) or ``aten.equal`` on a device tensor;
* ``"blocking_copy"``: a host↔device ``_to_copy``/``copy_`` with ``non_blocking=False``;
* ``"pageable_copy"``: a non-blocking host→device copy out of memory that is not pinned, or
  device→host into it (CUDA stages pageable memory synchronously);
* ``"data_dependent_shape"``: an op whose output shape depends on tensor values
  (``nonzero``, ``masked_select``, ``unique``, ``bincount``, ``repeat_interleave`` without
  ``output_size``, boolean-mask indexing and assignment), which must read a count back.

Device tensors come from :func:`fake_cuda`: torch's ``FakeTensorMode`` with CUDA tensors that
carry shapes, dtypes and devices but no data, so the audit runs on a machine without a GPU
(autocast and ``GradScaler`` for ``"cuda"`` work inside it). A scalar read on a fake
tensor returns a stand-in value (1, 1.0 or True) so the code runs on, and is recorded.
Data-dependent shapes cannot be faked: the audit records them, then raises
:class:`HostSyncError`.

Autograd's engine needs a CUDA context for CUDA tensors, even fake ones, so code that runs a
backward pass is audited with ``device_types=("cpu",)``: real CPU tensors stand for device
tensors (every tensor of a training step lives on the GPU), every scalar read and
data-dependent shape counts, and copies are out of scope there (host and "device" are one
memory). The ops a step runs do not depend on the device type; autocast's casts do.

*Per batch* means: the ops one call of the audited function runs, for one batch. Reads that
the caller makes only every N batches (a progress bar every ``--log-every`` steps, epoch
metrics, checkpoints) belong inside :meth:`SyncAudit.allowed` with the reason; they are kept
in :attr:`SyncAudit.events` with that reason and left out of :attr:`SyncAudit.syncs`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import traceback
import weakref
from collections.abc import Iterator, Sequence
from typing import Any
from unittest import mock

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
_DATA_DEPENDENT = {
    aten.nonzero.default,
    aten.masked_select.default,
    aten._unique.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
    aten.bincount.default,
}
_INDEXING = {
    aten.index.Tensor,
    aten.index_put.default,
    aten.index_put_.default,
    aten._index_put_impl_.default,
}
_SKIP_DIRS = tuple(
    os.path.dirname(m.__file__) + os.sep
    for m in (torch, contextlib, sys.modules.get("torchvision"))
    if m is not None and m.__file__
)


class HostSyncError(RuntimeError):
    """A data-dependent output shape: the fake run cannot go on past it."""


@dataclasses.dataclass(frozen=True)
class SyncEvent:
    """One host-blocking op.

    Attributes:
        kind: ``"scalar_read"``, ``"blocking_copy"``, ``"pageable_copy"`` or
            ``"data_dependent_shape"``.
        op: the ATen op and what it did, e.g. ``"aten._to_copy cpu->cuda"``.
        site: ``path:line  source`` of the innermost frame outside torch and this module.
        allowed: the reason given to :meth:`SyncAudit.allowed`, or None (a per-batch sync).
    """

    kind: str
    op: str
    site: str
    allowed: str | None = None

    def __str__(self) -> str:
        tag = f" [allowed: {self.allowed}]" if self.allowed else ""
        return f"{self.kind}: {self.op} at {self.site}{tag}"


def _site() -> str:
    for frame in reversed(traceback.extract_stack()):
        name = frame.filename
        if name != __file__ and not name.startswith(_SKIP_DIRS) and "<frozen" not in name:
            return f"{name}:{frame.lineno}  {(frame.line or '').strip()[:80]}"
    return "?"


def _is_fake(t: Any) -> bool:
    return type(t).__name__ == "FakeTensor"


class SyncAudit(TorchDispatchMode):
    """Records every host-blocking op run inside ``with audit:`` (see the module docstring).

    Args:
        device_types: device types whose tensors count as device tensors: ``("cuda",)``
            under :func:`fake_cuda`, ``("cpu",)`` where CPU tensors stand for device tensors
            (code with a backward pass).

    Attributes:
        events: every host-blocking op, in order, allowed ones included.
    """

    def __init__(self, device_types: Sequence[str] = ("cuda",)) -> None:
        super().__init__()
        self.device_types = frozenset(device_types)
        self.events: list[SyncEvent] = []
        self._allowed: list[str] = []
        self._pinned: dict[int, weakref.ref] = {}

    @property
    def syncs(self) -> list[SyncEvent]:
        """The per-batch syncs: events outside every :meth:`allowed` block."""
        return [e for e in self.events if e.allowed is None]

    @contextlib.contextmanager
    def allowed(self, reason: str) -> Iterator[None]:
        """Mark syncs inside the block as allowed for ``reason`` (e.g. ``"every --log-every
        steps"``); they stay in :attr:`events`.
        """
        self._allowed.append(reason)
        try:
            yield
        finally:
            self._allowed.pop()

    def report(self) -> str:
        """One line per event (``"no host syncs"`` when there are none)."""
        return "\n".join(map(str, self.events)) or "no host syncs"

    def assert_no_syncs(self, what: str) -> None:
        """Raise ``AssertionError`` listing the per-batch syncs of ``what``, if any."""
        if self.syncs:
            lines = "\n  ".join(map(str, self.syncs))
            raise AssertionError(f"{what}: {len(self.syncs)} host sync(s) per batch:\n  {lines}")

    # -- the dispatch hook -----------------------------------------------------------------

    def _record(self, kind: str, op: str) -> SyncEvent:
        event = SyncEvent(kind, op, _site(), self._allowed[-1] if self._allowed else None)
        self.events.append(event)
        return event

    def _on_device(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t.device.type in self.device_types

    def _pinned_tensor(self, t: torch.Tensor) -> bool:
        ref = self._pinned.get(id(t))
        return ref is not None and ref() is t

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in (aten._pin_memory.default, aten.pin_memory.default):
            out = args[0].clone()  # no CUDA driver to pin with: a copy that counts as pinned
            self._pinned[id(out)] = weakref.ref(out)
            return out
        if func is aten.is_pinned.default:
            return self._pinned_tensor(args[0])
        if func in (aten._local_scalar_dense.default, aten.equal.default):
            if self._on_device(args[0]):
                self._record("scalar_read", f"{func.__name__} ({args[0].dtype})")
            if _is_fake(args[0]):
                return _stand_in_scalar(args[0].dtype) if func is not aten.equal.default else True
        elif func in (aten._to_copy.default, aten.copy_.default):
            self._check_copy(func, args, kwargs)
        elif self._data_dependent(func, args, kwargs) and self._on_device(args[0]):
            event = self._record("data_dependent_shape", func.__name__)
            if any(_is_fake(a) for a in args if isinstance(a, torch.Tensor)):
                raise HostSyncError(f"{event} (the fake run cannot go on)")
        return func(*args, **kwargs)

    @staticmethod
    def _data_dependent(func: Any, args: Any, kwargs: Any) -> bool:
        if func in _DATA_DEPENDENT:
            return True
        if func is aten.repeat_interleave.Tensor:
            return kwargs.get("output_size") is None
        if func in _INDEXING:
            index = args[1] if len(args) > 1 else kwargs.get("indices", ())
            return any(
                isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in index
            )
        return False

    def _check_copy(self, func: Any, args: Any, kwargs: Any) -> None:
        if func is aten.copy_.default:
            dst, src = args[0], args[1]
            blocking = not (args[2] if len(args) > 2 else kwargs.get("non_blocking", False))
            dst_type = dst.device.type
        else:
            dst, src = None, args[0]
            blocking = not kwargs.get("non_blocking", False)
            dst_type = torch.device(kwargs.get("device") or src.device).type
        src_type = src.device.type
        if (src_type in self.device_types) == (dst_type in self.device_types):
            return  # host→host or device→device
        op = f"aten.{func.__name__} {src_type}->{dst_type}"
        if blocking:
            self._record("blocking_copy", op + ", non_blocking=False")
        elif src_type not in self.device_types and not self._pinned_tensor(src):
            self._record("pageable_copy", op + " from pageable (not pinned) memory")
        elif dst is not None and dst_type not in self.device_types and not self._pinned_tensor(dst):
            self._record("pageable_copy", op + " into pageable (not pinned) memory")


def _stand_in_scalar(dtype: torch.dtype) -> Any:
    if dtype == torch.bool:
        return True
    return 1.0 if dtype.is_floating_point or dtype.is_complex else 1


@contextlib.contextmanager
def fake_cuda() -> Iterator[Any]:
    """A ``FakeTensorMode`` in which ``device="cuda"`` works without a GPU (real tensors
    may be passed in; ``.to("cuda")`` of one gives a fake CUDA tensor), with autocast and
    ``GradScaler`` for ``"cuda"`` enabled (they check for a CUDA device).

    Yields:
        The fake mode (``mode.from_tensor`` makes fake copies).
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    amp = "torch.cuda.amp.common.amp_definitely_not_available"
    with (
        mock.patch(amp, return_value=False),
        mock.patch("torch.cuda.is_bf16_supported", return_value=True),
        mode,
    ):
        yield mode


def to_device(tree: Any, device: str | torch.device = "cuda") -> Any:
    """``tree`` (a tensor, or a dict/list/tuple of them) with every tensor moved to
    ``device``; inside :func:`fake_cuda` this makes fake CUDA tensors. Call it outside an
    audit: it is the set-up, not the audited code.
    """
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {k: to_device(v, device) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_device(v, device) for v in tree)
    return tree


__all__ = ["HostSyncError", "SyncAudit", "SyncEvent", "fake_cuda", "to_device"]
