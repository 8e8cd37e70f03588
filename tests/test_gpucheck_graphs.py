"""Every GPU graph the library can build, checked without a GPU (``dali_gridaug.testing``),
and the checks shown to catch planted errors; the GPU ``multi_paste`` sweep replay
(``tests.oracles.paste_sim``) against DALI's CPU operator."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from dali_gridaug import presets, testing
from dali_gridaug.augment import AUGMENTATIONS, CutMix, GridMask, MixAugment, SampleContext
from dali_gridaug.policies import POLICIES
from dali_gridaug.testing import cases as case_mod
from dali_gridaug.testing import controls, graphs
from tests.helpers import RightHalfMix
from tests.oracles import paste_sim

CASES = case_mod.graph_cases()


@pytest.fixture(scope="module")
def sources(sample_data: dict[str, Path]) -> Iterator[case_mod.Sources]:
    with case_mod.sample_sources(sample_data["train"].parent) as s:
        yield s


def _case(name: str) -> case_mod.GraphCase:
    return next(c for c in case_mod.graph_cases() if c.name == name)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_gpu_graph_passes_every_level(
    case: case_mod.GraphCase, sources: case_mod.Sources
) -> None:
    result = testing.validate(case, sources)
    assert result.ok and result.level == 5 and result.message == "", result.message
    kernels = [a for a in case.augments if a.resolve_backend() == "kernel"]
    needs_cupy = any(n.startswith("needs CuPy") for n in result.notes)
    assert needs_cupy == bool(kernels), result.notes
    assert "cupy" not in sys.modules or "placeholder" not in repr(sys.modules["cupy"])


def test_cases_cover_the_registries() -> None:
    names = [c.name for c in CASES]
    for name, cls in AUGMENTATIONS.items():
        for backend in cls().backends()[1:]:
            assert f"{name} [{backend}]" in names
        assert any(n.startswith(f"{name} [auto=") for n in names)
        assert f"{name} fp16" in names
        for over in case_mod.VARIANTS.get(name, ()):
            assert any(n.startswith(case_mod._label(name, over) + " [") for n in names)
    assert {p.name for c in CASES for p in [c.preset]} == set(presets.PRESETS)
    assert {c.auto_augment for c in CASES} == {None, *POLICIES}
    assert {c.source for c in CASES} == {"files", "tar"}
    for flag in ("half", "resume", "keep_clean"):
        assert {getattr(c, flag) for c in CASES} == {True, False}
    assert any(not c.train for c in CASES) and any(c.preset.color_jitter for c in CASES)
    assert any(c.preset.lighting for c in CASES) and any(c.preset.fill == "reflect" for c in CASES)
    assert any(c.augments and c.resume for c in CASES)
    assert len({c.hw_decoder_load for c in CASES}) >= 3


def test_a_newly_registered_augmentation_is_checked(
    monkeypatch: pytest.MonkeyPatch, sources: case_mod.Sources
) -> None:
    monkeypatch.setitem(AUGMENTATIONS, "right_half", RightHalfMix)
    mine = {c.name: c for c in case_mod.graph_cases() if "right_half" in c.name}
    assert {"right_half [auto=dali]", "right_half [kernel]", "right_half fp16"} <= set(mine)
    assert testing.validate(mine["right_half [auto=dali]"], sources).ok
    # it claims the kernel backend (the default) but has no xp kernel: the CPU twin says so
    res = testing.validate(mine["right_half [kernel]"], sources)
    assert not res.ok and res.level == 4 and res.message.startswith("L5 CPU twin:")
    assert "NotImplementedError" in res.message or "apply_xp" in res.message


@pytest.mark.parametrize("control", controls.CONTROLS, ids=[c.name for c in controls.CONTROLS])
def test_negative_controls_are_caught_at_their_level(
    control: controls.Control, sources: case_mod.Sources
) -> None:
    result = controls.run_control(control, sources.files["train"].files)
    assert not result.ok and result.level == control.level - 1
    assert result.message.startswith(f"L{control.level} {graphs.LEVELS[control.level]}: ")
    assert control.culprit in result.message and testing.caught(control, result)


def test_only_the_registry_check_sees_a_cpu_only_op_on_the_gpu(
    monkeypatch: pytest.MonkeyPatch, sources: case_mod.Sources
) -> None:
    control = controls.CONTROLS[0]
    monkeypatch.setattr(graphs, "placement_errors", lambda pipe, names=None: [])
    result = controls.run_control(control, sources.files["train"].files)
    assert result.ok and result.level == 4  # DALI's own checks without a GPU let it through
    assert not testing.caught(control, result)


def test_a_cpu_only_op_planted_in_a_library_graph_is_caught(
    monkeypatch: pytest.MonkeyPatch, sources: case_mod.Sources
) -> None:
    from nvidia.dali import fn, types

    original = GridMask.visible_mask_dali

    def planted(self, params, height, width, device):
        ones = fn.ones(shape=[height, width, 1], dtype=types.UINT8, device=device)
        return original(self, params, height, width, device) * ones

    monkeypatch.setattr(GridMask, "visible_mask_dali", planted)
    result = testing.validate(_case("gridmask [auto=dali]"), sources)
    assert not result.ok and result.level == 1
    assert result.message.startswith("L2 placement: Ones ") and "placed on 'gpu'" in result.message


def test_a_gpu_named_argument_planted_in_a_library_graph_is_caught(
    monkeypatch: pytest.MonkeyPatch, sources: case_mod.Sources
) -> None:
    from nvidia.dali import fn

    def planted(self, images, params):
        return fn.multi_paste(
            images,
            in_ids=params["paste_ids"].gpu(),
            in_anchors=params["paste_anchors"],
            shapes=params["paste_shapes"],
            out_anchors=params["paste_anchors"],
        )

    monkeypatch.setattr(CutMix, "paste_dali", planted)
    result = testing.validate(_case("cutmix [auto=dali]"), sources)
    assert not result.ok and result.level == 0
    assert result.message.startswith("L1 graph definition: ")
    assert "in_ids" in result.message and "multi_paste" in result.message


def test_a_run_time_error_planted_in_a_library_graph_is_caught_by_the_cpu_twin(
    monkeypatch: pytest.MonkeyPatch, sources: case_mod.Sources
) -> None:
    from nvidia.dali import fn

    original = GridMask.visible_mask_dali

    def planted(self, params, height, width, device):  # one column too many
        mask = original(self, params, height, width, device)
        return fn.pad(mask, shape=[height, width + 1, 1], fill_value=1)

    monkeypatch.setattr(GridMask, "visible_mask_dali", planted)
    result = testing.validate(_case("gridmask [auto=dali]"), sources)
    assert not result.ok and result.level == 4 and result.message.startswith("L5 CPU twin: ")
    assert "defined at dali_gridaug/" in result.message


def test_a_resume_that_does_not_continue_is_caught_by_the_cpu_twin(
    monkeypatch: pytest.MonkeyPatch, sources: case_mod.Sources
) -> None:
    import dali_gridaug.pipeline

    original = dali_gridaug.pipeline.build_pipeline

    def planted(spec, feed):  # ignores the resume position
        feed.start(0, 0)
        return original(spec, feed)

    monkeypatch.setattr(dali_gridaug.pipeline, "build_pipeline", planted)
    result = testing.validate(_case("resume invariant_crop"), sources)
    assert not result.ok and result.level == 4
    assert result.message.startswith("L5 CPU twin: the pipeline resumed at batch 2 differs")
    assert "'images'" in result.message


@pytest.mark.skipif(graphs.gpu_count() > 0, reason="Build succeeds where a GPU exists")
def test_build_may_stop_only_at_the_cuda_check(
    monkeypatch: pytest.MonkeyPatch, sources: case_mod.Sources
) -> None:
    monkeypatch.setattr(graphs, "CUDA_CHECK", "a message DALI never gives")
    result = testing.validate(_case("val"), sources)
    assert not result.ok and result.level == 3
    assert result.message.startswith("L4 build: ") and "CUDA" in result.message


def test_validate_all_selects_by_name_and_refuses_unknown_names(tmp_path: Path) -> None:
    results = testing.validate_all(names=["train"])
    assert [(r.name, r.ok, r.level) for r in results] == [("train", True, 5)]
    with pytest.raises(ValueError, match=r"`names` has unknown graph cases \['nope'\]"):
        testing.validate_all(names=["nope"])


# --- the multi_paste GPU sweep replay ------------------------------------------------------

PASTING = [n for n, c in AUGMENTATIONS.items() if issubclass(c, MixAugment) and c().pastes()]


def _random_regions(rng: np.random.Generator, h: int, w: int, n: int) -> list:
    regions = [(0, (0, 0), (h, w), (0, 0))]
    for _ in range(n):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        size = (int(rng.integers(1, h - y0 + 1)), int(rng.integers(1, w - x0 + 1)))
        regions.append((int(rng.integers(0, 4)), (y0, x0), size, (y0, x0)))
    return regions


def _dali_cpu_paste(images: list[np.ndarray], params: dict[str, np.ndarray]) -> list:
    """DALI's CPU ``multi_paste`` of ``images`` with the library's paste arguments."""
    from nvidia.dali import fn, pipeline_def, types

    def feed(batch: list) -> Callable[[], list]:
        return lambda: batch

    keys = ("paste_ids", "paste_anchors", "paste_shapes")

    @pipeline_def(batch_size=len(images), num_threads=1, device_id=None)
    def paste():
        x = fn.external_source(source=feed(images), batch=True, layout="HWC")
        ids, anchors, shapes = (
            fn.external_source(source=feed(list(params[k])), batch=True, dtype=types.INT32)
            for k in keys
        )
        return fn.multi_paste(x, in_ids=ids, in_anchors=anchors, shapes=shapes, out_anchors=anchors)

    pipe = paste()
    pipe.build()
    (out,) = pipe.run()
    return [np.asarray(t) for t in out]


def test_the_cpu_model_is_dalis_cpu_multi_paste() -> None:
    """Pixels that encode their own (sample, y, x) through DALI's CPU operator, on the paste
    arguments of every pasting augmentation (zero-size regions included)."""
    b, h, w = 4, 12, 16
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[1 : h + 1, 1 : w + 1]
    images = [np.stack([np.full_like(yy, i + 1), yy, xx], -1).astype(np.int32) for i in range(b)]
    checked = 0
    for name in PASTING:
        aug = case_mod.make_augment(name, size=12)
        params = aug.sample(rng, SampleContext(b, h, w, flip=rng.integers(0, 2, b)))
        for s, got in enumerate(_dali_cpu_paste(images, params)):
            regions = paste_sim.regions_of(params, s)
            want = paste_sim.cpu_provenance(h, w, regions)
            assert np.array_equal(got.astype(np.int64) - 1, want), (name, s)
            checked += any(r[2][0] * r[2][1] == 0 for r in regions)
    assert checked  # zero-size regions were among them


def test_the_gpu_sweep_equals_the_cpu_paste_for_regions_with_area() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 20, 2))
        regions = _random_regions(rng, h, w, int(rng.integers(0, 6)))
        gpu, cpu = paste_sim.gpu_provenance(h, w, regions), paste_sim.cpu_provenance(h, w, regions)
        assert np.array_equal(gpu, cpu), regions


def test_the_gpu_sweep_control_a_zero_size_region_from_another_sample() -> None:
    own = (0, (0, 0), (8, 8), (0, 0))
    harmless = [own, (0, (3, 3), (0, 4), (3, 3))]  # from the sample itself: same pixels
    assert not paste_sim.compare(8, 8, _params([harmless]))
    flat = [own, (1, (3, 3), (0, 4), (3, 3))]  # zero height, from sample 1
    (m,) = paste_sim.compare(8, 8, _params([flat]))
    assert m.sample == 0 and m.pixels == 5 * 4  # its 4 columns, from row 3 to the bottom
    thin = [own, (1, (3, 3), (2, 0), (3, 3))]  # zero width: stays open once opened
    (m,) = paste_sim.compare(8, 8, _params([thin]))
    assert m.pixels == 2 * 5 + 3 * 8  # rows 3–4 from column 3 on, then every later row
    gpu = paste_sim.gpu_provenance(8, 8, thin)
    assert (gpu[5:, :, 0] == 1).all() and (gpu[:3, :, 0] == 0).all()


def _params(samples: list[list]) -> dict[str, np.ndarray]:
    return {
        "paste_ids": np.array([[r[0] for r in s] for s in samples], np.int32),
        "paste_anchors": np.array([[r[3] for r in s] for s in samples], np.int32),
        "paste_shapes": np.array([[r[2] for r in s] for s in samples], np.int32),
    }


@pytest.mark.parametrize("name", PASTING)
def test_library_paste_arguments_give_the_same_pixels_on_the_gpu_kernel(name: str) -> None:
    aug = case_mod.make_augment(name)
    mismatches = paste_sim.check_augmentation(aug, height=24, width=32, draws=10)
    assert not mismatches, mismatches[:2]
