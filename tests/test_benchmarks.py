"""Smoke test of the benchmark runner on a tiny configuration (not a timing test)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("nvidia.dali")
pytest.importorskip("torchvision")

from benchmarks.__main__ import main  # noqa: E402
from benchmarks.registry import selected  # noqa: E402

SUITES = ",".join(
    [
        "torchvision/baseline",
        "torchvision/+cutmix[clovaai]",
        "dali-cpu/baseline",
        "dali-cpu/+gridmix[dali]",
        "dali-cpu/+gridmask[kernel]",
        "dali-gpu/baseline",
        "sweep-hw-decoder/hw_decoder_load=0.5",
        "augment-op/gridmask[official]",
        "augment-op/gridmask[dali]",
    ]
)


def test_runner_writes_valid_json(tmp_path):
    out = tmp_path / "out"
    args = (
        "--device cpu --dataset imagenet-like --num-images 8 --classes 2 --batch-size 4 "
        "--batches 1 --runs 2 --warmup 1 --image-size 64 --workers 1 --op-batch 4 --name smoke"
    ).split()
    rc = main([*args, "--suite", SUITES, "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    assert rc == 0
    path = out / "smoke_cpu.json"
    data = json.loads(path.read_text())

    # machine stamp and dataset
    assert data["device"] == "cpu"
    assert data["cpu_count"] >= 1
    assert {"python", "torch", "torchvision", "dali", "numpy"} <= set(data["versions"])
    assert all(data["versions"][k] for k in ("python", "torch", "torchvision", "dali", "numpy"))
    assert data["dataset"]["images"] == 8 and data["dataset"]["kind"] == "imagenet-like"
    assert data["date"]

    configs = {c["name"]: c for c in data["configs"]}
    assert set(configs) == set(SUITES.split(","))
    ran = [c for c in configs.values() if "skipped" not in c]
    assert not [c for c in ran if "error" in c], [c.get("error") for c in ran]
    for c in ran:
        assert c["images_per_s"] > 0
        assert c["cpu_s_per_image"] > 0
        assert c["min_s"] <= c["median_s"] <= c["max_s"]
        assert len(c["times_s"]) == c["runs"] == 2
        assert c["implementation"]
    # no GPU here, or --device cpu: GPU configurations are skipped with a reason
    for name in ("dali-gpu/baseline", "sweep-hw-decoder/hw_decoder_load=0.5"):
        assert isinstance(configs[name]["skipped"], str) and configs[name]["skipped"]
    assert configs["dali-cpu/+gridmix[dali]"]["vs_torchvision"] > 0

    targets = data["targets"]
    assert targets["mixing_vs_torchvision"]["pass"] is None  # GPU-only, not measurable here
    assert targets["gridmask_vs_official_loop"]["value"]["default_backend"] > 0
    assert targets["gridmask_vs_official_loop"]["pass"] is None  # op batch is not 256
    if _has_matplotlib():
        assert (out / "smoke_cpu.png").stat().st_size > 0


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_selection_patterns():
    assert selected(["dali-*"], [], "dali-cpu", "+cutmix[dali]")
    assert selected(["dali-cpu/+cutmix[dali]"], [], "dali-cpu", "+cutmix[dali]")
    assert not selected(["dali-cpu/+cutmix[dali]"], [], "dali-cpu", "+cutmix[kernel]")
    assert not selected(["*"], ["dali-gpu"], "dali-gpu", "baseline")
