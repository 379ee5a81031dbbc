"""configs/fitwatch/*.yaml: each preset builds the same config in both adapters; the two differ on purpose."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

from fitwatch.config import DataChecksConfig, FitWatchConfig
from fitwatch.hf import FitWatchCallback
from fitwatch.lightning import FitWatch

from .conftest import ROOT

PRESETS = {name: ROOT / "configs" / "fitwatch" / f"{name}.yaml" for name in ("minimal", "full")}


def _expected(path):
    """The preset read with plain PyYAML on top of the dataclass defaults: the independent reference."""
    raw = yaml.safe_load(path.read_text())
    checks = raw.pop("data_checks", {})
    checks = {"enabled": checks} if isinstance(checks, bool) else checks
    top = {
        f.name: f.default for f in dataclasses.fields(FitWatchConfig) if f.default is not dataclasses.MISSING
    }
    nested = {f.name: f.default for f in dataclasses.fields(DataChecksConfig)}
    return {**top, **raw}, {**nested, **checks}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_loads_into_both_adapters_with_every_value_of_the_file(name):
    path = PRESETS[name]
    lightning, hf = FitWatch(config=str(path)), FitWatchCallback(config=path)
    assert lightning.config == hf.config == FitWatchConfig.from_yaml(path)
    top, checks = _expected(path)
    for key, value in top.items():
        assert getattr(hf.config, key) == (tuple(value) if isinstance(value, list) else value), key
    for key, value in checks.items():
        assert getattr(hf.config.data_checks, key) == value, f"data_checks.{key}"


def test_minimal_turns_off_what_costs_and_full_turns_it_on():
    minimal, full = (FitWatchConfig.from_yaml(PRESETS[name]) for name in ("minimal", "full"))
    # What costs parameter copies, figures, per-class calibration sums or passes over the data.
    assert (minimal.diag_every_n_steps, full.diag_every_n_steps) == (0, 50)
    assert (minimal.images, full.images) == (False, True)
    assert (minimal.classwise_ece, full.classwise_ece) == (False, True)
    assert not minimal.data_checks.enabled and full.data_checks.enabled
    assert not minimal.data_checks.fingerprint and full.data_checks.fingerprint
    assert minimal.data_checks.confident_mistakes == 0 < full.data_checks.confident_mistakes
    assert not minimal.data_checks.mislabels and full.data_checks.mislabels
    assert full.data_checks.near_duplicates and full.data_checks.label_shift
    # What both keep: the numbers every detector reads.
    for key in ("n_bins", "train_metrics", "grad_norm", "warn", "findings_file", "ignore_index"):
        assert getattr(minimal, key) == getattr(full, key), key


@pytest.mark.parametrize("adapter", [FitWatch, FitWatchCallback])
def test_constructor_arguments_override_the_preset(adapter):
    cb = adapter(["a", "b", "c"], config=str(PRESETS["full"]), n_bins=10, diag_every_n_steps=7)
    assert cb.config == FitWatchConfig.from_yaml(PRESETS["full"]).replace(
        class_names=("a", "b", "c"), n_bins=10, diag_every_n_steps=7
    )


BAD_PRESETS = [
    ("n_bin: 15\n", ValueError, "Unknown key 'n_bin' in {path}"),
    ("data_checks:\n  max_sample: 10\n", ValueError, "Unknown key 'max_sample' in `data_checks` in {path}"),
    ("n_bins: fifteen\n", TypeError, "Expected 'n_bins' in {path} to be int, but got str 'fifteen'"),
    ("images: 'yes'\n", TypeError, "Expected 'images' in {path} to be bool, but got str 'yes'"),
    (
        "per_class: best\n",
        TypeError,
        "Expected 'per_class' in {path} to be one of 'auto', 'all', 'worst', 'off'",
    ),
    (
        "data_checks:\n  max_samples: many\n",
        TypeError,
        "Expected 'max_samples' in `data_checks` in {path} to be int",
    ),
    ("data_checks: 3\n", TypeError, "Expected `data_checks` in {path} to be a bool or a mapping"),
]


@pytest.mark.parametrize("adapter", [FitWatch, FitWatchCallback])
@pytest.mark.parametrize(("text", "error", "match"), BAD_PRESETS)
def test_bad_preset_is_rejected_naming_the_key_and_the_file(tmp_path, adapter, text, error, match):
    path = tmp_path / "preset.yaml"
    path.write_text(text)
    with pytest.raises(error, match=re.escape(match.format(path=path))):
        adapter(config=str(path))


def test_missing_preset_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FitWatch(config=str(tmp_path / "nope.yaml"))
