"""Ctrl-C always stops the loader: an interrupt the DALI iterator swallows is raised again,
one the caller handled is not, and non-default SIGINT handlers are left alone."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from dali_gridaug.interrupts import surface_interrupts


class Swallowing:
    """Yields n-1 … 0; each ``next`` receives a SIGINT and swallows the KeyboardInterrupt
    (what DALIGenericIterator.__next__ sometimes does)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        if self.n == 0:
            raise StopIteration
        self.n -= 1
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler raises here (or runs and returns)
        except KeyboardInterrupt:
            pass
        return self.n


@pytest.fixture(autouse=True)
def default_sigint() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_swallowed_ctrl_c_stops_the_loop() -> None:
    assert list(Swallowing(3)) == [2, 1, 0]  # control: swallowed, the loop went on
    got = []
    with pytest.raises(KeyboardInterrupt):
        for x in surface_interrupts(Swallowing(3)):
            got.append(x)
    assert got == []  # raised as the first `next` returned, nothing was handed out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_ctrl_c_the_caller_handled_is_not_raised_again() -> None:
    seen: list[object] = []
    for x in surface_interrupts(iter([1, 2, 3])):
        try:
            if x == 1:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
        except KeyboardInterrupt:
            seen.append("caught")
        seen.append(x)
    assert seen == ["caught", 1, 2, 3]


def test_other_handlers_are_left_alone() -> None:
    received: list[int] = []

    def own(signum: int, frame: object) -> None:
        received.append(signum)

    signal.signal(signal.SIGINT, own)
    out = []
    for x in surface_interrupts(Swallowing(2)):  # the handler returns: nothing to raise
        assert signal.getsignal(signal.SIGINT) is own
        out.append(x)
    assert out == [1, 0] and received == [signal.SIGINT] * 2
    assert signal.getsignal(signal.SIGINT) is own
