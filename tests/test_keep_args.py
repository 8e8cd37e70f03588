"""KeepStage arguments: bad values fail at construction (or, for a box larger than the image,
at call time), naming the argument, its range and the value received. KeepGridMask takes the
GridMask augmentation's own config, whose checks cover every field the stage uses.
"""

from __future__ import annotations

import pytest

from dali_gridaug.augment import GridMask
from dali_gridaug.saliency import KeepStage
from dali_gridaug.saliency.grid import GRIDMASK_FIELDS
from tests.helpers import make_batch, random_images, tiny_model

K = 16


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": "resnet"}, TypeError, r"`model` must be a torch.nn.Module, got str"),
        (
            {"method": "cutot"},
            ValueError,
            r"`method` must be one of 'cutout', 'cutmix', 'gridmask', 'paste'; got 'cutot'",
        ),
        ({"tau": 1.5}, ValueError, r"`tau` must be in \(0, 1\), got 1.5"),
        ({"tau": 0}, ValueError, r"`tau` must be in \(0, 1\), got 0"),
        ({"tau": "0.6"}, TypeError, r"`tau` must be int or float, got '0.6' \(str\)"),
        ({"length": 0}, ValueError, r"`length` must be in \[1, inf\), got 0"),
        ({"length": 8.0}, TypeError, r"`length` must be int, got 8.0 \(float\)"),
        (
            {"saliency": "low"},
            ValueError,
            r"`saliency` must be one of 'full', 'lowres', 'early'; got 'low'",
        ),
        ({"saliency": "early"}, TypeError, r"`saliency`='early' needs .*early_logits.*Sequential"),
        ({"alpha": 0.0}, ValueError, r"`alpha` must be in \(0, inf\), got 0.0"),
        ({"alpha": float("inf")}, ValueError, r"`alpha` must be in \(0, inf\), got inf"),
        ({"draws": 0}, ValueError, r"`draws` must be in \[1, inf\), got 0"),
        ({"box": "clipped"}, ValueError, r"`box` must be one of 'clip', 'inside'; got 'clipped'"),
        (
            {"max_mask_elements": 0},
            ValueError,
            r"`max_mask_elements` must be in \[1, inf\), got 0",
        ),
        ({"draws": True}, TypeError, r"`draws` must be int, got True \(bool\)"),
        ({"seed": -1}, ValueError, r"`seed` must be in \[0, 9223372036854775807\], got -1"),
        ({"seed": 2**63}, ValueError, r"`seed` must be in \[0, 9223372036854775807\], got 9223"),
        ({"seed": 1.0}, TypeError, r"`seed` must be int, got 1.0 \(float\)"),
        ({"seed": True}, TypeError, r"`seed` must be int, got True \(bool\)"),
        ({"gridmask": {"r": 0.5}}, TypeError, r"`gridmask` must be None or a .*GridMask, got dict"),
        (
            {"gridmask": GridMask(square_p=0.5)},
            ValueError,
            r"`gridmask.square_p` must be 1 for the Keep stage .*, got 0.5",
        ),
    ],
)
def test_invalid_arguments_fail_at_construction(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args = {"model": tiny_model(K), "method": "cutout", **kwargs}
    model, method = args.pop("model"), args.pop("method")
    with pytest.raises(error, match=match):
        KeepStage(model, method, **args)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"r": 0.0}, ValueError, r"`r` must be in \(0, 1\), got 0.0"),
        # r = 1 would keep the whole period (l = d), i.e. drop nothing
        ({"r": 1.0}, ValueError, r"`r` must be in \(0, 1\), got 1.0"),
        ({"d": (5, 5)}, ValueError, r"`d` must satisfy min < max, got \(5, 5\)"),
        ({"d": (0, 5)}, ValueError, r"`d\[0\]` must be in \[1, inf\), got 0"),
        ({"d": (4.0, 8)}, TypeError, r"`d\[0\]` must be int, got 4.0 \(float\)"),
        ({"rotate": 0}, ValueError, r"`rotate` must be in \[1, 360\], got 0"),
        ({"rotate": 361}, ValueError, r"`rotate` must be in \[1, 360\], got 361"),
        ({"rotate": 1.5}, TypeError, r"`rotate` must be int, got 1.5 \(float\)"),
        ({"mode": 2}, ValueError, r"`mode` must be one of 0, 1; got 2"),
    ],
)
def test_gridmask_checks_every_field_keep_uses(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    assert set(kwargs) <= set(GRIDMASK_FIELDS)
    with pytest.raises(error, match=match):
        GridMask(**kwargs)


def test_gridmask_is_the_augmentation_config_and_defaults_to_the_image_scale() -> None:
    config = GridMask(r=0.4, d=(24, 33), rotate=1, mode=0)
    stage = KeepStage(tiny_model(K), "gridmask", gridmask=config)
    assert stage.gridmask is config and stage.gridmask_for(32) is config
    default = KeepStage(tiny_model(K), "gridmask")
    assert default.gridmask is None
    assert default.gridmask_for(32) == GridMask(r=0.6, d=(10, 32), rotate=360, mode=1)
    assert default.gridmask_for(4).d == (2, 4)
    with pytest.raises(ValueError, match=r"default `gridmask` .* needs H >= 3, got H = 2"):
        default(make_batch(random_images(4, 2, 2)))


def test_length_larger_than_the_image_fails_at_call_time() -> None:
    stage = KeepStage(tiny_model(K), "cutout", length=40)
    with pytest.raises(ValueError, match=r"`length` must be <= min\(H, W\) = 32 .*got 40"):
        stage(make_batch(random_images(27)))
