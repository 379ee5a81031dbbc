"""Training-loop shapes that used to give wrong numbers or kill the fit (issue 16), each against a reference."""

from __future__ import annotations

import warnings

import pytest
import torch
from sklearn.metrics import accuracy_score
from torch import nn

from fitwatch.lightning import FitWatch
from fitwatch.warnings import FitWatchWarning

from .digits import X, Y, DigitsMLP, loaders, trainer


def test_validate_before_fit_does_not_break_the_fit(tmp_path):
    """`trainer.validate()` runs under inference_mode; the states it creates must take the fit's updates."""
    train, val = loaders()
    cb = FitWatch()
    t = trainer(tmp_path, [cb], max_epochs=2, logger=False)
    model = DigitsMLP(lr=5e-3)
    t.validate(model, val)
    t.fit(model, train, val)
    assert len(cb.history["performance/accuracy/val"]) >= 2


class Targets(torch.utils.data.Dataset):
    """Features with targets made from the class ids by ``make`` (soft labels, a float column, ...)."""

    def __init__(self, x, y, make):
        self.x, self.y = x, make(y)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def SoftBatches(x, y):  # noqa: N802  (a dataset factory, read like the class it builds)
    return Targets(x, y, lambda y: nn.functional.one_hot(y, 10).float() * 0.9 + 0.01)


def BinaryTargets(x, y):  # noqa: N802
    return Targets(x, y, lambda y: (y >= 5).float().unsqueeze(1))


class SoftModel(DigitsMLP):
    def training_step(self, batch, batch_idx):
        x, q = batch
        logits = self(x)
        return {"loss": nn.functional.cross_entropy(logits, q), "logits": logits}

    validation_step = training_step


def test_soft_targets_are_multiclass_against_the_argmax(tmp_path):
    dl = torch.utils.data.DataLoader
    train = dl(SoftBatches(X[:1200], Y[:1200]), batch_size=32, shuffle=True)
    val = dl(SoftBatches(X[1200:], Y[1200:]), batch_size=128)
    model = SoftModel(lr=5e-3)
    cb = FitWatch()
    trainer(tmp_path, [cb], max_epochs=2, logger=False).fit(model, train, val)
    assert cb.observer.task == "multiclass"
    model.eval()
    with torch.no_grad():
        pred = model(X[1200:]).argmax(1)
        logp = torch.log_softmax(model(X[1200:]), 1)
    q = SoftBatches(X[1200:], Y[1200:]).y
    assert cb.history["performance/accuracy/val"][-1][1] == pytest.approx(accuracy_score(Y[1200:], pred), abs=1e-9)
    # NLL against the distribution, as the loss is
    assert cb.history["calibration/nll/val"][-1][1] == pytest.approx(float(-(q * logp).sum(1).mean()), rel=1e-5)
    assert cb.history["calibration/nll/val"][-1][1] == pytest.approx(cb.history["performance/loss/val"][-1][1], rel=1e-4)


class OneLogit(DigitsMLP):
    def __init__(self):
        super().__init__(lr=5e-3)
        self.net[3] = nn.Linear(64, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        target = (y >= 5).float().unsqueeze(1)  # what BCEWithLogitsLoss takes: [B, 1]
        return {"loss": nn.functional.binary_cross_entropy_with_logits(logits, target), "logits": logits}

    validation_step = training_step


def test_one_logit_with_float_column_targets_is_binary(tmp_path):
    class Model(OneLogit):
        def training_step(self, batch, batch_idx):
            x, t = batch
            logits = self(x)
            return {"loss": nn.functional.binary_cross_entropy_with_logits(logits, t), "logits": logits}

        validation_step = training_step

    dl = torch.utils.data.DataLoader
    train = dl(BinaryTargets(X[:1200], Y[:1200]), batch_size=32, shuffle=True)
    val = dl(BinaryTargets(X[1200:], Y[1200:]), batch_size=128)
    model = Model()
    cb = FitWatch(class_names=["low", "high"])
    trainer(tmp_path, [cb], max_epochs=3, logger=False).fit(model, train, val)
    assert cb.observer.task == "binary"
    model.eval()
    with torch.no_grad():
        pred = (model(X[1200:]).squeeze(1) > 0).long()
    assert cb.history["performance/accuracy/val"][-1][1] == pytest.approx(accuracy_score(Y[1200:] >= 5, pred))
    assert "FW-FAILED-RUN" not in {f.code for f in cb.findings}


class Segmenter(DigitsMLP):
    """Per-pixel classes: [B, C, H, W] logits against [B, H, W] targets (255 = void, ignored)."""

    def __init__(self):
        super().__init__(lr=1e-2)
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        return {"loss": nn.functional.cross_entropy(logits, y, ignore_index=255), "logits": logits}

    validation_step = training_step


def segmentation_data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = (x[:, 0] * 3).long().clamp(max=2)
    y[:, 0, :] = 255
    return torch.utils.data.TensorDataset(x, y)


def test_segmentation_logits_are_flattened_per_pixel(tmp_path):
    dl = torch.utils.data.DataLoader
    val_set = segmentation_data(32, 1)
    model = Segmenter()
    cb = FitWatch(config={"ignore_index": 255})
    trainer(tmp_path, [cb], max_epochs=2, logger=False).fit(model, dl(segmentation_data(64, 0), batch_size=16), dl(val_set, batch_size=16))
    x, y = val_set.tensors
    with torch.no_grad():
        pred = model.net(x).argmax(1)
    keep = y != 255
    assert cb.observer.task == "multiclass"
    assert cb.history["performance/accuracy/val"][-1][1] == pytest.approx(float((pred[keep] == y[keep]).float().mean()))
    assert cb.history["health/samples/val"][-1][1] == int(keep.sum())


def test_step_based_validation_keeps_every_batch_since_the_last_evaluation(tmp_path):
    train, val = loaders(n_train=320, batch_size=32)  # 10 batches an epoch
    cb = FitWatch()
    trainer(tmp_path, [cb], max_epochs=5, logger=False, val_check_interval=25, check_val_every_n_epoch=None).fit(
        DigitsMLP(lr=5e-3), train, val)
    steps = [s for s, _ in cb.history["performance/accuracy/val"]]
    assert steps[:2] == [25, 50]
    # The training window of the evaluation at step 50: 25 batches of 32, across an epoch boundary.
    assert cb.history["health/samples/train"][1] == (50, 800.0)


@pytest.mark.filterwarnings("ignore::fitwatch.FitWatchWarning")  # short runs: the folders are the point
def test_runs_without_a_tensorboard_logger_get_their_own_folders(tmp_path):
    train, val = loaders(n_train=256)
    first, second = FitWatch(), FitWatch()
    trainer(tmp_path, [first], max_epochs=1, logger=False).fit(DigitsMLP(), train, val)
    trainer(tmp_path, [second], max_epochs=1, logger=False).fit(DigitsMLP(), train, val)
    assert first.run_dir == tmp_path / "fitwatch" / "version_0"
    assert second.run_dir == tmp_path / "fitwatch" / "version_1"
    assert len(list(first.run_dir.glob("events.out.tfevents.*"))) == 1


@pytest.mark.filterwarnings("ignore::fitwatch.FitWatchWarning")
def test_a_reused_callback_starts_a_new_run(tmp_path):
    train, val = loaders(n_train=256)
    cb = FitWatch()
    trainer(tmp_path, [cb], max_epochs=2, logger=False).fit(DigitsMLP(), train, val)
    first_dir = cb.run_dir
    assert [s for s, _ in cb.history["performance/accuracy/val"]] == [8, 16]
    trainer(tmp_path, [cb], max_epochs=1, logger=False).fit(DigitsMLP(), train, val)
    assert cb.run_dir != first_dir
    assert [s for s, _ in cb.history["performance/accuracy/val"]] == [8]  # a fresh history, not steps restarting


def test_evaluations_outside_the_fit_get_their_own_series(tmp_path):
    train, val = loaders()
    g = torch.Generator().manual_seed(3)
    other = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X[:200], torch.randint(0, 10, (200,), generator=g)), batch_size=64)
    class TwoSets(DigitsMLP):
        def validation_step(self, batch, batch_idx, dataloader_idx=0):
            return super().validation_step(batch, batch_idx)

        def test_step(self, batch, batch_idx):
            return super().validation_step(batch, batch_idx)

    cb = FitWatch()
    t = trainer(tmp_path, [cb], max_epochs=2, logger=False)
    model = TwoSets(lr=5e-3)
    t.fit(model, train, [val, other])
    val_steps = [s for s, _ in cb.history["performance/accuracy/val"]]
    assert val_steps == [38, 76] and [s for s, _ in cb.history["performance/accuracy/val_1"]] == [38, 76]
    findings_before = {f.key for f in cb.findings}
    t.validate(model, other)  # random labels: a collapse-looking set, outside the fit
    t.test(model, val)
    assert [s for s, _ in cb.history["performance/accuracy/val"]] == val_steps  # the fit's series untouched
    assert len(cb.history["performance/accuracy/eval"]) == 1 and len(cb.history["performance/accuracy/test"]) == 1
    model.eval()
    with torch.no_grad():
        pred = model(X[:200]).argmax(1)
    assert cb.history["performance/accuracy/eval"][0][1] == pytest.approx(float((pred == other.dataset.tensors[1]).float().mean()))
    assert {f.key for f in cb.findings} == findings_before  # no detector saw them


def test_the_fingerprint_records_the_training_arguments(tmp_path):
    import json

    train, val = loaders(n_train=128)
    cb = FitWatch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWatchWarning)  # 8 steps: a model that has learned little, as it should be
        trainer(tmp_path, [cb], max_epochs=2, logger=False, accumulate_grad_batches=2).fit(DigitsMLP(lr=5e-3), train, val)
    fingerprint = json.loads((cb.run_dir / "fingerprint.json").read_text())
    training = fingerprint.get("training") or fingerprint["extra"]["training"]
    assert training["max_epochs"] == 2 and training["accumulate_grad_batches"] == 2
    assert training["optimizer"] == "AdamW" and training["lr"] == 5e-3 and training["batch_size"] == 32
