"""KeepStage stays on the device: on a GPU every output is a CUDA tensor and a call makes no
host-device synchronisation; by construction, the stage's modules contain no host-sync calls.
"""

from __future__ import annotations

import ast

import pytest
import torch

from dali_gridaug.saliency import KeepStage
from tests.helpers import box_mask, make_batch, random_images, tiny_model

K = 16
B = 16
S = 32


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["cutout", "cutmix", "gridmask", "paste"])
@pytest.mark.parametrize("saliency", ["full", "lowres"])
@pytest.mark.parametrize("box", ["inside", "clip"])
def test_cuda_stage_stays_on_device_without_host_syncs(
    method: str, saliency: str, box: str
) -> None:
    dev = torch.device("cuda")
    model = tiny_model(K).to(dev)
    images = random_images(28).to(dev)
    batch = make_batch(images, labels=(torch.arange(B) % K).to(dev), clean=images.flip(-1))
    batch = batch.replace(index=batch.index.to(dev), lam=batch.lam.to(dev))
    batch = batch.replace(partner=batch.partner.to(dev))
    stage = KeepStage(
        model,
        method,
        length=8,
        saliency=saliency,
        box=box,
        seed=0,
        max_mask_elements=3 * 8 * S * S,  # gridmask masks in chunks of 3 samples
    )
    stage(batch)  # warm-up: lazy CUDA/cuBLAS/CuPy initialisation may synchronise once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = stage(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for field in ("images", "target", "lam", "boxes", "partner"):
        assert getattr(out, field).device.type == "cuda", field
    if method == "cutout":
        inside = box_mask(out.boxes.cpu(), S, S)[:, None].expand_as(images).to(dev)
        assert bool((out.images[inside] == 0).all())
        assert torch.equal(out.images[~inside], images[~inside])
    if method == "paste":
        inside = box_mask(out.boxes.cpu(), S, S)[:, None].expand_as(images).to(dev)
        assert torch.equal(out.images[inside], batch.clean[inside])
    torch.testing.assert_close(out.target.sum(1), torch.ones(B, device=dev))


_SYNC_METHODS = {"item", "tolist", "cpu", "numpy", "nonzero", "masked_select", "unique"}
_SYNC_METHODS |= {"synchronize", "argwhere"}


def _host_value(node: ast.expr) -> bool:
    """An argument of int()/float() that is a host value: a name, a constant, constant
    arithmetic or a tensor's ``.shape[...]``."""
    if isinstance(node, (ast.Name, ast.Constant)):
        return True
    if isinstance(node, ast.BinOp):
        return _host_value(node.left) and _host_value(node.right)
    return (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "shape"
    )


@pytest.mark.parametrize(
    "module", ["keep", "grid", "regions", "boxes", "keyed", "maps", "torch_geometry"]
)
def test_stage_code_has_no_host_sync_calls(module: str) -> None:
    """By construction (the CUDA test above needs a GPU): no ``.item()``, ``.tolist()``,
    ``.cpu()``, ``bool(tensor)``, data-dependent ``nonzero``, or ``int()``/``float()`` of a
    tensor anywhere in the stage's modules."""
    import importlib
    import inspect

    source = inspect.getsource(importlib.import_module(f"dali_gridaug.saliency.{module}"))
    offending = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _SYNC_METHODS:
            offending.append(f"line {node.lineno}: .{func.attr}()")
        if isinstance(func, ast.Name) and func.id == "bool":
            offending.append(f"line {node.lineno}: bool()")
        if isinstance(func, ast.Name) and func.id in ("int", "float"):
            if not all(_host_value(arg) for arg in node.args):
                offending.append(f"line {node.lineno}: {func.id}() of a computed value")
    assert offending == []
