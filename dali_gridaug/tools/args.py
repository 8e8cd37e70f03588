"""The argument parser every tool command uses (the lowest module of :mod:`dali_gridaug.tools`)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from dali_gridaug.errors import UsageError


class ArgParser(argparse.ArgumentParser):
    """``argparse`` that raises :class:`~dali_gridaug.errors.UsageError` on a bad flag
    instead of printing the usage and exiting, so the dispatcher reports one line, exit 2.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)
