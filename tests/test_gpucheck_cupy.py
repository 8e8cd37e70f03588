"""Every remaining ``xp`` kernel runs under the CuPy-rules stand-in as DALI's GPU
``python_function`` would call it, and gives the NumPy path's result bit for bit; planted
CuPy mistakes are caught with a clear message.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from dali_gridaug import CutMix, Cutout, GridMask, GridMix, RandomErasing
from dali_gridaug.augment import SampleContext
from dali_gridaug.augment.graph import KernelCall
from dali_gridaug.augment.mixup import Mixup, MixupCutMix
from dali_gridaug.kernels import (
    get_xp,
    normal_noise,
)
from tests.oracles.cupy_rules import (
    DeviceArray,
    DeviceSynchronized,
    HostArrayInDeviceOp,
    ImplicitHostConversion,
    MissingCuPyAPI,
    StrictCuPy,
)

B, H, W = 6, 40, 48
_GRID = GridMask(d=(8, 20), p=0.7, ramp_epochs=0, backend="kernel")
KERNEL_AUGS = [
    pytest.param(_GRID, id="gridmask"),
    pytest.param(dataclasses.replace(_GRID, mode=0), id="gridmask-reversed"),
    pytest.param(dataclasses.replace(_GRID, square_p=0.5), id="gridmask-random"),
    pytest.param(Cutout(length=8, p=0.8, backend="kernel"), id="cutout"),
    pytest.param(RandomErasing(value=0.5, p=1.0, backend="kernel"), id="erasing-const"),
    pytest.param(RandomErasing(value="random", p=1.0, backend="kernel"), id="erasing-noise"),
    pytest.param(
        RandomErasing(mode="rand", count=(1, 3), p=1.0, backend="kernel"), id="erasing-rand"
    ),
    pytest.param(RandomErasing(count=3, p=1.0, backend="kernel"), id="erasing-noise-3"),
    pytest.param(CutMix(mode="elem", backend="kernel"), id="cutmix"),
    pytest.param(GridMix(n=4, backend="kernel"), id="gridmix"),
    pytest.param(Mixup(mode="elem", backend="kernel"), id="mixup"),
    pytest.param(MixupCutMix(mode="elem", backend="kernel"), id="mixup-cutmix"),
]


def _batch(aug: Any, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Normalized HWC float32 images and one draw of ``aug``'s parameters."""
    rng = np.random.default_rng(seed)
    params = aug.sample(rng, SampleContext(B, H, W, epoch=3))
    images = rng.standard_normal((B, H, W, 3)).astype(np.float32)
    return images, params


def _run_as_dali_gpu(xp: StrictCuPy, aug: Any, images: np.ndarray, params: dict) -> np.ndarray:
    """Call the kernel backend's ``python_function`` body the way DALI's GPU operator does:
    one list of per-sample device arrays per input (images first, then each parameter in
    the order of the names the graph passes).
    """
    names = sorted(params)
    per_sample = [
        [xp.device(a[i]) for i in range(B)] for a in (images, *(params[k] for k in names))
    ]
    with xp.installed():
        out = KernelCall(aug, names)(*per_sample)
    assert len(out) == B and all(isinstance(o, DeviceArray) for o in out)
    with xp.allow_sync():
        return np.stack([o.get() for o in out])


@pytest.mark.parametrize("aug", KERNEL_AUGS)
def test_kernel_backend_keeps_cupy_rules(aug) -> None:
    assert aug.resolve_backend() == "kernel"
    images, params = _batch(aug)
    xp = StrictCuPy()
    got = _run_as_dali_gpu(xp, aug, images, params)
    assert [e for e in xp.events if e.kind != "sync"] == []  # no violation, no upload
    assert len(xp.of("sync")) == B  # only the test's own reads of the outputs
    ref = aug.apply_xp(np, images.copy(), params)
    assert got.dtype == ref.dtype and np.array_equal(got, ref)
    assert not np.array_equal(got, images)  # the draw did change something


def test_get_xp_picks_the_stand_in() -> None:
    xp = StrictCuPy()
    with xp.installed():
        assert get_xp(xp.device(np.zeros(3))) is xp
    assert get_xp(np.zeros(3)) is np


def test_normal_noise_keeps_cupy_rules() -> None:
    """The device-seeded noise: no host read of the seed, NumPy's bits, standard normal."""
    from scipy import stats

    seed = np.full((B, 1), 1234567, np.int64)
    shape = (B, H, W, 3)
    xp = StrictCuPy()
    got = normal_noise(xp, xp.device(seed), shape, np.float32)
    assert xp.events == []
    with xp.allow_sync():
        got = got.get()
    ref = normal_noise(np, seed, shape, np.float32)
    assert got.dtype == np.float32 and np.array_equal(got, ref)
    assert abs(ref.mean()) < 0.02 and abs(ref.std() - 1) < 0.02
    assert stats.kstest(ref.ravel(), "norm").pvalue > 1e-3
    other = normal_noise(np, seed + 1, shape, np.float32)
    assert abs(np.corrcoef(ref.ravel(), other.ravel())[0, 1]) < 0.02  # seeds decorrelate


# -- planted errors: each must be caught, with a message naming the rule and the line -----


def _kernel(body):
    """A one-sample ``python_function`` body under the stand-in."""
    xp = StrictCuPy()
    x = xp.device(np.arange(12, dtype=np.float32).reshape(3, 4))
    with xp.installed():
        return xp, body(get_xp(x), x)


def test_planted_int_of_device_sum_is_caught() -> None:
    with pytest.raises(DeviceSynchronized, match=r"int\(\) on a device array waits for the GPU"):
        _kernel(lambda xp, x: x * int(x.sum()))


@pytest.mark.parametrize(
    "read",
    [
        lambda x: float(x[0, 0]),
        lambda x: bool(x.max() > 3),
        lambda x: x.tolist(),
        lambda x: x[0, 0].item(),
        lambda x: range(x[0, 1]),
        lambda x: x[x > 3],
        lambda x: get_xp(x).nonzero(x),
        lambda x: x.nonzero(),
    ],
    ids=["float", "bool", "tolist", "item", "index", "bool-mask", "nonzero", "method"],
)
def test_planted_host_reads_are_caught(read) -> None:
    with pytest.raises(DeviceSynchronized, match=r"test_gpucheck_cupy\.py:\d+"):
        _kernel(lambda xp, x: read(x))


def test_planted_host_array_in_device_op_is_caught() -> None:
    weights = np.linspace(0, 1, 4, dtype=np.float32)
    with pytest.raises(HostArrayInDeviceOp, match=r"host numpy.ndarray float32\(4,\)"):
        _kernel(lambda xp, x: x * weights)
    with pytest.raises(HostArrayInDeviceOp):
        _kernel(lambda xp, x: xp.where(x > 3, x, np.zeros((3, 4), np.float32)))


def test_planted_numpy_only_api_is_caught() -> None:
    with pytest.raises(MissingCuPyAPI, match=r"module 'cupy' has no attribute 'nditer'"):
        _kernel(lambda xp, x: xp.nditer(x))
    with pytest.raises(MissingCuPyAPI, match=r"numpy.busday_count on a device array"):
        _kernel(lambda xp, x: np.busday_count(x, x))
    with pytest.raises(MissingCuPyAPI, match=r"'cupy.ndarray' object has no attribute 'ptp'"):
        _kernel(lambda xp, x: x.ptp())


@pytest.mark.parametrize(
    ("use", "error", "match"),
    [
        (lambda xp, x: xp.random.RandomState(x.sum()), DeviceSynchronized, r"int\(\) on a dev"),
        (lambda xp, x: xp.random.gamma(1.0), MissingCuPyAPI, r"'cupy.random' has no .*'gamma'"),
        (lambda xp, x: xp.random.RandomState(0).gamma, MissingCuPyAPI, r"RandomState has no"),
    ],
    ids=["device-seed", "module", "method"],
)
def test_planted_cupy_random_misuse_names_the_kernel_line(use, error, match) -> None:
    """The ``cupy.random`` stand-in reports the caller's line, not its own."""
    with pytest.raises(error, match=match + r".*test_gpucheck_cupy\.py:\d+"):
        _kernel(use)


def test_index_uploads_are_logged_not_refused() -> None:
    xp, out = _kernel(lambda xp, x: x[np.array([2, 0])])
    assert out.shape == (2, 4) and [e.kind for e in xp.events] == ["upload"]


@dataclasses.dataclass(frozen=True)
class _OldNoiseErasing(RandomErasing):
    """RandomErasing with the noise-seed read the kernel backend once shipped."""

    def apply_xp(self, xp, images, params):
        seed = int(np.asarray(params["noise_seed"]).reshape(-1)[0])
        return images * 0 + seed


def test_the_shipped_random_erasing_seed_bug_is_caught() -> None:
    """``int(np.asarray(seed))`` ran on NumPy and crashed on every GPU batch."""
    aug = _OldNoiseErasing(value="random", p=1.0, backend="kernel")
    images, params = _batch(aug)
    aug.apply_xp(np, images, params)  # fine on NumPy: CPU-only tests never saw it
    with pytest.raises(ImplicitHostConversion, match="Implicit conversion to a NumPy array"):
        _run_as_dali_gpu(StrictCuPy(), aug, images, params)
