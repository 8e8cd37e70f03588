"""dali_gridaug.policies: the policy objects, the name table, timm's ``--aa`` strings
(``from_timm``) against timm's own tables, and each policy in a real DALI CPU pipeline."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

from dali_gridaug import create_loader
from dali_gridaug.errors import UsageError
from dali_gridaug.policies import (
    DALI_SUITE_OPS,
    POLICIES,
    AutoAugment,
    RandAugment,
    TrivialAugment,
    from_timm,
    resolve,
)
from tests.helpers import graph_spec

timm_aa = pytest.importorskip("timm.data.auto_augment")

#: timm op name → DALI augmentation name (None: DALI's RandAugment suite has no such op).
TIMM_TO_DALI = {
    "AutoContrast": "auto_contrast",
    "Equalize": "equalize",
    "Invert": "invert",
    "Rotate": "rotate",
    "Posterize": "posterize",
    "PosterizeIncreasing": "posterize",
    "PosterizeOriginal": "posterize",
    "Solarize": "solarize",
    "SolarizeIncreasing": "solarize",
    "SolarizeAdd": "solarize_add",
    "Color": "color",
    "ColorIncreasing": "color",
    "Contrast": "contrast",
    "ContrastIncreasing": "contrast",
    "Brightness": "brightness",
    "BrightnessIncreasing": "brightness",
    "Sharpness": "sharpness",
    "SharpnessIncreasing": "sharpness",
    "ShearX": "shear_x",
    "ShearY": "shear_y",
    "TranslateXRel": "translate_x",
    "TranslateYRel": "translate_y",
}

PARSED = {
    "rand-m9-mstd0.5-inc1": RandAugment(n=2, m=9, num_magnitude_bins=11, monotonic_mag=True),
    "rand-m9-n3-mstd0.5": RandAugment(n=3, m=9, num_magnitude_bins=11, monotonic_mag=False),
    "rand-mstd1": RandAugment(n=2, m=10, num_magnitude_bins=11, monotonic_mag=False),
    "rand-m7-mstd0": RandAugment(n=2, m=7, num_magnitude_bins=11, monotonic_mag=False),
    "rand-m9.5-n1": RandAugment(n=1, m=95, num_magnitude_bins=101, monotonic_mag=False),
    "rand-m6.25": RandAugment(n=2, m=625, num_magnitude_bins=1001, monotonic_mag=False),
    "rand-m15": RandAugment(n=2, m=10, num_magnitude_bins=11, monotonic_mag=False),
    "rand-m9-mmax5-inc1": RandAugment(n=2, m=5, num_magnitude_bins=11, monotonic_mag=True),
    "rand-m9-mmax20": RandAugment(n=2, m=9, num_magnitude_bins=11, monotonic_mag=False),
    "trivialaugment": TrivialAugment(),
    "ta_wide": TrivialAugment(),
}


@pytest.mark.parametrize("aa", list(PARSED))
def test_from_timm_parses_rand_and_trivial(aa: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert from_timm(aa) == PARSED[aa]


def test_mstd_warns_and_keeps_n_m() -> None:
    with pytest.warns(UserWarning, match=r"`mstd0\.5`: DALI has no magnitude noise"):
        policy = from_timm("rand-m9-mstd0.5-inc1")
    assert (policy.n, policy.m, policy.monotonic_mag) == (2, 9, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_timm("rand-m9-mstd0")  # no noise, no warning
    with pytest.warns(UserWarning, match=r"`p0\.7`: .*no per-op probability"):
        from_timm("rand-m9-p0.7")
    with pytest.warns(UserWarning, match=r"`mstd0\.5`"):
        from_timm("original-mstd0.5")


REFUSED = {
    "augmix-m5-w4-d2": r"AugMix has no DALI equivalent",
    "rand-mstd1-w0": r"`w0` \(op weights\) is not supported",
    "rand-m9-tweights": r"`tweights` \(weighted op choice\)",
    "rand-t3a": r"`t3a` .*Desaturate",
    "3a": r"Desaturate and GaussianBlurRand",
    "rand-m11-mmax20": r"magnitude 11 > 10",
    "rand-mx": r"bad part 'mx'",
    "rand-m9-q3": r"bad part 'q3'",
    "rand-n2.5": r"bad part 'n2\.5' \(not a number\)",
    "rand-inc2": r"bad part 'inc2'",
    "rand-m1.125": r"more than 2 decimals",
    "randaug-m9": r"bad part 'randaug'",
    "v0-m3": r"bad part 'm3'",
    "ta_wide-m3": r"bad part 'm3'",
    "nope": r"bad part 'nope'",
    "": r"non-empty string",
}


@pytest.mark.parametrize("aa", list(REFUSED))
def test_from_timm_refuses_naming_the_part(aa: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UsageError, match=REFUSED[aa]):
            from_timm(aa)


def test_from_timm_says_timm_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm.data", None)
    monkeypatch.setitem(sys.modules, "timm.data.auto_augment", None)
    with pytest.raises(UsageError, match=r"install timm .*test dependency"):
        from_timm("original")


@pytest.mark.parametrize("inc", [False, True])
def test_rand_op_set_vs_timm(inc: bool) -> None:
    """DALI's suite is timm's RandAugment op set without Invert/SolarizeAdd, plus identity."""
    from nvidia.dali.auto_aug import rand_augment

    transforms = timm_aa._RAND_INCREASING_TRANSFORMS if inc else timm_aa._RAND_TRANSFORMS
    timm_ops = {TIMM_TO_DALI[op.name] for op in timm_aa.rand_augment_ops(transforms=transforms)}
    get = (
        rand_augment.get_rand_augment_suite
        if inc
        else (rand_augment.get_rand_augment_non_monotonic_suite)
    )
    dali_ops = {aug.name for aug in get()}
    assert dali_ops == set(DALI_SUITE_OPS)
    assert timm_ops - dali_ops == {"invert", "solarize_add"}
    assert dali_ops - timm_ops == {"identity"}
    assert from_timm("rand-m9-inc1" if inc else "rand-m9").monotonic_mag is inc


@pytest.mark.parametrize("name", ["original", "originalr", "v0", "v0r"])
def test_auto_augment_policy_is_timms(name: str) -> None:
    """Sub-policies (ops of probability > 0), probabilities, magnitudes and the parameter
    tables equal timm's."""
    policy = from_timm(name)
    assert isinstance(policy, AutoAugment)
    timm_policy = timm_aa.auto_augment_policy(name)
    ours = [[(aug.name, p, mag) for aug, p, mag in sub] for sub in policy.policy.sub_policies]
    theirs = [
        [(TIMM_TO_DALI[op.name], op.prob, op.magnitude) for op in sub if op.prob > 0]
        for sub in timm_policy
    ]
    assert len(ours) == len(theirs) == len(timm_policy) == 25
    for mine, want in zip(ours, theirs, strict=True):
        assert [(n, p) for n, p, _ in mine] == [(n, p) for n, p, _ in want]
        assert [m for _, _, m in mine if m is not None] == [
            m for (n, _, m) in want if n not in ("equalize", "auto_contrast", "invert")
        ]
    timm_ops = {op.name: op for sub in timm_policy for op in sub}
    for dali_name, aug in policy.policy.augmentations.items():
        (timm_name,) = {t for t in timm_ops if TIMM_TO_DALI[t] == dali_name}
        if timm_name.startswith(("Posterize", "Solarize", "Color", "Contrast", "Sharpness")):
            want = [timm_aa.LEVEL_TO_ARG[timm_name](float(b), {})[0] for b in range(11)]
            assert list(aug.mag_range) == pytest.approx(want)


def test_v0_has_dali_image_net_sub_policies_with_other_ranges() -> None:
    """timm's v0 is DALI's image_net policy op for op; DALI's translations and posterize
    ranges differ, so from_timm builds v0 from timm's tables (module docstring)."""
    from nvidia.dali.auto_aug import auto_augment

    dali = auto_augment.get_image_net_policy()
    ours = from_timm("v0").policy
    assert [[(a.name, p) for a, p, _ in s] for s in dali.sub_policies] == [
        [(a.name, p) for a, p, _ in s] for s in ours.sub_policies
    ]


def test_bad_values_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"`m` must be in \[0, 30\], got 31"):
        RandAugment(m=31)
    with pytest.raises(ValueError, match=r"`n` must be in \[1, inf\), got 0"):
        RandAugment(n=0)
    with pytest.raises(ValueError, match=r"`num_magnitude_bins` must be in \[2, inf\), got 1"):
        TrivialAugment(num_magnitude_bins=1)
    with pytest.raises(TypeError, match=r"`monotonic_mag` must be bool, got 1"):
        RandAugment(monotonic_mag=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`excluded` items must be ops .* got 'invert'"):
        RandAugment(excluded=("invert",))
    with pytest.raises(ValueError, match=r"`excluded` must leave at least one op"):
        TrivialAugment(excluded=DALI_SUITE_OPS)
    with pytest.raises(ValueError, match=r"`policy` must be one of 'image_net'.* got 'imagenet'"):
        AutoAugment("imagenet")
    with pytest.raises(TypeError, match=r"`policy` must be a DALI policy name or"):
        AutoAugment(3)
    with pytest.raises(ValueError, match=r"`auto_augment` must be one of 'rand_augment'.*got 5"):
        resolve(5)
    assert RandAugment(excluded=["identity"]).excluded == ("identity",)


def test_names_table() -> None:
    assert set(POLICIES) == {"rand_augment", "auto_augment", "trivial_augment"}
    assert POLICIES["rand_augment"] == RandAugment(n=2, m=9)
    assert resolve("auto_augment") == AutoAugment("image_net")
    policy = TrivialAugment(num_magnitude_bins=11)
    assert resolve(policy) is policy


RUN = {
    "rand_augment": "rand_augment",
    "timm-rand": "rand-m9-mstd0.5-inc1",
    "timm-original": "original",
    "timm-v0r": "v0r",
    "trivial": TrivialAugment(num_magnitude_bins=11),
    "dali-reduced": AutoAugment("reduced_image_net"),
}


def _policy(value: object) -> object:
    if isinstance(value, str) and value not in POLICIES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return from_timm(value)
    return value


@pytest.mark.parametrize("key", list(RUN))
def test_policy_runs_in_dali_cpu_pipeline_and_changes_images(
    sample_data: dict[str, Path], key: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # DALI's auto_aug aliases
        loader = create_loader(
            str(sample_data["train"]),
            batch_size=8,
            train=True,
            image_size=48,
            device="cpu",
            keep_clean=True,
            auto_augment=_policy(RUN[key]),
            seed=0,
            num_threads=1,
        )
        batch = next(iter(loader))
    assert batch.clean is not None and batch.images.shape == batch.clean.shape
    changed = (batch.images - batch.clean).abs().flatten(1).amax(1) > 1e-3
    assert int(changed.sum()) >= 2, f"{key}: {changed.tolist()}"
    assert torch.isfinite(batch.images).all()


@pytest.mark.parametrize("device", ["cpu", "gpu"])
@pytest.mark.parametrize("key", list(RUN))
def test_policy_graph_has_no_python_function(
    sample_data: dict[str, Path], key: str, device: str
) -> None:
    from dali_gridaug.feed import Feed
    from dali_gridaug.pipeline import build_pipeline

    spec = graph_spec(sample_data["train"], device, auto_augment=_policy(RUN[key]))
    pipe, _ = build_pipeline(spec, Feed.for_spec(spec))
    pipe._build_graph()  # the operator list, without building (no GPU needed)
    ops = [o._op.schema.Name() for o in pipe._ops]
    assert ops and not any("PythonFunction" in name for name in ops), ops


@pytest.mark.parametrize(
    "policy",
    [
        RandAugment(n=3, m=20, excluded=("identity", "equalize")),
        TrivialAugment(num_magnitude_bins=11, excluded=("identity",)),
        AutoAugment("image_net"),
        "original",
        "v0r",
    ],
    ids=["rand", "trivial", "image_net", "timm-original", "timm-v0r"],
)
def test_apply_with_shape_and_seed_runs(policy: object) -> None:
    """``apply(images, shape=(H, W), seed=...)`` on a bare DALI CPU pipeline (DALI's suites
    take ``shape``, the timm-built policies drop it); the seed makes two runs equal."""
    import numpy as np
    from nvidia.dali import fn, pipeline_def

    policy = _policy(policy)
    images = [np.random.default_rng(i).integers(0, 255, (32, 40, 3), np.uint8) for i in range(6)]

    @pipeline_def(batch_size=6, num_threads=1, device_id=None, enable_conditionals=True)
    def graph():  # noqa: ANN202
        data = fn.external_source(source=lambda: images, batch=True, layout="HWC")
        return policy.apply(data, shape=(32, 40), seed=7), data

    runs = []
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pipe = graph()
            pipe.build()
            out, data = pipe.run()
        runs.append(np.stack([np.asarray(out[i]) for i in range(6)]))
    assert runs[0].shape == (6, 32, 40, 3) and runs[0].dtype == np.uint8
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], np.stack(images))


@pytest.mark.parametrize("aa", ["rand-m9-inc1", "rand-m4-inc1", "rand-m7.5-inc1", "rand-m6"])
def test_rand_magnitudes_equal_timms(aa: str) -> None:
    """At from_timm's bin, DALI's suite parameters equal timm's level functions (rotate,
    shear, the enhance ops, solarize; |value| where timm negates at random)."""
    import numpy as np
    from nvidia.dali.auto_aug import rand_augment

    policy = from_timm(aa)
    inc = policy.monotonic_mag
    suite = (
        rand_augment.get_rand_augment_suite
        if inc
        else rand_augment.get_rand_augment_non_monotonic_suite
    )()
    dali = {
        aug.name: float(np.linspace(*aug.mag_range, policy.num_magnitude_bins)[policy.m])
        for aug in suite
        if aug.mag_range is not None
    }
    level = policy.m / (policy.num_magnitude_bins - 1) * 10  # timm's magnitude
    suffix = "Increasing" if inc else ""
    fns = timm_aa.LEVEL_TO_ARG
    assert dali["rotate"] == pytest.approx(abs(fns["Rotate"](level, {})[0]))
    assert dali["shear_x"] == pytest.approx(abs(fns["ShearX"](level, {})[0]))
    for name in ("Color", "Contrast", "Brightness"):
        timm_value = fns[name + suffix](level, {})[0]
        want = abs(timm_value - 1) if inc else timm_value  # inc: 1 ± x, DALI stores x
        assert dali[name.lower()] == pytest.approx(want, abs=1e-6), name
    solarize = fns["Solarize" + suffix](level, {})[0]
    assert dali["solarize"] == pytest.approx(solarize, abs=1.0)  # timm truncates to int
