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
from dali_gridaug.augment import CutMix, Cutout
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
            sample_data["train"], batch_size=4, train=False, device="cpu", image_size=16,
            shard_id=rank, num_shards=world,
        )  # fmt: skip
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
    from dali_gridaug._loader_args import gpu_unusable, resolve_device

    why = gpu_unusable()
    assert resolve_device("auto") == ("cpu" if why else "gpu")
    assert resolve_device("cpu") == "cpu"
    if why:
        with pytest.raises(ValueError, match=r"`device`='gpu' but .*; use 'cpu' or 'auto'"):
            resolve_device("gpu")


# ── whole epochs: leaving a loop early, nested loops ─────────────────────────────────────


def _stamped(sample_data: dict[str, Path], **kw: object):
    """60 files in 12 batches of 5; Cutout makes the epoch stamp come with the parameters."""
    return create_loader(
        sample_data["train"], batch_size=5, device="cpu", image_size=16, seed=7,
        augment=[Cutout(length=4)], **kw,
    )  # fmt: skip


def _rows(batches) -> list[tuple]:
    return [(b.epoch, b.index.tolist(), b.images) for b in batches]


def _same_rows(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x[0] == y[0] and x[1] == y[1] and torch.equal(x[2], y[2])


@pytest.fixture(scope="module")
def reference_epochs(sample_data: dict[str, Path]) -> list[list[tuple]]:
    loader = _stamped(sample_data)
    return [_rows(loader) for _ in range(2)]


@pytest.mark.parametrize("set_epoch", [True, False])
@pytest.mark.parametrize("stop", [2, 10, 12])
@pytest.mark.slow
def test_break_then_iterate_gives_a_whole_epoch(
    sample_data: dict[str, Path], reference_epochs: list, set_epoch: bool, stop: int
) -> None:
    """Issue: after ``break`` and ``set_epoch(e + 1)`` the next epoch gave 10 of 12 batches
    (the rest of epoch e, stamped e + 1). Now it is epoch e + 1 whole, exactly the batches an
    uninterrupted run gives: same files, pixels, parameters and stamp."""
    loader = _stamped(sample_data)
    assert len(loader) == 12
    head = []
    for batch in loader:
        head.append(batch)
        if len(head) == stop:
            break
    _same_rows(_rows(head), reference_epochs[0][:stop])
    if set_epoch:
        loader.set_epoch(1)
    again = _rows(loader)
    assert len(again) == 12 and {r[0] for r in again} == {1}
    assert sorted(i for r in again for i in r[1]) == list(range(60))
    _same_rows(again, reference_epochs[1])
    assert loader.epoch == 2


def test_raw_then_iterate_gives_a_whole_epoch(
    sample_data: dict[str, Path], reference_epochs: list
) -> None:
    loader = _stamped(sample_data)
    for _ in zip(range(3), loader.raw(), strict=False):
        pass
    _same_rows(_rows(loader), reference_epochs[1])


def test_nested_iteration_is_an_error(sample_data: dict[str, Path]) -> None:
    """Issue: a nested ``for`` gave 6 + 4 batches where len is 5. A second open iteration
    is refused; the first one goes on and still yields its whole epoch."""
    loader = create_loader(sample_data["val"], batch_size=6, train=False, device="cpu",
                           image_size=16)  # fmt: skip
    assert len(loader) == 5
    outer = []
    for batch in loader:
        outer.append(batch)
        if len(outer) == 1:
            with pytest.raises(RuntimeError, match="already being iterated.*nested loops"):
                for _ in loader:
                    pass
            with pytest.raises(RuntimeError, match="set_epoch: .*already being iterated"):
                loader.set_epoch(1)
    assert len(outer) == 5 and sorted(i for b in outer for i in b.index.tolist()) == list(range(30))
    it = iter(loader)  # an iterator held but not started is open too
    with pytest.raises(RuntimeError, match="already being iterated"):
        iter(loader)
    del it
    assert sum(1 for _ in loader) == 5


def test_state_after_break_resumes_the_rest_of_the_epoch(sample_data: dict[str, Path]) -> None:
    """Leaving a loop early and saving the state (a step limit, a preemption) keeps the rest
    of the epoch for the restored loader, while this loader itself moves on to epoch 1."""
    loader = _stamped(sample_data, checkpointing=True)
    reference = _rows(_stamped(sample_data))
    head = []
    for batch in loader:
        head.append(batch)
        if len(head) == 4:
            break
    state = loader.state_dict()
    restored = _stamped(sample_data, resume=state)
    _same_rows(_rows(head) + _rows(restored), reference)
    assert {r[0] for r in _rows(loader)} == {1}


def test_uneven_shards_yield_no_empty_batch(sample_data: dict[str, Path]) -> None:
    """60 files on 7 ranks (shards of 8 or 9) in batches of 4: DALI runs
    every rank 3 times and trims a shard of 8's third batch to nothing; the loader skips it
    and ``len`` counts what it yields."""
    for rank in range(7):
        loader = create_loader(
            sample_data["train"], batch_size=4, train=False, device="cpu", image_size=16,
            shard_id=rank, num_shards=7,
        )  # fmt: skip
        sizes = [len(b) for b in loader]
        shard = (rank + 1) * 60 // 7 - rank * 60 // 7
        assert sum(sizes) == shard and 0 not in sizes and len(sizes) == len(loader)
