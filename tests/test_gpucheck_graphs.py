"""Every GPU graph the library can build, checked without a GPU (``dali_gridaug.gpucheck``),
and the checks shown to catch planted errors."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from dali_gridaug import gpucheck, presets
from dali_gridaug.augment import AUGMENTATIONS, CutMix, GridMask, MixAugment, ParamSpec
from dali_gridaug.augment.base import paste_args, paste_specs
from dali_gridaug.geometry import random_partner
from dali_gridaug.gpucheck import cases as case_mod
from dali_gridaug.gpucheck import controls, graphs
from dali_gridaug.loader import AUTO_AUGMENT_POLICIES

CASES = case_mod.graph_cases()


@pytest.fixture(scope="module")
def sources(sample_data: dict[str, Path]) -> Iterator[case_mod.Sources]:
    with case_mod.sample_sources(sample_data["train"].parent) as s:
        yield s


def _case(name: str) -> case_mod.GraphCase:
    return next(c for c in case_mod.graph_cases() if c.name == name)


def _fp16_arithmetic_bug(case: case_mod.GraphCase, result: gpucheck.GraphResult) -> bool:
    """Known library bug: with float16 output, the mask multiply and the Mixup blend run DALI
    arithmetic on float16 images, and DALI's arithmetic operators have no float16 type (on
    either backend: the type promotion they share refuses it).
    """
    return case.half and result.level == 4 and "DALIDataType: float16" in result.message


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_gpu_graph_passes_every_level(
    case: case_mod.GraphCase, sources: case_mod.Sources
) -> None:
    result = gpucheck.validate(case, sources)
    if _fp16_arithmetic_bug(case, result):
        pytest.xfail(f"float16 arithmetic in the graph: {result.message}")
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
    assert {c.auto_augment for c in CASES} == {None, *AUTO_AUGMENT_POLICIES}
    assert {c.source for c in CASES} == {"files", "tar"}
    for flag in ("half", "checkpointing", "keep_clean"):
        assert {getattr(c, flag) for c in CASES} == {True, False}
    assert any(not c.train for c in CASES) and any(c.preset.color_jitter for c in CASES)
    assert any(c.preset.lighting for c in CASES) and any(c.preset.fill == "reflect" for c in CASES)
    assert any(c.augments and c.checkpointing for c in CASES)
    assert len({c.hw_decoder_load for c in CASES}) >= 3


@dataclasses.dataclass(frozen=True)
class _RightHalf(MixAugment):
    """A newly registered mixing augmentation: the right half comes from the partner."""

    backend: str = "auto"
    name: ClassVar[str] = "right_half"

    def schema(self, height: int, width: int) -> tuple[ParamSpec, ...]:
        return (ParamSpec("lam", np.float32), ParamSpec("partner", np.int32), *paste_specs(1))

    def sample(self, rng, batch_size, height, width, epoch, flip=None):
        partner = random_partner(rng, batch_size, derangement=True)
        box = np.broadcast_to(np.array([[[0, width // 2, height, width]]]), (batch_size, 1, 4))
        lam = np.full(batch_size, (width // 2) / width, np.float32)
        return {"lam": lam, "partner": partner, **paste_args(partner, box, height, width, flip)}


def test_a_newly_registered_augmentation_is_checked(
    monkeypatch: pytest.MonkeyPatch, sources: case_mod.Sources
) -> None:
    monkeypatch.setitem(AUGMENTATIONS, "right_half", _RightHalf)
    mine = {c.name: c for c in case_mod.graph_cases() if "right_half" in c.name}
    assert {"right_half [auto=dali]", "right_half [kernel]", "right_half fp16"} <= set(mine)
    assert gpucheck.validate(mine["right_half [auto=dali]"], sources).ok
    # it claims the kernel backend (the default) but has no xp kernel: the CPU twin says so
    res = gpucheck.validate(mine["right_half [kernel]"], sources)
    assert not res.ok and res.level == 4 and res.message.startswith("L5 CPU twin:")
    assert "NotImplementedError" in res.message or "apply_xp" in res.message


@pytest.mark.parametrize("control", controls.CONTROLS, ids=[c.name for c in controls.CONTROLS])
def test_negative_controls_are_caught_at_their_level(
    control: controls.Control, sources: case_mod.Sources
) -> None:
    result = controls.run_control(control, sources.files["train"].files)
    assert not result.ok and result.level == control.level - 1
    assert result.message.startswith(f"L{control.level} {graphs.LEVELS[control.level]}: ")
    assert control.culprit in result.message and gpucheck.caught(control, result)


def test_only_the_registry_check_sees_a_cpu_only_op_on_the_gpu(
    monkeypatch: pytest.MonkeyPatch, sources: case_mod.Sources
) -> None:
    control = controls.CONTROLS[0]
    monkeypatch.setattr(graphs, "placement_errors", lambda pipe, names=None: [])
    result = controls.run_control(control, sources.files["train"].files)
    assert result.ok and result.level == 4  # DALI's own checks without a GPU let it through
    assert not gpucheck.caught(control, result)


def test_a_cpu_only_op_planted_in_a_library_graph_is_caught(
    monkeypatch: pytest.MonkeyPatch, sources: case_mod.Sources
) -> None:
    from nvidia.dali import fn, types

    original = GridMask.keep_mask_dali

    def planted(self, params, height, width, device):
        ones = fn.ones(shape=[height, width, 1], dtype=types.UINT8, device=device)
        return original(self, params, height, width, device) * ones

    monkeypatch.setattr(GridMask, "keep_mask_dali", planted)
    result = gpucheck.validate(_case("gridmask [auto=dali]"), sources)
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
    result = gpucheck.validate(_case("cutmix [auto=dali]"), sources)
    assert not result.ok and result.level == 0
    assert result.message.startswith("L1 graph definition: ")
    assert "in_ids" in result.message and "multi_paste" in result.message


def test_a_run_time_error_planted_in_a_library_graph_is_caught_by_the_cpu_twin(
    monkeypatch: pytest.MonkeyPatch, sources: case_mod.Sources
) -> None:
    from nvidia.dali import fn

    original = GridMask.keep_mask_dali

    def planted(self, params, height, width, device):  # one column too many
        mask = original(self, params, height, width, device)
        return fn.pad(mask, shape=[height, width + 1, 1], fill_value=1)

    monkeypatch.setattr(GridMask, "keep_mask_dali", planted)
    result = gpucheck.validate(_case("gridmask [auto=dali]"), sources)
    assert not result.ok and result.level == 4 and result.message.startswith("L5 CPU twin: ")
    assert "defined at dali_gridaug/" in result.message


@pytest.mark.skipif(graphs.gpu_count() > 0, reason="Build succeeds where a GPU exists")
def test_build_may_stop_only_at_the_cuda_check(
    monkeypatch: pytest.MonkeyPatch, sources: case_mod.Sources
) -> None:
    monkeypatch.setattr(graphs, "CUDA_CHECK", "a message DALI never gives")
    result = gpucheck.validate(_case("val"), sources)
    assert not result.ok and result.level == 3
    assert result.message.startswith("L4 build: ") and "CUDA" in result.message


def test_validate_all_selects_by_name_and_refuses_unknown_names(tmp_path: Path) -> None:
    results = gpucheck.validate_all(names=["train"])
    assert [(r.name, r.ok, r.level) for r in results] == [("train", True, 5)]
    with pytest.raises(ValueError, match=r"`names` has unknown graph cases \['nope'\]"):
        gpucheck.validate_all(names=["nope"])
