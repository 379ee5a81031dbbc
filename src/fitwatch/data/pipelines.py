"""Golden records: the training and inference preprocessing compared stage by stage.

A model served with preprocessing that differs from the one it was trained with degrades without any
error. :func:`compare_pipelines` runs the same samples (the golden records) through both pipelines and
keeps every intermediate value. A record differs when its final outputs differ or a stage raises; for each
such record the report names the first stage (in training order) whose outputs differ, shows both values
side by side, and says why: the stage itself behaves differently on the same input, or its input already
differs because other stages run before it in one pipeline only (a swapped order, a missing stage).
Intermediate values may differ while the final outputs agree (a harmless reordering): the model sees the
same input, so that record is not a difference.

Stages are aligned by name when the two pipelines share stage names (so a moved stage is reported as
moved), by position otherwise. Two plain callables are compared end to end.

The classic case: training lower-cases, expands acronyms, then removes stop words; inference removes stop
words first, so "US" and "WHO" are dropped as the stop words "us" and "who" instead of being expanded.

>>> ACRONYMS = {"us": "united states", "who": "world health organization"}
>>> STOPWORDS = {"the", "us", "who", "a", "of"}
>>> def lowercase(text): return text.lower()
>>> def expand_acronyms(text): return " ".join(ACRONYMS.get(w, w) for w in text.split())
>>> def remove_stopwords(text): return " ".join(w for w in text.split() if w.lower() not in STOPWORDS)
>>> train = [("lowercase", lowercase), ("expand_acronyms", expand_acronyms),
...          ("stopwords", remove_stopwords)]
>>> inference = [("stopwords", remove_stopwords), ("lowercase", lowercase),
...              ("expand_acronyms", expand_acronyms)]
>>> result = compare_pipelines(train, inference, ["The WHO said US cases rose", "Cases rose"])
>>> result.ok
False
>>> print(result)  # doctest: +NORMALIZE_WHITESPACE
Training and inference pipelines differ on 1 of 2 golden records.
Stage order: stage 'stopwords' runs at position 3 in training and 1 at inference (after 'lowercase',
  'expand_acronyms' in training, before them at inference).
First differing stage: 'lowercase' (1 record). Traced back to: 'stopwords' (1 record).
<BLANKLINE>
record 0: 'The WHO said US cases rose'
  first difference after stage 'lowercase' (position 1 in training, 2 at inference): its input already
  differs: 'stopwords' runs before it at inference only.
    training : 'the who said us cases rose'
    inference: 'said cases rose'
  final output:
    training : 'world health organization said united states cases rose'
    inference: 'said cases rose'
    tokens   : [-world health organization-] said [-united states-] cases rose
"""

from __future__ import annotations

import copy
import difflib
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fitwatch.findings import Finding, Severity

__all__ = [
    "PipelineComparison",
    "SampleDifference",
    "StageError",
    "assert_pipelines_match",
    "compare_pipelines",
    "token_diff",
    "values_equal",
]

Stage = tuple[str, Callable[[Any], Any]]
#: Characters of a value shown in reports before it is cut.
_SHOWN = 200
_WHERE = {"training": "in training", "inference": "at inference"}


def values_equal(a: Any, b: Any) -> bool:
    """Exact equality of two stage outputs, with NaN equal to NaN; types, dtypes and shapes must match.

    A type change is a difference (a list where a tuple was, int32 ids where int64 were): models and
    tokenizers are known to behave differently on them.

    >>> values_equal([1, 2], [1, 2]), values_equal([1, 2], (1, 2)), values_equal(float("nan"), float("nan"))
    (True, False, True)
    >>> import numpy as np
    >>> values_equal(np.array([1, 2]), np.array([1, 2], dtype=np.int32))
    False
    """
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        nan_ok = a.dtype.kind in "fc"
        return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=nan_ok))
    if type(a).__module__.startswith("torch") and hasattr(a, "dtype") and hasattr(a, "shape"):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        a, b = a.detach().cpu(), b.detach().cpu()
        same = a == b
        if a.is_floating_point() or a.is_complex():
            same = same | (a.isnan() & b.isnan())
        return bool(same.all())
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - an object whose == gives no single bool cannot be shown equal
        return False


def _tokens(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def token_diff(a: Any, b: Any) -> str | None:
    """A word-level diff from ``a`` to ``b`` (texts, or lists of string tokens), ``None`` for other values.

    Removed tokens are shown as ``[-...-]``, added ones as ``{+...+}`` (the ``wdiff`` notation).

    >>> token_diff("united states stocks fell", "stocks fell")
    '[-united states-] stocks fell'
    >>> token_diff(["a", "b"], ["a", "c"])
    'a [-b-] {+c+}'
    >>> token_diff([1], [2]) is None
    True
    """
    ta, tb = _tokens(a), _tokens(b)
    if ta is None or tb is None:
        return None
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(" ".join(ta[i1:i2]))
        if op in ("delete", "replace"):
            parts.append("[-" + " ".join(ta[i1:i2]) + "-]")
        if op in ("insert", "replace"):
            parts.append("{+" + " ".join(tb[j1:j2]) + "+}")
    return " ".join(parts)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


@dataclass(frozen=True)
class StageError:
    """A stage that raised on a sample.

    Attributes:
        pipeline: ``"training"`` or ``"inference"``.
        stage: Name of the stage that raised.
        position: 1-based position of the stage in its pipeline.
        error: The exception as ``"TypeName: message"``.
    """

    pipeline: str
    stage: str
    position: int
    error: str

    def __str__(self) -> str:
        return f"{self.pipeline} stage '{self.stage}' (position {self.position}) raised {self.error}"


@dataclass(frozen=True)
class SampleDifference:
    """How one golden record comes out differently from the two pipelines.

    Attributes:
        index: Position of the sample among the golden records.
        sample: The sample.
        stage: The first stage (in training order) whose outputs differ, or that raised; ``None`` when only
            the end-to-end outputs were compared.
        train_position: 1-based position of ``stage`` in the training pipeline, ``None`` if it is not there.
        inference_position: 1-based position of ``stage`` in the inference pipeline, ``None`` if not there.
        train_value: Output of ``stage`` in training (``None`` if it did not run or raised).
        inference_value: Output of ``stage`` at inference (``None`` if it did not run or raised).
        cause: Why the outputs differ, in one sentence.
        culprits: Stages the difference traces back to (the stage itself, or those that run before it in
            one pipeline only, or in another order).
        train_output: Final training output (``None`` if a stage raised).
        inference_output: Final inference output (``None`` if a stage raised).
        errors: Stages that raised on this sample.
    """

    index: int
    sample: Any
    stage: str | None
    train_position: int | None
    inference_position: int | None
    train_value: Any
    inference_value: Any
    cause: str
    culprits: tuple[str, ...] = ()
    train_output: Any = None
    inference_output: Any = None
    errors: tuple[StageError, ...] = ()

    def __str__(self) -> str:
        lines = [f"record {self.index}: {_show(self.sample)}"]
        if self.stage is None:
            lines.append(f"  {self.cause}")
        else:
            where = ", ".join(
                f"{p} {_WHERE[side]}"
                for p, side in ((self.train_position, "training"), (self.inference_position, "inference"))
                if p is not None
            )
            where = f"position {where}"
            lines.append(f"  first difference after stage '{self.stage}' ({where}): {self.cause}")
            lines.append(f"    training : {_show(self.train_value)}")
            lines.append(f"    inference: {_show(self.inference_value)}")
        for error in self.errors:
            lines.append(f"  {error}")
        if not self.errors:
            lines.append("  final output:")
            lines.append(f"    training : {_show(self.train_output)}")
            lines.append(f"    inference: {_show(self.inference_output)}")
            diff = token_diff(self.train_output, self.inference_output)
            if diff is not None:
                lines.append(f"    tokens   : {diff}")
        return "\n".join(lines)


@dataclass(frozen=True)
class PipelineComparison:
    """The result of :func:`compare_pipelines`; ``str()`` is the human report.

    Attributes:
        n_samples: Number of golden records compared.
        differences: One entry per record whose final outputs differ or on which a stage raised.
        structure: Differences in the stage lists themselves (stages in one pipeline only, moved stages).
        alignment: ``"name"``, ``"position"`` or ``"end to end"``.
    """

    n_samples: int
    differences: tuple[SampleDifference, ...]
    structure: tuple[str, ...] = ()
    alignment: str = "name"

    @property
    def ok(self) -> bool:
        """True when every golden record gives equal outputs and no stage raised."""
        return not self.differences

    @property
    def stage_counts(self) -> dict[str, int]:
        """How many records first differ at each stage (``"end to end"`` when stages are not compared)."""
        return dict(Counter(d.stage or "end to end" for d in self.differences).most_common())

    @property
    def culprit_counts(self) -> dict[str, int]:
        """How many records' differences trace back to each stage."""
        return dict(Counter(c for d in self.differences for c in d.culprits).most_common())

    def _summary(self) -> list[str]:
        n = len(self.differences)
        if not n:
            lines = [f"Training and inference pipelines agree on all {self.n_samples} golden records."]
        else:
            lines = [f"Training and inference pipelines differ on {n} of {self.n_samples} golden records."]
        for note in self.structure:
            lines.append(note)
        if n:
            stages = ", ".join(f"'{s}' ({c} record{'s' * (c != 1)})" for s, c in self.stage_counts.items())
            line = f"First differing stage: {stages}."
            if self.culprit_counts:
                culprits = ", ".join(
                    f"'{s}' ({c} record{'s' * (c != 1)})" for s, c in self.culprit_counts.items()
                )
                line += f" Traced back to: {culprits}."
            lines.append(line)
        return lines

    def __str__(self) -> str:
        lines = self._summary()
        for difference in self.differences:
            lines.append("")
            lines.append(str(difference))
        return "\n".join(lines)

    def to_finding(self, step: int = 0, epoch: int | None = None) -> Finding | None:
        """A ``FW-PIPELINE-DRIFT`` finding, or ``None`` when the pipelines agree."""
        if self.ok:
            return None
        first = self.differences[0]
        message = " ".join(self._summary())
        evidence = {
            "n_samples": self.n_samples,
            "n_differ": len(self.differences),
            "n_errors": sum(1 for d in self.differences if d.errors),
            "stages": self.stage_counts,
            "culprits": self.culprit_counts,
            "structure": list(self.structure),
            "alignment": self.alignment,
            "example": {
                "sample": _show(first.sample),
                "stage": first.stage,
                "training": _show(first.train_value if first.stage else first.train_output),
                "inference": _show(first.inference_value if first.stage else first.inference_output),
            },
        }
        return Finding(
            code="FW-PIPELINE-DRIFT",
            severity=Severity.WARNING,
            step=step,
            epoch=epoch,
            message=message,
            evidence=evidence,
        )


@dataclass
class _Trace:
    """What one pipeline did with one sample: inputs and outputs per stage key, and the error if any."""

    inputs: dict[Any, Any] = field(default_factory=dict)
    outputs: dict[Any, Any] = field(default_factory=dict)
    output: Any = None
    error: StageError | None = None
    error_key: Any = None


@dataclass(frozen=True)
class _Stage:
    key: Any
    name: str
    position: int
    fn: Callable[[Any], Any]


def _parse(pipeline: Any, side: str) -> list[tuple[str, Callable[[Any], Any]]] | None:
    """The ``(name, callable)`` stages of ``pipeline``, or ``None`` for a plain callable."""
    if callable(pipeline) and not isinstance(pipeline, (list, tuple)):
        return None
    arg = "train" if side == "training" else "inference"
    if not isinstance(pipeline, (list, tuple)):
        raise TypeError(
            f"Expected `{arg}` to be a list of (name, callable) stages or a callable, "
            f"but got {type(pipeline).__name__}."
        )
    stages = []
    for k, stage in enumerate(pipeline):
        if not (
            isinstance(stage, (list, tuple))
            and len(stage) == 2
            and isinstance(stage[0], str)
            and callable(stage[1])
        ):
            raise TypeError(f"Expected `{arg}[{k}]` to be a (name, callable) pair, but got {_show(stage)}.")
        stages.append((stage[0], stage[1]))
    return stages


def _keyed(stages: list[tuple[str, Callable[[Any], Any]]], by_name: bool) -> list[_Stage]:
    seen: Counter[str] = Counter()
    out = []
    for position, (name, fn) in enumerate(stages, start=1):
        seen[name] += 1
        label = name if seen[name] == 1 else f"{name} #{seen[name]}"
        out.append(_Stage(key=(label if by_name else position), name=label, position=position, fn=fn))
    return out


def _isolated(value: Any) -> Any:
    # A stage that edits its input in place must not change a recorded value (or the other pipeline's).
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - some objects (locks, handles) cannot be copied; use them as is
        return value


def _run(stages: list[_Stage], sample: Any, side: str) -> _Trace:
    trace = _Trace()
    value = sample
    for stage in stages:
        trace.inputs[stage.key] = value
        try:
            value = stage.fn(_isolated(value))
        except Exception as err:  # noqa: BLE001 - any stage failure is reported, never raised
            trace.error = StageError(side, stage.name, stage.position, f"{type(err).__name__}: {err}")
            trace.error_key = stage.key
            return trace
        trace.outputs[stage.key] = value
    trace.output = value
    return trace


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _lcs(a: Sequence[Any], b: Sequence[Any]) -> list[Any]:
    """Longest common subsequence (dynamic programming; pipelines have a handful of stages)."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if a[i] == b[j] else max(table[i + 1][j], table[i][j + 1])
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            out.append(a[i])
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return out


def _structure(train: list[_Stage], inference: list[_Stage], by_name: bool) -> list[str]:
    notes = []
    if not by_name:
        if len(train) != len(inference):
            notes.append(
                f"Stage count: {len(train)} in training, {len(inference)} at inference (aligned by position)."
            )
        return notes
    t_pos = {s.key: s.position for s in train}
    i_pos = {s.key: s.position for s in inference}
    for stages, other, side in ((train, i_pos, "training"), (inference, t_pos, "inference")):
        for s in stages:
            if s.key not in other:
                notes.append(f"Stage '{s.name}' runs {_WHERE[side]} only (position {s.position}).")
    t_order = [s.key for s in train if s.key in i_pos]
    i_order = [s.key for s in inference if s.key in t_pos]
    kept = set(_lcs(t_order, i_order))
    for key in t_order:
        if key in kept:
            continue
        after = [k for k in t_order if t_pos[k] < t_pos[key] and i_pos[k] > i_pos[key]]
        before = [k for k in t_order if t_pos[k] > t_pos[key] and i_pos[k] < i_pos[key]]
        relation = []
        if after:
            relation.append(
                f"after {_quoted(after)} in training, "
                f"before {'them' if len(after) > 1 else 'it'} at inference"
            )
        if before:
            relation.append(
                f"before {_quoted(before)} in training, "
                f"after {'them' if len(before) > 1 else 'it'} at inference"
            )
        notes.append(
            f"Stage order: stage '{key}' runs at position {t_pos[key]} in training "
            f"and {i_pos[key]} at inference"
            f" ({'; '.join(relation)})."
        )
    return notes


def _cause_of_input(key: Any, train: list[_Stage], inference: list[_Stage]) -> tuple[str, tuple[str, ...]]:
    """Why a stage's input differs between the pipelines: which stages run before it in one only."""
    t_before = [s.name for s in train[: next(k for k, s in enumerate(train) if s.key == key)]]
    i_before = [s.name for s in inference[: next(k for k, s in enumerate(inference) if s.key == key)]]
    only_i = [n for n in i_before if n not in t_before]
    only_t = [n for n in t_before if n not in i_before]
    parts = []
    if only_i:
        parts.append(f"{_quoted(only_i)} run{'s' * (len(only_i) == 1)} before it at inference only")
    if only_t:
        parts.append(f"{_quoted(only_t)} run{'s' * (len(only_t) == 1)} before it in training only")
    if parts:
        return "its input already differs: " + "; ".join(parts) + ".", tuple(only_i + only_t)
    cause = (
        "its input already differs: the stages before it run in another order "
        f"(training: {_quoted(t_before)}; inference: {_quoted(i_before)})."
    )
    return cause, tuple(t_before)


def _compare_one(
    index: int, sample: Any, train: list[_Stage], inference: list[_Stage], end_to_end: bool
) -> SampleDifference | None:
    t_trace = _run(train, _isolated(sample), "training")
    i_trace = _run(inference, _isolated(sample), "inference")
    errors = tuple(e for e in (t_trace.error, i_trace.error) if e is not None)
    t_pos = {s.key: s.position for s in train}
    i_pos = {s.key: s.position for s in inference}
    i_names = {s.key: s.name for s in inference}

    def difference(**fields: Any) -> SampleDifference:
        return SampleDifference(
            index=index,
            sample=sample,
            train_output=t_trace.output,
            inference_output=i_trace.output,
            errors=errors,
            **fields,
        )

    if not errors and values_equal(t_trace.output, i_trace.output):
        # Intermediate values may differ (a moved stage) and still end equal: the model sees the same input.
        return None
    if not end_to_end:
        for stage in train:
            key = stage.key
            if key not in i_pos:
                continue
            label = stage.name if stage.name == i_names[key] else f"{stage.name} / {i_names[key]}"
            where = {"train_position": t_pos[key], "inference_position": i_pos[key]}
            failed = [t for t in (t_trace, i_trace) if t.error is not None and t.error_key == key]
            if failed:
                return difference(
                    stage=label,
                    **where,
                    train_value=None,
                    inference_value=None,
                    cause="; ".join(str(t.error) for t in failed) + ".",
                    culprits=tuple(dict.fromkeys(t.error.stage for t in failed)),
                )
            if key not in t_trace.outputs or key not in i_trace.outputs:
                break  # a stage that only one pipeline runs raised before this one; reported below
            t_value, i_value = t_trace.outputs[key], i_trace.outputs[key]
            if values_equal(t_value, i_value):
                continue
            if values_equal(t_trace.inputs[key], i_trace.inputs[key]):
                cause = "the stage gives different outputs for the same input (its code or settings differ)."
                culprits = tuple(dict.fromkeys((stage.name, i_names[key])))
            else:
                cause, culprits = _cause_of_input(key, train, inference)
            return difference(
                stage=label,
                **where,
                train_value=t_value,
                inference_value=i_value,
                cause=cause,
                culprits=culprits,
            )

    if errors:
        first = errors[0]
        return difference(
            stage=first.stage,
            train_position=first.position if first.pipeline == "training" else None,
            inference_position=first.position if first.pipeline == "inference" else None,
            train_value=None,
            inference_value=None,
            cause="; ".join(str(e) for e in errors) + ".",
            culprits=tuple(dict.fromkeys(e.stage for e in errors)),
        )
    if end_to_end:
        cause, culprits = "the end-to-end outputs differ.", ()
    else:
        # Every shared stage agreed: the stages that only one pipeline runs changed the output.
        only_t = [s.name for s in train if s.key not in i_pos]
        only_i = [s.name for s in inference if s.key not in t_pos]
        parts = [
            f"{_quoted(n)} {_WHERE[side]} only"
            for n, side in ((only_t, "training"), (only_i, "inference"))
            if n
        ]
        cause = (
            "every shared stage agrees; the final outputs differ because of the stages run "
            + "; ".join(parts)
            + "."
        )
        culprits = tuple(only_t + only_i)
    return difference(
        stage=None,
        train_position=None,
        inference_position=None,
        train_value=None,
        inference_value=None,
        cause=cause,
        culprits=culprits,
    )


def compare_pipelines(
    train: Sequence[Stage] | Callable[[Any], Any],
    inference: Sequence[Stage] | Callable[[Any], Any],
    samples: Iterable[Any],
) -> PipelineComparison:
    """Run golden records through the training and inference preprocessing and report where they differ.

    Args:
        train: The training pipeline: an ordered list of ``(name, callable)`` stages, or one callable.
        inference: The inference pipeline, in the same form.
        samples: The golden records: raw inputs, each given to both pipelines (as separate deep copies, so a
            stage that edits its input in place cannot affect the other pipeline).

    Returns:
        A :class:`PipelineComparison`: ``ok``, one :class:`SampleDifference` per record whose final outputs
        differ or on which a stage raised, the structural differences (moved stages, stages in one pipeline
        only), and ``str()`` as the human report. A stage that raises is reported with the stage and the
        record; it never stops the comparison.

    Raises:
        TypeError: If a pipeline is neither a list of ``(name, callable)`` pairs nor a callable.
        ValueError: If ``samples`` is empty (a comparison on no record proves nothing).
    """
    train_stages = _parse(train, "training")
    inference_stages = _parse(inference, "inference")
    if isinstance(samples, (str, bytes)) or not isinstance(samples, Iterable):
        raise TypeError(
            f"Expected `samples` to be a collection of golden records, but got {type(samples).__name__}."
        )
    records = list(samples)
    if not records:
        raise ValueError("Expected `samples` to hold at least one golden record, but got none.")

    end_to_end = train_stages is None or inference_stages is None
    if end_to_end:
        train_stages = (
            train_stages if train_stages is not None else [(getattr(train, "__name__", "train"), train)]
        )
        inference_stages = (
            inference_stages
            if inference_stages is not None
            else [(getattr(inference, "__name__", "inference"), inference)]
        )
        by_name, alignment = False, "end to end"
    else:
        names_t = {name for name, _ in train_stages}
        by_name = bool(names_t & {name for name, _ in inference_stages})
        alignment = "name" if by_name else "position"
    t_keyed = _keyed(train_stages, by_name)
    i_keyed = _keyed(inference_stages, by_name)
    structure = [] if end_to_end else _structure(t_keyed, i_keyed, by_name)
    differences = []
    for index, sample in enumerate(records):
        difference = _compare_one(index, sample, t_keyed, i_keyed, end_to_end)
        if difference is not None:
            differences.append(difference)
    return PipelineComparison(
        n_samples=len(records),
        differences=tuple(differences),
        structure=tuple(structure),
        alignment=alignment,
    )


def assert_pipelines_match(
    train: Sequence[Stage] | Callable[[Any], Any],
    inference: Sequence[Stage] | Callable[[Any], Any],
    samples: Iterable[Any],
) -> PipelineComparison:
    """:func:`compare_pipelines`, raising with the report when they differ: for unit tests.

    Returns:
        The comparison, when every golden record gives equal outputs.

    Raises:
        AssertionError: With the human report, if any record differs or a stage raises.
        TypeError: As :func:`compare_pipelines`.
        ValueError: As :func:`compare_pipelines`.

    >>> assert_pipelines_match(str.lower, lambda s: s.casefold(), ["ABC"]).ok
    True
    """
    result = compare_pipelines(train, inference, samples)
    if not result.ok:
        raise AssertionError(str(result))
    return result
