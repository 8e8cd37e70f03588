"""The loader spine: labels, epochs, sharding, shapes, normalization, seeds (real DALI CPU)."""

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
    labels = sorted(y for b in tl for y in b.labels.tolist())
    assert labels == sorted(src.targets) and tl.num_classes == 10


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
