"""The benchmark runner on a tiny configuration (a smoke test of the plumbing, not timing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("nvidia.dali")
pytest.importorskip("torchvision")
pytest.importorskip("skimage")

from dali_gridaug import testing  # noqa: E402
from dali_gridaug.bench import report  # noqa: E402
from dali_gridaug.bench.core import selected  # noqa: E402
from dali_gridaug.bench.data import SIZE_WH, resolve  # noqa: E402
from dali_gridaug.bench.run import main  # noqa: E402

TINY = (
    "--device cpu --num-images 16 --batch-size 4 --batches 1 --runs 1 --warmup 1 "
    "--rounds 2 --image-size 64 --workers 1 --op-batch 4"
).split()


@pytest.mark.slow
def test_acceptance_smoke_writes_json_with_targets(tmp_path):
    suites = (
        "acceptance,augment-op/gridmask*,augment-op/cutmix[dali],augment-op/pass*,"
        "keep-stage/plain,dali-gpu/no-aug,cpu-stages"
    )
    rc = main(
        [
            *TINY,
            "--suite",
            suites,
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--name",
            "smoke",
        ]
    )
    assert rc == 0
    data = json.loads((tmp_path / "o" / "smoke_cpu.json").read_text())

    m = data["machine"]
    assert m["device_kind"] == "cpu" and m["device"] == m["cpu_model"] and m["cpu_count"] >= 1
    assert all(m["versions"][k] for k in ("python", "torch", "dali", "numpy"))
    assert data["dataset"]["kind"] == "photos" and data["dataset"]["images"] == 16
    assert data["settings"]["rounds"] == 2 and data["date"]

    configs = {c["name"]: c for c in data["configs"]}
    want = {"bare-dali", "no-aug", "cutmix", "gridmix", "gridmask", "torchvision"}
    assert {n for n in configs if n.startswith("acceptance/")} == {f"acceptance/{w}" for w in want}
    assert (
        "no CUDA GPU" in configs["dali-gpu/no-aug"]["skipped"]
        or "CPU run" in configs["dali-gpu/no-aug"]["skipped"]
    )
    ran = [c for c in configs.values() if "skipped" not in c]
    assert not [c.get("error") for c in ran if "error" in c]
    for c in ran:
        assert len(c["round_images_per_s"]) == 2 and len(c["times_s"]) == 2
        assert c["min_s"] <= c["median_s"] <= c["max_s"] and c["images_per_s"] > 0
        assert c["implementation"]
    assert "GridMask" in configs["acceptance/gridmask"]["implementation"]
    assert "hand-written DALI" in configs["acceptance/bare-dali"]["implementation"]
    stages = {n.split("/")[1]: c for n, c in configs.items() if n.startswith("cpu-stages/")}
    assert set(stages) == {
        "read",
        "decode-crop",
        "resize",
        "normalize",
        "+gridmask-mask",
        "+gridmask",
        "+cutmix",
    }
    assert "resize → normalize → gridmask (augment_graph)" in stages["+gridmask"]["implementation"]
    # reading alone is far cheaper than reading, decoding and resizing
    assert stages["read"]["cpu_s_per_image"] < stages["resize"]["cpu_s_per_image"]

    targets = data["targets"]
    t = targets["acceptance-no-aug-vs-bare"]
    per_round = np.asarray(configs["acceptance/no-aug"]["round_images_per_s"]) / np.asarray(
        configs["acceptance/bare-dali"]["round_images_per_s"]
    )
    assert t["value"]["acceptance/no-aug"] == pytest.approx(np.median(per_round))
    assert t["pass"] is (t["value"]["acceptance/no-aug"] >= 0.95)
    assert set(targets["acceptance-augmented-vs-torchvision"]["value"]) == {
        "acceptance/cutmix",
        "acceptance/gridmix",
        "acceptance/gridmask",
    }
    assert targets["gpu-gridmask-vs-official-loop"]["pass"] is None  # a GPU target on a CPU run
    assert "gpu-mixing-vs-torchvision" not in targets  # nothing of it was measured
    assert (tmp_path / "o" / "smoke_cpu.png").stat().st_size > 10_000


def test_photos_are_natural_crops(tmp_path):
    from PIL import Image

    desc = resolve("photos", num_images=20, data=str(tmp_path), seed=1)
    files = sorted(tmp_path.glob("photos-n20-s1/*/*.jpg"))
    assert desc["images"] == len(files) == 20 and desc["classes"] == 14
    with Image.open(files[0]) as im:
        assert im.size == SIZE_WH and im.mode == "RGB"
    again = resolve("photos", num_images=20, data=str(tmp_path), seed=1)
    assert again == desc and files[0].stat().st_mtime == files[0].stat().st_mtime  # reused


def test_targets_file_names_registered_configs():
    from dali_gridaug.bench.core import Settings, plan

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    names = {n for n, _, _ in plan(Settings(device="gpu", workers=2))}
    for key, t in tomllib.loads(report.TARGETS_FILE.read_text()).items():
        assert set(t["numerators"]) <= names, key
        assert t.get("denominator") is None or t["denominator"] in names, key


def test_selection_patterns():
    assert selected(["dali-*"], [], "dali-cpu/+cutmix[dali]")
    assert selected(["dali-cpu/+cutmix[dali]"], [], "dali-cpu/+cutmix[dali]")
    assert not selected(["dali-cpu/+cutmix[dali]"], [], "dali-cpu/+cutmix[kernel]")
    assert not selected(["*"], ["dali-gpu"], "dali-gpu/no-aug")


@pytest.mark.slow
def test_bench_runs_from_an_installed_package(tmp_path):
    """``pip install --target`` then ``bench --list`` from another folder: no checkout needed."""
    import shutil

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src, target = tmp_path / "src", tmp_path / "site"  # a copy: the build writes beside it
    src.mkdir()
    shutil.copytree(os.path.join(repo, "pipelines"), src / "pipelines")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(repo, name), src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(os.path.join(repo, "dali_gridaug"), src / "dali_gridaug", ignore=ignore)
    flags = "-m pip install -q --no-deps --no-build-isolation --target".split()
    pip = [sys.executable, *flags, str(target), str(src)]
    subprocess.run(pip, check=True, capture_output=True, timeout=300, cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(target)}
    cmd = [sys.executable, "-m", "dali_gridaug.cli", "bench", "--list", "--suite", "acceptance"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        f"acceptance/{c}"
        for c in ("bare-dali", "no-aug", "cutmix", "gridmix", "gridmask", "torchvision")
    ]
    assert (target / "dali_gridaug" / "bench" / "targets.toml").is_file(), (
        "pyproject.toml [tool.setuptools.package-data] must list bench/*.toml"
    )


@pytest.mark.slow
def test_selftest_on_cpu_writes_one_report_in_the_bench_schema(tmp_path):
    from dali_gridaug.bench.selftest import main as selftest

    args = ["--duration", "2", "--num-images", "16", "--batch-size", "4", "--image-size", "64"]
    rc = selftest([*args, "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 0
    reports = list((tmp_path / "o").glob("*.json"))
    assert [p.name for p in reports] == ["selftest_cpu.json"]
    data = json.loads(reports[0].read_text())
    bench_keys = {"schema", "name", "date", "command", "machine", "dataset", "settings", "configs"}
    assert bench_keys <= set(data) and data["schema"] == report.SCHEMA
    assert data["machine"]["device"] and data["machine"]["versions"]["dali"]
    assert data["dataset"]["kind"] == "photos"
    assert data["checks"]["gpu_tests"] == {
        "status": "skipped",
        "note": "no CUDA GPU on this machine",
    }
    graphs = data["checks"]["gpu_graphs"]  # CPU-side validation runs on any machine
    assert graphs["status"] == "passed" and graphs["failed"] == 0
    assert len(graphs["results"]) == len(testing.graph_cases()) > 40
    assert all(c["caught"] for c in graphs["controls"])
    names = [c["name"] for c in data["configs"]]
    assert names == ["dali-cpu/no-aug", "dali-cpu/+gridmask", "dali-cpu/+cutmix"]
    assert all(c["images_per_s"] > 0 and len(c["round_images_per_s"]) == 3 for c in data["configs"])
    assert "CutMix" in data["configs"][2]["implementation"]


@pytest.mark.slow
def test_selftest_gpu_checks_run_pytest_and_validate_graphs(tmp_path):
    from dali_gridaug.bench.selftest import gpu_graphs, gpu_tests

    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_dev.py").write_text(
        "import pytest\n\n@pytest.mark.gpu\ndef test_a():\n    assert 1 + 1 == 3\n\n"
        "def test_not_gpu():\n    assert False\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    res = gpu_tests(tests, timeout=120)
    assert res["status"] == "failed" and res["summary"].startswith("1 failed, 1 deselected")
    (tests / "test_dev.py").write_text(
        "import pytest\n\n@pytest.mark.gpu\ndef test_a():\n    pass\n"
    )
    assert gpu_tests(tests, timeout=120)["status"] == "passed"
    assert gpu_tests(tmp_path / "absent")["status"] == "skipped"
    graphs = gpu_graphs(names=["val", "cutmix [auto=dali]"])
    assert graphs["status"] == "passed" and graphs["failed"] == 0, graphs
    assert [(r["name"], r["ok"], r["level"]) for r in graphs["results"]] == [
        ("cutmix [auto=dali]", True, 5),
        ("val", True, 5),
    ]
    assert graphs["controls"] and all(c["caught"] for c in graphs["controls"])
    assert graphs["missed_controls"] == 0


def test_reference_ports_are_self_consistent():
    import torch

    from dali_gridaug.bench.reference import (
        GridMaskOfficial,
        cutmix_official,
        gridmask_official,
        gridmix_torch,
    )
    from dali_gridaug.geometry import cell_bounds

    # GridMask module = the oracle's mask, sample by sample, from the same draws
    x = torch.ones(3, 2, 40, 48)
    out = GridMaskOfficial((8, 20), r=0.6, rotate=360, mode=1, prob=1.0, seed=3)(x)
    rng = np.random.default_rng(3)
    for i in range(3):
        rng.random()  # the apply coin
        m = gridmask_official(40, 48, rng, r=0.6, d=(8, 20), rotate=360, mode=1)
        assert torch.equal(out[i, 1], torch.from_numpy(m)) and 0 < m.mean() < 1

    # CutMix: λ is the fraction of pixels that kept their own value
    x = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 1, 32, 32).clone()
    mixed, ya, yb, lam = cutmix_official(
        x, torch.arange(8), beta=1.0, prob=1.0, rng=np.random.default_rng(0)
    )
    own = (mixed == torch.arange(8.0).view(8, 1, 1, 1)).float().mean((1, 2, 3))
    moved = yb != ya
    assert moved.any()
    assert torch.allclose(own[moved], torch.tensor(lam))

    # GridMix: each cell comes whole from the image or its partner, as its patch label says
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 10, 13).clone()
    out, soft, patch = gridmix_torch(
        x, torch.arange(4), n=3, p=0.5, num_classes=4, generator=torch.Generator().manual_seed(0)
    )
    ys, xs = cell_bounds(10, 3), cell_bounds(13, 3)
    for i in range(3):
        for j in range(3):
            cell = out[:, 0, ys[i] : ys[i + 1], xs[j] : xs[j + 1]]
            assert torch.equal(cell, patch[:, i, j].float().view(4, 1, 1).expand_as(cell))
    lam = (patch == torch.arange(4).view(4, 1, 1)).float().mean((1, 2))
    assert torch.allclose(soft[torch.arange(4), torch.arange(4)], lam)  # own-class weight = λ


@pytest.mark.slow
def test_missing_scikit_image_is_a_one_line_usage_error(tmp_path):
    code = (
        "import sys; sys.modules['skimage'] = None; from dali_gridaug.cli import main; "
        f"sys.exit(main(['bench', '--suite', 'acceptance', '--data', {str(tmp_path)!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("dali-gridaug bench: error: the natural-photo dataset needs")
    assert "Traceback" not in out.stderr and not list(tmp_path.iterdir())


def test_timm_suite_runs_both_loaders_on_one_recipe(tmp_path):
    """``timm-deit``: timm's own loader (PrefetchLoader with RandomErasing, FastCollateMixup)
    and ours from the same ``args``; both yield soft ``(B, K)`` targets with the smoothing
    floor, the timed configs all ran."""
    pytest.importorskip("timm")
    from timm.data.loader import PrefetchLoader

    from dali_gridaug.augment import MixupCutMix, RandomErasing
    from dali_gridaug.bench.registry import Settings
    from dali_gridaug.bench.suites.timm_recipe import TimmRecipe

    rc = main(
        [
            *TINY,
            "--suite",
            "timm-deit",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--name",
            "timm",
        ]
    )
    assert rc == 0
    data = json.loads((tmp_path / "o" / "timm_cpu.json").read_text())
    configs = {c["name"]: c for c in data["configs"]}
    assert set(configs) == {f"timm-deit/{n}" for n in ("timm", "dali", "timm-plain", "dali-plain")}
    assert all("error" not in c and c["images_per_s"] > 0 for c in configs.values())
    assert "FastCollateMixup" in configs["timm-deit/timm"]["implementation"]

    dataset = resolve("photos", num_images=16, data=str(tmp_path))  # the run's, reused
    settings = Settings(device="cpu", batch_size=4, image_size=64, dataset=dataset)
    sides = {}
    for impl in ("timm", "dali"):
        bench = TimmRecipe(settings, impl, "deit")
        bench.setup()
        images, target = next(bench.it)
        k = settings.num_classes
        assert images.shape == (4, 3, 64, 64) and target.shape == (4, k), impl
        assert float(target.min()) >= 0.1 / k - 1e-6, impl  # smoothing inside
        sides[impl] = bench.loader
        bench.teardown()
    theirs, ours = sides["timm"].__dict__, {type(a): a for a in sides["dali"].spec.augments}
    assert (
        isinstance(sides["timm"], PrefetchLoader) and theirs["random_erasing"].probability == 0.25
    )
    mix = theirs["loader"].collate_fn
    assert ours[MixupCutMix].mixup_alpha == mix.mixup_alpha == 0.8
    assert ours[MixupCutMix].cutmix_alpha == mix.cutmix_alpha == 1.0
    assert ours[RandomErasing].p == 0.25 and ours[RandomErasing].mode == "pixel"


def test_timm_side_posterize_keeps_zero_bits_as_black():
    """timm's ``PosterizeIncreasing`` at magnitude 10 keeps 0 bits, which the installed Pillow
    refuses; the bench gives it older Pillow's all-black meaning (idempotent), other bit counts
    unchanged."""
    pytest.importorskip("timm")
    from PIL import Image
    from timm.data import auto_augment

    from dali_gridaug.bench.suites.timm_recipe import posterize_zero_bits

    img = Image.fromarray(np.full((4, 4, 3), 200, np.uint8))
    posterize_zero_bits()
    posterize_zero_bits()
    op = auto_augment.AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=10)
    assert np.asarray(op(img)).max() == 0
    kept = auto_augment.AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=9)(img)
    assert np.asarray(kept).max() == 128  # 1 bit kept: 200 → 128
