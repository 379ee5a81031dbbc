"""examples/hf_text_classification.py: its YAML parses into TrainingArguments + FitWatchConfig, and its code
path runs end to end with a tiny BERT built from a config (MiniLM itself is never trained in tests)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import accuracy_score, recall_score
from transformers import TrainingArguments

from fitwatch.config import FitWatchConfig

from .conftest import ROOT

CONFIG = ROOT / "configs" / "hf_text_classification.yaml"
PRESETS = ROOT / "configs" / "fitwatch"


def test_yaml_parses_into_training_arguments_and_fitwatch_config(hf_example):
    raw = yaml.safe_load(CONFIG.read_text())
    run = hf_example.load_config(CONFIG)
    assert isinstance(run.training, TrainingArguments)
    training_fields = set(TrainingArguments.__dataclass_fields__)
    example_fields = set(hf_example.ExampleArguments.__dataclass_fields__)
    for key, value in raw.items():
        if key == "fitwatch":
            continue
        target = run.training if key in training_fields else run.example
        assert key in training_fields | example_fields, key
        got = getattr(target, key)
        got = got.value if hasattr(got, "value") else got  # IntervalStrategy, SchedulerType: str enums
        assert got == value, key
    assert run.fitwatch == FitWatchConfig.from_mapping(raw["fitwatch"])
    assert run.fitwatch.data_checks.time_field == "timestamp"


def test_flags_override_the_file_and_a_preset_replaces_the_section(hf_example):
    run = hf_example.load_config(
        CONFIG,
        [
            "--num_train_epochs",
            "1",
            "--learning_rate",
            "3e-5",
            "--model",
            "tiny-bert",
            "--with_fitwatch",
            "false",
            "--fitwatch_preset",
            str(PRESETS / "minimal.yaml"),
        ],
    )
    assert run.training.num_train_epochs == 1 and run.training.learning_rate == pytest.approx(3e-5)
    assert run.example.model == "tiny-bert" and run.example.with_fitwatch is False
    assert run.fitwatch == FitWatchConfig.from_yaml(PRESETS / "minimal.yaml")
    assert (
        run.training.per_device_train_batch_size
        == yaml.safe_load(CONFIG.read_text())["per_device_train_batch_size"]
    )


def test_fitwatch_section_may_name_a_preset_file(hf_example, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(f"output_dir: {tmp_path}\nfitwatch: {PRESETS / 'full.yaml'}\n")
    assert hf_example.load_config(path).fitwatch == FitWatchConfig.from_yaml(PRESETS / "full.yaml")


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("learning_rat: 1.0e-4\n", ValueError, "Unknown key 'learning_rat' in {path}"),
        (
            "num_train_epochs: three\n",
            TypeError,
            "Expected 'num_train_epochs' in {path} to be valid, but got invalid float value: 'three'.",
        ),
        ("model: gpt\n", TypeError, "Expected 'model' in {path} to be valid, but got invalid choice: 'gpt'"),
        ("fitwatch:\n  n_bin: 3\n", ValueError, "Unknown key 'n_bin' in the `fitwatch` section of {path}"),
        (
            "fitwatch:\n  images: 'yes'\n",
            TypeError,
            "Expected 'images' in the `fitwatch` section of {path} to be bool",
        ),
        ("- a list\n", TypeError, "Expected {path} to hold a mapping of settings, but got list."),
    ],
)
def test_bad_config_is_rejected_naming_the_key_and_the_file(hf_example, tmp_path, text, error, match):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(error, match=re.escape(match.format(path=path))):
        hf_example.load_config(path)


def test_missing_config_file_raises(hf_example, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hf_example.load_config(tmp_path / "nope.yaml")


def _text(logdir, prefix):
    """The last text summary under a tag starting with ``prefix``, read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    texts = []
    for path in sorted(logdir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"tensors": 0})
        acc.Reload()
        for name in acc.Tags()["tensors"]:
            if name.startswith(prefix):
                texts += [event.tensor_proto.string_val[0].decode() for event in acc.Tensors(name)]
    assert texts, f"no text under {prefix!r} in {logdir}"
    return texts[-1]


def _tiny_flags(tmp_path, *extra):
    return [
        str(CONFIG),
        "--model",
        "tiny-bert",
        "--n_tickets",
        "240",
        "--max_steps",
        "8",
        "--eval_steps",
        "4",
        "--logging_steps",
        "2",
        "--per_device_train_batch_size",
        "16",
        "--output_dir",
        str(tmp_path),
        "--use_cpu",
        "true",
        "--disable_tqdm",
        "true",
        "--learning_rate",
        "1e-3",
        *extra,
    ]


@pytest.mark.filterwarnings("ignore::fitwatch.FitWatchWarning")  # a tiny BERT after 8 steps has findings
def test_tiny_bert_run_through_the_example_matches_a_manual_evaluation(
    hf_example, tmp_path, capsys, event_tags
):
    result = hf_example.main(_tiny_flags(tmp_path))
    cb, trainer = result.callback, result.trainer
    assert cb is not None and trainer.state.global_step == 8
    assert len(result.timer.step_seconds) == 8

    # fitwatch's last validation numbers against the trained model run by hand on the same tickets.
    val_set = trainer.eval_dataset
    model = trainer.model.eval()
    with torch.no_grad():
        batch = {
            k: torch.stack([val_set[i][k] for i in range(len(val_set))])
            for k in ("input_ids", "attention_mask")
        }
        preds = model(**batch).logits.argmax(-1).numpy()
    labels = np.array([int(val_set[i]["labels"]) for i in range(len(val_set))])
    last = {name: series[-1][1] for name, series in cb.history.items()}
    assert last["performance/accuracy/val"] == pytest.approx(accuracy_score(labels, preds), abs=1e-6)
    recalls = recall_score(labels, preds, labels=range(5), average=None, zero_division=0)
    for k, name in enumerate(hf_example.TICKET_CLASSES):  # names read from model.config.id2label
        assert last[f"per_class/recall/{name}/val"] == pytest.approx(recalls[k], abs=1e-6)

    # Validation is the latest 25% of tickets: the time-order check read the `timestamp` field and passed.
    assert min(val_set.timestamps) > max(trainer.train_dataset.timestamps)
    assert "FW-LEAK-TEMPORAL" not in {f.code for f in cb.findings}
    assert "time order: Temporal split holds: all 60 validation times are later" in _text(
        cb.run_dir, "8_data/report"
    )
    tags = event_tags(cb.run_dir)
    assert {"train/loss", "eval/loss", "performance/accuracy/val", "gap/loss", "optimizer/lr/group0"} <= tags[
        "scalars"
    ]
    assert "data/report" in " ".join(tags.get("tensors", set()))
    printed = capsys.readouterr().out
    assert (
        "median step" in printed
        and f"{len(cb.findings)} finding(s)" in printed
        and str(cb.run_dir) in printed
    )


@pytest.mark.filterwarnings("ignore::fitwatch.FitWatchWarning")
def test_random_split_of_time_stamped_tickets_is_reported(hf_example, tmp_path):
    result = hf_example.main(_tiny_flags(tmp_path, "--split", "random", "--max_steps", "4"))
    train_times, val_times = result.trainer.train_dataset.timestamps, result.trainer.eval_dataset.timestamps
    late_train = sum(t > min(val_times) for t in train_times)  # the reference count, from the raw timestamps
    assert late_train > 0
    (finding,) = [f for f in result.callback.findings if f.code == "FW-LEAK-TEMPORAL"]
    assert f"and {late_train} of {len(train_times)} training times are later" in _text(
        result.callback.run_dir, "8_data/report"
    )
    assert finding.severity.name.lower() in {"warning", "critical"}


def test_baseline_run_has_no_callback_and_no_fitwatch_tags(hf_example, tmp_path, event_tags):
    result = hf_example.main(_tiny_flags(tmp_path, "--with_fitwatch", "false", "--max_steps", "4"))
    assert result.callback is None and len(result.timer.step_seconds) == 4
    tags = event_tags(tmp_path)["scalars"]
    assert "train/loss" in tags and not any(
        t.startswith(("performance/", "per_class/", "calibration/")) for t in tags
    )
