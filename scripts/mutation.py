"""Run mutation testing and count the outcome: ``python3 scripts/mutation.py [MUTANT ...]``.

Runs ``mutmut run`` (configured in ``pyproject.toml``; extra arguments, e.g. mutant name
globs like ``"dali_gridaug.order.*"``, go to it), then reads every mutant's status with
``mutmut results --all True`` and the equivalent mutants listed, each with its one-line
reason, in ``benchmarks/results/mutation_equivalent.toml``. Prints the survivors nobody
explained, one per line, then one last line::

    mutation: 812 mutants, 790 killed, 3 survived, 19 equivalent, 0 other

("other": timeouts, mutants no test reaches, interrupted ones). Exits 1 when a survivor is
not listed as equivalent. Not in CI: it is slow (README, Tests).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "benchmarks" / "results" / "mutation_equivalent.toml"
LINE = re.compile(r"^\s+(\S+): (\S.*)$")


def statuses() -> dict[str, str]:
    """``{mutant name: mutmut's status}`` for every mutant of the last run."""
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "True"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m[1]: m[2].strip() for m in map(LINE.match, out.splitlines()) if m}


def equivalent() -> dict[str, str]:
    """``{mutant name: why it cannot change behaviour}`` from the equivalents file."""
    if not EQUIVALENT.exists():
        return {}
    return dict(tomllib.loads(EQUIVALENT.read_text())["equivalent"])


def summary(status: dict[str, str], explained: dict[str, str]) -> tuple[str, list[str]]:
    """The last line and the unexplained survivors."""
    counts = Counter()
    unexplained = []
    for name, s in sorted(status.items()):
        if s == "survived" and name in explained:
            counts["equivalent"] += 1
        elif s in ("killed", "survived"):
            counts[s] += 1
            if s == "survived":
                unexplained.append(name)
        else:
            counts["other"] += 1
    line = (
        f"mutation: {len(status)} mutants, {counts['killed']} killed, "
        f"{counts['survived']} survived, {counts['equivalent']} equivalent, "
        f"{counts['other']} other"
    )
    return line, unexplained


def main(argv: list[str]) -> int:
    subprocess.run([sys.executable, "-m", "mutmut", "run", *argv], cwd=ROOT, check=False)
    line, unexplained = summary(statuses(), equivalent())
    for name in unexplained:
        print(f"survived: {name}")
    print(line)
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
