"""Bad arguments fail at construction, naming the argument, the valid range and the value
received: augmentation configs, loader arguments, the Keep stage, and a matrix of NaN, inf,
bool, None and wrong-length values; NumPy scalars are accepted everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from torch import nn

from dali_gridaug.augment import CutMix, Cutout, GridMask, GridMix, RandomErasing
from dali_gridaug.loader import create_loader
from tests.helpers import small_loader

CONFIGS_WITH_P = (GridMask, Cutout, RandomErasing, CutMix, GridMix)


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
        small_loader(small, train=True, image_size=32, augment=[Cutout(length=40)])


def test_gridmix_n_larger_than_image(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`n` must be in \[1, 16\] .*got 17"):
        small_loader(small, train=True, image_size=16, augment=[GridMix(n=17)])


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (GridMask, "ratio"),
        (Cutout, "size"),
        (RandomErasing, "probability"),
        (CutMix, "beta"),
        (GridMix, "grid"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
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
        small_loader(small, batch_size=True)


@pytest.mark.parametrize("size", ["64", (64, 64, 3), 64.0])
def test_image_size_wrong_shape_or_type(small: Path, size: object) -> None:
    with pytest.raises(TypeError, match=r"`image_size` must be an int or an \(H, W\) pair, got"):
        small_loader(small, image_size=size)


def test_image_size_not_positive(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`image_size\[1\]` must be in \[1, inf\), got 0"):
        small_loader(small, image_size=(32, 0))


def test_augment_not_a_sequence(small: Path) -> None:
    with pytest.raises(TypeError, match=r"`augment` must be a sequence of configs, e.g. \[Grid"):
        small_loader(small, train=True, augment=GridMask())


def test_augment_item_not_a_config(small: Path) -> None:
    with pytest.raises(TypeError, match=r"`augment` items must be augmentation configs, got 'x'"):
        small_loader(small, train=True, augment=["x"])


def test_exclude_single_string(small: Path) -> None:
    with pytest.raises(TypeError, match=r"`exclude` must be a sequence of file paths, got one"):
        small_loader(small, exclude="c00/a.jpg")


def test_train_not_bool(small: Path) -> None:
    with pytest.raises(TypeError, match=r"`train` must be bool, got 'no' \(str\)"):
        small_loader(small, train="no")


def test_drop_last_not_bool(small: Path) -> None:
    with pytest.raises(TypeError, match=r"`drop_last` must be bool, got 1 \(int\)"):
        small_loader(small, drop_last=1)


def test_seed_negative(small: Path) -> None:
    # DALI seeds are int64 and rank r uses seed + r
    with pytest.raises(ValueError, match=r"`seed` must be in \[0, 9223372036854775807\], got -1"):
        small_loader(small, seed=-1)


def test_num_threads_negative(small: Path) -> None:
    # 0 is a DataLoader's num_workers=0 and means the default thread count (test_loader.py)
    with pytest.raises(ValueError, match=r"`num_threads` must be in \[0, inf\), got -1"):
        create_loader(small, batch_size=2, device="cpu", num_threads=-1)


def test_device_unknown(small: Path) -> None:
    with pytest.raises(
        ValueError, match=r"`device` must be one of 'auto', 'gpu', 'cpu'; got 'tpu'"
    ):
        small_loader(small, device="tpu")


def test_shard_id_out_of_range(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`shard_id` must be in \[0, 1\] \(num_shards=2\), got 2"):
        small_loader(small, shard_id=2, num_shards=2)


def test_mean_wrong_length(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`mean` must be a number or 3 per-channel values"):
        small_loader(small, mean=(1, 2))


def test_std_not_positive(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`std` must be positive, got 0"):
        small_loader(small, std=0)


def test_augment_on_eval_loader(small: Path) -> None:
    with pytest.raises(ValueError, match=r"`augment` is for training loaders"):
        small_loader(small, train=False, augment=[Cutout(length=8)])


def test_two_mixers(small: Path) -> None:
    with pytest.raises(ValueError, match=r"at most one mixing augmentation"):
        small_loader(small, train=True, augment=[CutMix(), GridMix(n=2)])


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
    ("repeats-neg", {"aug_repeats": -1}, ValueError, r"`aug_repeats` must be in \[0, inf\)"),
    ("repeats-bool", {"aug_repeats": True}, TypeError, r"`aug_repeats` must be int, got True"),
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
    (
        "erasing-mode",
        lambda: RandomErasing(mode="zeros"),
        ValueError,
        r"`mode` must be one of 'const', 'rand', 'pixel'; got 'zeros'",
    ),
    (
        "erasing-mode-value",
        lambda: RandomErasing(mode="rand", value=0.5),
        ValueError,
        r"`value` is the constant fill of mode 'const', but `mode` is 'rand' \(got value=0.5\)",
    ),
    (
        "erasing-random-const",
        lambda: RandomErasing(mode="const", value="random"),
        ValueError,
        r"`value`='random' means mode 'pixel', but `mode` is 'const'",
    ),
    (
        "erasing-count-0",
        lambda: RandomErasing(count=0),
        ValueError,
        r"`count` must be in \[1, inf\), got 0",
    ),
    (
        "erasing-count-float",
        lambda: RandomErasing(count=1.5),
        TypeError,
        r"`count` must be int, got 1.5",
    ),
    (
        "erasing-count-order",
        lambda: RandomErasing(count=(3, 1)),
        ValueError,
        r"`count` must satisfy min ≤ max, got \(3, 1\)",
    ),
    (
        "erasing-count-pair0",
        lambda: RandomErasing(count=(0, 2)),
        ValueError,
        r"`count\[0\]` must be in \[1, inf\), got 0",
    ),
    (
        "erasing-count-3",
        lambda: RandomErasing(count=(1, 2, 3)),
        TypeError,
        r"`count` must be an int or a \(min, max\) pair, got \(1, 2, 3\)",
    ),
    (
        "erasing-splits",
        lambda: RandomErasing(num_splits=-1),
        ValueError,
        r"`num_splits` must be in \[0, inf\), got -1",
    ),
    (
        "erasing-splits-bool",
        lambda: RandomErasing(num_splits=True),
        TypeError,
        r"`num_splits` must be int, got True",
    ),
]


@pytest.mark.parametrize(("case", "call", "exc", "match"), MATRIX, ids=[m[0] for m in MATRIX])
def test_argument_matrix(small: Path, case: str, call: object, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        if callable(call):
            call()
        else:
            small_loader(small, train=True, **call)


def test_numpy_scalars_are_accepted_everywhere(small: Path) -> None:
    import numpy as np

    augment = [
        GridMask(d=(np.int64(8), np.int32(20)), r=np.float32(0.5), p=np.float64(0.5)),
        Cutout(length=np.int16(8), p=np.float32(1.0)),
        RandomErasing(
            value=np.float32(0.5),
            max_attempts=np.int64(5),
            count=(np.int64(1), np.int32(2)),
            num_splits=np.int64(2),
        ),
        GridMix(n=np.int64(2), p=np.float32(1.0)),
    ]
    loader = small_loader(
        small,
        train=True,
        batch_size=np.int64(4),
        seed=np.uint16(3),
        num_threads=np.int8(1),
        image_size=(np.int32(32), np.int64(32)),
        mean=np.float32(0),
        std=np.ones(3, np.float32),
        num_classes=np.int64(5),
        augment=augment,
    )
    batch = next(iter(loader))
    assert loader.batch_size == 4 and type(loader.spec.seed) is int
    assert batch.images.shape == (4, 3, 32, 32) and batch.target.shape == (4, 5)
