"""``loader.mixup_enabled`` (timm's ``PrefetchLoader`` switch, set at ``--mixup-off-epoch``):
off from the next batch on without a rebuild, unmixed images and plain targets, part of the
state dict (real DALI CPU pipelines over real JPEGs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dali_gridaug import create_loader
from dali_gridaug.augment import CutMix, GridMix, Mixup, MixupCutMix
from dali_gridaug.labels import one_hot
from dali_gridaug.testing.graphs import has_python_function
from tests.helpers import INVARIANT_CROP

#: the host-drawn crop: loaders of different graphs (with and without a mix) and a resumed
#: one crop a file alike (DALI's own crop draw is seeded per graph and restarts on a build)
KW = {
    "batch_size": 8,
    "device": "cpu",
    "image_size": 32,
    "num_threads": 2,
    "seed": 3,
    "preset": INVARIANT_CROP,
}


def _loader(root: Path, augment=(), **kw):
    return create_loader(root, augment=augment, **{**KW, **kw})


def _plain(batch, k: int, eps: float = 0.0) -> bool:
    """The batch is unmixed: λ 1, partner itself, target the (smoothed) one-hot labels."""
    n = len(batch.labels)
    return (
        bool((batch.lam == 1).all())
        and torch.equal(batch.partner, torch.arange(n))
        and torch.equal(batch.target, one_hot(batch.labels, k, eps))
    )


def _mixed(batch) -> bool:
    """Every sample took a box from another image (CutMix p=1 with a derangement)."""
    n = len(batch.labels)
    return bool((batch.lam < 1).all()) and bool((batch.partner != torch.arange(n)).all())


def test_switch_off_mid_epoch_from_the_next_batch(sample_data: dict[str, Path]) -> None:
    root = sample_data["train"]
    loader = _loader(root, [CutMix(p=1.0, derangement=True)])
    reference = list(_loader(root))  # no mixing augmentation, same seed: the unmixed images
    pipe = loader.pipe
    assert loader.mixup_enabled is True
    got = []
    for i, batch in enumerate(loader):
        got.append(batch)
        if i == 2:
            loader.mixup_enabled = False
            assert loader.state_dict()["mixup_enabled"] is False
    assert len(got) == len(reference) == len(loader) == 7
    for i, (b, ref) in enumerate(zip(got, reference, strict=True)):
        assert torch.equal(b.index, ref.index), i  # the same order, nothing skipped or repeated
        if i <= 2:
            assert _mixed(b) and not torch.equal(b.images, ref.images), i
        else:
            assert _plain(b, loader.num_classes), i
            assert torch.equal(b.images, ref.images), i
    assert loader.pipe is pipe and not has_python_function(pipe)  # no rebuild, all DALI ops
    # the next epoch stays off, and turning it on between epochs mixes the one after
    assert all(_plain(b, loader.num_classes) for b in loader)
    loader.mixup_enabled = True
    assert all(_mixed(b) for b in loader)


def test_state_dict_carries_the_switch(sample_data: dict[str, Path]) -> None:
    """Resumed with the switch off it stays off; turned back on mid-epoch, the batches are
    exactly those of a run that never switched (draws are keyed by the step)."""
    root = sample_data["train"]
    aug = [CutMix(p=1.0, derangement=True)]
    always = list(_loader(root, aug))
    loader = _loader(root, aug)
    it = iter(loader)
    next(it)
    loader.mixup_enabled = False
    next(it)
    state = loader.state_dict()
    assert state["mixup_enabled"] is False and state["position"] == 16
    it.close()
    resumed = _loader(root, aug, resume=state)
    assert resumed.mixup_enabled is False
    rest = []
    for i, batch in enumerate(resumed, start=2):
        rest.append(batch)
        if i == 3:
            resumed.mixup_enabled = True
    assert all(torch.equal(b.index, a.index) for b, a in zip(rest, always[2:], strict=True))
    assert all(_plain(b, resumed.num_classes) for b in rest[:2])
    for b, a in zip(rest[2:], always[4:], strict=True):
        assert _mixed(b) and torch.equal(b.images, a.images) and torch.equal(b.target, a.target)
    # load_state_dict restores it too; a state saved before the field existed means on
    other = _loader(root, aug)
    other.load_state_dict(state)
    assert other.mixup_enabled is False
    other.load_state_dict({k: v for k, v in state.items() if k != "mixup_enabled"})
    assert other.mixup_enabled is True
    with pytest.raises(TypeError, match=r"`resume\['mixup_enabled'\]` must be bool, got 0"):
        _loader(root, aug, resume={**state, "mixup_enabled": 0})


@pytest.mark.parametrize(
    "aug",
    [
        Mixup(alpha=1.0),
        MixupCutMix(mode="elem", label_smoothing=0.1),
        GridMix(n=4, p=0.5),
        CutMix(backend="kernel"),
    ],
    ids=["mixup", "mixup_cutmix_elem", "gridmix", "cutmix_kernel"],
)
def test_every_mixing_op_turns_off(sample_data: dict[str, Path], aug) -> None:
    """Switched off before the first batch: the images of a loader without the mixing op at
    the same seed, λ 1, the smoothed one-hot target (GridMix: every cell the own label); the
    default graphs hold no ``python_function`` (the ``"kernel"`` backend is one, on purpose)."""
    root = sample_data["val"]
    eps = aug.target_smoothing()
    loader = _loader(root, [aug])
    loader.mixup_enabled = False
    assert loader.mixup_enabled is False
    reference = _loader(root, label_smoothing=eps)
    for b, ref in zip(loader, reference, strict=True):
        assert _plain(b, loader.num_classes, eps)
        assert torch.equal(b.images, ref.images)
        if isinstance(aug, GridMix):
            assert torch.equal(b.patch_labels, b.labels[:, None, None].expand(-1, 4, 4))
    assert has_python_function(loader.pipe) == (aug.backend == "kernel")
    loader.mixup_enabled = True
    assert any((b.lam < 1).any() for b in loader)


def test_without_mixing_and_bad_values(sample_data: dict[str, Path]) -> None:
    """Without a mixing augmentation it reads False (as timm's without a mixing collate);
    setting it is accepted and changes nothing. A non-bool is refused by name."""
    root = sample_data["val"]
    for loader in (_loader(root), _loader(root, train=False)):
        assert loader.mixup_enabled is False
        loader.mixup_enabled = False
        loader.mixup_enabled = True
        assert loader.mixup_enabled is False and loader.state_dict()["mixup_enabled"] is True
        assert len(list(loader)) == len(loader)
    mixing = _loader(root, [CutMix()])
    for bad in (0, 1, "off", None):
        with pytest.raises(TypeError, match=r"`mixup_enabled` must be bool"):
            mixing.mixup_enabled = bad
    assert mixing.mixup_enabled is True
