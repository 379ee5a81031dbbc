"""examples/lightning_digits.py as a LightningCLI script driven by configs/lightning_digits.yaml."""

from __future__ import annotations

import os
import subprocess
import sys

import lightning.pytorch as pl
import pytest
import yaml
from lightning.pytorch.loggers import TensorBoardLogger

from fitwatch.config import FitWatchConfig
from fitwatch.lightning import FitWatch

from .conftest import ROOT

CONFIG = ROOT / "configs" / "lightning_digits.yaml"
PRESETS = ROOT / "configs" / "fitwatch"


def _fitwatch_args():
    raw = yaml.safe_load(CONFIG.read_text())
    (entry,) = [cb for cb in raw["trainer"]["callbacks"] if cb["class_path"] == "fitwatch.lightning.FitWatch"]
    return entry["init_args"]


# Lightning 2.6's LightningCLI calls jsonargparse's deprecated add_instantiator: not ours to fix.
@pytest.mark.filterwarnings("ignore::jsonargparse._deprecated.JsonargparseDeprecationWarning")
def test_cli_config_builds_fitwatch_from_the_preset_with_the_overrides(
    lightning_example, tmp_path, monkeypatch
):
    monkeypatch.chdir(ROOT)  # preset paths in the YAML are relative to the repository root
    monkeypatch.setattr(
        sys, "argv", ["lightning_digits.py"]
    )  # LightningCLI warns when pytest's flags are there too
    cli = lightning_example.main(
        ["--config", str(CONFIG), "--trainer.logger.init_args.save_dir", str(tmp_path)], run=False
    )
    (cb,) = [c for c in cli.trainer.callbacks if isinstance(c, FitWatch)]
    init_args = _fitwatch_args()
    expected = FitWatchConfig.from_yaml(ROOT / init_args["config"]).replace(
        class_names=tuple(init_args["class_names"]), diag_every_n_steps=init_args["diag_every_n_steps"]
    )
    assert cb.config == expected
    assert cli.model.hparams.lr == yaml.safe_load(CONFIG.read_text())["model"]["lr"]


@pytest.mark.slow
def test_lightning_cli_fit_from_the_yaml_config_in_a_subprocess(tmp_path, event_scalars, event_tags):
    command = [
        sys.executable,
        "examples/lightning_digits.py",
        "fit",
        "--config",
        "configs/lightning_digits.yaml",
        "--trainer.max_epochs",
        "2",
        "--trainer.limit_train_batches",
        "6",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]

    run_dir = tmp_path / "lightning_digits" / "version_0"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())  # LightningCLI's record of the run
    assert any(cb["class_path"] == "fitwatch.lightning.FitWatch" for cb in saved["trainer"]["callbacks"])
    assert (run_dir / "findings.jsonl").is_file() and (run_dir / "history.json").is_file()
    assert (run_dir / "fingerprint.json").is_file()  # full preset: data_checks.fingerprint

    # fitwatch's validation accuracy and loss equal what the module itself logged, epoch by epoch.
    scalars = event_scalars(run_dir)
    assert len(scalars["val_acc"]) == 2
    # (Lightning writes epoch-end values at global_step - 1, fitwatch at global_step: compare in order.)
    for own, ours in (("val_acc", "performance/accuracy/val"), ("val_loss", "performance/loss/val")):
        assert [v for _, v in scalars[ours]] == pytest.approx([v for _, v in scalars[own]], abs=1e-5)

    # The full preset's diagnostics reached the same event files.
    tags = event_tags(run_dir)
    assert {"per_class/confusion_matrix/val", "calibration/reliability_diagram/val"} <= tags["images"]
    assert "calibration/classwise_ece/val" in tags["scalars"]
    assert any(t.startswith("weights/update_ratio/") for t in tags["scalars"])  # diag_every_n_steps: 10
    assert {f"per_class/f1/{d}/val" for d in "0123456789"} <= tags["scalars"]


@pytest.mark.filterwarnings("ignore::fitwatch.FitWatchWarning")  # findings of a 2-epoch run are not the point
def test_presets_change_what_a_fit_writes(lightning_example, tmp_path, event_tags):
    written = {}
    for name in ("minimal", "full"):
        pl.seed_everything(0, verbose=False)
        trainer = pl.Trainer(
            default_root_dir=tmp_path,
            max_epochs=2,
            limit_train_batches=6,
            accelerator="cpu",
            deterministic=True,
            logger=TensorBoardLogger(tmp_path, name=name),
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            log_every_n_steps=2,
            callbacks=[FitWatch(config=str(PRESETS / f"{name}.yaml"), diag_every_n_steps=None)],
        )
        trainer.fit(lightning_example.DigitsClassifier(), lightning_example.DigitsDataModule())
        written[name] = event_tags(trainer.logger.log_dir)
    minimal, full = written["minimal"], written["full"]
    assert not minimal.get("images") and {"per_class/confusion_matrix/val"} <= full["images"]
    assert "calibration/classwise_ece/val" in full["scalars"] - minimal["scalars"]
    assert not any(t.startswith("data/") for kind in minimal.values() for t in kind)
    assert any(t.startswith("data/") for kind in full.values() for t in kind)
    # What both presets keep.
    for kept in ("performance/accuracy/val", "performance/accuracy/train", "gap/loss", "calibration/ece/val"):
        assert kept in minimal["scalars"] and kept in full["scalars"]
