"""The contract every augmentation follows: sample parameters once, apply them in the graph.

``sample`` runs on the host once per batch with an explicit :class:`numpy.random.Generator`
(vectorized over the batch). Its arrays are fed into the DALI graph by one
``external_source`` and drive both the image op (``apply_dali``: DALI's own operators, or
``apply_xp``: an ``xp`` kernel in a ``python_function``) and, as pipeline outputs, the labels.
Keys starting with ``_`` are graph-only (ragged or redundant) and are not emitted.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any, ClassVar, Literal

import numpy as np

from dali_gridaug._validate import check_choice

Backend = Literal["auto", "dali", "kernel"]
Params = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Augment:
    """Base class of the augmentation configs (frozen, validated dataclasses).

    Attributes:
        backend: ``"dali"`` (DALI's own operators), ``"kernel"`` (an ``xp`` kernel run as a
            DALI ``python_function``: CuPy on GPU, NumPy on CPU) or ``"auto"`` (see
            :meth:`resolve_backend`).
    """

    #: True for batch-mixing augmentations (they run last, at most one per pipeline).
    mixing: ClassVar[bool] = False
    #: Parameter keys ``sample`` returns, in a fixed order.
    keys: ClassVar[tuple[str, ...]] = ()
    #: Backends able to express this configuration, fastest on GPU first.
    name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        check_choice("backend", self.backend, ("auto", "dali", "kernel"))
        if self.backend == "dali" and "dali" not in self.backends():
            raise ValueError(
                f"{type(self).__name__}: `backend`='dali' cannot express this configuration "
                f"({self._why_kernel_only()}); use backend='kernel' or 'auto'"
            )

    def backends(self) -> tuple[str, ...]:
        """Backends that can run this configuration, preferred first."""
        return ("dali", "kernel")

    def _why_kernel_only(self) -> str:
        return ""

    def resolve_backend(self) -> str:
        """The backend used: the explicit choice, else the first of :meth:`backends`."""
        return self.backends()[0] if self.backend == "auto" else self.backend

    def check_geometry(self, height: int, width: int, batch_size: int) -> None:
        """Raise ``ValueError`` if the config cannot run on ``height×width`` images in batches
        of ``batch_size`` (called by ``create_loader``).
        """
        if self.mixing and batch_size < 2:
            raise ValueError(
                f"{type(self).__name__} mixes images within a batch: `batch_size` must be ≥ 2, "
                f"got {batch_size}"
            )

    def sample(
        self, rng: np.random.Generator, batch_size: int, height: int, width: int, epoch: int
    ) -> Params:
        """Draw this batch's parameters: arrays with leading dimension ``batch_size``
        (or, for ``_`` keys, per-sample lists).
        """
        raise NotImplementedError

    def apply_dali(self, images: Any, params: dict[str, Any], height: int, width: int) -> Any:
        """Apply with DALI operators to HWC float images (a DataNode)."""
        raise NotImplementedError

    def apply_xp(self, xp: ModuleType, images: Any, params: dict[str, Any]) -> Any:
        """Apply with an ``xp`` kernel to a ``(B, H, W, C)`` float array; returns a new one."""
        raise NotImplementedError


def identity_partner(batch_size: int) -> np.ndarray:
    """``(B,)`` int32 ``[0, 1, …, B−1]``."""
    return np.arange(batch_size, dtype=np.int32)


def to_radians(degrees: np.ndarray) -> np.ndarray:
    """Degrees → radians as float32."""
    return (np.asarray(degrees, np.float64) * (np.pi / 180)).astype(np.float32)
