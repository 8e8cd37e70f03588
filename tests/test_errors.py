"""Errors: decode failures name the file; bad arguments fail at construction, naming the
argument, the valid range and the value received.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from torch import nn

from dali_gridaug import make_sample_dataset
from dali_gridaug.augment import CutMix, Cutout, GridMask, GridMix, RandomErasing
from dali_gridaug.errors import DecodeError, decode_error, name_bad_files
from dali_gridaug.loader import create_loader
from dali_gridaug.reader import FileSource

CONFIGS_WITH_P = (GridMask, Cutout, RandomErasing, CutMix, GridMix)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes × 4 JPEGs (12 files), 64–80 px."""
    paths = make_sample_dataset(
        tmp_path_factory.mktemp("small"), num_classes=3, train_per_class=4, val_per_class=0,
        size_range=(64, 80),
    )  # fmt: skip
    return paths["train"]


def _with_file(small: Path, tmp_path: Path, rel: str, data: bytes) -> tuple[Path, str]:
    root = tmp_path / "train"
    shutil.copytree(small, root)
    (root / rel).write_bytes(data)
    return root, str(root / rel)


def _loader(root: Path | str, **kw: object):
    kw = {
        "batch_size": 4,
        "train": False,
        "image_size": 32,
        "device": "cpu",
        "num_threads": 2,
        **kw,
    }
    return create_loader(root, **kw)


# ── decode errors name the file ──────────────────────────────────────────────────────────


@pytest.mark.parametrize("train", [False, True])
def test_truncated_jpeg_names_the_file(small: Path, tmp_path: Path, train: bool) -> None:
    data = next(small.rglob("*.jpg")).read_bytes()
    root, bad = _with_file(small, tmp_path, "c01_vstripes/broken.jpg", data[: len(data) // 2])
    loader = _loader(root, train=train, drop_last=False)
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
        for _ in _loader(root):
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
    file: say so, and how to find it.
    """
    data = _gif() if content == "gif" else b"plain text\n" * 50
    root, _ = _with_file(small, tmp_path, "c00_hstripes/bad.jpg", data)
    with pytest.raises(DecodeError, match=r"its message names none.*check-data") as info:
        for _ in _loader(root):
            pass
    assert info.value.paths == ()
    assert "nvImageCodec" in info.value.reason


def test_raw_names_the_file(small: Path, tmp_path: Path) -> None:
    data = next(small.rglob("*.jpg")).read_bytes()
    root, bad = _with_file(small, tmp_path, "c02_diagonal/broken.jpg", data[:-200])
    with pytest.raises(DecodeError, match=re.escape(bad)):
        for _ in _loader(root).raw():
            pass


def test_exclude_skips_the_named_file(small: Path, tmp_path: Path) -> None:
    data = next(small.rglob("*.jpg")).read_bytes()
    root, bad = _with_file(small, tmp_path, "c01_vstripes/broken.jpg", data[:500])
    loader = _loader(root, exclude=[bad])
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
        _loader(small, batch_size=13, train=True)


def test_batch_size_larger_than_shard(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`batch_size`=8 is larger than this rank's shard of 6"):
        _loader(small, batch_size=8, train=True, shard_id=1, num_shards=2)


def test_batch_size_larger_than_dataset_eval_is_one_partial_batch(small: Path) -> None:
    batches = list(_loader(small, batch_size=16))
    assert [len(b) for b in batches] == [12]


@pytest.mark.parametrize("mixer", [CutMix, GridMix])
def test_mixing_with_batch_size_1(small: Path, mixer: type) -> None:
    with pytest.raises(ValueError, match=r"`batch_size` must be ≥ 2, got 1"):
        _loader(small, batch_size=1, train=True, augment=[mixer()])


@pytest.mark.parametrize("value", [0, -1, 2.5])
def test_batch_size_not_positive_int(small: Path, value: float) -> None:
    err = TypeError if isinstance(value, float) else ValueError
    with pytest.raises(err, match=rf"`batch_size` must be (in \[1, inf\)|int), got {value}"):
        _loader(small, batch_size=value)


# ── augmentation configs ─────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("r", [0, 1, 1.0, -0.5, 1.5])
def test_gridmask_r_outside_open_unit_interval(r: float) -> None:
    with pytest.raises(ValueError, match=rf"`r` must be in \(0, 1\), got {r}"):
        GridMask(r=r)


@pytest.mark.parametrize("d", [(50, 50), (60, 50)])
def test_gridmask_d_min_not_below_d_max(d: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=re.escape(f"`d` must satisfy min < max, got {d}")):
        GridMask(d=d)


def test_gridmask_d_below_one() -> None:
    with pytest.raises(ValueError, match=r"`d\[0\]` must be in \[1, inf\), got 0"):
        GridMask(d=(0, 10))


@pytest.mark.parametrize("config", CONFIGS_WITH_P, ids=lambda c: c.__name__)
@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_p_outside_unit_interval(config: type, p: float) -> None:
    with pytest.raises(ValueError, match=rf"`p` must be in \[0, 1\], got {p}"):
        config(p=p)


@pytest.mark.parametrize("n", [0, -2])
def test_gridmix_n_below_one(n: int) -> None:
    with pytest.raises(ValueError, match=rf"`n` must be in \[1, inf\), got {n}"):
        GridMix(n=n)


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_cutmix_alpha_not_positive(alpha: float) -> None:
    with pytest.raises(ValueError, match=rf"`alpha` must be in \(0, inf\), got {alpha}"):
        CutMix(alpha=alpha)


def test_cutout_length_larger_than_image(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`length` must be in \[1, 32\] .*got 40"):
        _loader(small, train=True, image_size=32, augment=[Cutout(length=40)])


def test_gridmix_n_larger_than_image(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`n` must be in \[1, 16\] .*got 17"):
        _loader(small, train=True, image_size=16, augment=[GridMix(n=17)])


@pytest.mark.parametrize(
    ("config", "key"),
    [(GridMask, "ratio"), (Cutout, "size"), (RandomErasing, "probability"), (CutMix, "beta"),
     (GridMix, "grid")],
    ids=lambda v: getattr(v, "__name__", v),
)  # fmt: skip
def test_unknown_config_key(config: type, key: str) -> None:
    with pytest.raises(TypeError, match=rf"unexpected keyword argument '{key}'"):
        config(**{key: 0.5})


def test_unknown_loader_key(small: Path) -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'augmentation'"):
        create_loader(small, batch_size=2, device="cpu", augmentation=[])


# ── wrong types and other loader arguments ───────────────────────────────────────────────


def test_r_wrong_type() -> None:
    with pytest.raises(TypeError, match=r"`r` must be int or float, got '0.5' \(str\)"):
        GridMask(r="0.5")


def test_cutout_length_wrong_type() -> None:
    with pytest.raises(TypeError, match=r"`length` must be int, got 16.0 \(float\)"):
        Cutout(length=16.0)


def test_gridmix_n_wrong_type() -> None:
    with pytest.raises(TypeError, match=r"`n` must be int, got 2.0 \(float\)"):
        GridMix(n=2.0)


def test_batch_size_bool(small: Path) -> None:
    with pytest.raises(TypeError, match=r"`batch_size` must be int, got True \(bool\)"):
        _loader(small, batch_size=True)


@pytest.mark.parametrize("size", ["64", (64, 64, 3), 64.0])
def test_image_size_wrong_shape_or_type(small: Path, size: object) -> None:
    with pytest.raises(TypeError, match=r"`image_size` must be an int or an \(H, W\) pair, got"):
        _loader(small, image_size=size)


def test_image_size_not_positive(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`image_size\[1\]` must be in \[1, inf\), got 0"):
        _loader(small, image_size=(32, 0))


def test_augment_not_a_sequence(small: Path) -> None:
    with pytest.raises(TypeError, match=r"`augment` must be a sequence of configs, e.g. \[Grid"):
        _loader(small, train=True, augment=GridMask())


def test_augment_item_not_a_config(small: Path) -> None:
    with pytest.raises(TypeError, match=r"`augment` items must be augmentation configs, got 'x'"):
        _loader(small, train=True, augment=["x"])


def test_exclude_single_string(small: Path) -> None:
    with pytest.raises(TypeError, match=r"`exclude` must be a sequence of file paths, got one"):
        _loader(small, exclude="c00/a.jpg")


def test_train_not_bool(small: Path) -> None:
    with pytest.raises(TypeError, match=r"`train` must be bool, got 'no' \(str\)"):
        _loader(small, train="no")


def test_drop_last_not_bool(small: Path) -> None:
    with pytest.raises(TypeError, match=r"`drop_last` must be bool, got 1 \(int\)"):
        _loader(small, drop_last=1)


def test_seed_negative(small: Path) -> None:
    # DALI seeds are int64 and rank r uses seed + r
    with pytest.raises(ValueError, match=r"`seed` must be in \[0, 9223372036854775807\], got -1"):
        _loader(small, seed=-1)


def test_num_threads_negative(small: Path) -> None:
    # 0 is a DataLoader's num_workers=0 and means the default thread count (test_loader.py)
    with pytest.raises(ValueError, match=r"`num_threads` must be in \[0, inf\), got -1"):
        create_loader(small, batch_size=2, device="cpu", num_threads=-1)


def test_device_unknown(small: Path) -> None:
    with pytest.raises(
        ValueError, match=r"`device` must be one of 'auto', 'gpu', 'cpu'; got 'tpu'"
    ):
        _loader(small, device="tpu")


def test_shard_id_out_of_range(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`shard_id` must be in \[0, 1\] \(num_shards=2\), got 2"):
        _loader(small, shard_id=2, num_shards=2)


def test_mean_wrong_length(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`mean` must be a number or 3 per-channel values"):
        _loader(small, mean=(1, 2))


def test_std_not_positive(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`std` must be positive, got 0"):
        _loader(small, std=0)


def test_augment_on_eval_loader(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`augment` is for training loaders"):
        _loader(small, train=False, augment=[Cutout(length=8)])


def test_two_mixers(small: Path) -> None:
    with pytest.raises(ValueError, match=r"at most one mixing augmentation"):
        _loader(small, train=True, augment=[CutMix(), GridMix(n=2)])


# ── Keep stage ───────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("tau", [0, 1, 1.0, -0.2])
def test_keep_tau_outside_open_unit_interval(tau: float) -> None:
    keep = pytest.importorskip("dali_gridaug.saliency.keep")
    with pytest.raises(ValueError, match=rf"`tau` must be in \(0, 1\), got {tau}"):
        keep.KeepStage(nn.Linear(2, 2), "cutout", tau=tau)


def test_keep_tau_wrong_type() -> None:
    keep = pytest.importorskip("dali_gridaug.saliency.keep")
    with pytest.raises(TypeError, match=r"`tau` must be .*, got .*str"):
        keep.KeepStage(nn.Linear(2, 2), "cutout", tau="0.6")


# ── the argument matrix: NaN/inf/bool/None/wrong length, raw DALI errors, NumPy scalars ──

NAN, INF = float("nan"), float("inf")

#: (id, what to call: "loader" kwargs or a config factory, exception, message regex)
MATRIX = [
    ("mean-nan", {"mean": NAN}, ValueError, r"`mean` must be in \(-inf, inf\), got nan"),
    ("mean-inf", {"mean": (1, 2, INF)}, ValueError, r"`mean\[2\]` must be in .*got inf"),
    ("mean-bool", {"mean": True}, TypeError, r"`mean` must be a number or 3 per-channel"),
    # mean=None / std=None mean "the preset's" (create_loader(preset=...))
    ("mean-str", {"mean": "grey"}, TypeError, r"`mean` must be a number or 3 .*got 'grey'"),
    ("mean-len", {"mean": (1, 2, 3, 4)}, ValueError, r"`mean` must be a number or 3 per"),
    ("std-nan", {"std": (1, NAN, 1)}, ValueError, r"`std\[1\]` must be in .*got nan"),
    ("std-inf", {"std": INF}, ValueError, r"`std` must be in \(-inf, inf\), got inf"),
    ("std-bool", {"std": (True, 1, 1)}, TypeError, r"`std\[0\]` must be int or float, got True"),
    ("std-str", {"std": "unit"}, TypeError, r"`std` must be a number or 3 .*got 'unit'"),
    ("augment-None", {"augment": None}, TypeError, r"`augment` must be a sequence of .*None"),
    ("exclude-5", {"exclude": 5}, TypeError, r"`exclude` must be a sequence of file paths, got 5"),
    ("exclude-item", {"exclude": [5]}, TypeError, r"`exclude` items must be file paths, got 5"),
    ("checkpointing", {"checkpointing": "yes"}, TypeError, r"`checkpointing` must be bool"),
    ("seed-2**63", {"seed": 2**63}, ValueError, r"`seed` must be in \[0, 9223372036854775807\]"),
    (
        "seed-rank",
        {"seed": 2**63 - 1, "shard_id": 1, "num_shards": 2},
        ValueError,
        r"`seed` must be in \[0, 9223372036854775806\]",
    ),
    ("seed-bool", {"seed": True}, TypeError, r"`seed` must be int, got True"),
    ("seed-None", {"seed": None}, TypeError, r"`seed` must be int, got None"),
    ("seed-float", {"seed": 1.5}, TypeError, r"`seed` must be int, got 1.5"),
    ("batch-1e9", {"batch_size": 10**9}, ValueError, r"`batch_size`=1000000000 is larger"),
    ("batch-None", {"batch_size": None}, TypeError, r"`batch_size` must be int, got None"),
    ("batch-nan", {"batch_size": NAN}, TypeError, r"`batch_size` must be int, got nan"),
    ("image-size-len", {"image_size": (32,)}, TypeError, r"`image_size` must be an int or"),
    ("image-size-bool", {"image_size": True}, TypeError, r"`image_size` must be an int or"),
    ("threads-bool", {"num_threads": True}, TypeError, r"`num_threads` must be int, got True"),
    ("shards-0", {"num_shards": 0}, ValueError, r"`num_shards` must be in \[1, inf\), got 0"),
    ("shard-bool", {"shard_id": False}, TypeError, r"`shard_id` must be int, got False"),
    ("classes-small", {"num_classes": 2}, ValueError, r"`num_classes`=2 is smaller than .* 3 cl"),
    ("classes-0", {"num_classes": 0}, ValueError, r"`num_classes` must be in \[1, inf\), got 0"),
    ("classes-bool", {"num_classes": True}, TypeError, r"`num_classes` must be int, got True"),
    ("auto-augment", {"auto_augment": "rand"}, ValueError, r"`auto_augment` must be one of"),
    ("dtype", {"dtype": "float32"}, ValueError, r"`dtype` must be one of"),
    ("resume-str", {"resume": "state.pt"}, TypeError, r"`resume` must be a loader state_dict"),
    ("erasing-nan", lambda: RandomErasing(value=NAN), ValueError, r"`value` must be in .*nan"),
    ("erasing-inf", lambda: RandomErasing(value=-INF), ValueError, r"`value` must be in .*-inf"),
    ("erasing-bool", lambda: RandomErasing(value=True), TypeError, r"`value` must be int or fl"),
    ("erasing-str", lambda: RandomErasing(value="noise"), ValueError, r"`value` must be 'rand"),
    ("gridmask-d1", lambda: GridMask(d=(16,)), TypeError, r"`d` must be a \(min, max\) pair"),
    ("gridmask-dNone", lambda: GridMask(d=None), TypeError, r"`d` must be a \(min, max\) pair"),
    ("gridmask-dbool", lambda: GridMask(d=(True, 9)), TypeError, r"`d\[0\]` must be int, got T"),
    ("gridmask-r-nan", lambda: GridMask(r=NAN), ValueError, r"`r` must be in \(0, 1\), got nan"),
    ("gridmask-p-bool", lambda: GridMask(p=True), TypeError, r"`p` must be int or float, got T"),
    ("cutout-None", lambda: Cutout(length=None), TypeError, r"`length` must be int, got None"),
    ("cutmix-inf", lambda: CutMix(alpha=INF), ValueError, r"`alpha` must be in .*got inf"),
    ("cutmix-bool", lambda: CutMix(correct_lam="no"), TypeError, r"`correct_lam` must be bool"),
    ("gridmix-nan", lambda: GridMix(p=NAN), ValueError, r"`p` must be in \[0, 1\], got nan"),
    ("erasing-scale", lambda: RandomErasing(scale=(0.1,)), TypeError, r"`scale` must be a \(min"),
]


@pytest.mark.parametrize(("case", "call", "exc", "match"), MATRIX, ids=[m[0] for m in MATRIX])
def test_argument_matrix(small: Path, case: str, call: object, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        if callable(call):
            call()
        else:
            _loader(small, train=True, **call)


def test_batch_size_beyond_memory_is_refused_before_dali_allocates(tmp_path: Path) -> None:
    """A huge eval batch over tar shards (whose size DALI counts only when built) would make
    DALI allocate the whole batch (``std::bad_alloc`` or the OOM killer)."""
    shard = _tar_shard(tmp_path, 3)
    with pytest.raises(ValueError, match=r"`batch_size`=1000000000 at 32×32 needs at least"):
        _loader([str(shard)], batch_size=10**9)


def test_eval_batch_larger_than_the_dataset_is_one_batch(small: Path) -> None:
    loader = _loader(small, batch_size=10**9)
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


def test_numpy_scalars_are_accepted_everywhere(small: Path) -> None:
    import numpy as np

    augment = [
        GridMask(d=(np.int64(8), np.int32(20)), r=np.float32(0.5), p=np.float64(0.5)),
        Cutout(length=np.int16(8), p=np.float32(1.0)),
        RandomErasing(value=np.float32(0.5), max_attempts=np.int64(5)),
        GridMix(n=np.int64(2), p=np.float32(1.0)),
    ]
    loader = _loader(
        small, train=True, batch_size=np.int64(4), seed=np.uint16(3), num_threads=np.int8(1),
        image_size=(np.int32(32), np.int64(32)), mean=np.float32(0), std=np.ones(3, np.float32),
        num_classes=np.int64(5), augment=augment,
    )  # fmt: skip
    batch = next(iter(loader))
    assert loader.batch_size == 4 and type(loader.spec.seed) is int
    assert batch.images.shape == (4, 3, 32, 32) and batch.target.shape == (4, 5)


def test_corrupt_resume_state_is_a_value_error(small: Path) -> None:
    """DALI aborts the process on a malformed checkpoint; the state is checked first."""
    loader = _loader(small, train=True, checkpointing=True)
    next(iter(loader))
    state = loader.state_dict()
    dali = state["dali"]
    with pytest.raises(ValueError, match=r"`resume\['dali'\]` is corrupt: its SHA-256 differs"):
        _loader(small, train=True, resume={**state, "dali": dali[: len(dali) // 2]})
    unsigned = {k: v for k, v in state.items() if k != "dali_sha256"}
    for bad in (dali[:-3], b"\xff" * 40, b""):
        with pytest.raises(ValueError, match=r"is corrupt: not a serialized DALI checkpoint"):
            _loader(small, train=True, resume={**unsigned, "dali": bad})
    with pytest.raises(TypeError, match=r"`resume\['dali'\]` must be DALI's checkpoint bytes"):
        _loader(small, train=True, resume={**unsigned, "dali": 5})
    with pytest.raises(ValueError, match=r"`resume\['epoch'\]` must be in \[0, inf\), got -1"):
        _loader(small, train=True, resume={**state, "epoch": -1})
    # the intact state (with or without its digest) still restores
    assert len(list(_loader(small, train=True, resume=unsigned))) == len(loader) - 1
