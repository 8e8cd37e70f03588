"""timm's own ``train.py`` with the three-statement edit of ``examples/timm_train/train.patch``
(one import, the train and the eval loader) trains and evaluates on the CPU, single process
and on 2 gloo ranks under ``torchrun``, with timm's DeiT-style recipe (RandAugment, Mixup +
CutMix, RandomErasing, ``--mixup-off-epoch``); each epoch's evaluation reads every val image
exactly once over the ranks. The script is supplied by path (``tests/timm_train.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dali_gridaug.tools import make_sample_dataset
from tests.test_examples import apply_patch
from tests.timm_train import PATCH, REPO, timm_train_path

#: timm's DDP call passes ``device_ids=[device]``, which torch refuses for a CPU module; the
#: line is timm's, so the test (not the patch users apply) changes it.
DDP_LINE = "task.prepare_distributed(device_ids=[device],"
DDP_CPU = "task.prepare_distributed(device_ids=None if device.type == 'cpu' else [device],"

#: Logs each eval batch's sample indices (rank, epoch) and runs the script's main().
_RUNNER = """
import importlib.util, os, sys
import dali_gridaug.timm_loader as tl
from dali_gridaug.loader import DaliLoader
log = open(os.path.join(os.environ["EVAL_LOG"], f"rank{os.environ.get('RANK', '0')}.txt"), "a")
class Logged(DaliLoader):
    def __iter__(self):
        for batch in super().__iter__():
            log.write(f"{batch.epoch} " + " ".join(map(str, batch.index.tolist())) + "\\n")
            log.flush()
            yield batch
def logged(*a, **k):
    loader = tl.create_loader(tl.dataset_source(a[0]), **tl.loader_options(*a[1:], **k))
    if not k["is_training"]:
        loader.__class__ = Logged
    return loader
tl.timm_loader = logged
path = sys.argv[1]
spec = importlib.util.spec_from_file_location("timm_train_patched", path)
main = importlib.util.module_from_spec(spec)
spec.loader.exec_module(main)
sys.argv = [path, *sys.argv[2:]]
main.main()
"""

ARGS = [
    "--model",
    "test_resnet",
    "--num-classes",
    "4",
    "--input-size",
    "3",
    "32",
    "32",
    "--epochs",
    "2",
    "-b",
    "8",
    "--validation-batch-size",
    "5",
    "--device",
    "cpu",
    "--workers",
    "1",
    "--lr",
    "0.01",
    "--warmup-epochs",
    "0",
    "--sched",
    "cosine",
    "--aa",
    "rand-m9-mstd0.5-inc1",
    "--mixup",
    "0.8",
    "--cutmix",
    "1.0",
    "--reprob",
    "0.25",
    "--mixup-off-epoch",
    "1",
    "--smoothing",
    "0.1",
    "--log-interval",
    "2",
    "--seed",
    "0",
    "--train-split",
    "train",
    "--val-split",
    "val",
]


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    upstream = timm_train_path().read_text()
    patched = apply_patch(upstream, PATCH.read_text())
    assert patched.count(DDP_LINE) == 1
    out = tmp_path_factory.mktemp("timm") / "train.py"
    out.write_text(patched.replace(DDP_LINE, DDP_CPU))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("timm_data")
    make_sample_dataset(
        root, num_classes=4, train_per_class=8, val_per_class=3, size_range=(48, 72)
    )
    return root


def test_patch_changes_three_statements() -> None:
    body = [ln for ln in PATCH.read_text().splitlines() if not ln.startswith(("---", "+++"))]
    added = [ln for ln in body if ln.startswith("+")]
    assert len(added) == 3  # the import and the two loader statements
    assert any(
        "timm_loader(dataset_train, args, data_config, is_training=True)" in a for a in added
    )
    assert any(
        "timm_loader(dataset_eval, args, data_config, is_training=False)" in a for a in added
    )


def _run(script: Path, data: Path, tmp: Path, ranks: int) -> dict[int, list[list[int]]]:
    runner = tmp / "runner.py"
    runner.write_text(_RUNNER)
    logs = tmp / "eval"
    logs.mkdir()
    argv = [str(runner), str(script), "--data-dir", str(data), *ARGS, "--output", str(tmp)]
    if ranks > 1:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={ranks}",
            *argv,
        ]
    else:
        cmd = [sys.executable, *argv]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", EVAL_LOG=str(logs))
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    assert "Train: 1" in proc.stdout + proc.stderr  # the second epoch ran
    per_epoch: dict[int, list[list[int]]] = {}
    for log in logs.iterdir():
        for line in log.read_text().splitlines():
            epoch, *ids = (int(v) for v in line.split())
            per_epoch.setdefault(epoch, []).append(ids)
    return per_epoch


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2])
def test_timm_train_py_runs_with_the_dali_loader(
    script: Path, data: Path, tmp_path: Path, ranks: int
) -> None:
    per_epoch = _run(script, data, tmp_path, ranks)
    assert sorted(per_epoch) == [0, 1]
    for batches in per_epoch.values():
        ids = [i for b in batches for i in b]
        assert sorted(ids) == list(range(12)), "every val image exactly once per evaluation"
    summary = (
        (
            tmp_path
            / next(
                p.name for p in tmp_path.iterdir() if p.is_dir() and (p / "summary.csv").exists()
            )
            / "summary.csv"
        )
        .read_text()
        .splitlines()
    )
    assert len(summary) == 3  # header + 2 epochs
