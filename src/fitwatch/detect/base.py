"""The detector contract and the registry that builds detectors from configuration.

A detector is a pure class over plain numbers: it reads one kind of record
(:class:`~fitwatch.detect.records.EvalRecord`, :class:`~fitwatch.detect.records.StepRecord` and/or
:class:`~fitwatch.detect.records.AuditRecord`), keeps the history it needs, and returns a
:class:`~fitwatch.findings.Finding` while the condition it watches holds, ``None`` otherwise.
It never prints, warns or writes; the Monitor shows each cause once and updates it afterwards.

Detectors register themselves with :func:`register` under a short ``name`` that configuration
uses (``FitWatchConfig(detectors={"plateau": {"patience": 8}})``).
"""

from __future__ import annotations

import abc
import copy
import inspect
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from fitwatch.detect.records import AuditRecord, EvalRecord, StepRecord
from fitwatch.findings import Finding

__all__ = ["DETECTORS", "EVIDENCE_DIGITS", "Detector", "build_detectors", "register", "rounded"]

Record = EvalRecord | StepRecord | AuditRecord


class Detector(abc.ABC):
    """Base class of every detector.

    Subclasses set ``name`` (the configuration key) and ``record_types`` (the record classes they read;
    the Monitor hands them only those),
    take their thresholds as keyword-only constructor arguments with documented defaults, and
    implement :meth:`update`. The default :meth:`state_dict` saves the JSON-safe instance attributes;
    :meth:`load_state_dict` restores the keys it finds and keeps defaults for the rest, so states
    saved before a field was added still load.
    """

    name: ClassVar[str]
    record_types: ClassVar[tuple[type, ...]]
    #: Per-record lists kept in step (entry ``i`` of each belongs to record ``i``), each with the value that
    #: stands for "unknown" in it. A state saved before one of them existed gets it padded at the front.
    series: ClassVar[Mapping[str, Any]] = {}
    #: Whether this detector's findings describe a state the run can leave (a failed run, a class never
    #: predicted): the Monitor marks such a cause resolved when the detector stops returning it. Findings about
    #: what happened (no warmup, a duplicate, a spike) stand for the run.
    resolves: ClassVar[bool] = False

    def holding(self) -> set[str]:
        """Subjects whose condition holds after the last update (only read when :attr:`resolves`)."""
        return set()

    @abc.abstractmethod
    def update(self, record: Record) -> Finding | None:
        """Read one record; return a finding while the watched condition holds."""

    def reset(self) -> None:
        """Forget all history (the thresholds stay)."""
        fresh = type(self)(**self._init_kwargs())
        self.__dict__.update(fresh.__dict__)

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe state: everything in ``__dict__`` (thresholds and history)."""
        return {k: _jsonable(val) for k, val in self.__dict__.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`; missing keys keep their current values."""
        for key, val in state.items():
            if key in self.__dict__:
                current = self.__dict__[key]
                self.__dict__[key] = _restore(current, val)
        longest = max((len(self.__dict__[k]) for k in self.series), default=0)
        for key, unknown in self.series.items():
            values = self.__dict__[key]
            values[:0] = [copy.copy(unknown) for _ in range(longest - len(values))]

    def _init_kwargs(self) -> dict[str, Any]:
        params = inspect.signature(type(self).__init__).parameters
        return {p: self.__dict__[p] for p in params if p != "self" and p in self.__dict__}


#: Registered detector classes by configuration name.
DETECTORS: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator adding ``cls`` to :data:`DETECTORS` under ``cls.name``."""
    if cls.name in DETECTORS and DETECTORS[cls.name] is not cls:
        raise ValueError(f"A detector named {cls.name!r} is already registered ({DETECTORS[cls.name].__name__}).")
    DETECTORS[cls.name] = cls
    return cls


def build_detectors(settings: Mapping[str, Mapping[str, Any]] | None = None) -> list[Detector]:
    """One instance of every registered detector, with ``settings[name]`` as keyword arguments.

    ``{"enabled": False}`` in a detector's settings leaves it out.

    Raises:
        ValueError: On an unknown detector name or setting, naming it and the valid ones.
    """
    import fitwatch.detect  # noqa: F401  (registers the built-in detectors)

    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(DETECTORS))
    if unknown:
        raise ValueError(
            f"Expected `detectors` keys to be detector names ({', '.join(sorted(DETECTORS))}), but got {unknown}."
        )
    out: list[Detector] = []
    for name, cls in DETECTORS.items():
        kwargs = dict(settings.get(name, {}))
        if not kwargs.pop("enabled", True):
            continue
        params = inspect.signature(cls.__init__).parameters
        bad = sorted(k for k in kwargs if k not in params or k == "self")
        if bad:
            valid = sorted(p for p in params if p != "self")
            raise ValueError(f"Unknown setting(s) {bad} for detector {name!r}; expected some of {valid}.")
        out.append(cls(**kwargs))
    return out


#: Significant digits kept in a finding's evidence: what a person compares, never a 16-digit float.
EVIDENCE_DIGITS = 4


def rounded(value: Any, digits: int = EVIDENCE_DIGITS) -> Any:
    """Evidence as a person reads it: floats to ``digits`` significant digits (non-finite ones become
    ``None``), recursively through mappings, lists and tuples; everything else as it is.

    >>> rounded({"gl": 38.46153846153846, "lr": [0.00031622776, float("nan")], "n": 3, "tag": "val"})
    {'gl': 38.46, 'lr': [0.0003162, None], 'n': 3, 'tag': 'val'}
    """
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return float(f"{value:.{digits}g}")
    if isinstance(value, Mapping):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(rounded(v, digits) for v in value)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Finding):
        return {"__finding__": value.to_dict()}
    if hasattr(value, "state_dict") and callable(value.state_dict):
        return {"__state__": value.state_dict()}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, deque)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    return value


def _restore(current: Any, saved: Any) -> Any:
    if isinstance(saved, Mapping) and "__finding__" in saved:
        return Finding.from_dict(saved["__finding__"])
    if isinstance(saved, Mapping) and "__state__" in saved and hasattr(current, "load_state_dict"):
        current.load_state_dict(saved["__state__"])
        return current
    if isinstance(current, tuple) and isinstance(saved, list):
        return tuple(saved)
    if isinstance(current, (set, frozenset)) and isinstance(saved, list):
        return type(current)(saved)
    if hasattr(current, "maxlen") and isinstance(saved, list):  # collections.deque
        return type(current)(saved, maxlen=current.maxlen)
    return saved
