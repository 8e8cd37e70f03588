"""The loader spine: labels, epochs, sharding, shapes, normalization, seeds, sources and a
DataLoader's attributes (real DALI CPU)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision

from dali_gridaug import IMAGENET_MEAN, IMAGENET_STD, create_loader, file_list, image_folder
from dali_gridaug.augment import CutMix
from tests.conftest import COLORS


def _epoch(loader) -> list[int]:
    return [i for b in loader for i in b.index.tolist()]


def test_labels_equal_torchvision_imagefolder(sample_data: dict[str, Path]) -> None:
    tv = torchvision.datasets.ImageFolder(sample_data["train"])
    src = image_folder(sample_data["train"])
    assert [p for p, _ in tv.samples] == list(src.files)
    assert tv.class_to_idx == src.class_to_idx
    loader = create_loader(src, batch_size=8, device="cpu", image_size=32, drop_last=False)
    truth = dict(tv.samples)
    for batch in loader:
        for i, y in zip(batch.index.tolist(), batch.labels.tolist()):
            assert truth[src.files[i]] == y


@pytest.mark.parametrize("train", [True, False])
def test_every_file_exactly_once_per_epoch(sample_data: dict[str, Path], train: bool) -> None:
    n = len(image_folder(sample_data["train"]))
    loader = create_loader(
        sample_data["train"],
        batch_size=7,
        train=train,
        device="cpu",
        image_size=32,
        drop_last=False,
    )
    assert len(loader) == -(-n // 7)
    orders = [_epoch(loader) for _ in range(3)]
    for order in orders:
        assert sorted(order) == list(range(n))
    if train:
        assert orders[0] != orders[1]  # reshuffled every epoch


def test_train_drop_last_drops_only_the_partial_batch(sample_data: dict[str, Path]) -> None:
    n = len(image_folder(sample_data["train"]))
    loader = create_loader(sample_data["train"], batch_size=7, device="cpu", image_size=32)
    assert len(loader) == n // 7
    seen = _epoch(loader)
    assert len(seen) == (n // 7) * 7 and len(set(seen)) == len(seen)


_WORKER = textwrap.dedent(
    """
    import json, sys, torch.distributed as dist
    from dali_gridaug import create_loader
    dist.init_process_group("gloo")
    root, out, train = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    loader = create_loader(root, batch_size=5, train=train, device="cpu", image_size=32,
                           drop_last=False, seed=3)
    epochs = [[i for b in loader for i in b.index.tolist()] for _ in range(2)]
    json.dump({"rank": dist.get_rank(), "epochs": epochs, "len": len(loader)}, open(out, "w"))
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("train", [True, False])
def test_two_ranks_partition_the_dataset(
    sample_data: dict[str, Path], tmp_path: Path, train: bool
) -> None:
    import json

    root = sample_data["val"]  # 30 files: shards of 15, batches of 5 → no padding games
    n = len(image_folder(root))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    procs = []
    for rank in range(2):
        env = dict(
            os.environ,
            RANK=str(rank),
            WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            PYTHONPATH=os.getcwd(),
        )
        cmd = [
            sys.executable,
            str(script),
            str(root),
            str(tmp_path / f"r{rank}.json"),
            "1" if train else "0",
        ]
        procs.append(subprocess.Popen(cmd, env=env))
    for p in procs:
        assert p.wait(timeout=240) == 0
    results = [json.loads((tmp_path / f"r{r}.json").read_text()) for r in range(2)]
    for e in range(2):
        a, b = (set(r["epochs"][e]) for r in results)
        assert not a & b
        assert sorted(results[0]["epochs"][e] + results[1]["epochs"][e]) == list(range(n))


def test_uneven_shards_still_cover_every_file_once(sample_data: dict[str, Path]) -> None:
    n = len(image_folder(sample_data["train"]))  # 60 files, 7 shards of 8 or 9
    seen: list[int] = []
    for rank in range(7):
        loader = create_loader(
            sample_data["train"],
            batch_size=4,
            train=False,
            device="cpu",
            image_size=16,
            shard_id=rank,
            num_shards=7,
        )
        seen += _epoch(loader)
    assert sorted(seen) == list(range(n))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_shapes_dtypes_layout(sample_data: dict[str, Path], dtype: torch.dtype) -> None:
    train = create_loader(
        sample_data["train"], batch_size=4, device="cpu", image_size=(48, 64), dtype=dtype
    )
    batch = next(iter(train))
    images, target = batch
    assert images.shape == (4, 3, 48, 64) and images.dtype == dtype
    assert target is batch.target and target.dtype == torch.int64 and target.shape == (4,)
    assert (
        batch.labels.dtype == torch.int64 and batch.lam.shape == (4,) and batch.patch_labels is None
    )
    val = create_loader(sample_data["val"], batch_size=4, train=False, device="cpu", dtype=dtype)
    assert next(iter(val)).images.shape == (4, 3, 224, 224)


def test_raw_pixels_and_normalization(color_data: Path) -> None:
    raw = create_loader(color_data, batch_size=8, device="cpu", image_size=32, mean=0, std=1)
    norm = create_loader(color_data, batch_size=8, device="cpu", image_size=32)
    b_raw, b_norm = next(iter(raw)), next(iter(norm))
    for batch in (b_raw,):
        for img, y in zip(batch.images, batch.labels.tolist()):
            expected = torch.tensor(COLORS[y], dtype=torch.float32)[:, None, None]
            assert torch.allclose(img, expected.expand_as(img), atol=1.0)  # RGB order, NCHW
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    for img, y in zip(b_norm.images, b_norm.labels.tolist()):
        expected = (torch.tensor(COLORS[y], dtype=torch.float32)[:, None, None] - mean) / std
        assert torch.allclose(img, expected.expand_as(img), atol=1.0 / 50)


def test_seeds_control_the_crops(sample_data: dict[str, Path]) -> None:
    def first(seed: int) -> torch.Tensor:
        loader = create_loader(
            sample_data["train"], batch_size=6, device="cpu", image_size=32, seed=seed
        )
        return next(iter(loader)).images

    a, b, c = first(1), first(1), first(2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_file_list_and_tar_shards_sources(sample_data: dict[str, Path], tmp_path: Path) -> None:
    import tarfile

    src = image_folder(sample_data["val"])
    listing = tmp_path / "list.txt"
    listing.write_text(
        "".join(f"{os.path.relpath(f, tmp_path)} {y}\n" for f, y in zip(src.files, src.targets))
    )
    fl = file_list(listing)
    assert fl.files == src.files and fl.targets == src.targets
    loader = create_loader(listing, batch_size=6, train=False, device="cpu", image_size=32)
    assert sorted(_epoch(loader)) == list(range(len(src)))

    shard = tmp_path / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        for i, (f, y) in enumerate(zip(src.files, src.targets)):
            tar.add(f, arcname=f"{i:06d}.jpg")
            cls = tmp_path / "cls"
            cls.write_text(f"{y}\n")
            tar.add(cls, arcname=f"{i:06d}.cls")
    (tmp_path / "classes.txt").write_text("\n".join(src.classes) + "\n")
    tl = create_loader([str(shard)], batch_size=6, train=False, device="cpu", image_size=32)
    pairs = sorted((i, y) for b in tl for i, y in zip(b.index.tolist(), b.labels.tolist()))
    # the stable index of a tar sample is its member order: sample i is file i, once
    assert pairs == list(enumerate(src.targets)) and tl.num_classes == 10
    assert tl.feed.name(3) == f"{shard}:000003.jpg"
    # training over the shard on 2 ranks: one global order, each member once per epoch
    seen = []
    for rank in range(2):
        train = create_loader(
            [str(shard)],
            batch_size=4,
            device="cpu",
            image_size=32,
            shard_id=rank,
            num_shards=2,
            drop_last=False,
        )
        seen += [i for b in train for i in b.index.tolist()]
    assert sorted(seen) == list(range(len(src))) and seen != sorted(seen)


def test_set_epoch_and_len_like_a_dataloader(sample_data: dict[str, Path]) -> None:
    loader = create_loader(sample_data["train"], batch_size=8, device="cpu", image_size=16)
    for e in range(2):
        loader.set_epoch(e)
        assert sum(1 for _ in loader) == len(loader)
    assert loader.epoch == 2


@pytest.mark.gpu
def test_mixed_decoder_on_gpu(sample_data: dict[str, Path]) -> None:
    loader = create_loader(
        sample_data["train"], batch_size=8, device="gpu", image_size=64, drop_last=False
    )
    seen = [i for b in loader for i in b.index.tolist()]
    batch = next(iter(loader))
    assert batch.images.is_cuda and batch.labels.is_cuda
    assert sorted(seen) == list(range(len(image_folder(sample_data["train"]))))
    cpu = create_loader(sample_data["val"], batch_size=5, train=False, device="cpu", image_size=64)
    gpu = create_loader(sample_data["val"], batch_size=5, train=False, device="gpu", image_size=64)
    a, b = next(iter(cpu)).images, next(iter(gpu)).images.cpu()
    assert (a - b).abs().mean() < 0.05  # nvJPEG vs libjpeg-turbo: same image up to IDCT rounding


# ── a DataLoader's attributes: dataset, sampler, batch_size, num_classes, num_workers ──


def test_dataset_answers_like_imagefolder(sample_data: dict[str, Path]) -> None:
    tv = torchvision.datasets.ImageFolder(sample_data["train"])
    loader = create_loader(sample_data["train"], batch_size=8, device="cpu", image_size=16)
    ds = loader.dataset
    assert len(ds) == len(tv) == 60
    assert ds.classes == tv.classes and ds.class_to_idx == tv.class_to_idx
    assert ds.samples == tv.samples and ds.imgs == tv.imgs and ds.targets == tv.targets
    assert ds.root == os.path.abspath(sample_data["train"])
    assert loader.batch_size == 8 and loader.sampler.shuffle is True
    with pytest.raises(TypeError, match="holds no decoded samples"):
        ds[0]


@pytest.mark.parametrize(("world", "share"), [(1, 60), (2, 30), (7, 9)])
def test_sampler_is_this_ranks_share(sample_data: dict[str, Path], world: int, share: int) -> None:
    """len(sampler) is the largest rank shard, so len(sampler) · world ≥ len(dataset): a
    script that evaluates a remainder when the product is smaller (the official ImageNet
    example) finds none, and DALI's shards already cover every file once."""
    seen = []
    for rank in range(world):
        loader = create_loader(
            sample_data["train"],
            batch_size=4,
            train=False,
            device="cpu",
            image_size=16,
            shard_id=rank,
            num_shards=world,
        )
        assert len(loader.sampler) == share and loader.sampler.num_replicas == world
        assert len(loader.sampler) * world >= len(loader.dataset) == 60
        assert loader.sampler.rank == rank
        n = sum(len(b) for b in loader)
        assert n <= len(loader.sampler)
        seen.append(n)
    assert sum(seen) == 60


def test_sampler_set_epoch_forwards_to_the_loader(sample_data: dict[str, Path]) -> None:
    loader = create_loader(
        sample_data["train"], batch_size=12, device="cpu", image_size=16, augment=[CutMix()]
    )
    loader.sampler.set_epoch(3)
    assert loader.epoch == 3 == loader.sampler.epoch
    assert {b.epoch for b in loader} == {3}
    with pytest.raises(TypeError, match="no indices to iterate"):
        iter(loader.sampler)


def test_tar_dataset_length_and_classes(sample_data: dict[str, Path], tmp_path: Path) -> None:
    import tarfile

    src = image_folder(sample_data["val"])
    shard = tmp_path / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        for i, (f, y) in enumerate(zip(src.files, src.targets, strict=True)):
            tar.add(f, arcname=f"{i:06d}.jpg")
            (tmp_path / "cls").write_text(f"{y}\n")
            tar.add(tmp_path / "cls", arcname=f"{i:06d}.cls")
    (tmp_path / "classes.txt").write_text("\n".join(src.classes) + "\n")
    loader = create_loader([str(shard)], batch_size=8, train=False, device="cpu", image_size=16)
    assert len(loader.dataset) == len(src) == 30 and len(loader.sampler) == 30
    assert loader.dataset.classes == list(src.classes) and loader.dataset.samples == []


def test_num_classes_sizes_soft_targets_for_the_model(sample_data: dict[str, Path]) -> None:
    """A 1000-class model on a 10-class subset: soft targets (B, 1000), mass only on the
    dataset's classes, rows summing to 1; the default K is the dataset's class count."""
    kw = {"batch_size": 6, "device": "cpu", "image_size": 16, "augment": [CutMix()]}
    wide = next(iter(create_loader(sample_data["train"], num_classes=1000, **kw)))
    assert wide.target.shape == (6, 1000) and wide.target.dtype == torch.float32
    assert torch.allclose(wide.target.sum(1), torch.ones(6))
    assert wide.target[:, 10:].abs().sum() == 0
    loss = torch.nn.CrossEntropyLoss()(torch.zeros(6, 1000), wide.target)
    assert torch.isclose(loss, torch.log(torch.tensor(1000.0)))
    assert next(iter(create_loader(sample_data["train"], **kw))).target.shape == (6, 10)


def test_num_threads_zero_is_the_default(sample_data: dict[str, Path]) -> None:
    """A script's ``--workers 0`` (DataLoader: load in the main process) maps to
    ``num_threads=0``, DALI's default thread count."""
    kw = {"batch_size": 8, "device": "cpu", "image_size": 16}
    zero = create_loader(sample_data["train"], num_threads=0, **kw)
    default = create_loader(sample_data["train"], **kw)
    assert zero.spec.num_threads == default.spec.num_threads == max(1, min(8, os.cpu_count()))
    assert sum(len(b) for b in zero) == 56


def test_auto_device_needs_torch_and_dali_cuda() -> None:
    from dali_gridaug.loader_args import gpu_unusable, resolve_device

    why = gpu_unusable()
    assert resolve_device("auto") == ("cpu" if why else "gpu")
    assert resolve_device("cpu") == "cpu"
    if why:
        with pytest.raises(ValueError, match=r"`device`='gpu' but .*; use 'cpu' or 'auto'"):
            resolve_device("gpu")
