"""``dali-gridaug check-data`` on tar shards: a planted corrupt member and a symlink member
are reported by ``shard:member`` with exit status 1; clean shards exit 0; nothing is written
beside the shards.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from dali_gridaug.tools import make_sample_dataset
from dali_gridaug.tools.check import check_shards, main, shard_paths


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", **kw: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in kw.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data) if data else None)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``clean/`` (2 good shards) and ``dirty/`` (the same plus a cut JPEG, a symlink member)."""
    base = tmp_path_factory.mktemp("checktar")
    paths = make_sample_dataset(
        base / "src", num_classes=2, train_per_class=3, val_per_class=0, size_range=(64, 80)
    )
    jpegs = sorted(p for p in paths["train"].rglob("*.jpg"))[:6]
    out = {}
    for name in ("clean", "dirty"):
        folder = base / name
        folder.mkdir()
        (folder / "classes.txt").write_text("a\nb\n")
        for s in range(2):
            with tarfile.open(folder / f"shard-{s}.tar", "w") as tar:
                for i in range(3):
                    k = s * 3 + i
                    _add(tar, f"{k:04d}.jpg", jpegs[k].read_bytes())
                    _add(tar, f"{k:04d}.cls", str(k % 2).encode())
                if name == "dirty" and s == 1:
                    data = jpegs[0].read_bytes()
                    _add(tar, "cut.jpg", data[: len(data) // 2])
                    _add(tar, "cut.cls", b"0")
                    _add(tar, "link.jpg", type=tarfile.SYMTYPE, linkname="0000.jpg")
                    _add(tar, "link.cls", b"1")
        out[name] = folder
    return out


def test_folder_of_shards_reports_bad_members(shards: dict[str, Path], tmp_path: Path) -> None:
    before = sorted(p.name for p in shards["dirty"].iterdir())
    report = tmp_path / "r.json"
    status = main([str(shards["dirty"]), "--report", str(report), "--workers", "0", "--quiet"])
    assert status == 1
    payload = json.loads(report.read_text())
    bad = {b["path"]: b["reason"] for b in payload["bad"]}
    assert bad == {"shard-1.tar:cut.jpg": "truncated", "shard-1.tar:link.jpg": "tar-not-a-file"}
    assert payload["counts"]["good"] == 6 and payload["classes"] == ["a", "b"]
    assert payload["list"] is None
    assert sorted(p.name for p in shards["dirty"].iterdir()) == before


def test_clean_shards_exit_0(shards: dict[str, Path], tmp_path: Path) -> None:
    files = sorted(str(p) for p in shards["clean"].glob("*.tar"))
    assert shard_paths([str(shards["clean"])]) == files
    status = main([*files, "--report", str(tmp_path / "r.json"), "--workers", "0", "--quiet"])
    assert status == 0
    report = check_shards(files, workers=0, progress=False)
    assert report.ok and [k for _, k in report.good] == [0, 1, 0, 1, 0, 1]
    assert report.good[0][0] == "shard-0.tar:0000.jpg"


def test_usage_errors_exit_2(shards: dict[str, Path], tmp_path: Path) -> None:
    from dali_gridaug import cli

    one = str(shards["clean"] / "shard-0.tar")
    assert cli.main(["check-data", one, "--list", str(tmp_path / "l.txt"), "--quiet"]) == 2
    assert cli.main(["check-data", one, str(tmp_path), "--quiet"]) == 2
