"""Resume: a run killed after a validation and resumed from its checkpoint reads, to fitwatch, exactly like the
run that was never interrupted.

The models hand fitwatch scripted numbers (a training loss falling 15% per epoch, a validation loss that
turns up after epoch 4, logits that never predict the last class) while their real layers train on zero
gradients, so the uninterrupted run is an exact reference. The script makes three causes appear:
FW-CLASS-NEVER-PREDICTED and FW-GAP-WIDENING before the kill (warned once, never again after it) and
FW-OVERFIT, whose two required confirmations straddle the kill: the first comes before it (the detector's
streak is 1 in the checkpoint), the second after, measured against a best validation loss from before.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from collections import Counter

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from transformers import Trainer, TrainerCallback

from fitwatch import FitWatchWarning
from fitwatch.detect.records import EvalRecord, StepRecord
from fitwatch.hf import FitWatchCallback
from fitwatch.lightning import FitWatch
from tests.hf.tiny import args as hf_args
from tests.lightning.digits import X, Y, trainer

TRAIN_LOSS = [0.85**e for e in range(12)]
VAL_LOSS = [1.00, 0.80, 0.68, 0.62, 0.60, 0.61, 0.64, 0.69, 0.75, 0.82, 0.90, 0.99]
EPOCHS = len(VAL_LOSS)
#: The kill comes in the epoch after this one's validation (0-based): after FW-OVERFIT's first
#: confirmation (epoch 6), before its second (epoch 7).
LAST_BEFORE_KILL = 6
CLASSES = 10


def _scripted_logits(y: torch.Tensor) -> torch.Tensor:
    """Confident logits for the true class, except the last class, always predicted as the one before."""
    predicted = torch.where(y == CLASSES - 1, CLASSES - 2, y)
    return 4.0 * nn.functional.one_hot(predicted, CLASSES).float()


class Killed(RuntimeError):
    """Stands for the process dying."""


class ScriptedModule(pl.LightningModule):
    def __init__(self, kill_in_epoch: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(64, CLASSES)
        self.kill_in_epoch = kill_in_epoch

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.current_epoch == self.kill_in_epoch and batch_idx == 1:
            raise Killed("the process died")
        loss = 0.0 * nn.functional.cross_entropy(self.net(x), y) + TRAIN_LOSS[self.current_epoch]
        return {"loss": loss, "logits": _scripted_logits(y)}

    def validation_step(self, batch, batch_idx):
        _, y = batch
        return {"loss": torch.tensor(VAL_LOSS[self.current_epoch]), "logits": _scripted_logits(y)}

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


def _loaders():
    data = torch.utils.data.TensorDataset(X[:64], Y[:64])
    train = torch.utils.data.DataLoader(
        data, batch_size=16
    )  # in order: float sums add up the same way after the kill
    return train, torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X[64:128], Y[64:128]), batch_size=32
    )


def _warned(caught) -> Counter:
    """Finding codes warned, with how many times each."""
    return Counter(
        re.match(r"\[(FW-[A-Z-]+)\]", str(w.message)).group(1)
        for w in caught
        if issubclass(w.category, FitWatchWarning) and str(w.message).startswith("[FW-")
    )


def _fit(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return _warned(caught)


@pytest.fixture(scope="module")
def lightning_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    reference = FitWatch(log_every_n_steps=2)
    warned_reference = _fit(
        lambda: trainer(tmp / "reference", [reference], max_epochs=EPOCHS, logger=False).fit(
            ScriptedModule(), *_loaders()
        )
    )

    first = FitWatch(log_every_n_steps=2)
    checkpoints = ModelCheckpoint(dirpath=tmp / "ckpt", save_top_k=-1, every_n_epochs=1)
    t1 = trainer(
        tmp / "killed", [first, checkpoints], max_epochs=EPOCHS, logger=False, enable_checkpointing=True
    )
    with pytest.raises(Killed):
        _fit(lambda: t1.fit(ScriptedModule(kill_in_epoch=LAST_BEFORE_KILL + 1), *_loaders()))
    warned_first = _warned_in(first)
    (ckpt,) = (tmp / "ckpt").glob(f"epoch={LAST_BEFORE_KILL}-*.ckpt")

    resumed = FitWatch(log_every_n_steps=2)
    t2 = trainer(tmp / "resumed", [resumed], max_epochs=EPOCHS, logger=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`")
        warned_resumed = _fit(lambda: t2.fit(ScriptedModule(), *_loaders(), ckpt_path=ckpt))
    return {
        "reference": (reference, warned_reference),
        "first": (first, warned_first),
        "resumed": (resumed, warned_resumed),
        "checkpoint": torch.load(ckpt, weights_only=False),
    }


def _warned_in(cb) -> Counter:
    """What the killed segment warned: its findings file's 'new' events of WARNING or worse (the Python warnings
    were raised inside the failing fit, so read them from where they were written)."""
    return Counter(f.code for f in cb.findings if f.severity >= 30)


def _overfit_streak(cb) -> int:
    return next(d.streak for d in cb.observer.monitor.detectors if d.name == "overfitting")


def _assert_same_history(resumed, reference, restart_step):
    """Every tag at the same steps (no gap, no duplicate) with the same values; the data checks alone run again
    in the resumed fit (the data may have changed), one more point at ``restart_step``."""
    data = {k for k in reference.history if k.startswith("data/")}
    assert {k: v for k, v in resumed.history.items() if k not in data} == {
        k: v for k, v in reference.history.items() if k not in data
    }
    for k in data:
        assert (
            resumed.history[k][:-1] == reference.history[k] and resumed.history[k][-1][0] == restart_step
        ), k


def test_lightning_resume_is_invisible_to_fitwatch(lightning_runs):
    (reference, _), (first, _), (resumed, _) = (lightning_runs[k] for k in ("reference", "first", "resumed"))
    _assert_same_history(resumed, reference, 4 * (LAST_BEFORE_KILL + 1))
    assert [f.to_dict() for f in resumed.findings] == [f.to_dict() for f in reference.findings]
    assert (
        resumed.observer.monitor.state_dict()["detectors"]
        == reference.observer.monitor.state_dict()["detectors"]
    )
    steps = [s for s, _ in resumed.history["performance/accuracy/val"]]
    assert steps == [4 * (e + 1) for e in range(EPOCHS)]
    assert (
        len(first.history["performance/accuracy/val"]) == LAST_BEFORE_KILL + 1
    )  # the kill came after a validation


def test_lightning_causes_warned_before_the_kill_are_not_warned_again(lightning_runs):
    (_, warned_reference), (first, warned_first), (_, warned_resumed) = (
        lightning_runs[k] for k in ("reference", "first", "resumed")
    )
    _assert_warned_once_across_the_kill(first, warned_first, warned_resumed, warned_reference)


def _assert_warned_once_across_the_kill(first, warned_first, warned_resumed, warned_reference):
    """FW-CLASS-NEVER-PREDICTED still holds after the kill but is not warned again; FW-GAP-WIDENING was raised
    before it as INFO (not warned) and is warned once when it escalates; FW-OVERFIT is new after it."""
    assert "FW-CLASS-NEVER-PREDICTED" in warned_first and "FW-CLASS-NEVER-PREDICTED" not in warned_resumed
    assert "FW-GAP-WIDENING" in {f.code for f in first.findings} and "FW-OVERFIT" not in {
        f.code for f in first.findings
    }
    assert "FW-OVERFIT" in warned_resumed
    assert warned_first + warned_resumed == warned_reference
    assert set(warned_reference.values()) == {1}


def test_lightning_overfitting_confirmed_across_the_kill(lightning_runs):
    """FW-OVERFIT needs two consecutive confirmations: the checkpoint holds the first (streak 1) and the best
    validation loss (epoch 4); the resumed run confirms at epoch 7, as the uninterrupted run does."""
    (reference, _), (resumed, _) = lightning_runs["reference"], lightning_runs["resumed"]
    saved = lightning_runs["checkpoint"]["callbacks"][resumed.state_key]["observer"]["monitor"]["detectors"][
        "overfitting"
    ]
    assert saved["streak"] == 1
    found = next(f for f in resumed.findings if f.code == "FW-OVERFIT")
    first_raised = min(s for s, _ in resumed.history["findings/FW-OVERFIT"])
    assert (
        first_raised
        == min(s for s, _ in reference.history["findings/FW-OVERFIT"])
        == 4 * (LAST_BEFORE_KILL + 2)
    )
    assert found.evidence["best_epoch"] == 4 < LAST_BEFORE_KILL


# ----------------------------------------------------------------------------------------------------- HF


class ScriptedClassifier(nn.Module):
    """A model for the HF Trainer with the same script; ``epoch`` is set by :class:`EpochTracker`."""

    def __init__(self, kill_in_epoch: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(64, CLASSES)
        self.epoch = 0
        self.kill_in_epoch = kill_in_epoch
        self.seen = 0

    def forward(self, x, labels=None):
        if self.training:
            self.seen += 1
            if self.epoch == self.kill_in_epoch and self.seen % 4 == 2:
                raise Killed("the process died")
        script = TRAIN_LOSS if self.training else VAL_LOSS
        loss = 0.0 * nn.functional.cross_entropy(self.net(x), labels) + script[self.epoch]
        return {"loss": loss, "logits": _scripted_logits(labels)}


class EpochTracker(TrainerCallback):
    def on_epoch_begin(self, args, state, control, model=None, **kwargs):
        model.epoch = round(state.epoch or 0)


class DictDigits(torch.utils.data.Dataset):
    def __init__(self, lo: int, hi: int) -> None:
        self.x, self.y = X[lo:hi], Y[lo:hi]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def _hf_trainer(tmp, cb, model, **kwargs):
    a = hf_args(
        tmp,
        num_train_epochs=EPOCHS,
        per_device_train_batch_size=16,
        logging_steps=2,
        save_strategy="epoch",
        restore_callback_states_from_checkpoint=True,
        report_to=[],
        **kwargs,
    )
    return Trainer(
        model=model,
        args=a,
        train_dataset=DictDigits(0, 64),
        eval_dataset=DictDigits(64, 128),
        callbacks=[cb, EpochTracker()],
    )


@pytest.fixture(scope="module")
def hf_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hf_resume")
    reference = FitWatchCallback(num_classes=CLASSES)
    warned_reference = _fit(lambda: _hf_trainer(tmp / "reference", reference, ScriptedClassifier()).train())
    first = FitWatchCallback(num_classes=CLASSES)
    with pytest.raises(Killed):
        _fit(
            lambda: _hf_trainer(
                tmp / "killed", first, ScriptedClassifier(kill_in_epoch=LAST_BEFORE_KILL + 1)
            ).train()
        )
    checkpoint = tmp / "killed" / f"checkpoint-{4 * (LAST_BEFORE_KILL + 1)}"
    fresh = FitWatchCallback(num_classes=CLASSES)
    t2 = _hf_trainer(tmp / "killed", fresh, ScriptedClassifier())
    warned_resumed = _fit(lambda: t2.train(resume_from_checkpoint=str(checkpoint)))
    resumed = next(cb for cb in t2.callback_handler.callbacks if isinstance(cb, FitWatchCallback))
    state = json.loads((checkpoint / "trainer_state.json").read_text())["stateful_callbacks"][
        "FitWatchCallback"
    ]
    return {
        "reference": (reference, warned_reference),
        "first": (first, _warned_in(first)),
        "resumed": (resumed, warned_resumed),
        "saved": state,
    }


def test_hf_resume_is_invisible_to_fitwatch(hf_runs):
    (reference, _), (resumed, _) = hf_runs["reference"], hf_runs["resumed"]
    # HF hands no evaluation loader to on_train_begin: the data checks run at the first evaluation.
    _assert_same_history(resumed, reference, 4 * (LAST_BEFORE_KILL + 2))
    assert [f.to_dict() for f in resumed.findings] == [f.to_dict() for f in reference.findings]
    assert (
        resumed.observer.monitor.state_dict()["detectors"]
        == reference.observer.monitor.state_dict()["detectors"]
    )
    assert [s for s, _ in resumed.history["performance/accuracy/val"]] == [4 * (e + 1) for e in range(EPOCHS)]


def test_hf_causes_warned_before_the_kill_are_not_warned_again_and_overfitting_spans_it(hf_runs):
    (_, warned_reference), (first, warned_first), (resumed, warned_resumed) = (
        hf_runs[k] for k in ("reference", "first", "resumed")
    )
    _assert_warned_once_across_the_kill(first, warned_first, warned_resumed, warned_reference)
    saved = hf_runs["saved"]["attributes"]["fitwatch_state"]["monitor"]["detectors"]["overfitting"]
    assert saved["streak"] == 1
    assert min(s for s, _ in resumed.history["findings/FW-OVERFIT"]) == 4 * (LAST_BEFORE_KILL + 2)


# ------------------------------------------------------------------------------------------ forward compat


def _paths(tree, prefix=()):
    """Every path to a mapping key in ``tree``."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


def _without(tree, path):
    out = copy.deepcopy(tree)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


def test_state_is_strict_json(lightning_runs, hf_runs):
    for cb in (lightning_runs["resumed"][0], hf_runs["resumed"][0]):
        state = cb.state_dict() if isinstance(cb, FitWatch) else cb.state()
        assert json.loads(json.dumps(state, allow_nan=False)) == state


#: Per-evaluation lists kept in step by a detector: a state missing one of them is padded at the front on load
#: (``Detector.series``), so the lists stay aligned.
MISALIGNED_SERIES = [
    ("observer", "monitor", "detectors", "overfitting", key)
    for key in ("epochs", "steps", "train_loss", "accuracy")
] + [("observer", "monitor", "detectors", "plateau", "epochs")]


def _saved_state(lightning_runs):
    return json.loads(json.dumps(lightning_runs["resumed"][0].state_dict()))


def _load_and_run(state) -> str | None:
    """Load ``state`` into a fresh callback and feed it one step and one evaluation record; the failure, if any."""
    clone = FitWatch()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            clone.load_state_dict(state)
        except Exception as err:  # noqa: BLE001  (collected, reported together below)
            return f"load_state_dict raised {type(err).__name__}: {err}"
        monitor = clone.observer.monitor
        monitor.step(
            StepRecord(step=100, epoch=12, losses=[0.3, 0.31], lr=[1e-3], grad_norm=1.0, weight_norm=10.0)
        )
        monitor.evaluation(
            EvalRecord(
                step=100,
                epoch=12,
                val={"loss": 1.1, "accuracy": 0.8},
                train={"loss": 0.3, "accuracy": 0.9},
                val_per_class={k: [0.8] * CLASSES for k in ("recall", "f1", "precision")}
                | {"support": [6.0] * CLASSES, "predicted": [6.0] * CLASSES},
                class_names=[str(i) for i in range(CLASSES)],
            )
        )
    failed = [str(w.message) for w in caught if "failed" in str(w.message)]
    return failed[0] if failed else None


def _paths_to_drop(state):
    # "__state__"/"__finding__" mark how a nested value was saved; they are never a field of their own.
    return [p for p in _paths(state) if not p[-1].startswith("__")]


def test_states_missing_any_key_added_later_still_load_and_run(lightning_runs):
    """Drop each key of a saved state in turn, as if a later version had added it: loading never raises and the
    restored callback takes new records without a detector failing (and being disabled)."""
    state = _saved_state(lightning_runs)
    paths = _paths_to_drop(state)
    assert ("observer", "train", "num_classes") in paths  # the accumulator sizes itself from the saved counts
    assert len(paths) > 300  # monitor, history, findings, every detector's fields, the accumulator
    failures = {path: error for path in paths if (error := _load_and_run(_without(state, path)))}
    assert failures == {}


@pytest.mark.parametrize("path", MISALIGNED_SERIES, ids=lambda p: ".".join(p[-2:]))
def test_a_missing_per_evaluation_series_keeps_its_detector_running(lightning_runs, path):
    assert _load_and_run(_without(_saved_state(lightning_runs), path)) is None


def test_hf_exportable_state_missing_keys_still_restores_the_rest(hf_runs):
    """What transformers saves in ``trainer_state.json`` (constructor args and ``fitwatch_state``), each key up to
    the detectors dropped in turn, rebuilt the way transformers rebuilds it: ``cls(**args)``, then the attributes."""
    saved = json.loads(json.dumps(hf_runs["saved"]))
    history = saved["attributes"]["fitwatch_state"]["monitor"]["history"]
    expected = {k: [tuple(p) for p in v] for k, v in history.items()}
    counted = set(saved["attributes"]["fitwatch_state"]["monitor"]["history_counts"])
    history_path = ("attributes", "fitwatch_state", "monitor", "history")
    for path in [p for p in _paths(saved) if len(p) <= 5 and not p[-1].startswith("__")]:
        state = _without(saved, path)
        cb = FitWatchCallback(**state.get("args", {}))
        cb.fitwatch_state = state.get("attributes", {}).get("fitwatch_state", {})
        cb._observer(None)  # builds the observer and applies the pending state, as on_init_end does
        if (
            path[: len(history_path)] != history_path[: len(path)]
        ):  # the history itself, or a part of it, was kept
            # The saved tails (none for the per-class series), or every counted series whole when the killed
            # run's own history file (its run folder is its own) holds exactly what the state counted.
            assert set(expected) <= set(cb.history) <= counted | set(expected), path
            for tag, points in expected.items():
                assert cb.history[tag][-len(points) :] == points, (path, tag)
