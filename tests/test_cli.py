"""The command line: sample-data writes real JPEGs; demo and preview write PNGs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torchvision
from PIL import Image

from dali_gridaug.cli import main
from dali_gridaug.synthetic import make_sample_dataset


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
