"""``dali-gridaug check-data``: a fault corpus mixed into a small real dataset.

Every kind of bad file is found and no good one; warnings, ignored files and empty classes are
reported; the clean list keeps ``image_folder``'s class indices and the loader runs a full
epoch over it, each good file exactly once. Nothing in the dataset is modified.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dali_gridaug import cli
from dali_gridaug.constants import PREALLOCATE_HEIGHT_HINT, PREALLOCATE_WIDTH_HINT
from dali_gridaug.loader import create_loader
from dali_gridaug.reader import file_list, image_folder
from dali_gridaug.tools import make_sample_dataset
from dali_gridaug.tools.check import (
    MAX_PIXELS,
    check_dataset,
    default_list_path,
    default_report_path,
    main,
    sniff,
)

MIN_SIDE = 48  # sample images are 64–96 px; the "small" image is 40×30
MAX_PX = 10_000  # 96×96 = 9216 fits; the "huge" image is 150×120


def _jpeg(image: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def _picture(h: int, w: int, seed: int) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    rgb = np.stack([x * 2 + seed, y * 3, (x + y) * 1.3], -1) + rng.normal(0, 4, (h, w, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def build_corpus(base: Path) -> dict[str, object]:
    """A 4-class sample set (5 images each) plus every fault kind.

    Returns ``{"root", "bad": {rel: reason}, "warn": {(rel, reason)}, "ignored": {rel: reason},
    "empty": [...], "no_good": [...]}``.
    """
    paths = make_sample_dataset(
        base / "data", num_classes=4, train_per_class=5, val_per_class=0, size_range=(64, 96)
    )
    root = paths["train"]
    pic = _picture(70, 90, 1)
    good_jpeg = _jpeg(pic)
    files: dict[str, bytes] = {
        # bad
        "c00_hstripes/zz_zero.jpg": b"",
        "c00_hstripes/zz_truncated.jpg": good_jpeg[: len(good_jpeg) // 2],
        "c00_hstripes/zz_no_eoi.jpg": good_jpeg[:-2],
        "c01_vstripes/zz_text.jpg": b"this is a text file, not an image\n" * 20,
        "c01_vstripes/zz_gif.jpg": _encode(pic, "GIF"),
        "c02_diagonal/zz_truncated.png": _encode(pic, "PNG")[:2000],
        "c01b_allbad/a_zero.jpeg": b"",
        "c01b_allbad/b_truncated.jpg": good_jpeg[:300],
        # decodable, with warnings
        "c02_diagonal/zz_png.jpg": _encode(pic, "PNG"),
        "c02_diagonal/zz_webp.jpg": _encode(pic, "WEBP"),
        "c03_checker/zz_cmyk.jpg": _jpeg(pic.convert("CMYK")),
        "c03_checker/zz_gray.jpg": _jpeg(pic.convert("L")),
        "c03_checker/zz_small.jpg": _jpeg(_picture(30, 40, 2)),
        "c03_checker/zz_huge.jpg": _jpeg(_picture(120, 150, 3)),
        "c03_checker/sub/zz_nested_ok.jpg": good_jpeg,
        "c00_hstripes/zz_trailing_bytes.jpg": good_jpeg + b"\0" * 64 + b"junk",
        # ignored
        "c00_hstripes/notes.txt": b"not an image extension",
        "c01a_empty/readme.md": b"a class folder with no image file",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "LICENSE").write_text("a file outside every class folder\n")
    bad = {
        "c00_hstripes/zz_zero.jpg": "zero-byte",
        "c00_hstripes/zz_truncated.jpg": "truncated",
        "c00_hstripes/zz_no_eoi.jpg": "truncated",
        "c01_vstripes/zz_text.jpg": "not-an-image",
        "c01_vstripes/zz_gif.jpg": "unsupported-format",
        "c02_diagonal/zz_truncated.png": "truncated",
        "c01b_allbad/a_zero.jpeg": "zero-byte",
        "c01b_allbad/b_truncated.jpg": "truncated",
    }
    warn = {
        ("c02_diagonal/zz_png.jpg", "png-named-jpg"),
        ("c02_diagonal/zz_webp.jpg", "webp-named-jpg"),
        ("c03_checker/zz_cmyk.jpg", "cmyk"),
        ("c03_checker/zz_gray.jpg", "grayscale"),
        ("c03_checker/zz_small.jpg", "small"),
        ("c03_checker/zz_huge.jpg", "huge"),
    }
    ignored = {
        "c00_hstripes/notes.txt": "not-an-image-extension",
        "c01a_empty/readme.md": "not-an-image-extension",
        "LICENSE": "outside-class-folder",
    }
    return {
        "root": root,
        "bad": bad,
        "warn": warn,
        "ignored": ignored,
        "empty": ["c01a_empty"],
        "no_good": ["c01a_empty", "c01b_allbad"],
    }


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _class_of(rel: str, classes: list[str]) -> int:
    return classes.index(rel.split("/")[0])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return build_corpus(tmp_path_factory.mktemp("faults"))


@pytest.fixture(scope="module")
def cli_run(corpus: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One run of the command (2 worker processes), through the ``dali-gridaug`` dispatcher."""
    root = corpus["root"]
    out = tmp_path_factory.mktemp("out")
    before = _snapshot(root)
    argv = [
        "check-data",
        str(root),
        "--report",
        str(out / "report.json"),
        "--list",
        str(out / "clean.txt"),
        "--workers",
        "2",
        "--min-side",
        str(MIN_SIDE),
        "--max-pixels",
        str(MAX_PX),
        "--quiet",
    ]
    rc = cli.main(argv)
    return {
        "rc": rc,
        "report": json.loads((out / "report.json").read_text()),
        "list": out / "clean.txt",
        "before": before,
        "after": _snapshot(root),
    }


def test_finds_every_bad_file_and_no_good_one(corpus: dict, cli_run: dict) -> None:
    report = cli_run["report"]
    found = {i["path"]: i["reason"] for i in report["bad"]}
    assert found == corpus["bad"]
    assert all(i["detail"] for i in report["bad"])
    assert report["counts"]["bad"] == len(corpus["bad"])
    assert report["decoder"] == "dali-cpu"


def test_exit_status_is_1_with_bad_files(cli_run: dict) -> None:
    assert cli_run["rc"] == 1


def test_warnings_ignored_and_empty_classes(corpus: dict, cli_run: dict) -> None:
    report = cli_run["report"]
    assert {(i["path"], i["reason"]) for i in report["warnings"]} == corpus["warn"]
    assert {i["path"]: i["reason"] for i in report["ignored"]} == corpus["ignored"]
    assert report["empty_classes"] == corpus["empty"]
    assert report["classes_without_good_files"] == corpus["no_good"]
    assert report["counts"]["scanned"] == report["counts"]["good"] + report["counts"]["bad"]


def test_nothing_in_the_dataset_changes(cli_run: dict) -> None:
    assert cli_run["after"] == cli_run["before"]


def test_clean_list_keeps_image_folder_class_indices(corpus: dict, cli_run: dict) -> None:
    root = Path(corpus["root"])
    report = cli_run["report"]
    classes = report["classes"]
    # image_folder's classes: every folder in sorted order, the empty one included
    assert classes == sorted(p.name for p in root.iterdir() if p.is_dir())
    src = file_list(cli_run["list"])
    bad = {str(root / rel) for rel in corpus["bad"]}
    every = sorted(
        (str(p) for p in root.rglob("*") if p.is_file() and p.parent != root),
        key=lambda p: (classes.index(Path(p).relative_to(root).parts[0]), p),
    )
    expected = [p for p in every if p.endswith((".jpg", ".jpeg")) and p not in bad]
    assert sorted(src.files) == sorted(expected)
    for path, target in zip(src.files, src.targets):
        assert target == _class_of(Path(path).relative_to(root).as_posix(), classes)
    # class names come from the classes.txt written beside the list
    assert src.classes == tuple(classes[: max(src.targets) + 1])


def test_clean_list_order_matches_image_folder(corpus: dict, tmp_path: Path) -> None:
    """On a copy without the empty class, the clean list is image_folder minus the bad files."""
    root = tmp_path / "train"
    shutil.copytree(corpus["root"], root)
    shutil.rmtree(root / "c01a_empty")
    report = check_dataset(root, workers=0, min_side=MIN_SIDE, max_pixels=MAX_PX, progress=False)
    listed = report.write_list(tmp_path / "lists" / "clean.txt")
    reference = image_folder(root)
    bad = set(report.bad_paths())
    keep = [(f, t) for f, t in zip(reference.files, reference.targets) if f not in bad]
    src = file_list(listed)
    assert list(zip(src.files, src.targets)) == keep
    assert {b.path for b in report.bad} == set(corpus["bad"])


@pytest.mark.parametrize("train", [False, True], ids=["eval-decoder", "train-crop-decoder"])
def test_loader_runs_a_full_epoch_over_the_clean_list(cli_run: dict, train: bool) -> None:
    """Both DALI decoders (``decoders.image`` and ``image_random_crop``) read every file
    kept, the PNG/WebP content named ``.jpg``, CMYK and grayscale JPEGs included.
    """
    loader = create_loader(
        str(cli_run["list"]),
        batch_size=4,
        train=train,
        drop_last=False,
        image_size=32,
        device="cpu",
        num_threads=2,
    )
    names = {Path(f).name for f in loader.source.files}
    assert {"zz_png.jpg", "zz_webp.jpg", "zz_cmyk.jpg", "zz_gray.jpg"} <= names
    seen: list[int] = []
    for batch in loader:
        seen += batch.index.tolist()
        expect = [loader.source.targets[i] for i in batch.index.tolist()]
        assert batch.labels.tolist() == expect
        assert batch.images.shape[1:] == (3, 32, 32)
    assert sorted(seen) == list(range(len(loader.source.files)))


def test_exclude_bad_files_from_the_report(corpus: dict) -> None:
    """The report's bad files, passed as ``exclude=``, give the same epoch as the clean list."""
    report = check_dataset(
        corpus["root"], workers=0, min_side=MIN_SIDE, max_pixels=MAX_PX, progress=False
    )
    root = Path(corpus["root"])
    reduced = root.parent / "no_empty"  # image_folder refuses the empty class folder
    shutil.copytree(root, reduced)
    shutil.rmtree(reduced / "c01a_empty")
    bad = [str(reduced / b.path) for b in report.bad]
    loader = create_loader(
        reduced, batch_size=5, train=False, image_size=32, device="cpu", exclude=bad
    )
    seen = sorted(i for b in loader for i in b.index.tolist())
    assert seen == list(range(len(loader.source.files)))
    assert len(loader.source.files) == len(report.good)


def test_inline_scan_agrees_with_worker_processes(corpus: dict, cli_run: dict) -> None:
    report = check_dataset(
        corpus["root"], workers=0, min_side=MIN_SIDE, max_pixels=MAX_PX, progress=False
    ).to_json()
    for key in ("bad", "warnings", "ignored", "empty_classes", "counts"):
        assert report[key] == cli_run["report"][key], key


def test_clean_dataset_exits_0_and_writes_default_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --report/--list, report and list go to the user cache dir, never beside the
    dataset.
    """
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    paths = make_sample_dataset(
        tmp_path / "data", num_classes=3, train_per_class=2, val_per_class=0, size_range=(64, 80)
    )
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    rc = main([str(paths["train"]), "--workers", "0", "--min-side", "32", "--quiet"])
    assert rc == 0
    report = default_report_path(paths["train"])
    listed = default_list_path(report)
    assert report.parent.parent == tmp_path / "cache" / "dali-gridaug" / "check-data"
    assert listed == report.parent / "report_clean.txt"
    assert json.loads(report.read_text())["list"] == str(listed)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before
    src, ref = file_list(listed), image_folder(paths["train"])
    assert (src.files, src.targets, src.classes) == (ref.files, ref.targets, ref.classes)


def test_default_huge_threshold_is_the_nvjpeg_hint(tmp_path: Path) -> None:
    assert MAX_PIXELS == PREALLOCATE_WIDTH_HINT * PREALLOCATE_HEIGHT_HINT
    (tmp_path / "a").mkdir()
    side = int(MAX_PIXELS**0.5) + 16
    Image.new("L", (side, side), 128).save(tmp_path / "a" / "big.jpg", quality=50)
    report = check_dataset(tmp_path, workers=0, progress=False)
    assert report.ok
    assert {i.reason for i in report.warnings} == {"huge", "grayscale"}


def test_missing_or_classless_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_dataset(tmp_path / "nope", workers=0)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "x.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no class folders"):
        check_dataset(tmp_path / "flat", workers=0)
    assert cli.main(["check-data", str(tmp_path / "nope"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"`workers` must be in \[0, inf\), got -1"):
        check_dataset(tmp_path, workers=-1)
    with pytest.raises(ValueError, match=r"`min_side` must be in \[1, inf\), got 0"):
        check_dataset(tmp_path, min_side=0)
    with pytest.raises(TypeError, match=r"`max_pixels` must be int, got 1.5"):
        check_dataset(tmp_path, max_pixels=1.5)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("JPEG", "jpeg"),
        ("PNG", "png"),
        ("GIF", "gif"),
        ("WEBP", "webp"),
        ("BMP", "bmp"),
        ("TIFF", "tiff"),
        ("PPM", "pnm"),
    ],
)
def test_sniff(fmt: str, expected: str) -> None:
    assert sniff(_encode(_picture(8, 8, 0), fmt)[:32]) == expected
    assert sniff(b"hello world") is None


def test_existing_classes_txt_is_left_alone(corpus: dict, tmp_path: Path) -> None:
    report = check_dataset(
        corpus["root"], workers=0, min_side=MIN_SIDE, max_pixels=MAX_PX, progress=False
    )
    (tmp_path / "classes.txt").write_text("mine\n")
    report.write_list(tmp_path / "clean.txt")
    assert (tmp_path / "classes.txt").read_text() == "mine\n"
    assert os.path.getsize(tmp_path / "clean.txt") > 0
