"""Data errors: decode failures name the file; missing, empty or too small sources and batch
sizes that do not fit the data fail at construction; a corrupt resume state is a ValueError.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from dali_gridaug.augment import CutMix, GridMix
from dali_gridaug.errors import DecodeError, decode_error, name_bad_files
from dali_gridaug.loader import create_loader
from dali_gridaug.reader import FileSource
from tests.helpers import small_loader


def _with_file(small: Path, tmp_path: Path, rel: str, data: bytes) -> tuple[Path, str]:
    root = tmp_path / "train"
    shutil.copytree(small, root)
    (root / rel).write_bytes(data)
    return root, str(root / rel)


# ── decode errors name the file ──────────────────────────────────────────────────────────


@pytest.mark.parametrize("train", [False, True])
def test_truncated_jpeg_names_the_file(small: Path, tmp_path: Path, train: bool) -> None:
    data = next(small.rglob("*.jpg")).read_bytes()
    root, bad = _with_file(small, tmp_path, "c01_vstripes/broken.jpg", data[: len(data) // 2])
    loader = small_loader(root, train=train, drop_last=False)
    with pytest.raises(DecodeError, match=re.escape(bad)) as info:
        for _ in loader:
            pass
    err = info.value
    assert err.paths == (bad,)
    assert err.indices == (loader.source.files.index(bad),)
    assert f"index {err.indices[0]} in loader.source.files" in str(err)
    assert f"dali-gridaug check-data {root}" in str(err)
    assert "exclude=" in str(err)
    assert isinstance(err, RuntimeError)
    assert isinstance(err.__cause__, RuntimeError) and "Critical error" in str(err.__cause__)


def test_zero_byte_file_names_the_file(small: Path, tmp_path: Path) -> None:
    root, bad = _with_file(small, tmp_path, "c00_hstripes/empty.jpg", b"")
    with pytest.raises(DecodeError, match=re.escape(bad)) as info:
        for _ in small_loader(root):
            pass
    assert info.value.paths == (bad,)
    assert "File mapping failed" in info.value.reason


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(buf, format="GIF")
    return buf.getvalue()


@pytest.mark.parametrize("content", ["text", "gif"])
def test_undecodable_content_points_to_check_data(
    small: Path, tmp_path: Path, content: str
) -> None:
    """DALI cannot decode text or GIF content (here named ``.jpg``) and its message names no
    file: the loader checks the files in flight on the host and names the one Pillow cannot
    decode (text); where Pillow can (GIF), it says so, and how to find it.
    """
    data = _gif() if content == "gif" else b"plain text\n" * 50
    root, _ = _with_file(small, tmp_path, "c00_hstripes/bad.jpg", data)
    if content == "text":  # DALI names no file; the host check of the batch in flight does
        with pytest.raises(DecodeError, match=re.escape(str(root / "c00_hstripes/bad.jpg"))):
            for _ in small_loader(root):
                pass
        return
    # Pillow decodes GIF content, so nothing is named, but the way to find it is said
    with pytest.raises(DecodeError, match=r"its message names none.*check-data") as info:
        for _ in small_loader(root):
            pass
    assert info.value.paths == ()
    assert "nvImageCodec" in info.value.reason


def test_raw_names_the_file(small: Path, tmp_path: Path) -> None:
    data = next(small.rglob("*.jpg")).read_bytes()
    root, bad = _with_file(small, tmp_path, "c02_diagonal/broken.jpg", data[:-200])
    with pytest.raises(DecodeError, match=re.escape(bad)):
        for _ in small_loader(root).raw():
            pass


def test_exclude_skips_the_named_file(small: Path, tmp_path: Path) -> None:
    data = next(small.rglob("*.jpg")).read_bytes()
    root, bad = _with_file(small, tmp_path, "c01_vstripes/broken.jpg", data[:500])
    loader = small_loader(root, exclude=[bad])
    assert bad not in loader.source.files
    seen = sorted(i for batch in loader for i in batch.index.tolist())
    assert seen == list(range(12))


def test_other_errors_pass_unchanged() -> None:
    assert decode_error(RuntimeError("Critical error in pipeline: kernel bug")) is None

    def failing():
        yield 1
        raise RuntimeError("not a data problem")

    it = name_bad_files(failing())
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="not a data problem") as info:
        next(it)
    assert not isinstance(info.value, DecodeError)


# ── sources ──────────────────────────────────────────────────────────────────────────────


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"`source` '.*nope' is not a folder"):
        create_loader(tmp_path / "nope", batch_size=2, device="cpu")


def test_empty_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no class folders found in dataset root"):
        create_loader(tmp_path, batch_size=2, device="cpu")


def test_class_folder_without_images(small: Path, tmp_path: Path) -> None:
    root = tmp_path / "train"
    shutil.copytree(small, root)
    (root / "c09_empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"class folder\(s\) with no image file.*c09_empty"):
        create_loader(root, batch_size=2, device="cpu")


def test_zero_classes() -> None:
    with pytest.raises(ValueError, match=r"dataset has 0 files, fewer than `num_shards`=1"):
        create_loader(FileSource((), (), ()), batch_size=2, device="cpu")


def test_empty_file_list(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="lists no files"):
        create_loader(tmp_path / "list.txt", batch_size=2, device="cpu")


# ── batch size ───────────────────────────────────────────────────────────────────────────


def test_batch_size_larger_than_dataset_train(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`batch_size`=13 is larger than this rank's shard of 12"):
        small_loader(small, batch_size=13, train=True)


def test_batch_size_larger_than_shard(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`batch_size`=8 is larger than this rank's shard of 6"):
        small_loader(small, batch_size=8, train=True, shard_id=1, num_shards=2)


def test_batch_size_larger_than_dataset_eval_is_one_partial_batch(small: Path) -> None:
    batches = list(small_loader(small, batch_size=16))
    assert [len(b) for b in batches] == [12]


@pytest.mark.parametrize("mixer", [CutMix, GridMix])
def test_mixing_with_batch_size_1(small: Path, mixer: type) -> None:
    with pytest.raises(ValueError, match=r"`batch_size` must be ≥ 2, got 1"):
        small_loader(small, batch_size=1, train=True, augment=[mixer()])


@pytest.mark.parametrize("value", [0, -1, 2.5])
def test_batch_size_not_positive_int(small: Path, value: float) -> None:
    err = TypeError if isinstance(value, float) else ValueError
    with pytest.raises(err, match=rf"`batch_size` must be (in \[1, inf\)|int), got {value}"):
        small_loader(small, batch_size=value)


def test_batch_size_beyond_memory_is_refused_before_dali_allocates(small: Path) -> None:
    """A batch whose buffers exceed the machine's memory would make DALI allocate them
    (``std::bad_alloc`` or the OOM killer): refused first."""
    with pytest.raises(ValueError, match=r"`batch_size`=12 at 100000×100000 needs at least"):
        small_loader(small, batch_size=12, image_size=100_000)


def test_eval_batch_larger_than_the_dataset_is_one_batch(small: Path) -> None:
    loader = small_loader(small, batch_size=10**9)
    assert loader.batch_size == 10**9 and len(loader) == 1
    assert [len(b) for b in loader] == [12]


def _tar_shard(tmp_path: Path, n: int) -> Path:
    import tarfile

    image = io.BytesIO()
    Image.new("RGB", (40, 30), (90, 20, 200)).save(image, format="JPEG")
    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w") as tar:
        for i in range(n):
            for ext, data in (("jpg", image.getvalue()), ("cls", b"1\n")):
                info = tarfile.TarInfo(f"{i:04d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (tmp_path / "classes.txt").write_text("a\nb\n")
    return shard


def test_bad_resume_state_is_a_clear_error(small: Path, tmp_path: Path) -> None:
    """A state of another seed or another dataset, an older format, a bad field: one line
    naming the field and both values; the intact state still restores."""
    loader = small_loader(small, train=True)
    next(iter(loader))
    state = loader.state_dict()
    assert set(state) == {"epoch", "position", "mixup_enabled", "seed", "num_samples", "source"}
    with pytest.raises(ValueError, match=r"saved with `seed`=0, this loader has 5"):
        small_loader(small, train=True, seed=5, resume=state)
    jpeg = next(small.rglob("*.jpg")).read_bytes()
    other, _ = _with_file(small, tmp_path, "c00_hstripes/extra.jpg", jpeg)
    with pytest.raises(ValueError, match=r"saved with `num_samples`=12, this loader has 13"):
        small_loader(other, train=True, resume=state)
    moved = {**state, "num_samples": 13}
    with pytest.raises(ValueError, match=rf"file list has SHA-256{state['source']}, this loader"):
        small_loader(other, train=True, resume=moved)
    with pytest.raises(ValueError, match=r"missing epoch, num_samples, .*older dali-gridaug"):
        small_loader(small, train=True, resume={"dali": b"", "batches_done": 1})
    with pytest.raises(ValueError, match=r"`resume\['epoch'\]` must be in \[0, inf\), got -1"):
        small_loader(small, train=True, resume={**state, "epoch": -1})
    with pytest.raises(ValueError, match=r"`position`=99 is past the end of epoch 0's 12"):
        small_loader(small, train=True, resume={**state, "position": 99})
    with pytest.raises(TypeError, match=r"`resume` must be a loader state_dict\(\), got list"):
        small_loader(small, train=True, resume=[state])
    assert len(list(small_loader(small, train=True, resume=state))) == len(loader) - 1
