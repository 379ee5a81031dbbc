"""Data checks inside FitWatch: planted leaks, label shift, time order, clean-subset metrics, mistakes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from fitwatch import DataLeakageWarning, DataQualityWarning
from fitwatch.lightning import FitWatch

from .digits import CLASS_NAMES, X, Y, DigitsMLP, trainer


def _split(n_train=600, n_val=200, dup=0):
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(Y), generator=g)
    tr, va = perm[:n_train], perm[n_train : n_train + n_val]
    if dup:
        va = torch.cat([tr[:dup], va[dup:]])  # the first `dup` validation samples are training samples
    return tr, va


def test_planted_duplicates_are_found_and_clean_metrics_logged(tmp_path, event_tags):
    tr, va = _split(dup=40)
    train = DataLoader(TensorDataset(X[tr], Y[tr]), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    val_set = TensorDataset(X[va], Y[va])
    cb = FitWatch(class_names=CLASS_NAMES)
    with pytest.warns(DataLeakageWarning, match="40"):
        trainer(tmp_path, [cb], max_epochs=2).fit(DigitsMLP(lr=5e-3), train, DataLoader(val_set, batch_size=64))
    leak = next(f for f in cb.findings if f.code == "FW-LEAK-DUPLICATES")
    assert leak.evidence["n_val_with_copy"] == 40 and leak.evidence["n_val"] == 200
    assert cb.history["data/duplicate_fraction/val"][0][1] == pytest.approx(40 / 200)
    assert cb.history["health/samples/val_clean"][-1][1] == 160
    tags = event_tags(cb.run_dir)
    assert {"performance/accuracy/val_clean", "calibration/ece/val_clean"} <= tags["scalars"]
    assert "data/report" in {t.split("/text_summary")[0] for t in tags["tensors"]}


def test_clean_subset_accuracy_matches_a_manual_evaluation(tmp_path):
    tr, va = _split(dup=50)
    train = DataLoader(TensorDataset(X[tr], Y[tr]), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    val = DataLoader(TensorDataset(X[va], Y[va]), batch_size=64)
    cb = FitWatch(class_names=CLASS_NAMES)
    model = DigitsMLP()
    with pytest.warns(DataLeakageWarning):
        trainer(tmp_path, [cb], max_epochs=1, logger=False).fit(model, train, val)
    model.eval()
    with torch.no_grad():
        preds = model(X[va[50:]]).argmax(1)
    assert cb.history["performance/accuracy/val_clean"][-1][1] == pytest.approx((preds == Y[va[50:]]).float().mean().item())


def test_label_shift_with_a_class_missing_from_validation(tmp_path):
    tr, va = _split(n_val=400)
    va = va[Y[va] != 3]  # class 3 never validated
    train = DataLoader(TensorDataset(X[tr], Y[tr]), batch_size=32)
    val = DataLoader(TensorDataset(X[va], Y[va]), batch_size=64)
    cb = FitWatch(class_names=CLASS_NAMES, config={"data_checks": {"duplicates": False}})
    with pytest.warns(DataQualityWarning, match="3"):
        trainer(tmp_path, [cb], max_epochs=1, logger=False).fit(DigitsMLP(), train, val)
    assert any(f.code == "FW-LABEL-SHIFT" for f in cb.findings)


class Stamped(Dataset):
    """Dict samples with a timestamp, as a time-ordered data set would have."""

    def __init__(self, idx, times):
        self.idx, self.times = idx, times

    def __len__(self):
        return len(self.idx)

    def __getitem__(self, i):
        j = self.idx[i]
        return {"x": X[j], "labels": Y[j], "time": float(self.times[i])}


class DictMLP(DigitsMLP):
    def training_step(self, batch, batch_idx):
        return super().training_step((batch["x"], batch["labels"]), batch_idx)

    def validation_step(self, batch, batch_idx):
        return super().validation_step((batch["x"], batch["labels"]), batch_idx)


def test_random_split_of_time_ordered_data_is_flagged(tmp_path):
    rng = np.random.default_rng(0)
    times = rng.permutation(800).astype(float)  # a random split: validation times interleave training times
    tr, va = _split(n_train=600, n_val=200)
    train = DataLoader(Stamped(tr, times[:600]), batch_size=32)
    val = DataLoader(Stamped(va, times[600:]), batch_size=64)
    cb = FitWatch(config={"data_checks": {"time_field": "time", "duplicates": False}})
    with pytest.warns(DataLeakageWarning, match="(?i)later"):
        trainer(tmp_path, [cb], max_epochs=1, logger=False).fit(DictMLP(), train, val)
    assert any(f.code == "FW-LEAK-TEMPORAL" for f in cb.findings)


def test_confident_mistakes_table_and_fingerprint(tmp_path, event_tags):
    tr, va = _split()
    train = DataLoader(TensorDataset(X[tr], Y[tr]), batch_size=32)
    val = DataLoader(TensorDataset(X[va], Y[va]), batch_size=64)
    cb = FitWatch(class_names=CLASS_NAMES, describe=lambda sample: f"digit image, pixel sum {float(sample[0].sum()):.1f}")
    trainer(tmp_path, [cb], max_epochs=1).fit(DigitsMLP(), train, val)
    tags = event_tags(cb.run_dir)
    texts = {t.split("/text_summary")[0] for t in tags["tensors"]}
    assert {"data/confident_mistakes/val", "data/fingerprint"} <= texts
    assert {"data/confidence_wrong/val", "data/confidence_correct/val"} <= tags["histograms"]
    fp = json.loads((cb.run_dir / "fingerprint.json").read_text())
    assert fp["versions"]["torch"] == torch.__version__ and "data" in fp


def test_data_checks_leave_the_random_state_untouched(tmp_path):
    class Noisy(Dataset):  # augmentation that draws random numbers when read
        def __len__(self):
            return 50

        def __getitem__(self, i):
            return X[i] + 0.01 * torch.randn(64), Y[i]

    from fitwatch.config import FitWatchConfig
    from fitwatch.observer import Observer

    obs = Observer(FitWatchConfig())
    torch.manual_seed(123)
    before = torch.get_rng_state()
    obs.check_data(Noisy(), Noisy(), step=0, epoch=0, val_in_order=True)
    assert torch.equal(torch.get_rng_state(), before)


def test_data_checks_can_be_switched_off(tmp_path):
    tr, va = _split(dup=40)
    train = DataLoader(TensorDataset(X[tr], Y[tr]), batch_size=32)
    val = DataLoader(TensorDataset(X[va], Y[va]), batch_size=64)
    cb = FitWatch(config={"data_checks": False})
    trainer(tmp_path, [cb], max_epochs=1, logger=False).fit(DigitsMLP(), train, val)
    assert not any(f.code.startswith("FW-LEAK") for f in cb.findings)
    assert "data/duplicate_fraction/val" not in cb.history
