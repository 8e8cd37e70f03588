"""The graph arrangement and the augmentation contract: pixel provenance through the flip and
the uint8 paste, masks travelling with pastes, label smoothing, the parameter schema, a new
mixing augmentation written against the contract alone, and no ``python_function`` in any
``backend="auto"`` graph."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from dali_gridaug import CutMix, Cutout, GridMask, GridMix, RandomErasing, create_loader
from dali_gridaug.augment import Mixup, MixupCutMix
from dali_gridaug.kernels import box_visible_mask, cell_visible_mask, grid_visible_mask
from dali_gridaug.labels import mix_target, one_hot
from dali_gridaug.presets import IMAGENET, ColorJitter, Lighting
from tests.helpers import RightHalfMix, graph_spec


@pytest.fixture(scope="module")
def photos(sample_data: dict[str, Path]) -> Path:
    return sample_data["train"]


def _first(root: Path, augment, *, batch_size: int = 16, size: int = 48, **kw):
    loader = create_loader(
        root,
        batch_size=batch_size,
        device="cpu",
        image_size=size,
        mean=0,
        std=1,
        augment=augment,
        keep_clean=True,
        seed=3,
        **kw,
    )
    raw = next(iter(loader.raw()))
    return loader._to_batch(raw), raw  # the batch and the raw outputs it was made from


def _np(t: torch.Tensor) -> np.ndarray:
    return t.cpu().numpy()


def _partner_view(clean: np.ndarray, flip: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """What a paste shows of partner p in image i: p's un-flipped pixels flipped by i's coin,
    i.e. the clean partner, mirrored where the two coins differ."""
    other = clean[partner]
    differ = flip != flip[partner]
    return np.where(differ[:, None, None, None], other[..., ::-1], other)


def test_clean_view_shares_crop_and_flip(photos: Path) -> None:
    batch, raw = _first(photos, [])
    assert torch.equal(batch.images, batch.clean)
    flip = _np(raw["flip"])
    assert 0 < flip.mean() < 1  # both orientations occur, so sharing the coin is tested


def test_cutmix_box_and_flip_describe_the_output(photos: Path) -> None:
    batch, raw = _first(photos, [CutMix(mode="elem")])
    x, clean = _np(batch.images), _np(batch.clean)
    box, flip, partner = _np(raw["0.box"]), _np(raw["flip"]), _np(batch.partner)
    inside = box_visible_mask(np, 48, 48, box)[:, None] == 0
    expected = np.where(inside, _partner_view(clean, flip, partner), clean)
    assert np.array_equal(x, expected)
    assert inside.any() and (flip != flip[partner]).any()


def test_gridmix_cells_describe_the_output(photos: Path) -> None:
    batch, raw = _first(photos, [GridMix(n=3, p=0.5)], size=50)
    x, clean = _np(batch.images), _np(batch.clean)
    cells, flip, partner = _np(raw["0.cells"]), _np(raw["flip"]), _np(batch.partner)
    own = cell_visible_mask(np, 50, 50, cells)[:, None] == 1
    assert np.array_equal(x, np.where(own, clean, _partner_view(clean, flip, partner)))


def test_gridmask_drops_to_exact_zero_where_the_emitted_grid_says(photos: Path) -> None:
    for mode in (1, 0):
        aug = GridMask(r=0.5, d=(8, 24), p=1.0, ramp_epochs=0, mode=mode)
        batch, raw = _first(photos, [aug])
        p = {k.split(".", 1)[1]: _np(v) for k, v in raw.items() if k.startswith("0.")}
        visible = grid_visible_mask(
            np, 48, 48, p["tile"], p["ratio"], p["angle"], p["shift_x"], p["shift_y"], mode=mode
        )[:, None]
        x, clean = _np(batch.images), _np(batch.clean)
        assert np.array_equal(x[x != clean], np.zeros(int((x != clean).sum()), np.float32))
        assert ((x == clean) | (x == 0)).all()
        dropped = (x == 0) & (clean != 0)
        differ = (dropped != (visible == 0) & (clean != 0)).any(1)
        # DALI's grid_mask and the kernel round rotated square edges apart: a difference may
        # only sit on a pixel with a neighbour of the other kind
        k = np.pad(visible[:, 0], ((0, 0), (1, 1), (1, 1)), mode="edge")
        core = k[:, 1:-1, 1:-1]
        edge = np.zeros_like(core, bool)
        for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
            edge |= k[:, dy : dy + 48, dx : dx + 48] != core
        assert not (differ & ~edge).any() and differ.mean() < 0.01


def test_masks_travel_with_the_paste(photos: Path) -> None:
    """Cutout then CutMix: a partner's pixels arrive with the partner's own cutout."""
    batch, raw = _first(photos, [Cutout(length=12, p=1.0), CutMix(mode="elem")])
    x, clean = _np(batch.images), _np(batch.clean)
    flip, partner = _np(raw["flip"]), _np(batch.partner)
    visible = box_visible_mask(np, 48, 48, _np(raw["0.box"]))[:, None]
    cut = box_visible_mask(np, 48, 48, _np(raw["1.box"]))[:, None] == 0
    own = clean * visible
    other = _partner_view(clean * visible, flip, partner)
    assert np.array_equal(x, np.where(cut, other, own))


def test_erasing_noise_travels_with_the_paste(photos: Path) -> None:
    """RandomErasing's noise then CutMix (timm's order): the pasted region brings the
    partner's own noise values, mirrored where the coins differ; noise only inside boxes."""
    batch, raw = _first(photos, [RandomErasing(p=1.0), CutMix(mode="elem")])
    x, clean = _np(batch.images), _np(batch.clean)
    flip, partner = _np(raw["flip"]), _np(batch.partner)

    def view(a: np.ndarray) -> np.ndarray:
        return _partner_view(a, flip, partner)

    erased = box_visible_mask(np, 48, 48, _np(raw["0.box"]))[:, None] == 0
    cut = box_visible_mask(np, 48, 48, _np(raw["1.box"]))[:, None] == 0
    own = np.where(erased, np.nan, clean)  # NaN: noise expected
    expected = np.broadcast_to(np.where(cut, view(own), own), x.shape)
    known = ~np.isnan(expected)
    assert np.array_equal(x[known], expected[known])
    noise = x[~known]
    assert noise.size > 1000 and abs(noise.mean()) < 0.1 and abs(noise.std() - 1) < 0.1
    # a partner's noise still visible in the partner arrives in the paste with the same values
    visible = view(np.where(erased & ~cut, x, np.nan))
    travelled = cut & ~np.isnan(visible)
    assert travelled.sum() > 500 and np.array_equal(x[travelled], visible[travelled])


@pytest.mark.parametrize("value", ["random", 2.5])
def test_random_erasing_fill_is_native_and_exact(photos: Path, value) -> None:
    batch, raw = _first(photos, [RandomErasing(p=1.0, value=value)], batch_size=32)
    x, clean = _np(batch.images), _np(batch.clean)
    erased = box_visible_mask(np, 48, 48, _np(raw["0.box"]))[:, None].repeat(3, 1) == 0
    assert np.array_equal(x[~erased], clean[~erased]) and erased.sum() > 1000
    if value == "random":
        assert abs(x[erased].mean()) < 0.1 and abs(x[erased].std() - 1) < 0.1
    else:
        assert (x[erased] == 2.5).all()


# --- labels ---------------------------------------------------------------------------------


def test_label_smoothing_hard_targets(color_data: Path) -> None:
    b = next(
        iter(
            create_loader(
                color_data, batch_size=8, device="cpu", image_size=32, label_smoothing=0.1
            )
        )
    )
    k = b.target.shape[1]
    assert b.target.dtype == torch.float32 and b.target.shape == (8, 32)
    torch.testing.assert_close(b.target, 0.9 * one_hot(b.labels, k) + 0.1 / k)


def test_label_smoothing_soft_targets_equal_timms(color_data: Path) -> None:
    timm_mixup = pytest.importorskip("timm.data.mixup")
    loader = create_loader(
        color_data,
        batch_size=8,
        device="cpu",
        image_size=32,
        augment=[CutMix(mode="elem")],
        label_smoothing=0.1,
    )
    b = next(iter(loader))
    k = b.target.shape[1]
    assert not torch.equal(b.target, mix_target(b.labels, b.partner, b.lam, k))
    torch.testing.assert_close(b.target, 0.9 * mix_target(b.labels, b.partner, b.lam, k) + 0.1 / k)
    # timm's mixup_target mixes y with y.flip(0): same as a reversed-batch partner
    flip = torch.arange(len(b)).flip(0)
    for lam in (0.3, 1.0):
        ref = timm_mixup.mixup_target(b.labels, k, lam=lam, smoothing=0.1)
        ours = 0.9 * mix_target(b.labels, flip, torch.full((len(b),), lam), k) + 0.1 / k
        torch.testing.assert_close(ours, ref)


def test_one_smoothing_knob(color_data: Path) -> None:
    # timm's Mixup keeps its own ε (compatibility); the clovaai CutMix has none
    mix = Mixup(label_smoothing=0.2)
    loader = create_loader(color_data, batch_size=8, device="cpu", image_size=32, augment=[mix])
    own = next(iter(loader))
    k = own.target.shape[1]
    torch.testing.assert_close(own.target, mix_target(own.labels, own.partner, own.lam, k, 0.2))
    with pytest.raises(ValueError, match=r"`label_smoothing`=0.1.*`label_smoothing`=0.2"):
        create_loader(color_data, batch_size=8, device="cpu", augment=[mix], label_smoothing=0.1)
    with pytest.raises(TypeError, match="label_smoothing"):
        CutMix(label_smoothing=0.2)
    with pytest.raises(ValueError, match="label_smoothing"):
        create_loader(color_data, batch_size=8, device="cpu", label_smoothing=1.0)


# --- the contract ---------------------------------------------------------------------------


def test_a_new_mixing_augmentation_needs_only_the_contract(photos: Path) -> None:
    batch, raw = _first(photos, [RightHalfMix()])
    x, clean = _np(batch.images), _np(batch.clean)
    flip, partner = _np(raw["flip"]), _np(batch.partner)
    assert np.array_equal(x[..., :24], clean[..., :24])
    assert np.array_equal(x[..., 24:], _partner_view(clean, flip, partner)[..., 24:])
    k = batch.target.shape[1]
    torch.testing.assert_close(batch.target, mix_target(batch.labels, batch.partner, batch.lam, k))


def test_a_draw_that_breaks_its_schema_is_refused(photos: Path) -> None:
    class Bad(RightHalfMix):
        def sample(self, rng, ctx):
            return {**super().sample(rng, ctx), "lam": np.zeros(3, np.float64)}

    loader = create_loader(photos, batch_size=4, device="cpu", image_size=32, augment=[Bad()])
    with pytest.raises(Exception, match=r"`lam` is float64\(3,\).*float32\(4,\)"):
        next(iter(loader))


# --- no python_function in auto graphs -------------------------------------------------------

AUTO_AUGMENTS = {
    "gridmask": [GridMask(d=(8, 16))],
    "gridmask_reversed": [GridMask(d=(8, 16), mode=0)],
    "gridmask_random": [GridMask(d=(8, 16), square_p=0.5)],
    "gridmask_random_reversed_cutmix": [GridMask(d=(8, 16), mode=0, square_p=0.5), CutMix()],
    "cutout": [Cutout(length=8)],
    "erasing_noise": [RandomErasing(value="random")],
    "erasing_constant": [RandomErasing(value=0.5)],
    "cutmix": [CutMix()],
    "gridmix": [GridMix()],
    "all": [GridMask(d=(8, 16)), RandomErasing(), Cutout(length=8), CutMix()],
    "mixup": [Mixup()],
    "mixup_cutmix_elem": [GridMask(d=(8, 16)), MixupCutMix(mode="elem")],
}


def _op_names(options: dict, device: str) -> list[str]:
    from dali_gridaug.feed import Feed
    from dali_gridaug.pipeline import build_pipeline

    options = dict(options)
    spec = graph_spec(options.pop("root"), device, **options)
    pipe, _ = build_pipeline(spec, Feed.for_spec(spec))
    pipe._build_graph()  # the operator list, without building (no GPU needed)
    return [f"{o._op.schema.Name()}@{o._op.device}" for o in pipe._ops]


IMAGENET_COLOUR = dataclasses.replace(
    IMAGENET, color_jitter=ColorJitter(0.4, 0.4, 0.4), lighting=Lighting(std=0.1)
)
GRAPHS = {
    **{k: {"augment": tuple(v)} for k, v in AUTO_AUGMENTS.items()},
    "fp16_all": {"augment": tuple(AUTO_AUGMENTS["all"]), "dtype": torch.float16},
    "val": {"train": False},
    "plain": {},
    "keep_clean_auto_augment": {
        "keep_clean": True,
        "auto_augment": "rand_augment",
        "augment": (CutMix(),),
    },
    "colour_lighting": {"preset": IMAGENET_COLOUR, "augment": tuple(AUTO_AUGMENTS["all"])},
}


@pytest.mark.parametrize(
    "device", ["cpu", "gpu"], ids=["cpu-graph", "gpu-graph"]
)  # not the `gpu` mark
@pytest.mark.parametrize("name", list(GRAPHS))
def test_auto_graphs_have_no_python_function(color_data: Path, name: str, device: str) -> None:
    ops = _op_names({"root": color_data, **GRAPHS[name]}, device)
    assert not [o for o in ops if "PythonFunction" in o], ops
    if name != "val":
        assert any(o.startswith("CropMirrorNormalize") for o in ops)
    assert not any(o.startswith("Transpose") for o in ops)  # CMN writes CHW itself


def test_the_walk_sees_a_python_function(color_data: Path) -> None:
    """Control: the kernel backend runs as a python_function, and the walk finds it; the
    native random GridMask warps its square field instead."""
    aug = GridMask(d=(8, 16), square_p=0.5, backend="kernel")
    ops = _op_names({"root": color_data, "augment": (aug,)}, "cpu")
    assert any("PythonFunction" in o for o in ops)
    random = GridMask(d=(8, 16), square_p=0.5)
    native = _op_names({"root": color_data, "augment": (random,)}, "gpu")
    assert "WarpAffine@gpu" in native and "GridMask@gpu" in native


def test_auto_never_picks_a_gpu_kernel_without_cupy(color_data: Path) -> None:
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    aug = GridMask(d=(8, 16), square_p=0.5)
    with pytest.raises(ValueError, match="`cupy` is not installed"):
        kernel = dataclasses.replace(aug, backend="kernel")
        _op_names({"root": color_data, "augment": (kernel,)}, "gpu")
    assert _op_names({"root": color_data, "augment": (aug,)}, "gpu")  # auto: DALI ops


@pytest.mark.parametrize(
    "device", ["cpu", "gpu"], ids=["cpu-graph", "gpu-graph"]
)  # not the `gpu` mark
def test_decoders_upsample_alike_and_take_the_hw_load(color_data: Path, device: str) -> None:
    from dali_gridaug.pipeline import build_pipeline

    spec = graph_spec(color_data, device, hw_decoder_load=0.25)
    from dali_gridaug.feed import Feed

    pipe, _ = build_pipeline(spec, Feed.for_spec(spec))
    pipe._build_graph()
    decoder = next(str(o.spec) for o in pipe._ops if "decoders" in o._op.schema.Name())
    assert "jpeg_fancy_upsampling: 1" in decoder.replace("True", "1")
    assert ("hw_decoder_load: 0.25" in decoder) == (device == "gpu")
    with pytest.raises(ValueError, match="`hw_decoder_load`"):
        create_loader(color_data, batch_size=4, device="cpu", hw_decoder_load=1.5)
