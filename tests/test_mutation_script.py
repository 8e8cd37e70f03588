"""``scripts/mutation.py``'s count: a listed equivalent survivor is not an unexplained one,
and the last line gives killed, survived and equivalent (issue 23's acceptance line)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "mutation.py"


@pytest.fixture(scope="module")
def mutation():
    spec = importlib.util.spec_from_file_location("mutation_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_counts_each_outcome(mutation) -> None:
    status = {
        "a__mutmut_1": "killed",
        "a__mutmut_2": "survived",
        "b__mutmut_1": "survived",
        "b__mutmut_2": "timeout",
        "c__mutmut_1": "killed",
    }
    line, unexplained = mutation.summary(status, {"b__mutmut_1": "same value"})
    assert line == "mutation: 5 mutants, 2 killed, 1 survived, 1 equivalent, 1 other"
    assert unexplained == ["a__mutmut_2"]


def test_results_lines_are_parsed(mutation) -> None:
    m = mutation.LINE.match("    dali_gridaug.order.x_epoch_order__mutmut_3: survived")
    assert m and m[1] == "dali_gridaug.order.x_epoch_order__mutmut_3" and m[2] == "survived"


def test_the_equivalents_file_gives_a_reason_for_each(mutation) -> None:
    for name, reason in mutation.equivalent().items():
        assert "__mutmut_" in name and len(reason) > 10, (name, reason)
