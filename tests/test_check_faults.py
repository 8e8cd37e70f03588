"""``check-data`` on the faults that used to pass silently or crash it: a non-UTF-8 file name,
a newline in a name, JPEGs with damaged scan data, a folder symlink loop, an EXIF-rotated
file. Every bad file is reported and no good one; the report's paths, passed to
``create_loader(root, exclude=...)``, give a full epoch; the clean list reads back exactly.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dali_gridaug import cli
from dali_gridaug.filelist import quote_path, unquote_path
from dali_gridaug.loader import create_loader
from dali_gridaug.reader import FileSource, file_list, image_folder
from dali_gridaug.tools import make_sample_dataset
from dali_gridaug.tools.check import check_dataset

NON_UTF8 = os.fsdecode(b"c01_vstripes/caf\xe9.jpg")  # Latin-1 "café": not UTF-8


def _damaged(jpeg: bytes, seed: int) -> bytes:
    """``jpeg`` with part of its entropy-coded data overwritten (markers kept): it decodes
    without error, to wrong pixels, and libjpeg only warns "Corrupt JPEG data".
    """
    sos, eoi = jpeg.rfind(b"\xff\xda"), jpeg.rfind(b"\xff\xd9")
    data = bytearray(jpeg)
    if seed == 0:
        data[sos + 40 : eoi - 10] = bytes(eoi - 10 - sos - 40)
    else:
        rng = np.random.default_rng(seed)
        mid = (sos + eoi) // 2
        data[mid : mid + 200] = rng.integers(0, 0xFF, 200, dtype=np.uint8).tobytes()
    return bytes(data)


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("faults")
    root = make_sample_dataset(
        base / "data", num_classes=3, train_per_class=4, val_per_class=0, size_range=(64, 96)
    )["train"]
    good = next(iter(sorted(root.rglob("*.jpg")))).read_bytes()
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    with Image.open(io.BytesIO(good)) as im:
        im.save(rotated, format="JPEG", exif=exif)
    files = {
        "c00_hstripes/new\nline.jpg": good,  # good: a newline in the name
        "c00_hstripes/with space.jpg": good,  # good
        "c00_hstripes/#hash.jpg": good,  # good: looks like a comment line
        "c02_diagonal/rotated.jpg": rotated.getvalue(),  # good, with a note
        "c01_vstripes/corrupt_a.jpg": _damaged(good, 0),
        "c02_diagonal/corrupt_b.jpg": _damaged(good, 1),
        NON_UTF8: good,  # DALI's reader cannot open the name
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    os.symlink("..", root / "c02_diagonal" / "up")  # back to ROOT: a loop
    os.makedirs(root / "c01_vstripes" / "sub")
    os.symlink("..", root / "c01_vstripes" / "sub" / "back")  # back to its class folder
    bad = {
        "c01_vstripes/corrupt_a.jpg": "corrupt-data",
        "c02_diagonal/corrupt_b.jpg": "corrupt-data",
        NON_UTF8: "non-utf8-name",
    }
    return {"root": root, "bad": bad, "loops": {"c01_vstripes/sub/back", "c02_diagonal/up"}}


@pytest.fixture(scope="module")
def run(faults: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("out")
    argv = [
        "check-data",
        str(faults["root"]),
        "--report",
        str(out / "report.json"),
        "--workers",
        "2",
        "--min-side",
        "32",
        "--quiet",
    ]
    rc = cli.main(argv)
    text = (out / "report.json").read_text(encoding="ascii")  # ASCII: \u escapes
    return {"rc": rc, "report": json.loads(text), "list": out / "report_clean.txt"}


@pytest.mark.slow
def test_every_bad_file_and_no_good_one(faults: dict, run: dict) -> None:
    report = run["report"]
    assert run["rc"] == 1
    assert {i["path"]: i["reason"] for i in report["bad"]} == faults["bad"]
    assert report["counts"]["good"] == 12 + 4  # the sample files + the 4 good new ones


@pytest.mark.slow
def test_symlink_loops_are_reported_and_not_followed(faults: dict, run: dict) -> None:
    report = run["report"]
    assert {i["path"] for i in report["loops"]} == faults["loops"]
    scanned = [p for p, _ in check_dataset(faults["root"], workers=0, progress=False).good]
    assert len(scanned) == len(set(scanned)) == 16
    assert not any("/up/" in p or "/back/" in p for p in scanned)


def test_image_folder_skips_the_loops_and_says_so(faults: dict) -> None:
    with pytest.warns(UserWarning, match=r"skipped 2 folder symlink\(s\) .* \(a loop\)"):
        src = image_folder(faults["root"])
    assert len(src) == 12 + 4 + 3  # the image_folder view: every extension-matching file


@pytest.mark.slow
def test_exif_rotation_is_a_note_not_a_fault(run: dict) -> None:
    notes = {(i["path"], i["reason"]) for i in run["report"]["warnings"]}
    assert ("c02_diagonal/rotated.jpg", "exif-rotated") in notes


@pytest.mark.slow
def test_report_paths_as_written_exclude_every_bad_file(faults: dict, run: dict) -> None:
    """The JSON paths (relative to ROOT, the undecodable byte kept) are ``exclude=`` as is."""
    paths = [i["path"] for i in run["report"]["bad"]]
    with pytest.warns(UserWarning, match="loop"):
        loader = create_loader(
            faults["root"],
            batch_size=4,
            train=False,
            drop_last=False,
            image_size=32,
            device="cpu",
            num_threads=2,
            exclude=paths,
        )
    assert len(loader.source) == 16
    seen = sorted(i for b in loader for i in b.index.tolist())
    assert seen == list(range(16))


@pytest.mark.slow
def test_clean_list_reads_back_every_name(faults: dict, run: dict) -> None:
    src = file_list(run["list"])
    names = {os.path.relpath(f, faults["root"]) for f in src.files}
    assert {"c00_hstripes/new\nline.jpg", "c00_hstripes/with space.jpg"} <= names
    assert "c00_hstripes/#hash.jpg" in names
    assert not names & set(faults["bad"])
    loader = create_loader(
        str(run["list"]),
        batch_size=4,
        train=True,
        image_size=32,
        device="cpu",
        num_threads=2,
        drop_last=False,
    )
    assert sorted(i for b in loader for i in b.index.tolist()) == list(range(16))


@pytest.mark.parametrize(
    "name",
    [
        "plain.jpg",
        "a b.jpg",
        "new\nline.jpg",
        'q"uote.jpg',
        "#c.jpg",
        '"lead.jpg',
        "tab\t.jpg",
        os.fsdecode(b"caf\xe9.jpg"),
        "back\\slash.jpg",
        "\u2028sep.jpg",
        "\x85nel.jpg",
    ],
)
def test_quote_path_round_trips(name: str) -> None:
    quoted = quote_path(name)
    assert "\n" not in quoted and "\r" not in quoted
    back = unquote_path(quoted)[0] if quoted.startswith('"') else quoted
    assert back == name and os.fsencode(back) == os.fsencode(name)


def test_non_utf8_name_is_refused_by_name(faults: dict) -> None:
    with pytest.warns(UserWarning, match="loop"):
        src = image_folder(faults["root"])
    with pytest.raises(ValueError, match=r"not valid UTF-8 .*caf\\udce9\.jpg.*`exclude`"):
        create_loader(src, batch_size=4, train=False, image_size=32, device="cpu")


def test_exclude_relative_absolute_and_through_a_symlinked_root(
    faults: dict, tmp_path: Path
) -> None:
    link = tmp_path / "linked"
    os.symlink(faults["root"], link)
    files = tuple(str(link / "c00_hstripes" / n) for n in ("a.jpg", "b.jpg", "c.jpg"))
    src = FileSource(files, (0, 0, 0), ("c",), str(link))
    real = os.path.realpath(faults["root"])
    kept = src.without(["c00_hstripes/a.jpg", os.path.join(real, "c00_hstripes", "b.jpg")])
    assert kept.files == (files[2],)
    assert src.without([os.fsencode(files[2])]).files == files[:2]  # bytes, as os.fsencode
    with pytest.raises(ValueError, match=r"`exclude` has 2 path\(s\) matching no file .*'x\.jpg'"):
        src.without(["c00_hstripes/c.jpg", "x.jpg", "/nowhere/y.jpg"])


def test_odd_class_names_survive_the_clean_list(faults: dict, tmp_path: Path) -> None:
    """Class folders named with a newline or a leading '#' keep their names and indices."""
    good = (Path(faults["root"]) / "c00_hstripes" / "with space.jpg").read_bytes()
    names = ["#first", "a\nb", "plain"]
    for name in names:
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "x.jpg").write_bytes(good)
    report = check_dataset(tmp_path / "data", workers=0, min_side=32, progress=False)
    assert report.ok and report.classes == tuple(names)
    src = file_list(report.write_list(tmp_path / "out" / "clean.txt"))
    assert src.classes == tuple(names)
    assert [Path(f).parent.name for f in src.files] == names
    assert src.targets == (0, 1, 2)
