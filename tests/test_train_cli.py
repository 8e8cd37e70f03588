"""``dali-gridaug train`` user mistakes: one line on stderr and exit status 2 through the
dispatcher (``UsageError`` in-process), raised before any loader is built or any file is
written."""

from __future__ import annotations

from pathlib import Path

import pytest

from dali_gridaug.cli import main as cli_main
from dali_gridaug.errors import UsageError
from dali_gridaug.tools import make_sample_dataset
from dali_gridaug.training.cli import main, parse_config


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli_data")
    make_sample_dataset(
        root, num_classes=2, train_per_class=2, val_per_class=1, size_range=(32, 40)
    )
    return root


CASES = {
    "split root": (["--train", "{root}"], r"train/ and val/.*--train \S+/train --val \S+/val"),
    "val root": (["--train", "{root}/train", "--val", "{root}"], r"`--val` .* pass --val \S+/val$"),
    "missing": (["--train", "{root}/nope"], r"`--train` '\S+/nope' does not exist"),
    "model": (["--train", "{root}/train", "--model", "resnet_nope"], r"resnet_nope"),
    "recipe": (["--train", "{root}/train", "--recipe", "no_such_recipe"], r"no_such_recipe"),
    "override": (["--train", "{root}/train", "--set", "optim.lr"], r"`--set` expects"),
    "workers": (["--train", "{root}/train", "--workers", "0"], r"`--workers` must be ≥ 1, got 0"),
    "minutes": (["--train", "{root}/train", "--ckpt-every-minutes", "-1"], r"minutes` must"),
    "resume": (["--train", "{root}/train", "--resume", "{root}/x.pt"], r"`--resume`: checkpoint"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_usage_errors(
    case: str, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, pattern = CASES[case]
    out = tmp_path / "out"
    argv = [a.format(root=root) for a in args] + ["--out", str(out), "--device", "cpu"]
    with pytest.raises(UsageError, match=pattern):
        main(argv)
    assert cli_main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dali-gridaug train: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not out.exists()  # nothing written, no loader built


def test_run_config_is_typed_and_frozen() -> None:
    cfg = parse_config(["--train", "t", "--set", "optim.lr=0.1", "--ckpt-every-minutes", "2.5"])
    assert cfg.overrides == ("optim.lr=0.1",) and cfg.ckpt_every_minutes == 2.5
    assert (cfg.check_val, cfg.ckpt_every_steps, cfg.keep_last) == (True, 0, 3)
    with pytest.raises(AttributeError):
        cfg.train = "other"  # type: ignore[misc]


def test_unreadable_resume_file_is_a_usage_error(root: Path, tmp_path: Path) -> None:
    torn = tmp_path / "ckpt-e0000-s000003.pt"
    torn.write_bytes(b"PK\x03\x04 torn")
    out = tmp_path / "out"
    argv = ["--train", f"{root}/train", "--out", str(out), "--device", "cpu"]
    with pytest.raises(UsageError, match=r"`--resume`: cannot load \S+ckpt-e0000-s000003.pt"):
        main([*argv, "--resume", str(torn)])
    assert not out.exists()
