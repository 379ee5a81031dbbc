"""Files and checkpoints that scale with the run: the Monitor's state holds bounded tails of its series (the
history lives in ``history.jsonl``), a resume reads the whole history back and cuts what a killed process
wrote past its checkpoint, and the soak benchmark's core shows a per-evaluation write cost that does not grow."""

from __future__ import annotations

import json
import warnings


from fitwatch.detect.records import EvalRecord, StepRecord
from fitwatch.monitor import Monitor
from fitwatch.sinks.jsonl import JsonlSink, read_history

CLASSES = 10


def _feed(monitor: Monitor, evaluations: range) -> None:
    """Per evaluation: 4 logging steps and 10 classes x 5 per-class scalars, as the callbacks log them."""
    for e in evaluations:
        step = 40 * (e + 1)
        for k in range(4):
            monitor.log({"performance/loss/train": 1.0 / (e + 1) + k * 1e-3, "optimizer/lr/group0": 1e-3}, step - 30 + 10 * k)
        per_class = {
            f"per_class/{m}/class_{i}/val": 0.5 + 0.001 * ((e * 7 + i) % 13)
            for m in ("precision", "recall", "f1", "support", "predicted")
            for i in range(CLASSES)
        }
        monitor.log(per_class, step)
        monitor.evaluation(
            EvalRecord(step=step, epoch=e, val={"loss": 1.0 + 0.01 * (e % 5), "accuracy": 0.6}, train={"loss": 0.5, "accuracy": 0.7})
        )


def _state_bytes(monitor: Monitor, *, detectors: bool) -> int:
    state = monitor.state_dict()
    if not detectors:
        state = {k: v for k, v in state.items() if k != "detectors"}
    return len(json.dumps(state, allow_nan=False))


def test_the_monitors_state_is_bounded_and_does_not_grow_with_the_run(tmp_path):
    monitor = Monitor(detectors=[], sinks=[JsonlSink(tmp_path)])
    _feed(monitor, range(100))
    at_100 = _state_bytes(monitor, detectors=False)
    _feed(monitor, range(100, 1000))
    at_1000 = _state_bytes(monitor, detectors=False)
    # 10x the evaluations: only the numbers get wider (step 4,000 -> 40,000; counts 100 -> 1,000).
    assert at_1000 <= 100_000 and at_1000 - at_100 <= 0.05 * at_100, (at_100, at_1000)
    # The whole history is in its file, and the state names it.
    state = monitor.state_dict()
    assert state["history_file"] == str((tmp_path / "history.jsonl").resolve())
    assert read_history(state["history_file"]) == monitor.history
    assert state["history_counts"]["per_class/f1/class_3/val"] == 1000
    assert [p for p in state["history"]["gap/loss"]] == [list(p) for p in monitor.history["gap/loss"][-5:]]


def test_the_callback_state_at_1000_classes_stays_under_1_mb():
    # Issue 15: no per-class tails in a checkpoint (nothing reads them back from memory; the file has them); the
    # training split keeps no classwise bins. Was 1.27 MB after 6 evaluations (0.87 MB of per-class tails).
    import torch

    from fitwatch.config import FitWatchConfig
    from fitwatch.observer import Observer

    observer = Observer(FitWatchConfig(num_classes=1000, warn=False, images=False))
    g = torch.Generator().manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in range(6):
            for _ in range(2):
                observer.train_batch(torch.randn(32, 1000, generator=g), torch.randint(0, 1000, (32,), generator=g), torch.tensor(6.9))
                observer.eval_batch(torch.randn(32, 1000, generator=g), torch.randint(0, 1000, (32,), generator=g), torch.tensor(6.9))
            observer.end_evaluation(step=10 * (e + 1), epoch=e)
    state = observer.state_dict()
    assert len(state["monitor"]["history_counts"]) > 10_000  # every series is still counted
    assert not any(k.startswith("per_class/") for k in state["monitor"]["history"])
    assert len(json.dumps(state, allow_nan=False)) < 1_000_000


def test_the_whole_state_with_every_detector_is_under_100_kb_after_1000_evaluations(tmp_path):
    monitor = Monitor(sinks=[JsonlSink(tmp_path)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in range(1000):
            monitor.step(StepRecord(step=40 * e + 1, epoch=e, losses=[0.5] * 4, lr=[1e-3], grad_norm=1.0, weight_norm=10.0))
            _feed(monitor, range(e, e + 1))
    assert _state_bytes(monitor, detectors=True) <= 100_000


def _reference_and_state(tmp_path):
    """A run of 30 evaluations checkpointed at 20; the killed process wrote 3 more evaluations to its file."""
    reference = Monitor(detectors=[], sinks=[JsonlSink(tmp_path / "reference")])
    _feed(reference, range(30))
    reference.close()
    killed = Monitor(detectors=[], sinks=[JsonlSink(tmp_path / "killed")])
    _feed(killed, range(20))
    state = json.loads(json.dumps(killed.state_dict()))
    _feed(killed, range(20, 23))
    killed.sinks.call("flush", killed.history)  # what it wrote before dying
    return reference, state


def test_a_resume_into_the_same_directory_reads_the_history_back_and_cuts_what_came_after_the_checkpoint(tmp_path):
    reference, state = _reference_and_state(tmp_path)
    resumed = Monitor(detectors=[])
    resumed.load_state_dict(state)
    assert len(resumed.history["gap/loss"]) == 5  # the file goes past the state: tails until the run resumes
    resumed.sinks = [JsonlSink(tmp_path / "killed")]
    assert resumed.history == {k: v[: len(v) * 20 // 30] for k, v in reference.history.items()}
    _feed(resumed, range(20, 30))
    resumed.close()
    assert resumed.history == reference.history
    for name in ("history.json", "history.jsonl"):
        assert read_history(tmp_path / "killed" / name) == reference.history, name


def test_a_resume_into_a_new_directory_reads_the_old_file_and_starts_a_whole_new_one(tmp_path):
    reference, state = _reference_and_state(tmp_path)
    resumed = Monitor(detectors=[])
    resumed.load_state_dict(state)
    resumed.sinks = [JsonlSink(tmp_path / "new")]
    _feed(resumed, range(20, 30))
    resumed.close()
    assert resumed.history == reference.history
    assert read_history(tmp_path / "new" / "history.jsonl") == reference.history  # self-contained
    again = Monitor(detectors=[])  # and a second resume from the new run's state reads the new file
    again.load_state_dict(resumed.state_dict())
    assert again.history == reference.history


def test_without_its_file_a_resume_keeps_the_tails_and_goes_on(tmp_path):
    _, state = _reference_and_state(tmp_path)
    (tmp_path / "killed" / "history.jsonl").unlink()
    resumed = Monitor(detectors=[])
    resumed.load_state_dict(state)
    resumed.sinks = [JsonlSink(tmp_path / "other")]
    _feed(resumed, range(20, 22))
    assert [s for s, _ in resumed.history["gap/loss"]] == [40 * (e + 1) for e in range(15, 22)]
    assert resumed.state_dict()["history_counts"]["gap/loss"] == 22  # counted across the lost part


def test_the_soak_core_writes_the_same_bytes_per_evaluation_and_a_bounded_state(tmp_path):
    from benchmarks.soak import soak

    run = soak(CLASSES, 8, tmp_path)
    written = [b - a for a, b in zip(run["history_bytes"], run["history_bytes"][1:])]
    assert len(written) == 7 and max(written[1:]) <= 1.25 * min(written[1:]), written
    assert run["sizes"]["monitor_state_without_detectors"] <= 100_000
    assert run["sizes"]["history.json"] > 0 and run["sizes"]["history.jsonl"] >= sum(written)
