"""``dali-gridaug`` command line: one subcommand per task, each a module's ``main(argv)``.

A subcommand signals a user mistake by raising :class:`~dali_gridaug.errors.UsageError`; the
dispatcher prints it as one line (``dali-gridaug <command>: error: …``) and returns 2.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: subcommand → (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "sample-data": ("dali_gridaug.tools.synthetic", "write the sample JPEG dataset (ImageFolder)"),
    "demo": (
        "dali_gridaug.tools.demo",
        "run the train pipeline on the sample data, save a batch grid",
    ),
    "preview": ("dali_gridaug.tools.preview", "save a labelled grid of augmented samples"),
    "check-data": ("dali_gridaug.tools.check", "report files the pipeline cannot decode"),
    "train": ("dali_gridaug.training", "train a torchvision model (torchrun-ready)"),
    "bench": ("dali_gridaug.bench.run", "throughput benchmarks (JSON + PNG)"),
    "selftest": ("dali_gridaug.bench.selftest", "check this machine's device, sample throughput"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "usage: dali-gridaug [--version] <command> [options]\n\ncommands:\n" + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``dali-gridaug <command> [args]``; returns the exit status."""
    from dali_gridaug import __version__
    from dali_gridaug.errors import UsageError

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--version":
        print(f"dali-gridaug {__version__}")
        return 0
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] not in COMMANDS:
        print(_usage())
        print(f"dali-gridaug: error: unknown command {args[0]!r}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args[0]][0])
    try:
        return int(module.main(args[1:]) or 0)
    except UsageError as exc:
        print(f"dali-gridaug {args[0]}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
