"""``dali-gridaug`` command line: one subcommand per task, each a module's ``main(argv)``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: subcommand → (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "sample-data": ("dali_gridaug.synthetic", "write the sample JPEG dataset (ImageFolder)"),
    "demo": ("dali_gridaug.demo", "run the train pipeline on the sample data, save a batch grid"),
    "preview": ("dali_gridaug.preview", "save a labelled grid of augmented samples"),
    "check-data": ("dali_gridaug.check", "report files the pipeline cannot decode"),
    "train": ("dali_gridaug.train", "train a torchvision model (torchrun-ready)"),
    "bench": ("benchmarks.__main__", "throughput benchmarks"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``dali-gridaug <command> [args]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: dali-gridaug <command> [options]\n\ncommands:\n" + "\n".join(lines))
        return 0 if args and args[0] in ("-h", "--help") else 2
    if args[0] == "bench":
        # benchmarks/ lives beside the package in a source checkout, not inside the wheel
        from pathlib import Path

        checkout = Path(__file__).resolve().parents[1]
        if (checkout / "benchmarks" / "__main__.py").exists():
            sys.path.insert(0, str(checkout))
    module = importlib.import_module(COMMANDS[args[0]][0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
