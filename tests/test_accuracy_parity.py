"""The accuracy-parity script at a tiny size: both loaders train the same model on the same
images, CutMix mixes the targets on both sides, and the summary states the noise band."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "accuracy_parity.py"


def load_script() -> object:
    spec = importlib.util.spec_from_file_location("accuracy_parity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_accuracy_parity_script_tiny(tmp_path: Path) -> None:
    script = load_script()
    out = tmp_path / "parity.json"
    argv = ["--out", str(out), "--data", str(tmp_path / "data"), "--classes", "3"]
    argv += ["--train-per-class", "6", "--val-per-class", "3", "--source-size", "48", "64"]
    argv += ["--image-size", "24", "--batch-size", "6", "--epochs", "1", "--seeds", "2"]
    argv += ["--threads", "1"]
    assert script.main(argv) == 0
    result = json.loads(out.read_text())
    runs = result["runs"]
    assert len(runs) == 2 * 2 * 2  # settings × seeds × sides
    for run in runs:
        # the same images per epoch on both sides (full batches of 18 images: 3 of 6)
        assert run["train_images_seen"] == 18
        assert run["val_images"] == 9
        assert round(run["top1"] * 9) == run["top1"] * 9  # a fraction of the 9 val images
        mixed = run["mixed_target_rows"]
        assert (mixed > 0) == (run["setting"] == "cutmix"), run
    for setting, summary in result["summary"].items():
        tops = {
            side: [r["top1"] for r in runs if r["setting"] == setting and r["side"] == side]
            for side in ("torchvision", "dali")
        }
        band = max(max(t) - min(t) for t in tops.values())
        assert summary["noise_band"] == band
        assert summary["within_band"] == (abs(summary["difference"]) <= band)
    assert {"cpu", "cpu_count", "torch", "dali", "date_utc"} <= set(result["machine"])
