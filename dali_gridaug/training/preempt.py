"""Stopping on a signal without losing work, and time-based checkpoints.

Cluster schedulers (Slurm preemption and time limits, Kubernetes pod eviction, ``torchrun``
shutting its workers down) send ``SIGTERM`` and wait a grace period (``torchrun``: 30 s,
Kubernetes: 30 s by default, Slurm: ``KillWait``, 30 s by default) before ``SIGKILL``.
:class:`Preemption` turns ``SIGTERM`` and ``SIGINT`` into a request the training loop honours
at the next step boundary: it finishes the current step, writes a checkpoint and exits with
status ``128 + signal`` (143 for ``SIGTERM``, 130 for ``SIGINT``), the status a process
killed by that signal reports. A zero status would tell a scheduler the job is complete (a
Kubernetes Job would not restart it); 143 marks it as terminated, so a requeue or restart
policy runs it again, and ``--resume auto`` continues where it stopped. A second signal
takes the previous handler's action (``SIGINT``: ``KeyboardInterrupt``; ``SIGTERM``: the
default, immediate termination).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator


class Preemption:
    """Records the first ``SIGTERM``/``SIGINT`` while installed (see :meth:`installed`).

    Attributes:
        signum: the signal received, or None.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signum is not None

    @property
    def name(self) -> str:
        """The signal's name (``"SIGTERM"``), or ``""``."""
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_status(self) -> int:
        """``128 + signal`` after a stop signal, else 0."""
        return 128 + self.signum if self.signum is not None else 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[Preemption]:
        """Handle the stop signals inside the ``with`` block; the previous handlers come back
        after it (and after the first signal, for the second one). A no-op outside the main
        thread, where Python cannot install signal handlers.
        """
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in self.SIGNALS}

        def handler(signum: int, frame: object) -> None:
            self.signum = signum
            signal.signal(signum, previous[signum])

        for s in self.SIGNALS:
            signal.signal(s, handler)
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


class CheckpointTimer:
    """Says when ``minutes`` have passed since the last checkpoint (never when ``minutes``
    is 0).
    """

    def __init__(self, minutes: float) -> None:
        self.interval = minutes * 60.0 if minutes > 0 else None
        self.reset()

    def reset(self) -> None:
        """Start the interval again (call it after every checkpoint)."""
        self.last = time.monotonic()

    def due(self) -> bool:
        """True when the interval has passed."""
        return self.interval is not None and time.monotonic() - self.last >= self.interval
