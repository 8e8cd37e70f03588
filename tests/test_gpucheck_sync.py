"""Sync audit: the per-batch torch code (labels stage, train step, Keep stage, GridMix loss,
evaluation) makes no host-waiting copy, scalar read or data-dependent shape on the GPU path;
planted syncs are flagged.

Fake CUDA (no GPU) where no backward pass runs: the loader's labels stage on the outputs of a
real CPU pipeline moved to fake CUDA (a GPU pipeline emits every output on the GPU), the
forward half of the train step under CUDA autocast, and evaluation. Where a backward pass
runs (the whole train step, the Keep stage's saliency), real CPU tensors stand for device
tensors: every scalar read and data-dependent shape counts there.
"""

from __future__ import annotations

import contextlib
import types
from pathlib import Path

import pytest
import torch

from dali_gridaug import CutMix, GridMask, GridMix, create_loader
from dali_gridaug.augment.mixup import Mixup, MixupCutMix
from dali_gridaug.batch import Batch
from dali_gridaug.loader import DaliLoader
from dali_gridaug.recipes import build_criterion, build_model, load_recipe
from dali_gridaug.saliency import METHODS, KeepStage
from dali_gridaug.training.evaluate import eval_sums
from dali_gridaug.training.loop import Trainer
from dali_gridaug.training.parts import Parts, autocast_factory
from dali_gridaug.training.schedule import build_optimizer, build_scheduler
from tests.oracles.sync import HostSyncError, SyncAudit, fake_cuda, to_device

B, SIZE = 8, 32
LOADERS = {
    "plain": {},
    "smoothing": {"label_smoothing": 0.1},
    "gridmask": {"augment": (GridMask(d=(8, 24), p=1.0, ramp_epochs=0),)},
    "cutmix": {"augment": (CutMix(),), "label_smoothing": 0.1},
    "gridmix": {"augment": (GridMix(n=4),)},
    "mixup": {"augment": (Mixup(mode="elem"),)},
    "mixup-cutmix": {"augment": (MixupCutMix(mode="pair"),)},
}


def _raw_output(root: Path, **kwargs) -> tuple[DaliLoader, dict[str, torch.Tensor]]:
    loader = create_loader(root, batch_size=B, device="cpu", image_size=SIZE, **kwargs)
    run = loader.raw()
    out = next(run)
    run.close()
    return loader, out


def _labels_stage(loader: DaliLoader, class_of: torch.Tensor) -> types.SimpleNamespace:
    """What ``_to_batch`` reads of its loader; a GPU loader holds ``_class_of`` on the GPU."""
    fields = ("num_classes", "source", "spec", "params", "epoch")
    return types.SimpleNamespace(_class_of=class_of, **{f: getattr(loader, f) for f in fields})


def _device_batch(loader: DaliLoader, out: dict[str, torch.Tensor]) -> Batch:
    """The batch a GPU loader makes of its raw outputs ``out`` (call under ``fake_cuda``)."""
    return DaliLoader._to_batch(_labels_stage(loader, to_device(loader._class_of)), to_device(out))


@pytest.fixture(scope="module")
def raw_outputs(color_data: Path) -> dict[str, tuple[DaliLoader, dict]]:
    return {name: _raw_output(color_data, **kw) for name, kw in LOADERS.items()}


@pytest.mark.parametrize("name", list(LOADERS))
def test_to_batch_has_no_host_sync(raw_outputs, name: str) -> None:
    loader, out = raw_outputs[name]
    cpu = DaliLoader._to_batch(loader, out)
    with fake_cuda():
        view = _labels_stage(loader, to_device(loader._class_of))
        dev_out = to_device(out)
        with SyncAudit() as audit:
            batch = DaliLoader._to_batch(view, dev_out)
    audit.assert_no_syncs(f"DaliLoader._to_batch ({name})")
    for field in ("images", "target", "labels", "index", "lam", "partner", "patch_labels"):
        got, ref = getattr(batch, field), getattr(cpu, field)
        assert (got is None) == (ref is None), field
        if ref is not None:
            assert got.device.type == "cuda", field
            assert (got.shape, got.dtype) == (ref.shape, ref.dtype), field
    assert (batch.patch_labels is not None) == (name == "gridmix")


_CPU_MODELS: dict[str, torch.nn.Module] = {}


def _model(recipe, device: str) -> torch.nn.Module:
    """The recipe's model; CPU models are built once per recipe and model (they are slow to
    initialise on 2 cores; the audits do not depend on the weights).
    """
    if device != "cpu":
        with torch.device(device):
            return build_model(recipe, 32)
    key = f"{recipe.name} {recipe.model} {recipe.loss_kind} {recipe.keep}"
    if key not in _CPU_MODELS:
        _CPU_MODELS[key] = build_model(recipe, 32)
    return _CPU_MODELS[key]


def _trainer(recipe, device: str, amp: str, *, keep: KeepStage | None = None) -> Trainer:
    """A Trainer holding only what its step reads (its constructor builds loaders and files)."""
    model = _model(recipe, device)
    optimizer = build_optimizer(model, recipe)
    scaler = torch.amp.GradScaler(device, enabled=amp == "fp16")
    parts = Parts(
        model,
        model,
        optimizer,
        build_scheduler(optimizer, recipe, 10),
        scaler,
        build_criterion(recipe),
        keep,
    )
    trainer = Trainer.__new__(Trainer)
    trainer.parts, trainer.cfg = parts, types.SimpleNamespace(channels_last=True)
    trainer.autocast = autocast_factory(amp, torch.device(device))
    return trainer


RECIPES = {"soft_ce": ("imagenet_cutmix", "cutmix"), "gridmix": ("imagenet_gridmix", "gridmix")}


def _recipe(kind: str):
    return load_recipe(RECIPES[kind][0]).override({"model.name": "resnet18"})


@pytest.mark.parametrize("amp", ["bf16", "fp16", "none"])
@pytest.mark.parametrize("kind", list(RECIPES))
def test_train_step_forward_on_fake_cuda_has_no_host_sync(raw_outputs, kind, amp) -> None:
    """Keep-less forward half (autocast, model, criterion incl. GridMix's patch loss)."""
    loader, out = raw_outputs[RECIPES[kind][1]]
    with fake_cuda():
        batch = _device_batch(loader, out)
        trainer = _trainer(_recipe(kind), "cuda", amp)
        with SyncAudit() as audit:
            loss = trainer.forward_loss(batch)
    audit.assert_no_syncs(f"Trainer.forward_loss ({kind}, amp {amp})")
    assert loss.device.type == "cuda" and loss.shape == () and loss.dtype == torch.float32


@pytest.mark.parametrize(("kind", "amp"), [("soft_ce", "bf16"), ("gridmix", "none")])
def test_whole_train_step_has_no_host_sync(raw_outputs, kind, amp) -> None:
    """Forward, backward, optimizer, scaler and schedule, CPU tensors standing for the GPU's."""
    loader, out = raw_outputs[RECIPES[kind][1]]
    batch = DaliLoader._to_batch(loader, out)
    trainer = _trainer(_recipe(kind), "cpu", amp)
    before = [p.detach().clone() for p in trainer.parts.model.parameters()]
    with SyncAudit(device_types=("cpu",)) as audit:
        loss = trainer.train_step(batch)
    audit.assert_no_syncs(f"Trainer.train_step ({kind}, amp {amp})")
    assert torch.isfinite(loss)
    after = list(trainer.parts.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))  # it trained


_SKIPPED_STEP = "ignore:Detected call of `lr_scheduler.step"  # fp16's first step may overflow


def _fp16_step(raw_outputs, fused: bool) -> SyncAudit:
    """One fp16 step (scaler enabled). Autocast stays off: the CPU has no fast fp16
    convolutions, and what is audited is the scaler's step, not the casts.
    """
    loader, out = raw_outputs["cutmix"]
    trainer = _trainer(_recipe("soft_ce"), "cpu", "fp16")
    trainer.autocast = contextlib.nullcontext
    if fused:
        groups = [{"params": g["params"]} for g in trainer.parts.optimizer.param_groups]
        trainer.parts.optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9, fused=True)
    assert trainer.parts.scaler.is_enabled()
    with SyncAudit(device_types=("cpu",)) as audit:
        trainer.train_step(DaliLoader._to_batch(loader, out))
    return audit


def test_build_optimizer_is_fused_on_cuda() -> None:
    """The trainer's optimizer on CUDA parameters is the fused SGD (no per-step inf-flag read
    under an fp16 scaler, test below); on the CPU it stays the default implementation.
    """
    recipe = _recipe("soft_ce")
    with fake_cuda():
        assert build_optimizer(_model(recipe, "cuda"), recipe).defaults["fused"] is True
    assert not build_optimizer(_model(recipe, "cpu"), recipe).defaults["fused"]


@pytest.mark.filterwarnings(_SKIPPED_STEP)
def test_fp16_train_step_with_a_fused_optimizer_has_no_host_sync(raw_outputs) -> None:
    plain = _fp16_step(raw_outputs, fused=False)
    assert [e.kind for e in plain.syncs] == ["scalar_read"]  # found_inf.item(), in torch
    assert "scaler.step" in plain.syncs[0].site
    _fp16_step(raw_outputs, fused=True).assert_no_syncs("Trainer.train_step (fp16, fused SGD)")


KEEP_VARIANTS = [(m, "full") for m in METHODS] + [("cutmix", "lowres"), ("cutout", "early")]


@pytest.fixture(scope="module")
def clean_output(color_data: Path):
    return _raw_output(color_data, keep_clean=True)


def _keep_trainer(clean_output, method: str, saliency: str, amp: str = "none"):
    loader, out = clean_output
    recipe = load_recipe("imagenet_keepcutmix").override(
        {"model.name": "resnet18", "keep.saliency": saliency}
    )
    trainer = _trainer(recipe, "cpu", amp)
    trainer.parts.keep = KeepStage(
        trainer.parts.model,
        method,
        length=8,
        saliency=saliency,
        box="clip",
        gridmask=GridMask(d=(8, 24)),
        draws=4,
        seed=0,
    )
    return trainer, DaliLoader._to_batch(loader, out)


@pytest.mark.parametrize(("method", "saliency"), KEEP_VARIANTS)
def test_keep_stage_has_no_host_sync(clean_output, method, saliency) -> None:
    """The stage as the train step calls it: under the step's autocast (bf16 for one variant:
    CPU bf16 is slow, and autocast changes dtypes, not which ops run).
    """
    amp = "bf16" if (method, saliency) == ("cutmix", "full") else "none"
    trainer, batch = _keep_trainer(clean_output, method, saliency, amp)
    with SyncAudit(device_types=("cpu",)) as audit, trainer.autocast():
        kept = trainer.parts.keep(batch)
    audit.assert_no_syncs(f"KeepStage({method!r}, saliency={saliency!r})")
    assert kept.target.shape == (B, 32) and kept.boxes.shape == (B, 4)
    assert method == "paste" or not torch.equal(kept.images, batch.images)


def test_train_step_with_keep_has_no_host_sync(clean_output) -> None:
    trainer, batch = _keep_trainer(clean_output, "cutmix", "full")
    with SyncAudit(device_types=("cpu",)) as audit:
        trainer.train_step(batch)
    audit.assert_no_syncs("Trainer.train_step with KeepStage('cutmix')")


def test_evaluation_batches_have_no_host_sync(raw_outputs) -> None:
    loader, out = raw_outputs["plain"]
    with fake_cuda():
        batch = _device_batch(loader, out)
        trainer = _trainer(_recipe("soft_ce"), "cuda", "bf16")
        with SyncAudit() as audit:
            sums = eval_sums(
                trainer.parts.model,
                [batch, batch],
                torch.device("cuda"),
                trainer.autocast,
                True,
                lambda: False,
            )
    audit.assert_no_syncs("eval_sums")
    assert sums.device.type == "cuda" and sums.shape == (4,)


# -- planted syncs: each must be flagged, at the planted line ---------------------------------


def _fake_step(step) -> SyncAudit:
    with fake_cuda():
        x = to_device(torch.rand(B, 3))
        with SyncAudit() as audit:
            step(x)
    return audit


def test_planted_item_on_a_cuda_loss_is_flagged() -> None:
    def step(x):
        loss = (x * 2).mean()
        return loss.item()

    audit = _fake_step(step)
    [event] = audit.syncs
    assert event.kind == "scalar_read" and "test_gpucheck_sync.py" in event.site
    assert "return loss.item()" in event.site
    with pytest.raises(AssertionError, match="1 host sync"):
        audit.assert_no_syncs("planted")


@pytest.mark.parametrize("read", [int, float, bool, lambda t: t.tolist()], ids=str)
def test_planted_host_reads_are_flagged(read) -> None:
    audit = _fake_step(lambda x: read(x[0, 0]))
    assert [e.kind for e in audit.syncs] == ["scalar_read"]


def test_planted_blocking_copies_are_flagged() -> None:
    host = torch.rand(B, 3)
    audit = _fake_step(lambda x: x + host.to("cuda"))
    assert [e.kind for e in audit.syncs] == ["blocking_copy"]
    audit = _fake_step(lambda x: x + host.to("cuda", non_blocking=True))  # pageable source
    assert [e.kind for e in audit.syncs] == ["pageable_copy"]
    audit = _fake_step(lambda x: x.cpu())
    assert [e.kind for e in audit.syncs] == ["blocking_copy"]


def test_pinned_non_blocking_upload_is_not_flagged() -> None:
    host = torch.rand(B, 3)

    def step(x):
        return x + host.pin_memory().to("cuda", non_blocking=True)

    assert _fake_step(step).syncs == []


def test_planted_boolean_mask_index_is_flagged() -> None:
    with pytest.raises(
        HostSyncError, match=r"data_dependent_shape: index.Tensor at .*x\[x > 0.5\]"
    ):
        _fake_step(lambda x: x[x > 0.5])
    with pytest.raises(HostSyncError, match="nonzero"):
        _fake_step(torch.nonzero)
    audit = SyncAudit(device_types=("cpu",))
    with audit:
        torch.rand(4)[torch.rand(4) > 2].sum()
    assert [e.kind for e in audit.syncs] == ["data_dependent_shape"]


def test_allowed_reads_are_kept_apart_from_per_batch_syncs() -> None:
    """A read every N steps (the progress bar's loss) is allowed only inside ``allowed``."""

    def epoch(x):
        total = x.sum()
        for step in range(1, 7):
            total = total + x.mean()
            if step % 3 == 0:
                with audit.allowed("every 3 steps"):
                    total.item()
        return total

    with fake_cuda():
        x = to_device(torch.rand(B, 3))
        with SyncAudit() as audit:
            epoch(x)
            x.sum().item()  # not allowed: per batch
    assert [e.allowed for e in audit.events] == ["every 3 steps", "every 3 steps", None]
    assert len(audit.syncs) == 1


def test_planted_item_in_the_train_step_is_flagged(raw_outputs) -> None:
    loader, out = raw_outputs["cutmix"]
    with fake_cuda():
        batch = _device_batch(loader, out)
        trainer = _trainer(_recipe("soft_ce"), "cuda", "bf16")
        criterion = trainer.parts.criterion

        def logging_criterion(output, batch):
            loss = criterion(output, batch)
            print(f"loss {loss.item():.3f}")  # the planted per-step read
            return loss

        trainer.parts.criterion = logging_criterion
        with SyncAudit() as audit:
            trainer.forward_loss(batch)
    [event] = audit.syncs
    assert event.kind == "scalar_read" and "loss.item()" in event.site


def test_planted_host_side_key_in_to_batch_is_flagged(raw_outputs) -> None:
    """A pipeline that left the key on the CPU: the labels stage's upload is pageable."""
    loader, out = raw_outputs["cutmix"]
    with fake_cuda():
        view = _labels_stage(loader, to_device(loader._class_of))
        dev_out = dict(to_device(out), key=out["key"])
        with SyncAudit() as audit:
            DaliLoader._to_batch(view, dev_out)
    [event] = audit.syncs
    assert event.kind == "pageable_copy" and "loader.py" in event.site


def test_step_bookkeeping_reads_only_at_log_intervals(tmp_path: Path) -> None:
    """What the epoch loop does per step besides the step (meter, sample log) makes no sync;
    its reads every ``--log-every`` steps (progress bar loss, sample-log flush) are the only
    ones, and the audit counts them apart.
    """
    from dali_gridaug.training.metrics import EpochMeter, SampleLog

    log_every, steps = 3, 6
    with fake_cuda():
        meter, samples = EpochMeter(torch.device("cuda")), SampleLog(tmp_path, 0)
        losses = [to_device(torch.rand(())) for _ in range(steps)]
        index = to_device(torch.arange(B))
        with SyncAudit() as audit:
            for step, loss in enumerate(losses, 1):
                meter.add(loss, B)
                samples.write(0, step, index)
                if step % log_every == 0:
                    with audit.allowed("every --log-every steps"):
                        loss.item()
                        samples.flush()
        samples.close()
    assert audit.syncs == []
    sites = {e.site.split("  ")[1] for e in audit.events}  # every event is an allowed read
    assert sites == {"loss.item()", 'ids = ",".join(str(i) for i in index.tolist())'}
