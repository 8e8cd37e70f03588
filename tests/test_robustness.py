"""Long runs must not die: colour handling of odd JPEGs, stable memory over many epochs,
clean shutdown on Ctrl-C and after a decode error.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from dali_gridaug.augment import CutMix, Cutout, GridMask
from dali_gridaug.loader import create_loader
from dali_gridaug.tools import make_sample_dataset

RGB = (200, 40, 60)
GRAY = 90


@pytest.fixture(scope="module")
def forty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes × 10 JPEGs, 64–96 px."""
    paths = make_sample_dataset(
        tmp_path_factory.mktemp("forty"),
        num_classes=4,
        train_per_class=10,
        val_per_class=0,
        size_range=(64, 96),
    )
    return paths["train"]


def test_cmyk_and_grayscale_jpegs_come_out_rgb(tmp_path: Path) -> None:
    """DALI decodes with output_type=RGB: a CMYK JPEG gives the RGB colour it encodes, a
    grayscale one three equal channels.
    """
    flat = Image.new("RGB", (48, 40), RGB)
    for name, image in (
        ("a_rgb", flat),
        ("b_cmyk", flat.convert("CMYK")),
        ("c_gray", Image.new("L", (48, 40), GRAY)),
    ):
        (tmp_path / name).mkdir()
        image.save(tmp_path / name / "x.jpg", quality=100)
    with Image.open(tmp_path / "b_cmyk" / "x.jpg") as im:
        assert im.mode == "CMYK"
    loader = create_loader(
        tmp_path, batch_size=3, train=False, image_size=32, device="cpu", mean=0, std=1
    )
    (batch,) = list(loader)
    assert batch.images.shape == (3, 3, 32, 32)
    pixel = {
        loader.classes[int(k)]: batch.images[i].mean(dim=(1, 2)) for i, k in enumerate(batch.labels)
    }
    torch.testing.assert_close(
        pixel["a_rgb"], torch.tensor(RGB, dtype=torch.float32), atol=2, rtol=0
    )
    torch.testing.assert_close(pixel["b_cmyk"], pixel["a_rgb"], atol=2, rtol=0)
    gray = batch.images[list(loader.classes).index("c_gray")]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert abs(float(gray.mean()) - GRAY) <= 2


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.slow
def test_rss_is_stable_over_many_epochs(forty: Path) -> None:
    """32 epochs over 40 images with host-side parameters, a DALI op, a kernel op and CutMix:
    RSS after the warm-up epochs grows by less than 30 MB (noise here: ~3 MB; a leaked
    batch per step would add ~50 MB).
    """
    augment = [
        GridMask(d=(16, 48), ramp_epochs=0, p=0.8),
        Cutout(length=16, backend="kernel"),
        CutMix(),
    ]
    loader = create_loader(
        forty,
        batch_size=8,
        train=True,
        image_size=64,
        augment=augment,
        device="cpu",
        num_threads=2,
        seed=3,
    )
    epochs, warmup = 32, 5
    rss: list[float] = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        seen = 0
        for batch in loader:
            seen += len(batch)
            assert torch.isfinite(batch.images).all()
        assert seen == 40
        rss.append(_rss_mb())
    growth = rss[-1] - rss[warmup - 1]
    assert growth < 30, f"RSS grew {growth:.1f} MB from epoch {warmup} to {epochs}: {rss}"


_CHILD = """
import signal
import sys
# a shell's background job (`pytest &`) starts with SIGINT ignored, and Python then installs
# no KeyboardInterrupt handler: set up the Ctrl-C behaviour this test checks
signal.signal(signal.SIGINT, signal.default_int_handler)
from dali_gridaug.augment import CutMix, GridMask
from dali_gridaug.loader import create_loader

loader = create_loader(
    sys.argv[1], batch_size=4, train=True, image_size=64, device="cpu", num_threads=2,
    augment=[GridMask(d=(16, 48), ramp_epochs=0), CutMix()],
)
handled = sys.argv[2] == "handled"
n = 0
try:
    for epoch in range(100_000):
        loader.set_epoch(epoch)
        for batch in loader:
            n += 1
            if n == 3:
                print("running", flush=True)
except KeyboardInterrupt:
    if not handled:
        raise
    print(f"interrupted after {n} batches", flush=True)
    sys.exit(130)
"""


def _default_sigint() -> None:
    """In the child before exec: SIGINT at its default disposition, so Python installs its
    KeyboardInterrupt handler as in a terminal. A shell's background job (``pytest &`` in a
    script) starts with SIGINT ignored, and an ignored disposition survives exec.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


@pytest.mark.parametrize("mode", ["unhandled", "handled"])
@pytest.mark.slow
def test_ctrl_c_shuts_down_promptly(forty: Path, mode: str) -> None:
    """SIGINT while iterating: KeyboardInterrupt reaches the training loop and the process
    exits within seconds (no hang in DALI's worker threads, no crash).
    """
    child = _start(_CHILD, str(forty), mode)
    try:
        deadline = time.monotonic() + 120
        line = child.stdout.readline()
        assert line.strip() == "running", child.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.2)  # mid-epoch, with prefetched batches in flight
        child.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert time.monotonic() - sent < 30
    assert "core dumped" not in err.lower() and "segmentation" not in err.lower()
    if mode == "unhandled":
        # Python re-raises the signal after an unhandled KeyboardInterrupt: 128 + SIGINT
        assert child.returncode in (-signal.SIGINT, 128 + signal.SIGINT), err
        assert err.rstrip().endswith("KeyboardInterrupt"), err
    else:
        assert child.returncode == 130, err
        assert out.startswith("interrupted after"), out


_BAD_CHILD = """
import sys
from dali_gridaug.loader import create_loader

for batch in create_loader(sys.argv[1], batch_size=4, train=False, device="cpu", num_threads=2):
    pass
"""


@pytest.mark.slow
def test_decode_error_exits_cleanly(forty: Path, tmp_path: Path) -> None:
    """A bad file ends the process with a DecodeError naming it, not a hang or a crash."""
    root = tmp_path / "train"
    root.mkdir()
    for cls in sorted(forty.iterdir())[:2]:
        (root / cls.name).mkdir()
        for f in sorted(cls.iterdir())[:3]:
            (root / cls.name / f.name).write_bytes(f.read_bytes())
    bad = root / cls.name / "zz_bad.jpg"
    data = f.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # truncated in the scan: DALI names the file
    child = _start(_BAD_CHILD, str(root))
    try:
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("dali_gridaug.errors.DecodeError: DALI could not read or decode")
    assert str(bad) in last


def test_many_loaders_in_one_process(forty: Path) -> None:
    """Building and dropping loaders repeatedly (e.g. one per evaluation) does not leak
    pipelines: RSS after 12 rebuilds stays within 50 MB of the 3rd.
    """
    rss = []
    for _ in range(12):
        loader = create_loader(
            forty, batch_size=8, train=False, image_size=64, device="cpu", num_threads=2
        )
        assert sum(len(b) for b in loader) == 40
        del loader
        rss.append(_rss_mb())
    assert rss[-1] - rss[2] < 50, rss
