"""The command line: sample-data writes real JPEGs; demo and preview write PNGs with Pillow
only, nothing in the current folder; user errors are one line on stderr with exit status 2.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torchvision
from PIL import Image

from dali_gridaug.cli import main
from dali_gridaug.tools import make_sample_dataset


def test_sample_data_is_real_deterministic_imagefolder(tmp_path: Path) -> None:
    assert (
        main(
            [
                "sample-data",
                str(tmp_path / "a"),
                "--classes",
                "3",
                "--train-per-class",
                "2",
                "--val-per-class",
                "1",
            ]
        )
        == 0
    )
    make_sample_dataset(tmp_path / "b", num_classes=3, train_per_class=2, val_per_class=1)
    ds = torchvision.datasets.ImageFolder(tmp_path / "a" / "train")
    assert len(ds) == 6 and len(ds.classes) == 3
    other = torchvision.datasets.ImageFolder(tmp_path / "b" / "train").samples
    for (pa, _), (pb, _) in zip(ds.samples, other, strict=True):
        assert Path(pa).read_bytes() == Path(pb).read_bytes()  # same seed, same bytes
        with Image.open(pa) as im:
            assert im.format == "JPEG" and 300 <= min(im.size) and max(im.size) <= 500


@pytest.mark.parametrize("aug", ["gridmask", "cutmix", "gridmix"])
def test_preview_writes_png(tmp_path: Path, aug: str) -> None:
    make_sample_dataset(tmp_path / "d", num_classes=4, train_per_class=3, val_per_class=1)
    out = tmp_path / f"{aug}.png"
    assert (
        main(
            [
                "preview",
                "--augment",
                aug,
                "--out",
                str(out),
                "--root",
                str(tmp_path / "d"),
                "--n",
                "4",
                "--image-size",
                "64",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 200


def test_demo_runs_and_reports_throughput(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_sample_dataset(tmp_path / "d", num_classes=4, train_per_class=8, val_per_class=1)
    out = tmp_path / "demo.png"
    assert (
        main(
            [
                "demo",
                "--root",
                str(tmp_path / "d"),
                "--epochs",
                "2",
                "--batch-size",
                "8",
                "--image-size",
                "64",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "epoch 1: 32 images" in text and "images/s" in text and out.exists()


def test_unknown_command_is_an_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["nope"]) == 2
    assert "commands:" in capsys.readouterr().out


def test_unknown_command_is_named(capsys: pytest.CaptureFixture) -> None:
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture) -> None:
    import dali_gridaug

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"dali-gridaug {dali_gridaug.__version__}"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One user cache dir for this module: the sample data is generated in it once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def empty_cwd(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cwd


@pytest.mark.slow
def test_demo_defaults_write_only_to_the_cache(empty_cwd: Path, cache: Path) -> None:
    """No --root, no --out: sample data and the PNG land in the user cache, cwd stays empty."""
    argv = ["demo", "--epochs", "1", "--batch-size", "16", "--image-size", "32", "--device", "cpu"]
    assert main(argv) == 0
    assert list(empty_cwd.iterdir()) == []
    assert (cache / "dali-gridaug" / "sample" / "READY").is_file()
    with Image.open(cache / "dali-gridaug" / "demo_batch.png") as im:
        assert im.format == "PNG" and im.size[0] > 400


@pytest.mark.slow
def test_preview_writes_only_its_out(empty_cwd: Path, cache: Path) -> None:
    argv = [
        "preview",
        "--augment",
        "gridmix",
        "--out",
        "grid.png",
        "--n",
        "4",
        "--image-size",
        "64",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    assert [p.name for p in empty_cwd.iterdir()] == ["grid.png"]


def test_check_data_writes_nothing_in_cwd_or_beside_the_data(
    empty_cwd: Path, cache: Path, tmp_path: Path
) -> None:
    data = make_sample_dataset(
        tmp_path / "d", num_classes=2, train_per_class=2, val_per_class=0, size_range=(64, 80)
    )
    before = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert main(["check-data", str(data["train"]), "--workers", "0", "--quiet"]) == 0
    assert list(empty_cwd.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == before
    assert len(list((cache / "dali-gridaug" / "check-data").glob("*/report.json"))) == 1


@pytest.mark.slow
def test_demo_needs_no_matplotlib(tmp_path: Path) -> None:
    """The grid is drawn with Pillow: the demo runs with matplotlib made unimportable."""
    make_sample_dataset(tmp_path / "d", num_classes=2, train_per_class=4, val_per_class=0)
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from dali_gridaug.cli import main\n"
        f"sys.exit(main(['demo', '--root', {str(tmp_path / 'd')!r}, '--epochs', '1', "
        f"'--batch-size', '4', '--image-size', '32', '--device', 'cpu', "
        f"'--out', {str(tmp_path / 'g.png')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "g.png").is_file()


@pytest.mark.slow
def test_gridmix_preview_outlines_cells_by_source(empty_cwd: Path) -> None:
    """Green (own) and red (partner) outlines both appear; a caption is black text below."""
    argv = [
        "preview",
        "--augment",
        "gridmix",
        "--out",
        "g.png",
        "--n",
        "4",
        "--image-size",
        "64",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    px = np.asarray(Image.open("g.png").convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(px, axis=0)}
    assert (40, 220, 40) in colours and (235, 40, 40) in colours


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["demo", "--epochs", "0"], r"demo: error: --epochs must be ≥ 1, got 0"),
        (["demo", "--augment", "nope"], r"demo: error: unknown augmentation\(s\) \['nope'\]"),
        (["demo", "--bogus"], r"demo: error: unrecognized arguments: --bogus"),
        (["demo", "--batch-size", "x"], r"demo: error: argument --batch-size: invalid int"),
        (["preview", "--augment", "gridmix"], r"preview: error: .*required: --out"),
        (["preview", "--augment", "nope", "--out", "a.png"], r"preview: error: .*invalid choice"),
        (["preview", "--augment", "cutout", "--out", "a.png", "--n", "0"], r"--n .* ≥ 1"),
        (["check-data"], r"check-data: error: .*required: root"),
        (["check-data", "/nonexistent/data"], r"check-data: error: .*does not exist"),
        (["sample-data", "x", "--classes", "0"], r"sample-data: error: --classes must be ≥ 1"),
    ],
)
def test_user_errors_are_one_line_exit_2(
    argv: list[str], expected: str, empty_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _cli_error(argv, capsys)
    assert line.startswith(f"dali-gridaug {argv[0]}: error: ")
    assert re.search(expected, line), line
    assert list(empty_cwd.iterdir()) == []


def test_bad_roots_are_one_line_exit_2(
    tmp_path: Path, empty_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    line = _cli_error(["demo", "--root", str(tmp_path / "f.txt")], capsys)
    assert "is a file, not a folder" in line
    line = _cli_error(
        ["preview", "--augment", "cutout", "--out", "a.png", "--root", str(tmp_path / "other")],
        capsys,
    )
    assert "neither the sample dataset nor a folder holding train/" in line
    line = _cli_error(["check-data", str(tmp_path), "--workers", "-1"], capsys)
    assert "`workers` must be in [0, inf), got -1" in line


def test_grid_captions_stay_inside_their_tiles(tmp_path: Path) -> None:
    """Long class names are shortened to the tile width: the white gaps between tiles hold no
    text pixel, and no caption line runs into the next row.
    """
    import torch

    from dali_gridaug.batch import Batch
    from dali_gridaug.tools import viz

    b, size = 8, 64
    images = torch.zeros(b, 3, size, size)  # mean 0, std 1: black pixels
    labels = torch.arange(b) % 3
    batch = Batch(
        images=images,
        target=labels,
        labels=labels,
        index=torch.arange(b),
        lam=torch.full((b,), 0.25),
        partner=torch.arange(b).flip(0),
    )
    classes = [f"n0{k}_a_very_long_class_name_that_cannot_fit_in_one_tile_{k}" for k in range(3)]
    out = tmp_path / "g.png"
    viz.save_grid(batch, out, mean=(0, 0, 0), std=(1, 1, 1), classes=classes, title="t " * 80)
    px = np.asarray(Image.open(out).convert("L"))
    tile = size * -(-viz._TILE // size)  # tiles are upscaled by a whole factor
    assert px.shape[1] == 4 * (tile + viz._PAD) + viz._PAD
    top = int(np.argmax(px[:, viz._PAD] == 0))  # first row of the (black) tiles
    assert top > 0 and (px[:top, viz._PAD :] < 128).any()  # the title is above them
    for col in range(1, 4):  # the _PAD-wide gap left of each tile of columns 1..3
        x0 = viz._PAD + col * (tile + viz._PAD)
        assert (px[top:, x0 - viz._PAD : x0] == 255).all(), col
    assert (px[:, -viz._PAD :] == 255).all() and (px[:, : viz._PAD] == 255).all()
