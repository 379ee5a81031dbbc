"""Bad input and faults: each ends in a clear number, a finding or one warning, never in a crashed run.

Covered elsewhere, not repeated here: NaN validation logits counted and excluded (``tests/lightning``,
``tests/metrics``), a user ``extract`` that raises (``tests/lightning::test_extract_that_raises...``), targets
outside the classes and ``class_names``/``num_classes`` disagreeing with the logits in Lightning and the
accumulator, half-precision logits with int32 targets in the accumulator.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from transformers import Trainer

from fitwatch import DivergenceWarning, FitWatchRuntimeWarning
from fitwatch.hf import FitWatchCallback
from fitwatch.lightning import FitWatch
from fitwatch.metrics.accumulator import PredictionAccumulator
from fitwatch.metrics.calibration import ADAPTIVE_RESOLUTION, BIN_FIELDS
from tests.hf.tiny import SequenceData, args, sequence_model
from tests.lightning.digits import CLASS_NAMES, DigitsMLP, X, Y, loaders, trainer

QUIET = {"detectors": {}, "data_checks": False}


def _val_reference(model, loader, **autocast):
    """Predictions of the final model on ``loader`` (under the same autocast as training, if any)."""
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", enabled=bool(autocast), **autocast):
        logits = torch.cat([model(x) for x, *_ in loader]).float()
    return logits, torch.cat([y for _, y, *_ in loader]).long()


def _assert_per_class_matches(cb, logits, y, classes=10):
    p, r, f, s = precision_recall_fscore_support(
        y.numpy(), logits.argmax(1).numpy(), labels=list(range(classes)), zero_division=0
    )
    names = CLASS_NAMES if classes == 10 else [str(i) for i in range(classes)]
    for i, name in enumerate(names):
        assert cb.history[f"per_class/precision/{name}/val"][-1][1] == pytest.approx(p[i], abs=1e-9)
        assert cb.history[f"per_class/recall/{name}/val"][-1][1] == pytest.approx(r[i], abs=1e-9)
        assert cb.history[f"per_class/f1/{name}/val"][-1][1] == pytest.approx(f[i], abs=1e-9)
        assert cb.history[f"per_class/support/{name}/val"][-1][1] == s[i]


# --------------------------------------------------------------------------------------- non-finite values


class NonFinite(DigitsMLP):
    """NaN and inf loss *values* at chosen steps (the gradients stay finite), inf logits in the last validation."""

    bad_steps: ClassVar[dict[int, float]] = {5: float("nan"), 9: float("inf")}

    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        if self.global_step in self.bad_steps:
            out["loss"] = out["loss"] + torch.tensor(self.bad_steps[self.global_step])
        return out

    def validation_step(self, batch, batch_idx):
        out = super().validation_step(batch, batch_idx)
        if self.current_epoch == self.trainer.max_epochs - 1:
            out["logits"] = out["logits"].clone()
            out["logits"][:3, 0] = float("inf")
        return out


def test_nonfinite_loss_and_logits_are_counted_and_reported_as_divergence(tmp_path):
    torch.manual_seed(0)  # the model's initialisation: an unlucky one also (rightly) raises FW-CLASS-COLLAPSE
    cb = FitWatch(class_names=CLASS_NAMES, log_every_n_steps=4, config={"data_checks": False})
    train, val = loaders(n_train=256)
    t = trainer(tmp_path, [cb], max_epochs=2, logger=False)
    with pytest.warns(DivergenceWarning, match=r"\[FW-DIVERGENCE\] NaN/inf values") as record:
        t.fit(NonFinite(), train, val)
    assert sum(issubclass(w.category, DivergenceWarning) for w in record) == 1  # one cause, warned once
    assert t.global_step == 16  # training went on to the end
    assert cb.history["health/nonfinite_loss_steps"] == [(4, 0.0), (8, 1.0), (12, 1.0), (16, 0.0)]
    assert [v for _, v in cb.history["health/nonfinite_logits/val"]] == [0.0, 3.0 * len(val)]
    (divergence,) = [f for f in cb.findings if f.code == "FW-DIVERGENCE"]
    assert divergence.evidence["nonfinite_total"] == {"loss": 2, "validation logits": 3 * len(val)}
    assert divergence.evidence["first_nonfinite_step"] == 8
    assert all(
        math.isfinite(v) for _, v in cb.history["performance/step_loss/train"]
    )  # the finite ones still averaged


def test_hf_nonfinite_loss_is_reported_as_divergence(tmp_path):
    model = sequence_model(3)
    calls = {"n": 0}

    def nan_on_the_fifth(module, inputs, output):
        if module.training:
            calls["n"] += 1
            if calls["n"] == 5:
                output.loss = output.loss + torch.tensor(float("nan"))  # a value only: finite gradients

    model.register_forward_hook(
        nan_on_the_fifth
    )  # runs before fitwatch's hook, registered later by the Trainer
    cb = FitWatchCallback(log_every_n_steps=2, config={"data_checks": False})
    t = Trainer(
        model=model,
        args=args(tmp_path, num_train_epochs=1, logging_steps=2),
        train_dataset=SequenceData(96, 0),
        eval_dataset=SequenceData(32, 1),
        callbacks=[cb],
    )
    with pytest.warns(DivergenceWarning, match=r"\[FW-DIVERGENCE\]"):
        t.train()
    assert t.state.global_step == 6
    assert cb.history["health/nonfinite_loss_steps"] == [(2, 0.0), (4, 0.0), (6, 1.0)]


# ---------------------------------------------------------------------------------------------- odd batches


def test_an_empty_validation_loader_still_logs_training_metrics(tmp_path):
    """Lightning skips a validation loop without batches; the epoch's training metrics are logged at its end."""
    cb = FitWatch(class_names=CLASS_NAMES)
    empty = DataLoader(TensorDataset(X[:0], Y[:0]), batch_size=8)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Total length of `DataLoader` across ranks is zero.*")
        trainer(tmp_path, [cb], max_epochs=2, logger=False).fit(DigitsMLP(), loaders(n_train=128)[0], empty)
    assert not [k for k in cb.history if k.endswith("/val")]
    assert [s for s, _ in cb.history["performance/accuracy/train"]] == [4, 8]
    assert [v for _, v in cb.history["health/samples/train"]] == [128.0, 128.0]


def test_hf_empty_evaluation_set_still_logs_training_metrics(tmp_path):
    cb = FitWatchCallback(config={"data_checks": False})
    Trainer(
        model=sequence_model(),
        args=args(tmp_path, num_train_epochs=2),
        train_dataset=SequenceData(64, 0),
        eval_dataset=SequenceData(0, 1),
        callbacks=[cb],
    ).train()
    assert not [k for k in cb.history if k.endswith("/val")]
    assert [v for _, v in cb.history["health/samples/train"]] == [64.0, 64.0]


def test_one_class_per_batch_and_a_one_class_validation_set(tmp_path):
    """Validation batches that each hold one class, then a validation set of one class only: per-class numbers
    still equal scikit-learn's over the whole set (classes absent from it get zero support, zero recall)."""
    order = torch.argsort(Y[1200:], stable=True) + 1200
    by_class = DataLoader(
        TensorDataset(X[order], Y[order]),
        batch_sampler=[
            order_i.tolist()
            for order_i in torch.split(torch.arange(len(order)), torch.bincount(Y[order]).tolist())
        ],
    )
    one_class = DataLoader(TensorDataset(X[Y == 3], Y[Y == 3]), batch_size=64)
    for name, val in (("by_class", by_class), ("one_class", one_class)):
        cb = FitWatch(class_names=CLASS_NAMES, config=QUIET)
        model = DigitsMLP()
        trainer(tmp_path / name, [cb], max_epochs=1, logger=False).fit(model, loaders(n_train=320)[0], val)
        assert {len(set(y.tolist())) for _, y in val} == {1}
        logits, y = _val_reference(model, val)
        _assert_per_class_matches(cb, logits, y)
        assert math.isfinite(cb.history["calibration/ece/val"][-1][1])


def _with_ignored_batch(labels_from: int, batch_size: int, which: int, *, n: int) -> DataLoader:
    """``n`` digits in order from ``labels_from``, batches of ``batch_size``; every label of batch ``which`` is
    ``ignore_index`` (cross-entropy gives that batch a NaN loss, 0/0, and zero gradients)."""
    x, y = X[labels_from : labels_from + n], Y[labels_from : labels_from + n].clone()
    y[which * batch_size : (which + 1) * batch_size] = -100
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


def test_a_batch_whose_labels_are_all_ignore_index(tmp_path):
    """The ignored batch counts nowhere: per-class numbers equal scikit-learn's over the other batches."""
    cb = FitWatch(class_names=CLASS_NAMES, config=QUIET)
    model = DigitsMLP()
    val = _with_ignored_batch(1200, 128, 1, n=512)
    trainer(tmp_path, [cb], max_epochs=1, logger=False).fit(model, loaders(n_train=256)[0], val)
    logits, y = _val_reference(model, val)
    keep = y != -100
    assert keep.sum() == 512 - 128
    _assert_per_class_matches(cb, logits[keep], y[keep])
    assert cb.history["health/samples/val"][-1][1] == 512 - 128
    assert math.isfinite(cb.history["performance/loss/val"][-1][1])


@pytest.mark.parametrize("rows", [0, 4], ids=["no-rows", "all-ignored"])
def test_the_nan_loss_of_a_batch_without_targets_is_not_a_nonfinite_loss(rows):
    acc = PredictionAccumulator()
    acc.update(torch.randn(8, 3), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), loss=torch.tensor(1.0))
    acc.update(torch.randn(rows, 3), torch.full((rows,), -100), loss=torch.tensor(float("nan")))
    summary = acc.compute().summary
    assert summary["loss"] == 1.0 and summary["samples"] == 8
    assert summary["nonfinite_loss"] == 0


def test_a_training_batch_whose_labels_are_all_ignored_is_not_divergence(tmp_path):
    cb = FitWatch(class_names=CLASS_NAMES, log_every_n_steps=4, config={"data_checks": False})
    train = _with_ignored_batch(0, 32, 2, n=256)
    trainer(tmp_path, [cb], max_epochs=1, logger=False).fit(DigitsMLP(), train, loaders(n_train=256)[1])
    assert "FW-DIVERGENCE" not in {f.code for f in cb.findings}


# ---------------------------------------------------------------------------------------------- dtypes


class HalfLogits(DigitsMLP):
    def validation_step(self, batch, batch_idx):
        out = super().validation_step(batch, batch_idx)
        return {"loss": out["loss"], "logits": out["logits"].half()}


@pytest.mark.parametrize("precision", ["bf16-mixed", "fp16-logits"])
def test_low_precision_logits(tmp_path, precision):
    """bf16 autocast (Lightning's ``precision="bf16-mixed"``) and fp16 logits: the numbers equal scikit-learn's on
    the predictions of those same low-precision logits."""
    cb = FitWatch(class_names=CLASS_NAMES, config=QUIET)
    bf16 = precision == "bf16-mixed"
    model = DigitsMLP() if bf16 else HalfLogits()
    train, val = loaders(n_train=320)
    t = trainer(tmp_path, [cb], max_epochs=1, logger=False, **({"precision": "bf16-mixed"} if bf16 else {}))
    captured = []
    model.register_forward_hook(lambda m, a, out: captured.append(out.dtype) if not m.training else None)
    t.fit(model, train, val)
    assert captured and set(captured) == {torch.bfloat16 if bf16 else torch.float32}
    logits, y = _val_reference(model, val, **({"dtype": torch.bfloat16} if bf16 else {}))
    _assert_per_class_matches(cb, logits if bf16 else logits.half().float(), y)
    assert math.isfinite(cb.history["calibration/ece/val"][-1][1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.int32], ids=["float-labels", "int32-labels"])
def test_labels_of_another_dtype_give_the_same_numbers(tmp_path, dtype):
    """Labels as floats holding integers, or as int32: the same history as with int64 labels."""

    class CastLabels(DigitsMLP):
        def _step(self, batch):
            x, y = batch
            logits = self(x)
            return {"loss": nn.functional.cross_entropy(logits, y.long()), "logits": logits}

        def training_step(self, batch, batch_idx):
            return self._step(batch)

        validation_step = training_step

    def fit(labels, root):
        torch.manual_seed(0)
        cb = FitWatch(class_names=CLASS_NAMES, config=QUIET)
        perm = torch.randperm(len(Y), generator=torch.Generator().manual_seed(0))
        tr, va = perm[:256], perm[256:512]
        train = DataLoader(TensorDataset(X[tr], labels[tr]), batch_size=32)
        val = DataLoader(TensorDataset(X[va], labels[va]), batch_size=64)
        trainer(root, [cb], max_epochs=1, logger=False).fit(CastLabels(), train, val)
        return cb.history

    reference = fit(Y, tmp_path / "int64")
    other = fit(Y.to(dtype), tmp_path / "other")
    per_class = [k for k in reference if k.startswith(("per_class/", "calibration/", "performance/accuracy"))]
    assert per_class and {k: other[k] for k in per_class} == {k: reference[k] for k in per_class}


def test_fractional_float_labels_raise_on_the_first_batch():
    with pytest.raises(
        ValueError,
        match=r"Expected an integer class `target` for a multiclass task, but got fractional values \(torch\.float32\)",
    ):
        PredictionAccumulator().update(torch.zeros(2, 3), torch.tensor([0.0, 1.5]))


def test_hf_num_classes_disagreeing_with_the_logits_fails_fast(tmp_path):
    cb = FitWatchCallback(num_classes=4)
    t = Trainer(
        model=sequence_model(3),
        args=args(tmp_path, num_train_epochs=1),
        train_dataset=SequenceData(32, 0),
        eval_dataset=SequenceData(16, 1),
        callbacks=[cb],
    )
    with pytest.raises(
        ValueError,
        match=r"Expected logits with 4 classes in the last dimension \(from `num_classes`\), but got logits of shape \(16, 3\)",
    ):
        t.train()
    assert t.state.global_step == 0


# ------------------------------------------------------------------------------------------- 10,000 classes


def test_ten_thousand_classes_keep_bounded_memory_and_exact_numbers():
    """State bytes: classwise calibration bins (k x n_bins) dominate, ~4.9 MB for 10,000 classes and 15 bins; the
    confusion matrix (k^2) is not kept beyond ``confusion_matrix_max_classes``. More samples add nothing."""
    k, n_bins = 10_000, 15
    acc = PredictionAccumulator(num_classes=k, n_bins=n_bins)
    rng = np.random.default_rng(0)
    logits, labels = [], []

    def batch(n):
        y = torch.from_numpy(rng.integers(0, k, n))
        z = torch.randn(n, k) + 6.0 * nn.functional.one_hot(y, k).float() * torch.from_numpy(
            rng.random(n) < 0.7
        ).unsqueeze(1)
        logits.append(z.argmax(1))
        labels.append(y)
        return z, y

    acc.update(*batch(256))

    def state_bytes():
        return sum(t.numel() * t.element_size() for t in acc.tensors())

    first = state_bytes()
    for _ in range(7):
        acc.update(*batch(256))
    assert state_bytes() == first
    # Calibration table rows (top-label bins, fine log-odds histogram, k x n_bins classwise) x fields in float64,
    # plus three int64 counters per class: nothing else grows with k.
    table = (n_bins + ADAPTIVE_RESOLUTION + k * n_bins) * len(BIN_FIELDS) * 8
    assert table + 3 * k * 8 <= first <= table + 3 * k * 8 + 4096
    assert first < 5.2e6
    start = time.perf_counter()
    result = acc.compute()
    assert time.perf_counter() - start < 10.0
    assert result.confusion is None
    preds, y = torch.cat(logits).numpy(), torch.cat(labels).numpy()
    present = np.unique(y)[:50]
    p, r, _, s = precision_recall_fscore_support(y, preds, labels=present, zero_division=0)
    np.testing.assert_allclose([result.per_class["recall"][c] for c in present], r, atol=1e-12)
    np.testing.assert_allclose([result.per_class["precision"][c] for c in present], p, atol=1e-12)
    assert [result.per_class["support"][c] for c in present] == s.tolist()


# ------------------------------------------------------------------------------------------------- devices


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a second device (CUDA) for logits and labels to differ"
)
def test_logits_on_the_gpu_and_labels_on_the_cpu():
    logits, y = torch.randn(64, 5), torch.randint(0, 5, (64,))
    on_cpu, split = PredictionAccumulator(), PredictionAccumulator()
    on_cpu.update(logits, y)
    split.update(logits.cuda(), y)
    assert split.compute().per_class == on_cpu.compute().per_class


# -------------------------------------------------------------------------------------------------- sinks


def _runtime_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, FitWatchRuntimeWarning)]


def test_a_log_dir_that_cannot_be_created_warns_once_per_sink_and_training_goes_on(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cb = FitWatch(class_names=CLASS_NAMES, log_dir=blocker / "fitwatch", config={"data_checks": False})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        t = trainer(tmp_path, [cb], max_epochs=2, logger=False)
        t.fit(DigitsMLP(), *loaders(n_train=128))
    messages = _runtime_warnings(record)
    assert len(messages) == 2, messages
    assert any("the TensorBoard sink failed" in m for m in messages)
    assert any("the findings file sink failed" in m for m in messages)
    assert t.global_step == 8 and [s for s, _ in cb.history["performance/accuracy/val"]] == [4, 8]


def test_hf_log_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cb = FitWatchCallback(log_dir=blocker / "fitwatch", config={"data_checks": False})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        t = Trainer(
            model=sequence_model(),
            args=args(tmp_path, num_train_epochs=2, report_to=[]),
            train_dataset=SequenceData(64, 0),
            eval_dataset=SequenceData(32, 1),
            callbacks=[cb],
        )
        t.train()
    assert len(_runtime_warnings(record)) == 2, _runtime_warnings(record)
    assert len(cb.history["performance/accuracy/val"]) == 2


def test_a_writer_that_fails_mid_run_warns_once_and_the_jsonl_files_go_on(tmp_path):
    """The TensorBoard writer starts raising after the first validation: one warning, the sink is dropped; the
    in-memory history, ``history.json`` and ``findings.jsonl`` keep everything that follows."""
    cb = FitWatch(class_names=CLASS_NAMES, log_every_n_steps=2, config={"data_checks": False})
    t = trainer(tmp_path, [cb], max_epochs=3)
    writer = t.logger.experiment
    add_scalar = writer.add_scalar

    def failing(tag, value, global_step=None, **kwargs):
        if cb.history.get("performance/accuracy/val"):
            raise OSError(28, "No space left on device")
        return add_scalar(tag, value, global_step=global_step, **kwargs)

    writer.add_scalar = failing
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        t.fit(DigitsMLP(lr=5e-3), *loaders(n_train=128))
    messages = _runtime_warnings(record)
    assert (
        len(messages) == 1
        and "the TensorBoard sink failed in scalars()" in messages[0]
        and "No space left" in messages[0]
    )
    assert [s for s, _ in cb.history["performance/accuracy/val"]] == [4, 8, 12]
    saved = json.loads((Path(t.logger.log_dir) / "history.json").read_text())
    assert [s for s, _ in saved["performance/accuracy/val"]] == [4, 8, 12]  # written after the writer failed
    assert saved["optimizer/lr/group0"][-1][0] == 12
    findings = (Path(t.logger.log_dir) / "findings.jsonl").read_text().splitlines()
    assert len(findings) >= len(cb.findings)
