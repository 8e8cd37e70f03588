"""``--resume auto`` after faults: a torn newest checkpoint is reported, moved aside and the
newest valid one is used; stale temporary files left by a crash or a full disk are removed
first; too little disk space is a clear error naming the folder, the bytes needed and free,
and after it the run resumes from the newest valid checkpoint. The full disk is real: a
small tmpfs filled by a leftover temporary file (skipped where tmpfs cannot be mounted), and
the ``--ckpt-reserve-mb`` threshold everywhere."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from dali_gridaug.training.checkpoint import checkpoint_name, list_checkpoints
from dali_gridaug.training.cli import main
from dali_gridaug.training.metrics import read_sample_log
from tests.helpers import train_argv, training_data_fixture

RECIPE = """
description = "resume faults test"
[model]
name = "mobilenet_v3_small"
[schedule]
epochs = 1
[data]
image_size = 32
batch_size = 8
"""
STEPS = 10  # 80 files // 8


SIZES = dict(num_classes=4, train_per_class=20, val_per_class=2, size_range=(40, 56))
data = training_data_fixture("faults_data", RECIPE, **SIZES)


def _steps(out: Path) -> list[tuple[int, int]]:
    return [(e, s) for e, s, _ in read_sample_log(out / "samples" / "rank0.tsv")]


def test_torn_newest_falls_back_to_newest_valid(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(train_argv(data, tmp_path, "--ckpt-every-steps", "3", "--keep-last", "100")) == 0
    folder = tmp_path / "checkpoints"
    names = [checkpoint_name(0, 3), checkpoint_name(0, 6), checkpoint_name(0, 9)]
    assert [p.name for p in list_checkpoints(folder)] == [*names, checkpoint_name(1, 0)]
    final = folder / checkpoint_name(1, 0)
    final.write_bytes(final.read_bytes()[: final.stat().st_size // 2])  # torn
    (folder / names[2]).write_bytes(b"")  # zero bytes
    stale = folder / f".{checkpoint_name(1, 0)}.tmp4242"
    stale.write_bytes(b"\0" * 1000)
    capsys.readouterr()

    assert main(train_argv(data, tmp_path, "--resume", "auto", "--keep-last", "100")) == 0
    err = capsys.readouterr().err
    assert f"removed {stale} (1000 bytes)" in err
    assert f"skipping torn checkpoint {checkpoint_name(1, 0)}" in err
    assert f"skipping torn checkpoint {names[2]}" in err
    assert f"resumed from {names[1]}" in err
    assert not stale.exists() and (folder / f"{names[2]}.torn").exists()
    steps = _steps(tmp_path)
    assert steps[STEPS:] == [(0, s) for s in range(6, STEPS)]  # continued after step 6
    assert torch.load(final, weights_only=True)["epoch"] == 1  # rewritten whole


@pytest.mark.slow
def test_reserve_threshold_error_then_resume(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(train_argv(data, tmp_path, "--ckpt-every-steps", "4")) == 0
    folder = tmp_path / "checkpoints"
    before = [p.name for p in list_checkpoints(folder)]
    capsys.readouterr()
    more = ["--resume", "auto", "--epochs", "2", "--ckpt-every-steps", "4"]
    assert main(train_argv(data, tmp_path, *more, "--ckpt-reserve-mb", "1e9")) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"dali-gridaug train: error: not enough free space in {folder}")
    found = re.search(r"need (\d+) bytes \((\d+) checkpoint \+ (\d+) reserve\), (\d+) free", err)
    assert found, err
    need, size, reserve, free = map(int, found.groups())
    assert need == size + reserve > free and reserve == 10**9 * 2**20
    assert [p.name for p in list_checkpoints(folder)] == before  # nothing lost or torn
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    assert main(train_argv(data, tmp_path, *more)) == 0
    assert _steps(tmp_path)[-STEPS:] == [(1, s) for s in range(STEPS)]


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path: Path, leave: int = 0) -> None:
    """Write zeros to ``path`` until the disk is full (a real ENOSPC), then give back
    ``leave`` bytes (room for small files, not for a checkpoint)."""
    with open(path, "wb", buffering=0) as f:
        for chunk in (2**20, 4096):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
        if leave:
            f.truncate(max(0, f.tell() - leave))


@pytest.mark.slow
def test_disk_full_on_tmpfs(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _tmpfs(tmp_path / "disk", "64m") as disk:
        out = disk / "run"
        assert main(train_argv(data, out, "--ckpt-every-steps", "5", "--keep-last", "1")) == 0
        folder = out / "checkpoints"
        assert [p.name for p in list_checkpoints(folder)] == [checkpoint_name(1, 0)]
        # a writer that crashed with ENOSPC left its temporary file, and the disk is full
        stale = folder / f".{checkpoint_name(1, 5)}.tmp{os.getpid() + 1}"
        with contextlib.suppress(OSError):
            _fill(stale)
        assert os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize < 2**20
        more = ["--resume", "auto", "--epochs", "2", "--ckpt-every-steps", "5", "--keep-last", "1"]
        capsys.readouterr()
        assert main(train_argv(data, out, *more)) == 0  # the stale file is removed first
        err = capsys.readouterr().err
        assert f"removed {stale}" in err and f"resumed from {checkpoint_name(1, 0)}" in err
        assert [p.name for p in list_checkpoints(folder)] == [checkpoint_name(2, 0)]

        # a full disk that is not ours: a clear error, the newest checkpoint stays valid
        _fill(disk / "filler.bin", leave=2**18)
        more[3] = "3"
        assert main(train_argv(data, out, *more)) == 1
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"not enough free space in {folder}" in err and "free" in err, err
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]
        (disk / "filler.bin").unlink()
        assert main(train_argv(data, out, *more)) == 0
        assert f"resumed from {checkpoint_name(2, 0)}" in capsys.readouterr().err
        assert torch.load(folder / checkpoint_name(3, 0), weights_only=True)["epoch"] == 3
