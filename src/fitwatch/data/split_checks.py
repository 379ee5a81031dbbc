"""The data checks the callbacks run at fit start: duplicates, label shift and time order between the
training and validation sets, and for language-model items a prompt trained by mistake, on a bounded
sample, without touching the training's random state.

:func:`check_splits` reads items straight from the two datasets (``dataset[i]``, evenly spaced indices
when a set is larger than ``max_samples``), within a time budget, and returns the findings plus what the
callbacks need afterwards (which validation indices are duplicated, a text report).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fitwatch.config import DataChecksConfig
from fitwatch.data.completion import check_completion_mask
from fitwatch.data.duplicates import find_duplicates
from fitwatch.data.label_shift import label_shift
from fitwatch.data.temporal import check_temporal_split
from fitwatch.findings import Finding

__all__ = ["SampledSplit", "SplitCheckResult", "check_splits", "fingerprint_items", "preserved_rng", "sample_items"]

#: Keys tried, in order, for the label and the content of mapping samples.
LABEL_KEYS = ("labels", "label", "targets", "target", "y")
CONTENT_KEYS = ("input_ids", "text", "sentence", "tokens", "x", "inputs", "image", "pixel_values")
#: Keys that never belong to a sample's content (labels, ids, masks that only mirror the content).
NON_CONTENT_KEYS = (*LABEL_KEYS, "sample_id", "idx", "index", "id", "attention_mask", "token_type_ids")


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's (CPU and CUDA) random states afterwards.

    Reading ``dataset[i]`` may draw random numbers (augmentation); watching a run must not change it.
    """
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@dataclass
class SampledSplit:
    """Items read from one dataset: ``items[j]`` is ``dataset[indices[j]]``."""

    items: list[Any]
    indices: list[int]
    size: int

    @property
    def complete(self) -> bool:
        return len(self.items) == self.size


def sample_items(dataset: Any, max_samples: int, deadline: float) -> SampledSplit:
    """Up to ``max_samples`` items, evenly spaced over the dataset, read until ``deadline``
    (``time.monotonic()``). An iterable dataset without ``len`` is read from its start."""
    try:
        size = len(dataset)
    except TypeError:
        items = []
        for item in dataset:
            if len(items) >= max_samples or time.monotonic() > deadline:
                break
            items.append(item)
        return SampledSplit(items, list(range(len(items))), len(items))
    step = max(size / max_samples, 1.0)
    wanted = sorted({int(i * step) for i in range(min(size, max_samples))})
    items, indices = [], []
    for i in wanted:
        if time.monotonic() > deadline:
            break
        items.append(dataset[i])
        indices.append(i)
    return SampledSplit(items, indices, size)


@dataclass
class SplitCheckResult:
    """What :func:`check_splits` found."""

    findings: list[Finding] = field(default_factory=list)
    duplicate_val_indices: frozenset[int] = frozenset()
    val_sampled: SampledSplit | None = None
    report: str = ""
    errors: list[str] = field(default_factory=list)


def check_splits(
    train_dataset: Any,
    val_dataset: Any,
    config: DataChecksConfig,
    *,
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = -100,
    step: int = 0,
    epoch: int | None = None,
) -> SplitCheckResult:
    """Duplicates, label shift and (with ``config.time_field``) the temporal split on a bounded sample;
    with language-model items (``input_ids`` and ``labels`` of one length), the completion-only mask
    (:mod:`fitwatch.data.completion`) instead of the label shift, which means nothing over a vocabulary.

    Each check that fails on odd data is reported in ``errors`` and skipped; the others still run.
    """
    # Reading items (augmentation) and the checks themselves (MinHash draws from Python's `random`) must
    # leave every random state as it was.
    with preserved_rng():
        return _check_splits(train_dataset, val_dataset, config, class_names=class_names, ignore_index=ignore_index,
                             step=step, epoch=epoch)


def _check_splits(
    train_dataset: Any,
    val_dataset: Any,
    config: DataChecksConfig,
    *,
    class_names: Sequence[str] | None,
    ignore_index: int | None,
    step: int,
    epoch: int | None,
) -> SplitCheckResult:
    result = SplitCheckResult()
    deadline = time.monotonic() + config.time_budget_s
    train = sample_items(train_dataset, config.max_samples, deadline)
    val = sample_items(val_dataset, config.max_samples, deadline)
    result.val_sampled = val
    sampled = not (train.complete and val.complete)
    note = (
        f" (on a sample: {len(train.items)} of {train.size} training and {len(val.items)} of {val.size} validation items)"
        if sampled
        else ""
    )
    lines = [f"Data checks on {len(train.items)} training and {len(val.items)} validation items{note}."]

    def attempt(name: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as err:  # noqa: BLE001  (odd data skips one check, never the run)
            result.errors.append(f"{name}: {type(err).__name__}: {err}")
            lines.append(f"- {name}: skipped ({type(err).__name__}: {err})")

    def duplicates() -> None:
        train_c = [_content(x, config.field) for x in train.items]
        val_c = [_content(x, config.field) for x in val.items]
        near = config.near_duplicates and bool(val_c) and isinstance(val_c[0], (str, list))
        report = find_duplicates(train_c, val_c, near=near)
        result.duplicate_val_indices = frozenset(val.indices[j] for j in report.val_indices)
        lines.append(f"- duplicates: {report}")
        _add(result, report.to_finding(step=step, epoch=epoch), note)

    def shift() -> None:
        train_y = [_label(x, config.label_field) for x in train.items]
        val_y = [_label(x, config.label_field) for x in val.items]
        report = label_shift(train_y, val_y, class_names=list(class_names) if class_names else None, ignore_index=ignore_index)
        lines.append(f"- label shift: {report}")
        _add(result, report.to_finding(step=step, epoch=epoch), note)

    def temporal() -> None:
        assert config.time_field is not None
        train_t = [_field(x, config.time_field) for x in train.items]
        val_t = [_field(x, config.time_field) for x in val.items]
        report = check_temporal_split(train_t, val_t, gap=config.temporal_gap)
        lines.append(f"- time order: {report}")
        _add(result, report.to_finding(step=step, epoch=epoch), note)

    def completion() -> None:
        ids, labels, masks = _lm_fields(train.items)
        report = check_completion_mask(
            ids, labels, masks, ignore_index=ignore_index if ignore_index is not None else -100
        )
        lines.append(f"- completion mask: {report}")
        _add(result, report.to_finding(step=step, epoch=epoch), note)

    language_model = _is_lm_items(train.items)
    if config.duplicates:
        attempt("duplicates", duplicates)
    if language_model:
        attempt("completion mask", completion)
        if config.label_shift:
            lines.append("- label shift: skipped (language-model labels are the input tokens, not classes)")
    elif config.label_shift:
        attempt("label shift", shift)
    if config.time_field is not None:
        attempt("time order", temporal)
    result.report = "\n".join(lines)
    return result


def _token_list(value: Any) -> list[int] | None:
    if isinstance(value, torch.Tensor):
        return value.reshape(-1).tolist() if value.ndim == 1 and not value.is_floating_point() else None
    if isinstance(value, np.ndarray):
        return value.tolist() if value.ndim == 1 and value.dtype.kind in "iu" else None
    if isinstance(value, (list, tuple)) and all(isinstance(x, (int, np.integer)) for x in value):
        return [int(x) for x in value]
    return None


def _is_lm_items(items: Sequence[Any]) -> bool:
    """Language-model items: mappings whose ``labels`` are token ids as long as their ``input_ids``, equal
    to them wherever a label is set (Hugging Face causal LMs shift inside the model). Token-classification
    labels (tags, not token ids) differ from the ids, so those items keep the label-shift check."""
    if not items or not all(isinstance(x, Mapping) and "input_ids" in x and "labels" in x for x in items[:8]):
        return False
    for item in items[:8]:
        ids, labels = _token_list(item["input_ids"]), _token_list(item["labels"])
        if ids is None or labels is None or len(ids) != len(labels) or len(ids) < 2:
            return False
        if not any(a == b for a, b in zip(ids, labels)):
            return False
        if any(b != a and b != -100 for a, b in zip(ids, labels)):
            return False
    return True


def _lm_fields(items: Sequence[Any]) -> tuple[list[list[int]], list[list[int]], list[list[int]] | None]:
    ids = [_token_list(x["input_ids"]) or [] for x in items]
    labels = [_token_list(x["labels"]) or [] for x in items]
    masks = [_token_list(x.get("attention_mask")) for x in items]
    return ids, labels, (None if any(m is None for m in masks) else masks)  # type: ignore[return-value]


def _add(result: SplitCheckResult, finding: Finding | None, note: str) -> None:
    if finding is None:
        return
    if note:
        finding = Finding(
            code=finding.code, severity=finding.severity, step=finding.step, epoch=finding.epoch,
            message=finding.message + note, evidence={**finding.evidence, "sampled": True},
            hint=finding.hint, subject=finding.subject,
        )
    result.findings.append(finding)


def _field(item: Any, name: str) -> Any:
    value = item[name] if isinstance(item, Mapping) else getattr(item, name)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    return value


def _label(item: Any, key: str | None) -> Any:
    if key is not None:
        value = _field(item, key)
    elif isinstance(item, Mapping):
        value = next((item[k] for k in LABEL_KEYS if k in item), None)
        if value is None:
            raise KeyError(f"no label field ({', '.join(LABEL_KEYS)}); set data_checks.label_field")
    elif isinstance(item, (tuple, list)) and len(item) >= 2:
        value = item[1]
    else:
        raise TypeError(f"cannot find the label of a {type(item).__name__} sample; set data_checks.label_field")
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else tuple(value.reshape(-1).tolist())
    if isinstance(value, np.ndarray):
        return value.item() if value.size == 1 else tuple(value.reshape(-1).tolist())
    return tuple(value) if isinstance(value, list) else value


def _content(item: Any, key: str | None) -> Any:
    """The part of a sample that identifies it: a named field, the first known content key, the first
    element of an ``(x, y)`` tuple, or every non-label field. Token-id tensors lose their padding."""
    if key is not None:
        value = _field(item, key)
    elif isinstance(item, Mapping):
        known = next((k for k in CONTENT_KEYS if k in item), None)
        if known is not None:
            value = item[known]
            mask = item.get("attention_mask") if known == "input_ids" else None
            if isinstance(value, torch.Tensor) and isinstance(mask, torch.Tensor) and mask.shape == value.shape:
                value = value[mask.bool()]
        else:
            value = {k: v for k, v in item.items() if k not in NON_CONTENT_KEYS}
    elif isinstance(item, (tuple, list)) and item and not isinstance(item[0], (int, str)):
        value = item[0]
    else:
        value = item
    if isinstance(value, torch.Tensor) and value.ndim == 1 and not value.is_floating_point():
        return value.tolist()  # token ids: enables near-duplicate search on token shingles
    return value


def fingerprint_items(dataset: Any, max_samples: int, time_budget_s: float = 10.0) -> list[dict[str, Any]] | None:
    """Up to ``max_samples`` items of ``dataset`` as ``{"content", "label"}`` mappings that
    :func:`~fitwatch.data.fingerprint.run_fingerprint` can hash (whatever the dataset's item type), or
    ``None`` without a dataset. Reads under a preserved random state."""
    if dataset is None:
        return None
    with preserved_rng():
        sampled = sample_items(dataset, max_samples, time.monotonic() + time_budget_s)
    out = []
    for item in sampled.items:
        view: dict[str, Any] = {"content": _content(item, None)}
        try:
            label = _label(item, None)
            view["label"] = np.asarray(label) if isinstance(label, tuple) else label
        except (KeyError, TypeError):
            pass
        if isinstance(view["content"], torch.Tensor):
            view["content"] = view["content"].detach().cpu().numpy()
        out.append(view)
    return out
