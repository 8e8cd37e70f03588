"""``Preset.interpolation`` (timm's ``interpolation``): the val resize and the train
random-resized crop use DALI's linear/cubic/nearest filter, antialiased; ``"bilinear"`` is
today's output; ``"random"`` (timm's train default) picks bilinear or bicubic per sample.
``Preset.crop_mode`` (timm's eval ``crop_mode``): ``"center"`` (today's) and ``"squash"``;
``"border"`` refused. Real DALI CPU pipelines on generated JPEGs."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from dali_gridaug import create_loader
from dali_gridaug.presets import IMAGENET, Preset

SIDE = 64


def _val(root: Path, interpolation: str | None, **kw) -> tuple[np.ndarray, np.ndarray]:
    if interpolation is not None:
        kw["interpolation"] = interpolation
    preset = dataclasses.replace(IMAGENET, **kw) if kw else IMAGENET
    loader = create_loader(
        root, batch_size=6, train=False, device="cpu", image_size=SIDE, preset=preset
    )
    batch = next(iter(loader))
    return batch.images.float().numpy(), batch.index.numpy()


def _dali_reference(root: Path, index: np.ndarray, interp_name: str, squash=False) -> np.ndarray:
    """The same files through a plain DALI decode → resize_shorter → centre crop+normalize."""
    from nvidia.dali import fn, pipeline_def, types

    files = create_loader(root, batch_size=6, train=False, device="cpu").source.files
    paths = [str(files[i]) for i in index]
    side = math.floor(SIDE / 0.875)
    target = {"size": [side, side]} if squash else {"resize_shorter": round(SIDE / 0.875)}

    @pipeline_def(batch_size=len(paths), num_threads=1, device_id=None)
    def plain():
        encoded, _ = fn.readers.file(files=paths, random_shuffle=False)
        images = fn.resize(
            fn.decoders.image(encoded, device="cpu"),
            **target,
            interp_type=getattr(types, interp_name),
            antialias=True,
        )
        return fn.crop_mirror_normalize(
            images,
            crop=[SIDE, SIDE],
            crop_pos_x=0.5,
            crop_pos_y=0.5,
            dtype=types.FLOAT,
            output_layout="CHW",
            mean=list(IMAGENET.mean),
            std=list(IMAGENET.std),
        )

    pipe = plain()
    pipe.build()
    return np.stack([np.asarray(t) for t in pipe.run()[0]])


def test_default_is_bilinear_and_filters_match_dali(sample_data: dict[str, Path]) -> None:
    root = sample_data["val"]
    default, index = _val(root, None)
    bilinear, index2 = _val(root, "bilinear")
    np.testing.assert_array_equal(index, index2)
    np.testing.assert_array_equal(default, bilinear)
    np.testing.assert_allclose(bilinear, _dali_reference(root, index, "INTERP_LINEAR"), atol=1e-5)
    for name, dali_name in (("bicubic", "INTERP_CUBIC"), ("nearest", "INTERP_NN")):
        images, idx = _val(root, name)
        np.testing.assert_array_equal(idx, index)
        assert np.abs(images - bilinear).max() > 0.05, name  # the filter changes pixels
        np.testing.assert_allclose(images, _dali_reference(root, idx, dali_name), atol=1e-5)


def _train(root: Path, interpolation: str, batch_size: int, seed: int) -> np.ndarray:
    """The first train batch's images with the preset's filter set to ``interpolation``."""
    preset = dataclasses.replace(IMAGENET, interpolation=interpolation)
    loader = create_loader(
        root, batch_size=batch_size, device="cpu", image_size=SIDE, preset=preset, seed=seed
    )
    return next(iter(loader)).images.float().numpy()


def test_train_crop_uses_the_filter(sample_data: dict[str, Path]) -> None:
    def first(interpolation: str) -> np.ndarray:
        return _train(sample_data["train"], interpolation, batch_size=4, seed=1)

    bilinear, bicubic = first("bilinear"), first("bicubic")
    assert bilinear.shape == bicubic.shape
    assert np.abs(bilinear - bicubic).max() > 0.05  # same crops (same seed), other filter


def test_random_picks_bilinear_or_bicubic_per_sample(sample_data: dict[str, Path]) -> None:
    """timm's ``"random"``: each train crop is the bilinear or the bicubic one of the same
    draws (the filter index is drawn last), both occur in a batch; val resizes bilinearly."""

    def first(interpolation: str) -> np.ndarray:
        return _train(sample_data["train"], interpolation, batch_size=16, seed=3)

    bilinear, bicubic, mixed = first("bilinear"), first("bicubic"), first("random")
    is_lin = [np.array_equal(m, b) for m, b in zip(mixed, bilinear, strict=True)]
    is_cub = [np.array_equal(m, c) for m, c in zip(mixed, bicubic, strict=True)]
    assert all(a != b for a, b in zip(is_lin, is_cub, strict=True))  # exactly one of the two
    assert 0 < sum(is_lin) < len(mixed)  # P(one filter only) = 2**-15
    root = sample_data["val"]
    np.testing.assert_array_equal(_val(root, "random")[0], _val(root, "bilinear")[0])


def test_squash_resizes_both_sides(sample_data: dict[str, Path]) -> None:
    root = sample_data["val"]
    center, index = _val(root, None, crop_mode="center")
    np.testing.assert_array_equal(center, _val(root, None)[0])  # "center" is today's
    squash, index2 = _val(root, "bicubic", crop_mode="squash")
    np.testing.assert_array_equal(index, index2)
    assert squash.shape == center.shape and np.abs(squash - center).max() > 0.05
    ref = _dali_reference(root, index, "INTERP_CUBIC", squash=True)
    np.testing.assert_allclose(squash, ref, atol=1e-5)


def test_bad_crop_mode_names_itself() -> None:
    with pytest.raises(ValueError, match=r"`preset.crop_mode` 'border' .* not supported"):
        Preset("x", crop_mode="border")
    with pytest.raises(ValueError, match=r"`preset.crop_mode` must be one of 'center', 'squash'"):
        Preset("x", crop_mode="fit")
    with pytest.raises(ValueError, match=r"'squash' needs a `preset.crop_pct`"):
        Preset("x", crop_mode="squash", crop_pct=None)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (
            "lanczos",
            r"`preset.interpolation` must be one of 'bilinear', 'bicubic', 'nearest', "
            "'random'",
        ),
    ],
)
def test_bad_interpolation_names_itself(value: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Preset("x", interpolation=value)
