"""A bad validation file costs no training work: checked before epoch 0 (the result cached in
``OUT``) or, with ``--no-check-val``, reported when evaluation meets it; either way the file is
named, evaluation runs over the other files and training goes on. The run prints its class
count and writes nothing outside ``--out``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dali_gridaug.tools import make_sample_dataset
from dali_gridaug.training.checkpoint import checkpoint_name, list_checkpoints
from dali_gridaug.training.cli import main
from dali_gridaug.training.metrics import read_sample_log

RECIPE = """
description = "bad val test"
[model]
name = "mobilenet_v3_small"
[schedule]
epochs = 2
[data]
image_size = 32
batch_size = 8
"""
CLASSES, STEPS, VAL = 4, 5, 4 * 6


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("badval_data")
    paths = make_sample_dataset(
        root, num_classes=CLASSES, train_per_class=10, val_per_class=6, size_range=(40, 56)
    )
    bad = sorted(paths["val"].rglob("*.jpg"))[3]
    bad.write_bytes(bad.read_bytes()[:200])  # truncated: DALI's error names no file
    (root / "recipe.toml").write_text(RECIPE)
    return {**paths, "bad": bad}


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("check", ["--check-val", "--no-check-val"])
@pytest.mark.slow
def test_bad_val_file_costs_no_training(
    data: dict[str, Path],
    tmp_path: Path,
    check: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = _tree(data["train"].parent)
    argv = [
        "--train",
        str(data["train"]),
        "--val",
        str(data["val"]),
        "--recipe",
        str(data["train"].parent / "recipe.toml"),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--workers",
        "1",
        "--torch-threads",
        "1",
        "--log-samples",
        "--no-progress",
        check,
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"{CLASSES} classes" in err
    assert str(data["bad"]) in err  # the file is named
    if check == "--check-val":
        assert f"leaving out 1 file(s) the pipeline cannot decode: {data['bad']}" in err
        assert json.loads((out / "val_check.json").read_text())["bad"] == [str(data["bad"])]
    else:
        assert f"validation: cannot decode {data['bad']}; evaluating without it" in err
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["val_images"] for r in rows] == [VAL - 1, VAL - 1]  # every other file, once
    steps = [(e, s) for e, s, _ in read_sample_log(out / "samples" / "rank0.tsv")]
    assert steps == [(e, s) for e in range(2) for s in range(STEPS)]  # no step lost or redone
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == [
        checkpoint_name(1, 0),
        checkpoint_name(2, 0),
    ]
    assert _tree(data["train"].parent) == before and _tree(cwd) == []  # only OUT written
