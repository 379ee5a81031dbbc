"""Run one scenario with FitWatch attached, and read what it found.

:func:`run_scenario` trains a scenario for real (Lightning on the CPU, deterministic given the seed) and
returns a :class:`ScenarioResult`: the findings, the metric history, each code's first appearance on the
evaluation axis, the fault's onset on the same axis, and the timing. Everything in it is derived from
FitWatch's own history (one ``findings/<code>`` track per code), so a run resumed from its log directory
gives the same result as one that ran through.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torch.utils.data import DataLoader, Subset, TensorDataset

from fitwatch import _validation as v
from fitwatch.findings import Finding, Severity
from fitwatch.lightning import FitWatch
from fitwatch.scenarios.data import load_task
from fitwatch.scenarios.faults import build_injection
from fitwatch.scenarios.models import LossOnlyModule, ScenarioModule, build_network
from fitwatch.scenarios.registry import SECOND_VAL_NOISE, Scenario, get_scenario
from fitwatch.sinks.tags import tag

__all__ = [
    "FITWATCH_SETTINGS",
    "LOG_EVERY_N_STEPS",
    "Raised",
    "ScenarioResult",
    "evaluation_at",
    "run_scenario",
    "trim_padding",
]

#: FitWatch settings of every scenario run. The runs are a few hundred optimizer steps long, so the per-block
#: update ratios are measured every 10 steps rather than every 50 (the default sized for fine-tuning runs of
#: thousands of steps); images are off because drawing them costs more than these runs' training.
FITWATCH_SETTINGS: Mapping[str, Any] = {"images": False, "diag_every_n_steps": 10, "warn": False}
#: The Trainer's ``log_every_n_steps`` (Lightning's default of 50 is more than an epoch of the small sets).
LOG_EVERY_N_STEPS = 10
#: Per-evaluation series kept in the result, by name, with the tag each is read from.
SERIES = {
    "val_loss": tag("performance", "loss", split="val"),
    "train_loss": tag("performance", "loss", split="train"),
    "val_accuracy": tag("performance", "accuracy", split="val"),
    "val_macro_f1": tag("performance", "macro_f1", split="val"),
    "val_nll": tag("calibration", "nll", split="val"),
    "val_ece": tag("calibration", "ece", split="val"),
    # Logged only when validation has training duplicates: the accuracy on the tickets with no copy in training.
    "val_clean_accuracy": tag("performance", "accuracy", split="val_clean"),
}


@dataclass(frozen=True)
class Raised:
    """How one finding code showed up in a run.

    Attributes:
        code: The finding code.
        severity: The highest severity it reached.
        step: Global step at which it was first raised.
        evaluation: The evaluation (0-based) by which it was known: the first whose step is at or after it.
        warning_step: First step at which it was at warning level or above (``None`` if never).
    """

    code: str
    severity: Severity
    step: int
    evaluation: int
    warning_step: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.name.lower(),
            "step": self.step,
            "evaluation": self.evaluation,
            "warning_step": self.warning_step,
        }


@dataclass(frozen=True, eq=False)
class ScenarioResult:
    """What one scenario run gave.

    Attributes:
        scenario: The scenario.
        seed: Its seed.
        epochs: Epochs trained.
        steps: Optimizer steps trained.
        evaluation_steps: Global step of each evaluation.
        series: Per-evaluation series (:data:`SERIES` names, plus ``lr``, the first param group's learning
            rate at each evaluation), aligned with ``evaluation_steps``; NaN where a value is missing.
        raised: Every code raised, by code.
        findings: The findings' final states (FitWatch's ``findings``).
        history: FitWatch's whole history ``{tag: [(step, value), ...]}``.
        onset: The evaluation of the fault's onset (``None`` for a healthy run, or when it did not happen).
        onset_step: The step at which an injected fault took effect, when there is one.
        wall_s: Seconds spent in ``Trainer.fit``.
        log_dir: Where the run wrote its files, when it had a directory.
        data: What the data faults did, in numbers (empty for a run without one): with train/validation
            duplicates, ``duplicate_fraction`` of validation and the final ``val_accuracy`` against
            ``val_clean_accuracy`` (the validation samples with no copy in training); with flipped labels and
            area under the margin, ``flipped``, ``listed`` (suspects the finding names),
            ``precision_at_listed`` and ``precision_at_flipped`` (the share of flipped labels among the
            ``flipped`` lowest-AUM samples); with a broken temporal split, ``val_not_later_fraction``.
    """

    scenario: Scenario
    seed: int
    epochs: int
    steps: int
    evaluation_steps: tuple[int, ...]
    series: Mapping[str, tuple[float, ...]]
    raised: Mapping[str, Raised]
    findings: tuple[Finding, ...]
    history: Mapping[str, list[tuple[int, float]]]
    onset: int | None
    onset_step: int | None
    wall_s: float
    log_dir: Path | None
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """Codes that reached warning level or above."""
        return [c for c, r in self.raised.items() if r.severity >= Severity.WARNING]

    @property
    def detected(self) -> bool:
        """Whether each group of expected codes had one code raised (``True`` for a healthy run)."""
        return all(any(c in self.raised for c in group) for group in self.scenario.expected)

    @property
    def detection(self) -> int | None:
        """The evaluation at which the first expected code was raised (``None`` if none was)."""
        hits = [
            self.raised[c].evaluation for group in self.scenario.expected for c in group if c in self.raised
        ]
        return min(hits) if hits else None

    @property
    def delay(self) -> int | None:
        """Evaluations from the onset to the detection."""
        if self.detection is None or self.onset is None:
            return None
        return self.detection - self.onset

    @property
    def false_alarms(self) -> list[str]:
        """Warning-level codes that the scenario does not expect or accept (every one, on a healthy run)."""
        right = {c for group in self.scenario.expected for c in group} | set(self.scenario.accepted)
        return [c for c in self.warnings if c not in right]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (no history): codes, onset, detection, series, timing."""
        return {
            "scenario": self.scenario.name,
            "task": self.scenario.task,
            "seed": self.seed,
            "healthy": self.scenario.healthy,
            "expected": [list(g) for g in self.scenario.expected],
            "detected": self.detected,
            "raised": {c: r.to_dict() for c, r in self.raised.items()},
            "false_alarms": self.false_alarms,
            "onset": self.onset,
            "onset_rule": self.scenario.onset,
            "onset_step": self.onset_step,
            "detection": self.detection,
            "delay": self.delay,
            "epochs": self.epochs,
            "steps": self.steps,
            "evaluation_steps": list(self.evaluation_steps),
            "series": {k: [None if math.isnan(x) else x for x in xs] for k, xs in self.series.items()},
            "wall_s": round(self.wall_s, 2),
            "data": dict(self.data),
        }


def trim_padding(items: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Stack ticket items and cut the padding columns no item of the batch uses (dynamic padding).

    >>> item = {"input_ids": torch.tensor([5, 6, 0, 0]), "attention_mask": torch.tensor([1, 1, 0, 0]),
    ...         "labels": torch.tensor(1)}
    >>> batch = trim_padding([item])
    >>> batch["input_ids"].tolist(), batch["labels"].tolist()
    ([[5, 6]], [1])
    """
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    width = int(batch["attention_mask"].sum(1).max())
    for key in ("input_ids", "attention_mask"):
        batch[key] = batch[key][:, :width]
    return batch


def evaluation_at(step: int, evaluation_steps: Sequence[int]) -> int:
    """The first evaluation (0-based) whose step is at or after ``step``; the last one when none is.

    >>> evaluation_at(1, [42, 84]), evaluation_at(84, [42, 84]), evaluation_at(90, [42, 84])
    (0, 1, 1)
    """
    for i, s in enumerate(evaluation_steps):
        if s >= step:
            return i
    return max(len(evaluation_steps) - 1, 0)


@contextlib.contextmanager
def _run_settings(threads: int | None) -> Iterator[None]:
    """``threads`` torch threads and no Lightning banner lines during a run; both restored afterwards."""
    lightning_log = logging.getLogger("lightning.pytorch")
    level, before = lightning_log.level, torch.get_num_threads()
    lightning_log.setLevel(logging.WARNING)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        lightning_log.setLevel(level)


def run_scenario(
    scenario: str | Scenario,
    *,
    seed: int | None = None,
    epochs: int | None = None,
    quick: bool = False,
    log_dir: str | Path | None = None,
    resume: bool = True,
    progress_bar: bool = False,
    callbacks: Sequence[Callback] = (),
    threads: int | None = 1,
    fitwatch: Mapping[str, Any] | None = None,
) -> ScenarioResult:
    """Train one scenario with FitWatch attached and return what it found.

    Args:
        scenario: A :class:`~fitwatch.scenarios.registry.Scenario` or the name of one.
        seed: The seed (default: the scenario's first). Seeds the split, the data faults, the
            initialization and the shuffling; runs are deterministic given it.
        epochs: Epochs to train (default: the scenario's, or its ``quick_epochs`` with ``quick``).
        quick: Train the scenario's short version.
        log_dir: Directory for TensorBoard files, ``findings.jsonl`` and checkpoints (``<log_dir>/last.ckpt``
            after every epoch). ``None`` writes nothing that outlives the run.
        resume: With a ``log_dir`` that holds ``last.ckpt``, continue from it (FitWatch's state included).
        progress_bar: Show Lightning's progress bar.
        callbacks: More Lightning callbacks (a progress display of your own, for example).
        threads: torch threads during the run (restored after); ``None`` leaves them as they are.
        fitwatch: FitWatch settings over :data:`FITWATCH_SETTINGS` (``fitwatch demo`` turns images and Python
            warnings back on).

    Raises:
        ValueError: If the scenario is unknown or an argument is out of range.
        TypeError: If an argument has the wrong type.
    """
    spec = get_scenario(scenario) if isinstance(scenario, str) else scenario
    seed = spec.seeds[0] if seed is None else v.check_non_negative_int("seed", seed)
    epochs = (
        (spec.quick_epochs if quick else spec.epochs)
        if epochs is None
        else v.check_positive_int("epochs", epochs)
    )
    if threads is not None:
        v.check_positive_int("threads", threads)
    directory = None if log_dir is None else Path(log_dir)
    # Without a log directory, FitWatch's files (TensorBoard events, findings.jsonl) go to a scratch directory
    # removed after the run, rather than to Lightning's default of the working directory.
    with _run_settings(threads), tempfile.TemporaryDirectory(prefix="fitwatch-scenario-") as scratch:
        root = directory if directory is not None else Path(scratch)
        pl.seed_everything(seed, verbose=False)
        data = load_task(
            spec.task,
            seed=seed,
            train_size=spec.train_size,
            class_shares=spec.class_shares,
            label_noise=spec.label_noise,
            duplicate_fraction=spec.duplicate_fraction,
            split_by_time=spec.split_by_time,
        )
        module = (LossOnlyModule if spec.loss_only else ScenarioModule)(
            build_network(data, spec.model), spec.recipe
        )
        collate = trim_padding if data.token_ids else None
        train = DataLoader(
            data.train,
            batch_size=spec.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
            collate_fn=collate,
        )
        val = DataLoader(data.val, batch_size=256, collate_fn=collate)
        val_loaders: Any = (
            [val, DataLoader(_second_val(data.val, seed), batch_size=256, collate_fn=collate)]
            if spec.second_val
            else val
        )
        config = {**FITWATCH_SETTINGS, **(fitwatch or {})}
        if spec.data_checks:
            config["data_checks"] = dict(spec.data_checks)
        watch = FitWatch(class_names=data.class_names, config=config, log_dir=root)
        injection = build_injection(spec.injection, **spec.injection_args) if spec.injection else None
        extra: list[Callback] = [watch, *([injection] if injection else []), *callbacks]
        if directory is not None:
            extra.append(ModelCheckpoint(dirpath=directory, save_last=True, save_top_k=0))
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            devices=1,
            deterministic=True,
            log_every_n_steps=LOG_EVERY_N_STEPS,
            accumulate_grad_batches=spec.accumulate,
            num_sanity_val_steps=0,
            logger=TensorBoardLogger(directory, name="", version="") if directory is not None else False,
            callbacks=extra,
            enable_checkpointing=directory is not None,
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            default_root_dir=root,
        )
        last = directory / "last.ckpt" if directory is not None else None
        ckpt_path = str(last) if resume and last is not None and last.is_file() else None
        started = time.perf_counter()
        if spec.validate_first and ckpt_path is None:
            trainer.validate(module, val, verbose=False)  # the untrained baseline, on the same Trainer
        trainer.fit(module, train, val_loaders, ckpt_path=ckpt_path)
        wall = time.perf_counter() - started
    onset_step = module.decayed_step if spec.onset == "lr_decayed" else getattr(injection, "onset_step", None)
    result = _result(spec, seed, epochs, trainer.global_step, watch, onset_step, wall, directory)
    return dataclasses.replace(result, data=_data_facts(result, data.flipped_ids, _aum_scores(watch)))


def _second_val(dataset: Any, seed: int) -> Any:
    """The second validation set of a ``second_val`` scenario: the tabular features with Gaussian noise
    (:data:`~fitwatch.scenarios.registry.SECOND_VAL_NOISE`, drawn once from the seed), or every other ticket."""
    if isinstance(dataset, TensorDataset):
        x, *rest = dataset.tensors
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 10_000), dtype=x.dtype)
        return TensorDataset(x + SECOND_VAL_NOISE * noise, *rest)
    return Subset(dataset, range(0, len(dataset), 2))


def _result(
    spec: Scenario,
    seed: int,
    epochs: int,
    steps: int,
    watch: FitWatch,
    onset_step: int | None,
    wall: float,
    directory: Path | None,
) -> ScenarioResult:
    history = {k: list(pts) for k, pts in watch.history.items()}
    evaluation_steps = tuple(s for s, _ in history.get(SERIES["val_loss"], []))
    series = {name: _aligned(history.get(t, []), evaluation_steps) for name, t in SERIES.items()}
    lr_tags = sorted(t for t in history if t.startswith(tag("optimizer", "lr") + "/"))
    series["lr"] = _lr_at(history.get(lr_tags[0], []) if lr_tags else [], evaluation_steps)
    raised = _raised(history, evaluation_steps)
    return ScenarioResult(
        scenario=spec,
        seed=seed,
        epochs=epochs,
        steps=steps,
        evaluation_steps=evaluation_steps,
        series=series,
        raised=raised,
        findings=tuple(watch.findings),
        history=history,
        onset=_onset(spec, series, evaluation_steps, onset_step),
        onset_step=onset_step,
        wall_s=wall,
        log_dir=directory,
    )


def _aligned(points: Sequence[tuple[int, float]], steps: Sequence[int]) -> tuple[float, ...]:
    by_step = dict(points)
    return tuple(float(by_step.get(s, math.nan)) for s in steps)


def _lr_at(points: Sequence[tuple[int, float]], steps: Sequence[int]) -> tuple[float, ...]:
    """The learning rate last logged at or before each evaluation step."""
    out = []
    for s in steps:
        before = [value for at, value in points if at <= s]
        out.append(float(before[-1]) if before else math.nan)
    return tuple(out)


def _raised(
    history: Mapping[str, Sequence[tuple[int, float]]], evaluation_steps: Sequence[int]
) -> dict[str, Raised]:
    prefix = tag("findings", "x")[:-1]
    raised = {}
    for name, points in history.items():
        code = name[len(prefix) :] if name.startswith(prefix) else ""
        if not code.startswith("FW-") or not points:
            continue
        first = min(s for s, _ in points)
        severity = Severity(int(max(val for _, val in points)))
        warned = [s for s, val in points if val >= int(Severity.WARNING)]
        raised[code] = Raised(
            code=code,
            severity=severity,
            step=first,
            evaluation=evaluation_at(first, evaluation_steps),
            warning_step=min(warned) if warned else None,
        )
    return dict(sorted(raised.items(), key=lambda kv: (kv[1].step, kv[0])))


def _onset(
    spec: Scenario,
    series: Mapping[str, Sequence[float]],
    evaluation_steps: Sequence[int],
    onset_step: int | None,
) -> int | None:
    if spec.onset == "none" or not evaluation_steps:
        return None
    if spec.onset == "fit_start":
        return 0
    if spec.onset == "fit_end":
        return len(evaluation_steps) - 1
    if spec.onset in ("min_val_loss", "min_val_nll"):
        values = series["val_loss" if spec.onset == "min_val_loss" else "val_nll"]
        finite = [(x, i) for i, x in enumerate(values) if math.isfinite(x)]
        return min(finite)[1] if finite else None
    # "lr_decayed" (the schedule's first step below 1% of its peak) and "injection": a step
    return None if onset_step is None else evaluation_at(onset_step, evaluation_steps)


def _aum_scores(watch: FitWatch) -> Tensor | None:
    """Area under the margin of every training sample id, when the run tracked it (``data_checks.mislabels``).

    The finding names the lowest 20; precision at the number of flipped labels needs the whole ranking, which
    only FitWatch's tracker holds.
    """
    margins = watch.observer.margins
    return None if margins is None else margins.scores().detach().cpu()


def _last(result: ScenarioResult, name: str) -> float | None:
    points = result.history.get(name)
    return float(points[-1][1]) if points else None


def _loop_facts(result: ScenarioResult) -> dict[str, Any]:
    """What a loop shape left in FitWatch's history: with accumulation, the final training loss next to the NLL
    of the same batches' logits (equal when the loss is not divided by the accumulation); with a second
    validation set, its final loss next to the primary one's; with a validation before the fit, its loss."""
    spec, facts = result.scenario, {}
    if spec.accumulate > 1:
        facts["train_loss"] = _last(result, tag("performance", "loss", split="train"))
        facts["train_nll"] = _last(result, tag("calibration", "nll", split="train"))
    if spec.second_val:
        facts["val_loss"] = _last(result, tag("performance", "loss", split="val"))
        facts["val_1_loss"] = _last(result, tag("performance", "loss", split="val_1"))
    if spec.validate_first:
        facts["eval_loss"] = _last(result, tag("performance", "loss", split="eval"))
        first = result.history.get(tag("performance", "loss", split="val"))
        facts["first_val_loss"] = float(first[0][1]) if first else None
    return facts


def _data_facts(result: ScenarioResult, flipped_ids: Sequence[int], aum: Tensor | None) -> dict[str, Any]:
    """What the run's data faults did, in numbers (see :attr:`ScenarioResult.data`)."""
    facts: dict[str, Any] = _loop_facts(result)
    findings = {f.code: f for f in result.findings}
    duplicates = findings.get("FW-LEAK-DUPLICATES")
    if duplicates is not None:
        facts["duplicate_fraction"] = duplicates.evidence.get("fraction")
        for name in ("val_accuracy", "val_clean_accuracy"):
            values = [x for x in result.series[name] if math.isfinite(x)]
            facts[name] = values[-1] if values else None
    temporal = findings.get("FW-LEAK-TEMPORAL")
    if temporal is not None:
        facts["val_not_later_fraction"] = temporal.evidence.get("fraction")
    if flipped_ids:
        flipped = set(flipped_ids)
        facts["flipped"] = len(flipped)
        suspects = findings.get("FW-MISLABEL-SUSPECTS")
        listed = [int(i) for i, _ in suspects.evidence.get("suspects", [])] if suspects is not None else []
        facts["listed"] = len(listed)
        facts["precision_at_listed"] = sum(i in flipped for i in listed) / len(listed) if listed else None
        if aum is not None and aum.numel():
            seen = (~aum.isnan()).nonzero().flatten()
            ranked = seen[aum[seen].argsort()][: len(flipped)].tolist()
            facts["precision_at_flipped"] = sum(i in flipped for i in ranked) / len(flipped)
    return facts
