"""FitWatch in a real Lightning Trainer.fit on digits: what reaches TensorBoard, and bad input."""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from sklearn.metrics import precision_recall_fscore_support

from fitwatch import FitWatchRuntimeWarning
from fitwatch.lightning import FitWatch
from tests.references import reference_ece
from tests.sync_counter import SyncCounter

from .digits import CLASS_NAMES, DigitsMLP, loaders, trainer


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One real fit shared by the read-back tests (2 epochs on digits)."""
    tmp_path = tmp_path_factory.mktemp("fit")
    torch.manual_seed(0)
    model = DigitsMLP(two_groups=True, scheduler=True)
    cb = FitWatch(class_names=CLASS_NAMES)
    train, val = loaders()
    t = trainer(tmp_path, [cb], log_every_n_steps=5)
    t.fit(model, train, val)
    return cb, model, t, val


def test_expected_tags_reach_the_event_files(fitted, event_tags):
    """Read back under their history names (tests/conftest.py folds the dashboard layout, docs/dashboard.md)."""
    cb, _, t, _ = fitted
    tags = event_tags(t.logger.log_dir)
    scalars = tags["scalars"]
    for metric in ("precision", "recall", "f1"):  # per class: validation only on the dashboard
        for name in CLASS_NAMES:
            assert f"per_class/{metric}/{name}/val" in scalars
            assert f"per_class/{metric}/{name}/train" in cb.history
    for split in ("train", "val"):
        for metric in ("accuracy", "macro_f1", "weighted_f1", "loss"):
            assert f"performance/{metric}/{split}" in scalars
        for metric in ("ece", "mce", "adaptive_ece", "brier"):
            assert f"calibration/{metric}/{split}" in scalars
        assert f"calibration/nll/{split}" in cb.history  # equal to the loss here: one chart, not two
    # Classwise ECE is a validation number: the training fold keeps no classes x bins sums (issue 15).
    assert "calibration/classwise_ece/val" in scalars and "calibration/classwise_ece/train" not in cb.history
    for name in ("gap/loss", "gap/accuracy", "gap/ece", "optimizer/lr/body", "optimizer/lr/head",
                 "optimizer/weight_decay/head", "optimizer/momentum/body", "optimizer/grad_norm", "weights/norm"):
        assert name in scalars, name
    # 76 optimizer steps with the default diag interval of 50: one update-ratio measurement per block, at x=50
    assert [cb.history[f"weights/update_ratio/{b}"] for b in ("net.0", "net.3")] and all(
        [x for x, _ in cb.history[f"weights/update_ratio/{b}"]] == [50] for b in ("net.0", "net.3")
    )
    assert {"per_class/confusion_matrix/val", "calibration/reliability_diagram/val"} <= tags["images"]
    assert "custom_scalars__config__" in tags["tensors"]
    assert set(cb.history) >= scalars  # the in-memory history holds everything written


def test_validation_numbers_equal_an_independent_evaluation(fitted, event_scalars):
    """The last validation's per-class and calibration scalars, read back from the event files, equal
    scikit-learn and a numpy ECE on the final model's predictions."""
    cb, model, t, val = fitted
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x) for x, _ in val])
    y = torch.cat([y for _, y in val]).numpy()
    probs = torch.softmax(logits, 1).numpy()
    preds = probs.argmax(1)
    p, r, f, s = precision_recall_fscore_support(y, preds, labels=list(range(10)), zero_division=0)
    events = event_scalars(t.logger.log_dir)
    last = lambda tag: events[tag][-1][1]  # noqa: E731
    for i, name in enumerate(CLASS_NAMES):
        assert last(f"per_class/precision/{name}/val") == pytest.approx(p[i], abs=1e-6)
        assert last(f"per_class/recall/{name}/val") == pytest.approx(r[i], abs=1e-6)
        assert last(f"per_class/f1/{name}/val") == pytest.approx(f[i], abs=1e-6)
        assert cb.history[f"per_class/support/{name}/val"][-1][1] == s[i]
    conf = torch.softmax(logits, 1).max(1).values.double().numpy()
    assert last("calibration/ece/val") == pytest.approx(reference_ece(conf, (preds == y).astype(float)), abs=1e-6)
    assert last("performance/accuracy/val") == pytest.approx((preds == y).mean(), abs=1e-6)
    nll = -np.log(probs[np.arange(len(y)), y]).mean()
    assert cb.history["calibration/nll/val"][-1][1] == pytest.approx(nll, abs=1e-5)
    assert events["performance/accuracy/val"][-1][0] == t.global_step


def test_learning_rate_is_logged_per_group_at_the_step_it_was_applied(fitted):
    """StepLR(step_size=10, gamma=0.5) stepped every batch: optimizer step k (0-based) applies
    base * 0.5 ** (k // 10). The value logged at x = k + 1 must be that one, not the next step's."""
    cb, model, _, _ = fitted
    for group, base in (("body", model.lr), ("head", model.lr * 10)):
        points = cb.history[f"optimizer/lr/{group}"]
        assert len(points) >= 10
        for x, lr in points:
            assert lr == pytest.approx(base * 0.5 ** ((x - 1) // 10)), (group, x)
    assert all(wd == 0.01 for _, wd in cb.history["optimizer/weight_decay/body"])


def test_update_ratios_on_diag_steps(tmp_path):
    cb = FitWatch(class_names=CLASS_NAMES, diag_every_n_steps=5, log_every_n_steps=5)
    train, val = loaders(n_train=320)
    trainer(tmp_path, [cb], max_epochs=1).fit(DigitsMLP(), train, val)
    ratios = {k: v for k, v in cb.history.items() if k.startswith("weights/update_ratio/")}
    assert set(ratios) == {"weights/update_ratio/net.0", "weights/update_ratio/net.3"}
    assert [x for x, _ in ratios["weights/update_ratio/net.0"]] == [5, 10]
    # AdamW at lr 1e-3 moves each weight by ~1e-3 per step: ratio ~ 1e-3 / rms(w) for these small nets.
    assert all(1e-4 < v < 1e-1 for _, v in ratios["weights/update_ratio/net.0"])


def test_no_host_sync_in_per_step_hooks_between_logging_steps(tmp_path, monkeypatch):
    counter = SyncCounter(monkeypatch)

    class Counted(FitWatch):
        def _wrap_hook(self, hook, trainer, *args):
            step = trainer.global_step
            # The first batch validates shapes and labels (one sync, once); logging and diag steps read
            # values back by design. Every other call must enqueue device work only.
            special = any(check(s) for check in (self.observer.is_logging_step, self.observer.is_diag_step) for s in (step, step - 1))
            counter.active = self.observer.train.initialized and not special
            try:
                return hook(trainer, *args)
            finally:
                counter.active = False

        def on_train_batch_end(self, trainer, *args):
            return self._wrap_hook(super().on_train_batch_end, trainer, *args)

        def on_before_optimizer_step(self, trainer, *args):
            return self._wrap_hook(super().on_before_optimizer_step, trainer, *args)

    cb = Counted(class_names=CLASS_NAMES, log_every_n_steps=10, diag_every_n_steps=10)
    train, val = loaders(n_train=640)
    trainer(tmp_path, [cb], max_epochs=1, limit_val_batches=1).fit(DigitsMLP(), train, val)
    assert cb.history["optimizer/lr/group0"]  # the hooks did run
    assert counter.calls == []


def test_target_outside_the_classes_in_the_first_batch_raises_a_clear_error(tmp_path):
    """The run's first batch is the set-up check: with classes the user gave, a wrong label mapping fails fast;
    with classes fitwatch inferred, it is a warning. Later batches are counted and warned about, never raised
    (tests/reliability/test_bad_input_after_setup.py)."""

    class LogitsOnly(DigitsMLP):  # computes its loss on clamped labels, so only fitwatch reads the bad ones
        def training_step(self, batch, batch_idx):
            logits = self(batch[0])
            return {"loss": nn.functional.cross_entropy(logits, batch[1].clamp(max=9)), "logits": logits}

    x = torch.randn(64, 64)
    y = torch.randint(0, 10, (64,))
    y[3] = 12
    bad_train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)
    with pytest.raises(ValueError, match=r"Expected `target` values in \[0, 10\).*but got 12.*ignore_index=12"):
        trainer(tmp_path, [FitWatch(num_classes=10, config={"data_checks": False})], max_epochs=1, logger=False).fit(
            LogitsOnly(), bad_train, loaders(n_train=64)[1])

    # The same batch with classes fitwatch inferred itself: one warning, the run goes on without prediction metrics.
    cb = FitWatch(config={"data_checks": False})
    t = trainer(tmp_path / "inferred", [cb], max_epochs=1, logger=False)
    with torch.random.fork_rng(), pytest.warns(FitWatchRuntimeWarning, match=r"but got 12.*inferred by fitwatch"):
        t.fit(LogitsOnly(), bad_train, loaders(n_train=64)[1])
    assert t.global_step == 1 and not any(k.startswith("per_class/") for k in cb.history)


def test_class_names_of_the_wrong_length_raise(tmp_path):
    train, val = loaders(n_train=64)
    with pytest.raises(ValueError, match=r"Expected logits with 3 classes in the last dimension \(from `class_names`\), but got .*\(10 classes\)"):
        trainer(tmp_path, [FitWatch(class_names=["a", "b", "c"])], max_epochs=1, logger=False).fit(DigitsMLP(), train, val)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_bins": 0}, ValueError, r"Expected `n_bins` to be a positive int, but got 0\."),
        ({"n_bins": -3}, ValueError, r"Expected `n_bins` to be a positive int, but got -3\."),
        ({"n_bins": 2.5}, TypeError, r"Expected `n_bins` to be a positive int, but got float 2\.5\."),
        ({"class_names": ["a", "a"]}, ValueError, r"Expected `class_names` to be unique"),
        ({"class_names": ["a", "b"], "num_classes": 3}, ValueError, r"Expected `class_names` to have `num_classes`=3 entries, but got 2\."),
        ({"stop_on": ["FW-NOPE"]}, ValueError, r"Expected `stop_on` to hold finding codes"),
        ({"extract": 3}, TypeError, r"Expected `extract` to be a callable"),
        ({"config": 3}, TypeError, r"Expected `config` to be a FitWatchConfig, a mapping or a YAML path, but got int\."),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        FitWatch(**kwargs)


def test_non_dict_step_output_raises_type_error(tmp_path):
    class ListOutput(DigitsMLP):
        def validation_step(self, batch, batch_idx):
            return [self(batch[0])]

    train, val = loaders(n_train=64)
    with pytest.raises(TypeError, match=r"Expected the step output to be a dict with 'loss' and 'logits' \(or a loss tensor\), but got list"):
        trainer(tmp_path, [FitWatch()], max_epochs=1, logger=False).fit(ListOutput(), train, val)


def test_nan_logits_are_counted_and_training_goes_on(tmp_path):
    class NanSometimes(DigitsMLP):
        def validation_step(self, batch, batch_idx):
            out = super().validation_step(batch, batch_idx)
            out["logits"] = out["logits"].clone()
            out["logits"][:5] = float("nan")
            return out

    cb = FitWatch(config={"detectors": {name: {"enabled": False} for name in _registered()}})
    train, val = loaders(n_train=128)
    trainer(tmp_path, [cb], max_epochs=2, logger=False).fit(NanSometimes(), train, val)
    nonfinite = cb.history["health/nonfinite_logits/val"]
    assert [v for _, v in nonfinite] == [5.0 * len(val)] * 2
    assert all(math.isfinite(v) for _, v in cb.history["calibration/ece/val"])


def _registered():
    from fitwatch.detect import DETECTORS, build_detectors

    build_detectors()
    return list(DETECTORS)


def test_a_loss_only_module_is_watched_without_a_warning(tmp_path, caplog):
    class LossOnly(DigitsMLP):
        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)  # `self.net(x)`: nothing to capture

        def validation_step(self, batch, batch_idx):
            return None

    cb = FitWatch(log_every_n_steps=2)
    train, val = loaders(n_train=128)
    with warnings.catch_warnings(record=True) as record, caplog.at_level("INFO"):
        warnings.simplefilter("always")
        trainer(tmp_path, [cb], max_epochs=2, logger=False).fit(LossOnly(), train, val)
    assert not [w for w in record if issubclass(w.category, FitWatchRuntimeWarning)]
    said = [r.getMessage() for r in caplog.records if "fitwatch is watching" in r.getMessage()]
    assert len(said) == 2  # once by the "fitwatch" logger, once on Lightning's console; never per batch
    assert "{'loss': loss, 'logits': logits}" in said[0]
    assert cb.history["optimizer/lr/group0"] and cb.history["performance/step_loss/train"]
    assert not any(k.startswith("per_class/") for k in cb.history)


def test_custom_extract_and_own_writer_without_tensorboard_logger(tmp_path, event_tags):
    def extract(batch, outputs):
        return outputs["logits"], batch[1]

    cb = FitWatch(extract=extract)
    train, val = loaders(n_train=128)
    trainer(tmp_path, [cb], max_epochs=1, logger=False).fit(DigitsMLP(), train, val)
    assert cb.run_dir == tmp_path / "fitwatch" / "version_0"
    assert "per_class/recall/0/val" in event_tags(tmp_path / "fitwatch" / "version_0")["scalars"]
    assert (tmp_path / "fitwatch" / "version_0" / "history.json").exists()


def test_extract_that_raises_skips_the_batch_with_one_warning(tmp_path):
    calls = {"n": 0}

    def flaky(batch, outputs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return outputs["logits"], batch[1]

    cb = FitWatch(extract=flaky)
    train, val = loaders(n_train=128)
    with pytest.warns(FitWatchRuntimeWarning, match=r"(?s)`extract` raised on a training_step batch.*RuntimeError: boom") as record:
        trainer(tmp_path, [cb], max_epochs=1, logger=False).fit(DigitsMLP(), train, val)
    assert sum(issubclass(w.category, FitWatchRuntimeWarning) for w in record) == 1
    assert cb.history["health/samples/train"][-1][1] == 128 - 32  # one batch of 32 skipped


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`:UserWarning")
def test_resume_continues_history_without_gaps_or_duplicates(tmp_path):
    torch.manual_seed(0)  # the model's initial weights: an unseeded start sometimes leaves a class never predicted
    train, val = loaders(n_train=256)
    first = FitWatch(class_names=CLASS_NAMES, log_every_n_steps=4)
    t1 = trainer(tmp_path, [first], max_epochs=2, enable_checkpointing=True, logger=False)
    t1.fit(DigitsMLP(lr=5e-3), train, val)
    ckpt = t1.checkpoint_callback.best_model_path
    resumed = FitWatch(class_names=CLASS_NAMES, log_every_n_steps=4)
    t2 = trainer(tmp_path / "resumed", [resumed], max_epochs=3, logger=False)
    t2.fit(DigitsMLP(lr=5e-3), train, val, ckpt_path=ckpt)
    steps = [s for s, _ in resumed.history["performance/accuracy/val"]]
    assert steps == [8, 16, 24]
    assert resumed.history["performance/accuracy/val"][:2] == first.history["performance/accuracy/val"]
    lr_steps = [s for s, _ in resumed.history["optimizer/lr/group0"]]
    assert lr_steps == sorted(set(lr_steps)) and lr_steps == list(range(4, 25, 4))


def test_state_dict_round_trip_and_pickling(fitted, tmp_path):
    cb = fitted[0]
    state = cb.state_dict()
    clone = FitWatch(class_names=CLASS_NAMES)
    clone.load_state_dict(state)
    assert clone.history == cb.history  # read back whole from the run's history file, named in the state
    assert [f.key for f in clone.findings] == [f.key for f in cb.findings]
    # Without the file, a loaded clone keeps the bounded tails the checkpoint holds.
    tail = cb.observer.monitor.history_tail
    orphan = FitWatch(class_names=CLASS_NAMES)
    orphan.load_state_dict({**state, "observer": {**state["observer"], "monitor": {**state["observer"]["monitor"],
                                                                                  "history_file": str(tmp_path / "gone.jsonl")}}})
    # (the per-class series keep no tail: nothing reads them back from memory, and their points are in the file)
    assert orphan.history == {k: v[-tail:] for k, v in cb.history.items() if not k.startswith("per_class/")}
    restored = pickle.loads(pickle.dumps(cb))
    assert restored.history == cb.history
    import json

    json.dumps(cb.state_dict())  # JSON-safe, so checkpoints need no pickle


def test_two_instances_have_distinct_state_keys():
    a, b = FitWatch(class_names=["x", "y"]), FitWatch(class_names=["x", "y"], config={"tag_prefix": "b/"})
    assert a.state_key != b.state_key


def test_no_warning_leaks_from_a_plain_healthy_fit(tmp_path):
    train, val = loaders(n_train=256)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWatchRuntimeWarning)
        trainer(tmp_path, [FitWatch(class_names=CLASS_NAMES)], max_epochs=1).fit(DigitsMLP(), train, val)
