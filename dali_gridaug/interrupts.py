"""Ctrl-C that always stops the loader.

A ``KeyboardInterrupt`` raised while DALI's PyTorch iterator hands over a batch can be lost
inside it: Python's SIGINT handler runs (seen inside ``torch.from_dlpack`` called by
``DALIGenericIterator.__next__``), the exception never leaves ``__next__``, and the loop
goes on as if nothing happened (one Ctrl-C in ten to twenty on a 2-core machine).
:func:`surface_interrupts` closes that hole without changing what a handled interrupt does.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import TypeVar

T = TypeVar("T")


class _Latch:
    """A SIGINT handler that raises ``KeyboardInterrupt`` like Python's default one and also
    records that it ran, so a swallowed interrupt can be raised again.
    """

    def __init__(self) -> None:
        self.hit = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.hit = True
        raise KeyboardInterrupt


def surface_interrupts(outputs: Iterable[T]) -> Iterator[T]:
    """Iterate ``outputs`` (a DALI iterator); a Ctrl-C during a ``next`` stops the loop.

    Only while Python's default SIGINT handler is installed and this runs in the main
    thread: the handler is replaced by a latching twin for the iteration, an interrupt the
    iterator swallowed is raised again when its ``next`` returns, and the previous handler
    comes back when the iteration ends. Any other handler (the trainer's preemption
    handler, a user's) is left alone.
    """
    it = iter(outputs)
    latch = None
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        latch = _Latch()
        signal.signal(signal.SIGINT, latch)
    try:
        for out in it:
            if latch is not None and latch.hit:
                raise KeyboardInterrupt  # the iterator swallowed the one the handler raised
            yield out
            if latch is not None:
                latch.hit = False  # a Ctrl-C while the caller ran was raised in the caller
    finally:
        if latch is not None and signal.getsignal(signal.SIGINT) is latch:
            try:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            except ValueError:  # closed from another thread (garbage collection)
                pass
