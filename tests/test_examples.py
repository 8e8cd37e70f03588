"""The examples run: the official PyTorch ImageNet example switched to ``create_loader`` by
the patches in ``examples/official_imagenet/`` (single process and 2 gloo ranks under
torchrun), and the project's own ``examples/imagenet_train.py``.

The official script is pytorch/examples ``imagenet/main.py`` at commit
``493da9304e56ff5160f78d01a54992db35df2a98`` (BSD-3-Clause). It is not part of this
repository: the tests look for it at ``$DALI_GRIDAUG_OFFICIAL_MAIN`` or
``tests/official/imagenet_main.py``, check its SHA-256, and skip when it is absent.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dali_gridaug.tools import make_sample_dataset

REPO = Path(__file__).resolve().parents[1]
PATCHES = REPO / "examples" / "official_imagenet"
UPSTREAM_SHA256 = "60d2a78a7194c7e2d9cc8c543dd9f656031f726fc2cdcd45e9e711b59a9ec357"

# Imports the patched script, reports how many images its validate() counted (the Acc@1
# meter after its all_reduce), and runs its main() with the remaining arguments.
_RUNNER = """
import importlib.util, sys
path = sys.argv[1]
spec = importlib.util.spec_from_file_location("imagenet_main", path)
main = importlib.util.module_from_spec(spec)
spec.loader.exec_module(main)
summary = main.ProgressMeter.display_summary
def counted(self):
    summary(self)
    for meter in self.meters:
        if meter.name == "Acc@1":
            print(f"VALIDATED {int(meter.count)} images", flush=True)
main.ProgressMeter.display_summary = counted
sys.argv = [path, *sys.argv[2:]]
main.main()
"""


def apply_patch(text: str, patch: str) -> str:
    """Apply a unified diff to ``text``; every context and removed line must match exactly."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    pos = 0
    hunks = re.split(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@.*\n", patch, flags=re.M)[1:]
    for start, body in zip(hunks[::2], hunks[1::2], strict=True):
        first = int(start) - 1
        out += lines[pos:first]
        pos = first
        for line in body.splitlines(keepends=True):
            tag, content = line[0], line[1:]
            if tag in " -":
                assert lines[pos] == content, f"patch does not apply at line {pos + 1}: {line!r}"
                pos += 1
            if tag in " +":
                out.append(content)
    return "".join(out + lines[pos:])


def _changed(patch: str) -> tuple[int, int]:
    body = [ln for ln in patch.splitlines() if not ln.startswith(("---", "+++"))]
    removed = [ln for ln in body if ln.startswith("-") and ln[1:].strip()]
    added = [ln for ln in body if ln.startswith("+") and ln[1:].strip()]
    return len(removed), len(added)


@pytest.fixture(scope="module")
def upstream() -> str:
    path = Path(
        os.environ.get("DALI_GRIDAUG_OFFICIAL_MAIN", REPO / "tests/official/imagenet_main.py")
    )
    if not path.is_file():
        pytest.skip(f"official imagenet/main.py not found at {path} (see tests/test_examples.py)")
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == UPSTREAM_SHA256, f"{path} is another version"
    return data.decode()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes × 4 train / 3 val JPEGs: 9 val images split 4 + 5 over 2 ranks."""
    root = tmp_path_factory.mktemp("tiny")
    make_sample_dataset(
        root, num_classes=3, train_per_class=4, val_per_class=3, size_range=(64, 96)
    )
    return root


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def _run_official(
    tmp_path: Path, upstream: str, patch: str, data: Path, ranks: int
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "main.py"
    script.write_text(apply_patch(upstream, (PATCHES / patch).read_text()))
    runner = tmp_path / "runner.py"
    runner.write_text(_RUNNER)
    args = [str(data), "-a", "resnet18", "--epochs", "1", "-b", "4", "--workers", "0", "-p", "1"]
    if ranks == 1:
        cmd = [sys.executable, str(runner), str(script), *args]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={ranks}",
            str(runner),
            str(script),
            *args,
            "--dist-url",
            "env://",
            "--dist-backend",
            "gloo",
        ]
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_patches_change_only_the_counted_lines(upstream: str) -> None:
    """No mixing: one import and the two loader statements (3 statements: 6 removed lines,
    3 added). CutMix: the same plus the train loop's ``for`` (+1 unpacking line) and its
    accuracy line."""
    assert _changed((PATCHES / "no_mixing.patch").read_text()) == (6, 3)
    assert _changed((PATCHES / "cutmix.patch").read_text()) == (8, 7)
    for patch in ("no_mixing.patch", "cutmix.patch"):
        patched = apply_patch(upstream, (PATCHES / patch).read_text())
        assert "torch.utils.data.DataLoader(\n        train_dataset" not in patched
        compile(patched, patch, "exec")


@pytest.mark.slow
@pytest.mark.parametrize("patch", ["no_mixing.patch", "cutmix.patch"])
def test_official_example_single_process(
    tmp_path: Path, upstream: str, tiny: Path, patch: str
) -> None:
    out = _run_official(tmp_path, upstream, patch, tiny, ranks=1).stdout
    # 12 train images in batches of 4 (drop_last): 3 steps; validate() sees all 9 images
    assert re.search(r"Epoch: \[0\]\[3/3\]", out), out
    assert "Epoch: [0][4/" not in out
    assert out.count("VALIDATED 9 images") == 1, out
    assert (tmp_path / "checkpoint.pth.tar").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("patch", ["no_mixing.patch", "cutmix.patch"])
def test_official_example_torchrun_two_ranks(
    tmp_path: Path, upstream: str, tiny: Path, patch: str
) -> None:
    """Under torchrun with gloo, its validate() reads ``val_loader.sampler`` and
    ``val_loader.dataset``; each rank sees its DALI shard (4 or 5 images) and the
    all-reduced count is every val image exactly once, on both ranks."""
    out = _run_official(tmp_path, upstream, patch, tiny, ranks=2).stdout
    assert out.count("VALIDATED 9 images") == 2, out
    assert "Epoch: [0][1/1]" in out  # 6 train images per rank: one batch of 4
    # rank 0 validates 4 images (1 batch), rank 1 5 images (2 batches): len(val_loader)
    assert set(re.findall(r"Test: \[\d/(\d)\]", out)) == {"1", "2"}, out


@pytest.mark.slow
def test_own_training_script_on_two_gloo_ranks(tmp_path: Path, tiny: Path) -> None:
    """examples/imagenet_train.py under torchrun (2 CPU ranks, gloo) with CutMix: each epoch
    trains on both ranks' shards, and its validation counts every val image exactly once
    (9 images split 4 + 5)."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(REPO / "examples" / "imagenet_train.py"),
        str(tiny),
        "--epochs",
        "2",
        "-b",
        "4",
        "--image-size",
        "64",
        "--mix",
        "cutmix",
        "--output-dir",
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["epoch"] for r in rows] == [0, 1]  # printed by rank 0 only
    assert "resnet18: 3 classes, 12 train / 9 val images, 2 rank(s) on cpu" in proc.stdout
    for row in rows:
        assert row["val_images"] == 9
        assert row["train_images"] == 8  # 6 images per rank, one full batch of 4 each
        assert math.isfinite(row["train_loss"]) and 0 <= row["val_top1"] <= 100
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "checkpoint_0.pth",
        "checkpoint_1.pth",
    ]
