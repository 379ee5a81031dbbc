"""Typed, keyword-only configuration shared by both adapters.

:class:`FitWatchConfig` is a frozen dataclass validated in ``__post_init__``. It loads from a
mapping (:meth:`FitWatchConfig.from_mapping`) or a YAML file (:meth:`FitWatchConfig.from_yaml`), so a
LightningCLI config, an HF example script and ``configs/fitwatch/*.yaml`` presets all build the same
object. Unknown keys and wrong types are rejected with a message naming the key and the source.

>>> cfg = FitWatchConfig.from_mapping({"n_bins": 10, "class_names": ["neg", "pos"]})
>>> cfg.n_bins, cfg.class_names
(10, ('neg', 'pos'))
>>> FitWatchConfig.from_mapping({"n_bin": 10}, source="full.yaml")
Traceback (most recent call last):
...
ValueError: Unknown key 'n_bin' in full.yaml; expected one of: ...
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from fitwatch import _validation as v

__all__ = ["DataChecksConfig", "FitWatchConfig", "resolve_config"]

_SERIES = re.compile(r"^[a-z][a-z0-9_]*/(train|val)$")

Task = Literal[
    "auto", "multiclass", "binary", "multilabel", "token_classification", "regression", "causal_lm", "seq2seq_lm"
]
PerClass = Literal["auto", "all", "worst", "off"]


@dataclass(frozen=True, kw_only=True)
class DataChecksConfig:
    """The data checks the callbacks run (see :mod:`fitwatch.data`).

    At fit start (HF: at the first evaluation if the evaluation set is not known before), on a bounded
    sample of both datasets read with ``dataset[i]`` under a saved-and-restored random state:
    duplicates between training and validation, label shift, and the time order when ``time_field`` is
    named. At each evaluation: the most confidently wrong validation samples. Optionally, suspected
    mislabeled training samples (area under the margin).

    Args:
        enabled: Run the fit-start checks at all.
        max_samples: Items read per split (evenly spaced); a finding says when a sample was used.
        time_budget_s: Wall-clock budget for reading items; what was read by then is checked.
        duplicates: Exact duplicates (normalised content digest) across the splits.
        near_duplicates: Also near duplicates of text and token ids (MinHash LSH, Jaccard >= 0.8).
        field: Field of mapping samples to compare (default: ``input_ids``, ``text``, ... or all non-label fields).
        label_field: Field holding the label (default: ``labels``/``label``/..., or the second tuple element).
        time_field: Field holding a timestamp; enables the temporal-split check.
        temporal_gap: Minimum gap between the last training and the first validation time (same unit).
        label_shift: Compare class proportions between the splits.
        fingerprint: Write ``fingerprint.json`` (versions, config and data hashes) in the log directory.
        confident_mistakes: Show the ``k`` most confidently wrong validation samples at each evaluation
            (and confidence histograms of correct vs wrong predictions); 0 turns it off.
        mislabels: Track area under the margin per training sample (needs a ``sample_id`` in the batches).
    """

    enabled: bool = True
    max_samples: int = 5000
    time_budget_s: float = 20.0
    duplicates: bool = True
    near_duplicates: bool = True
    field: str | None = None
    label_field: str | None = None
    time_field: str | None = None
    temporal_gap: float = 0.0
    label_shift: bool = True
    fingerprint: bool = True
    confident_mistakes: int = 10
    mislabels: bool = False

    def __post_init__(self) -> None:
        for name in ("enabled", "duplicates", "near_duplicates", "label_shift", "fingerprint", "mislabels"):
            v.check_bool(f"data_checks.{name}", getattr(self, name))
        v.check_positive_int("data_checks.max_samples", self.max_samples)
        v.check_positive_float("data_checks.time_budget_s", self.time_budget_s)
        v.check_non_negative_int("data_checks.confident_mistakes", self.confident_mistakes)
        for name in ("field", "label_field", "time_field"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"Expected `data_checks.{name}` to be a str or None, but got {value!r}.")

    @classmethod
    def parse(cls, value: Any, *, source: str = "the config") -> DataChecksConfig:
        """From a ``DataChecksConfig``, a bool (on with defaults / off) or a mapping of its fields."""
        if isinstance(value, DataChecksConfig):
            return value
        if isinstance(value, bool):
            # False turns off everything that reads the datasets, not only the fit-start checks.
            return cls() if value else cls(enabled=False, fingerprint=False, confident_mistakes=0, mislabels=False)
        if isinstance(value, Mapping):
            return _from_mapping(cls, value, source=f"`data_checks` in {source}")
        raise TypeError(
            f"Expected `data_checks` in {source} to be a bool or a mapping of data-check settings, but got {value!r}."
        )


@dataclass(frozen=True, kw_only=True)
class FitWatchConfig:
    """Every setting of the fitwatch callbacks.

    Args:
        class_names: Names of the classes in index order (a sequence, not one str); defaults to ``"0", "1", ...``.
            Names must be distinct and stay distinct as TensorBoard tags (``"a/b"`` and ``"a_b"`` would share one).
        num_classes: Number of classes; inferred from the logits when omitted. Must match
            ``class_names`` when both are given.
        task: ``"multiclass"`` (logits ``[..., C]``, integer targets), ``"binary"`` (one logit per sample,
            targets in {0, 1}), ``"multilabel"`` (logits and targets ``[N, C]``), ``"token_classification"``
            (logits ``[N, T, C]``, targets ``[N, T]``), ``"regression"`` (predictions and float targets of one
            shape), ``"causal_lm"`` (next-token logits ``[N, T, V]``, labels ``[N, T]`` shifted by one),
            ``"seq2seq_lm"`` (decoder logits aligned with labels), or ``"auto"`` to infer it from the model
            and the first batch (see :mod:`fitwatch.tasks`).
        ignore_index: Target value to skip (``-100`` as in PyTorch and Hugging Face); ``None`` skips nothing.
        n_bins: Equal-width bins for ECE, MCE, classwise ECE and the reliability diagram (Guo et al. 2017: 15);
            2 to 1000.
        log_every_n_steps: How often step diagnostics (loss, learning rates, norms) are read and written.
            ``None`` follows the trainer (Lightning ``log_every_n_steps``, HF ``logging_steps``).
        diag_every_n_steps: How often per-block update-to-weight ratios are measured; ``0`` turns them off.
            Each measurement keeps one temporary copy of the trainable parameters across an optimizer step.
        grad_norm: Measure the global gradient norm (before clipping) on logging steps.
        train_metrics: Accumulate per-class and calibration metrics from the training logits too
            (needed for the train-validation gap of accuracy and ECE).
        per_class: Which classes get per-class scalars on the dashboard: ``"all"``; ``"worst"``, the
            ``per_class_top_k`` with the lowest validation F1 at each evaluation; ``"off"``; or ``"auto"``
            (all up to 50 classes, else the worst). The history, ``history.json`` and the confusion
            matrix keep every class either way.
        per_class_top_k: How many classes ``"worst"`` (and ``"auto"`` beyond 50 classes) shows.
        confusion_matrix_max_classes: Largest class count for which the full confusion matrix is kept
            (memory grows as its square) and drawn.
        classwise_ece: Keep the per-class calibration bins for classwise ECE (``classes x n_bins`` sums).
        images: Draw the confusion matrix and reliability diagram at each validation.
        image_budget: The share of the run's wall time that drawing those images may take (``0.01``: 1%). An
            evaluation's images are drawn when the drawing so far plus this one stays within that share of the
            time since the run's first step; the last evaluation's are always drawn (at the end of the run).
            Scalars are written at every evaluation either way. ``None`` draws at every evaluation.
        gap_window: Number of validations the gap trend (Theil-Sen slope) looks back over.
        detectors: Per-detector settings by detector name, e.g. ``{"plateau": {"patience": 8}}``;
            ``{"plateau": {"enabled": False}}`` turns one off.
        warn: Emit findings as Python warnings (a ``FitWatchWarning`` subclass each).
        findings_file: File name of the JSON-lines findings log in the log directory (a plain name: no ``/``,
            ``\\`` or ``..``); ``None`` disables it.
        stop_on: Finding codes (``"FW-DIVERGENCE"``) or severities (``"critical"``) that stop training; one str
            is one code or severity.
            Empty by default: fitwatch never stops a run unless asked to.
        tag_prefix: Prefix for every TensorBoard tag (``"fitwatch/"`` groups them all under one section).
        data_checks: The data checks (:class:`DataChecksConfig`; ``False`` turns them off).
        metrics: Names of metrics the training code logs itself, mapped to fitwatch's series as
            ``"<metric>/<split>"`` (``{"my_val_metric": "loss/val"}``); used when no logits reach fitwatch. The
            usual names (``val_loss``, ``val/acc``, ``train_loss``, ...) are known without it
            (:data:`fitwatch.metrics.logged.KNOWN_NAMES`).
    """

    class_names: tuple[str, ...] | None = None
    num_classes: int | None = None
    task: Task = "auto"
    ignore_index: int | None = -100
    n_bins: int = 15
    log_every_n_steps: int | None = None
    diag_every_n_steps: int = 50
    grad_norm: bool = True
    train_metrics: bool = True
    per_class: PerClass = "auto"
    per_class_top_k: int = 20
    confusion_matrix_max_classes: int = 50
    classwise_ece: bool = True
    images: bool = True
    image_budget: float | None = 0.01
    gap_window: int = 5
    detectors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    warn: bool = True
    findings_file: str | None = "findings.jsonl"
    stop_on: tuple[str, ...] = ()
    tag_prefix: str = ""
    data_checks: DataChecksConfig | bool = field(default_factory=DataChecksConfig)
    metrics: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_checks", DataChecksConfig.parse(self.data_checks))
        if self.class_names is not None:
            object.__setattr__(self, "class_names", _validated_class_names(self.class_names))
        if self.num_classes is not None:
            v.check_positive_int("num_classes", self.num_classes)
            if self.class_names is not None and len(self.class_names) != self.num_classes:
                raise ValueError(
                    f"Expected `class_names` to have `num_classes`={self.num_classes} entries, "
                    f"but got {len(self.class_names)}."
                )
        v.check_choice("task", self.task, typing.get_args(Task))
        if self.ignore_index is not None and (isinstance(self.ignore_index, bool) or not isinstance(self.ignore_index, int)):
            raise TypeError(f"Expected `ignore_index` to be an int or None, but got {self.ignore_index!r}.")
        v.check_positive_int("n_bins", self.n_bins)
        v.check_int_in_range("n_bins", self.n_bins, 2, 1000)  # one bin has no calibration; 1000 is past any sample
        if self.log_every_n_steps is not None:
            v.check_positive_int("log_every_n_steps", self.log_every_n_steps)
        v.check_non_negative_int("diag_every_n_steps", self.diag_every_n_steps)
        for name in ("grad_norm", "train_metrics", "classwise_ece", "images", "warn"):
            v.check_bool(name, getattr(self, name))
        if self.image_budget is not None:
            v.check_fraction("image_budget", self.image_budget)
        v.check_choice("per_class", self.per_class, typing.get_args(PerClass))
        v.check_positive_int("per_class_top_k", self.per_class_top_k)
        v.check_non_negative_int("confusion_matrix_max_classes", self.confusion_matrix_max_classes)
        v.check_positive_int("gap_window", self.gap_window)
        if self.gap_window < 3:
            raise ValueError(f"Expected `gap_window` to be at least 3 (a trend needs 3 points), but got {self.gap_window}.")
        if not isinstance(self.detectors, Mapping):
            raise TypeError(f"Expected `detectors` to be a mapping of detector name to settings, but got {self.detectors!r}.")
        object.__setattr__(self, "detectors", {str(k): dict(val or {}) for k, val in self.detectors.items()})
        if self.findings_file is not None:
            _check_file_name("findings_file", self.findings_file)
        stop_on = (self.stop_on,) if isinstance(self.stop_on, str) else tuple(self.stop_on)
        if len(stop_on) > 1 and all(isinstance(c, str) and len(c) == 1 for c in stop_on):
            # One code passed as a plain str that a caller split into characters with tuple(): no code or
            # severity is one character long, so the string it came from is what was meant.
            stop_on = ("".join(stop_on),)
        object.__setattr__(self, "stop_on", _validated_stop_on(stop_on))
        if not isinstance(self.tag_prefix, str):
            raise TypeError(f"Expected `tag_prefix` to be a str, but got {self.tag_prefix!r}.")
        if not isinstance(self.metrics, Mapping):
            raise TypeError(f"Expected `metrics` to be a mapping of logged name to '<metric>/<split>', but got {self.metrics!r}.")
        for name, target in self.metrics.items():
            if not isinstance(name, str) or not isinstance(target, str) or not _SERIES.match(target):
                raise ValueError(
                    f"Expected `metrics` to map a logged name to '<metric>/<split>' with split 'train' or 'val' "
                    f"(e.g. 'loss/val'), but got {name!r}: {target!r}."
                )
        object.__setattr__(self, "metrics", dict(self.metrics))

    def replace(self, **changes: Any) -> FitWatchConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-safe dict that :meth:`from_mapping` reads back."""
        out = dataclasses.asdict(self)
        out["class_names"] = None if self.class_names is None else list(self.class_names)
        out["stop_on"] = list(self.stop_on)
        out["data_checks"] = dataclasses.asdict(self.data_checks)
        out["metrics"] = dict(self.metrics)
        return out

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "the config") -> FitWatchConfig:
        """Build from a mapping such as a parsed YAML section.

        Raises:
            ValueError: On a key that is not a field (naming the key and ``source``) or a bad value.
            TypeError: On a value of the wrong type (naming the key and ``source``).
        """
        return _from_mapping(cls, data, source=source)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], *, section: str | None = None) -> FitWatchConfig:
        """Load from a YAML file, optionally from one top-level ``section`` (such as ``fitwatch``)."""
        import yaml

        path = Path(path)
        try:
            with open(path, encoding="utf-8") as fh:  # a stream: YAML errors then name the file, not "<unicode string>"
                data = yaml.safe_load(fh) or {}
        except FileNotFoundError:
            raise FileNotFoundError(
                f"Expected `config` to be an existing YAML file, but {str(path)!r} does not exist."
            ) from None
        except UnicodeDecodeError as err:
            raise ValueError(f"Expected `config` {str(path)!r} to be a UTF-8 YAML file, but it is not ({err}).") from None
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            line = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
            problem = getattr(err, "problem", None) or str(err)
            raise ValueError(
                f"Expected `config` {str(path)!r} to be valid YAML, but it is not{line}: {problem}."
            ) from None
        if section is not None:
            if not isinstance(data, Mapping) or section not in data:
                raise ValueError(f"Expected a top-level {section!r} section in {path}, but found none.")
            data = data[section] or {}
        return cls.from_mapping(data, source=str(path))


def resolve_config(config: FitWatchConfig | Mapping[str, Any] | str | os.PathLike[str] | None, **explicit: Any) -> FitWatchConfig:
    """The config an adapter runs with: ``config`` (object, mapping or YAML path) with the explicitly
    passed constructor arguments (those not ``None``) applied on top.

    >>> resolve_config({"n_bins": 10}, n_bins=None, class_names=["a", "b"]).class_names
    ('a', 'b')
    """
    if config is None:
        base = FitWatchConfig()
    elif isinstance(config, FitWatchConfig):
        base = config
    elif isinstance(config, Mapping):
        base = FitWatchConfig.from_mapping(config, source="`config`")
    elif isinstance(config, (str, os.PathLike)):
        base = FitWatchConfig.from_yaml(config)
    else:
        raise TypeError(
            f"Expected `config` to be a FitWatchConfig, a mapping or a YAML path, but got {type(config).__name__}."
        )
    changes = {k: val for k, val in explicit.items() if val is not None}
    return base.replace(**changes) if changes else base


def _from_mapping(cls: Any, data: Mapping[str, Any], *, source: str) -> Any:
    if not isinstance(data, Mapping):
        raise TypeError(f"Expected {source} to hold a mapping of fitwatch settings, but got {type(data).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise ValueError(f"Unknown key {key!r} in {source}; expected one of: {', '.join(sorted(fields))}.")
        if key == "data_checks":
            kwargs[key] = DataChecksConfig.parse(value, source=source)
            continue
        if not _matches(value, hints[key]):
            raise TypeError(
                f"Expected {key!r} in {source} to be {_describe(hints[key])}, but got {type(value).__name__} {value!r}."
            )
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{err} (in {source})") from None


def _validated_class_names(class_names: Any) -> tuple[str, ...]:
    """Names as a tuple of str: a sequence (not a str), not empty, whose names and TensorBoard tags are distinct."""
    from fitwatch.sinks.tags import sanitize

    if isinstance(class_names, (str, bytes)) or not isinstance(class_names, Sequence):
        raise TypeError(
            f"Expected `class_names` to be a sequence of str (such as ['neg', 'pos']), but got "
            f"{type(class_names).__name__} {class_names!r}."
        )
    names = tuple(str(n) for n in class_names)
    if len(names) == 0:
        raise ValueError("Expected `class_names` to name at least one class, but got an empty sequence.")
    seen: dict[str, str] = {}
    for name in names:
        if name in seen.values():
            raise ValueError(f"Expected `class_names` to be unique, but got {name!r} twice in {list(names)}.")
        key = sanitize(name)
        if key in seen:
            raise ValueError(
                f"Expected `class_names` to give distinct TensorBoard tags, but {seen[key]!r} and {name!r} both "
                f"become {key!r}; rename one of them."
            )
        seen[key] = name
    return names


def _check_file_name(name: str, value: Any) -> str:
    """A plain file name in the log directory: no directory part, no ``..``, nothing that leads outside."""
    if not isinstance(value, str):
        raise TypeError(f"Expected `{name}` to be a file name (str) or None, but got {type(value).__name__} {value!r}.")
    separators = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if not value.strip() or value in (".", "..") or any(sep in value for sep in separators) or "\0" in value:
        raise ValueError(
            f"Expected `{name}` to be a plain file name in the log directory (no '/', '\\' or '..'), "
            f"but got {value!r}."
        )
    return value


def _validated_stop_on(stop_on: tuple[Any, ...]) -> tuple[str, ...]:
    from fitwatch.findings import CATALOGUE, Severity

    out = []
    for item in stop_on:
        if not isinstance(item, str):
            raise TypeError(f"Expected `stop_on` to hold finding codes or severities, but got {item!r}.")
        if item in CATALOGUE:
            out.append(item)
            continue
        try:
            out.append(Severity.parse(item).name.lower())
        except ValueError:
            raise ValueError(
                f"Expected `stop_on` to hold finding codes (e.g. 'FW-DIVERGENCE') or severities "
                f"('info', 'warning', 'critical'), but got {item!r}."
            ) from None
    return tuple(out)


def _matches(value: Any, hint: Any) -> bool:
    """Whether a YAML-loaded value fits a field's annotation (lists stand for tuples)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (tuple, Sequence) or hint is tuple:
        return isinstance(value, (list, tuple)) or (isinstance(value, str) and hint is not tuple)
    if origin in (Mapping, dict):
        return isinstance(value, Mapping)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (tuple, Sequence):
        return "a list"
    if origin in (Mapping, dict):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))
