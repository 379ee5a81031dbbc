"""Temporal split check: is every validation sample later than all of training (plus a gap)?

When data are ordered in time (support tickets, prices, sensor logs), a random train/validation split
lets the model learn from the future of the samples it is validated on; validation scores then
overstate how it does on next month's data. :func:`check_temporal_split` checks that every validation
time is strictly later than the latest training time plus ``gap`` (a gap keeps slowly-changing
neighbours out of the validation set, e.g. one day for daily aggregates).

Times may be numbers (e.g. Unix seconds), :class:`datetime.datetime` or :class:`datetime.date` objects,
or numpy ``datetime64`` values or arrays; pandas is not needed.

>>> report = check_temporal_split([1, 2, 3, 4], [3.5, 5, 6], gap=0.5)
>>> report.ok, report.n_not_later, report.latest_train, report.earliest_val
(False, 1, 4, 3.5)
>>> from datetime import datetime, timedelta
>>> check_temporal_split([datetime(2024, 1, 1)], [datetime(2024, 1, 3)], gap=timedelta(days=1)).ok
True
"""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fitwatch.findings import Finding, Severity

__all__ = ["TemporalSplitReport", "check_temporal_split"]


@dataclass(frozen=True)
class TemporalSplitReport:
    """Result of :func:`check_temporal_split`.

    Attributes:
        n_train: Number of training times.
        n_val: Number of validation times.
        n_not_later: Validation times not later than ``latest_train + gap``.
        latest_train: The latest training time, as given (``None`` when training is empty).
        earliest_val: The earliest validation time, as given (``None`` when validation is empty).
        gap: The required gap, as given.
        n_train_after_earliest_val: Training times later than the earliest validation time: how much of
            training lies in the validation period.
    """

    n_train: int
    n_val: int
    n_not_later: int
    latest_train: Any
    earliest_val: Any
    gap: Any
    n_train_after_earliest_val: int = 0

    @property
    def ok(self) -> bool:
        """True when every validation time is later than every training time plus the gap."""
        return self.n_not_later == 0

    @property
    def fraction(self) -> float:
        """Fraction of validation times that are not later than ``latest_train + gap``."""
        return self.n_not_later / self.n_val if self.n_val else 0.0

    def __str__(self) -> str:
        gap = f" + gap {_show(self.gap)}" if self.gap is not None else ""
        if self.ok:
            return (
                f"Temporal split holds: all {self.n_val} validation times are later than the latest training "
                f"time {_show(self.latest_train)}{gap}."
            )
        return (
            f"Temporal split broken: {self.n_not_later} of {self.n_val} validation times "
            f"({self.fraction:.1%}) are not later than the latest training time "
            f"{_show(self.latest_train)}{gap}; the earliest validation time is {_show(self.earliest_val)}, "
            f"and {self.n_train_after_earliest_val} of {self.n_train} training "
            f"times are later than it."
        )

    def to_finding(self, step: int = 0, epoch: int | None = None) -> Finding | None:
        """A ``FW-LEAK-TEMPORAL`` finding, or ``None`` when the split holds."""
        if self.ok:
            return None
        message = (
            str(self)
            + " The model trains on the future of the samples it is validated on, so validation overstates "
            "how it will do on new data"
        )
        evidence = {
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_val_not_later": self.n_not_later,
            "fraction": self.fraction,
            "latest_train": _show(self.latest_train),
            "earliest_val": _show(self.earliest_val),
            "gap": None if self.gap is None else _show(self.gap),
            "n_train_after_earliest_val": self.n_train_after_earliest_val,
        }
        return Finding(
            code="FW-LEAK-TEMPORAL",
            severity=Severity.WARNING,
            step=step,
            epoch=epoch,
            message=message.rstrip("."),
            evidence=evidence,
        )


def _show(value: Any) -> str:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, np.generic):
        return str(value)
    return repr(value)


def _as_list(name: str, times: Any) -> Sequence[Any]:
    if isinstance(times, np.ndarray):
        if times.ndim != 1:
            raise ValueError(f"Expected `{name}` to be one-dimensional, but got shape {times.shape}.")
        return times
    if isinstance(times, (str, bytes)) or not isinstance(times, Iterable):
        raise TypeError(f"Expected `{name}` to be a sequence of times, but got {type(times).__name__}.")
    return list(times)


def _family(value: Any) -> str | None:
    if isinstance(value, (np.datetime64, dt.date)):  # datetime.datetime is a datetime.date
        return "datetime"
    if isinstance(value, (numbers.Real, np.number)) and not isinstance(value, (bool, np.bool_)):
        return "number"
    return None


def _numeric(name: str, times: Sequence[Any]) -> tuple[np.ndarray, str | None]:
    """Times as one comparable numpy array (float64, or datetime64 in microseconds), and their family."""
    if isinstance(times, np.ndarray) and times.dtype.kind in "iuf":
        array, family = times, "number"
    elif isinstance(times, np.ndarray) and times.dtype.kind == "M":
        array = times.astype("datetime64[us]")
        family = "datetime"
    else:
        families = {_family(t) for t in times}
        for index, t in enumerate(times):
            if _family(t) is None:
                raise TypeError(
                    f"Expected `{name}[{index}]` to be a number, a datetime, a date or a numpy datetime64, "
                    f"but got {type(t).__name__} {t!r}."
                )
        if len(families) > 1:
            index = next(i for i, t in enumerate(times) if _family(t) != _family(times[0]))
            raise TypeError(
                f"Expected `{name}[{index}]` to be a {_family(times[0])} like `{name}[0]`, but got "
                f"{type(times[index]).__name__} {times[index]!r}."
            )
        family = families.pop() if families else None
        if family == "datetime":
            array = np.array(
                [_to_datetime64(name, i, t) for i, t in enumerate(times)], dtype="datetime64[us]"
            )
        else:
            # Integer times stay int64 (exact for Unix nanoseconds); any float makes the array float64.
            array = np.asarray(times)
            if array.dtype.kind not in "iuf":
                array = array.astype(np.float64)
    missing = np.isnat(array) if family == "datetime" else np.isnan(array.astype(np.float64, copy=False))
    if missing.any():
        index = int(np.flatnonzero(missing)[0])
        raise ValueError(
            f"Expected `{name}` to hold no missing times (NaN/NaT), but got one at index {index}."
        )
    return array, family


def _to_datetime64(name: str, index: int, value: Any) -> np.datetime64:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        # Aware datetimes compare in UTC; mixing aware and naive ones would compare clocks of unknown zones.
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return np.datetime64(value, "us")
    if isinstance(value, (dt.datetime, np.datetime64)):
        return np.datetime64(value, "us")
    return np.datetime64(value, "D").astype("datetime64[us]")


def _check_aware(name: str, times: Sequence[Any], aware: set[bool]) -> None:
    if isinstance(times, np.ndarray):
        return  # numpy datetime64 has no time zone
    for t in times:
        if isinstance(t, dt.datetime):
            aware.add(t.tzinfo is not None)
    if len(aware) > 1:
        raise TypeError(
            f"Expected `{name}` and the other times to be all timezone-aware or all naive datetimes, "
            "but got a mix."
        )


def _gap(gap: Any, family: str | None) -> Any:
    if gap is None or family is None:
        return None  # no times: nothing to compare the gap with
    if family == "datetime":
        if isinstance(gap, dt.timedelta):
            return np.timedelta64(gap, "us")
        if isinstance(gap, np.timedelta64):
            return gap.astype("timedelta64[us]")
        raise TypeError(
            "Expected `gap` to be a datetime.timedelta or numpy timedelta64 for datetimes, "
            f"but got {type(gap).__name__} {gap!r}."
        )
    if isinstance(gap, bool) or not isinstance(gap, (numbers.Real, np.number)):
        raise TypeError(
            f"Expected `gap` to be a number for numeric times, but got {type(gap).__name__} {gap!r}."
        )
    return gap


def check_temporal_split(
    train_times: Iterable[Any], val_times: Iterable[Any], gap: Any = None
) -> TemporalSplitReport:
    """Check that every validation time is later than every training time plus ``gap``.

    Args:
        train_times: One time per training sample.
        val_times: One time per validation sample, of the same family (numbers, or datetimes, dates and
            datetime64).
        gap: Minimum distance between the latest training time and any validation time: a number for numeric
            times, a :class:`datetime.timedelta` or numpy ``timedelta64`` for datetimes, ``None`` for none.
            A validation time must be strictly later than ``latest_train + gap``.

    Returns:
        A :class:`TemporalSplitReport` (``ok`` is True when either split is empty).

    Raises:
        TypeError: If a time is not a number or datetime, the two splits mix numbers and datetimes, aware and
            naive datetimes are mixed, or ``gap`` does not match the times.
        ValueError: If a time is missing (NaN/NaT), a gap is negative, or an array is not one-dimensional.
    """
    train = _as_list("train_times", train_times)
    val = _as_list("val_times", val_times)
    aware: set[bool] = set()
    _check_aware("train_times", train, aware)
    _check_aware("val_times", val, aware)
    t_array, t_family = _numeric("train_times", train)
    v_array, v_family = _numeric("val_times", val)
    if t_family and v_family and t_family != v_family:
        raise TypeError(f"Expected `val_times` to be {t_family}s like `train_times`, but got {v_family}s.")
    family = t_family or v_family
    gap_value = _gap(gap, family)
    if gap_value is not None and gap_value < (np.timedelta64(0, "us") if family == "datetime" else 0):
        raise ValueError(f"Expected `gap` to be non-negative, but got {gap!r}.")
    if not len(t_array) or not len(v_array):
        return TemporalSplitReport(
            n_train=len(t_array),
            n_val=len(v_array),
            n_not_later=0,
            latest_train=train[int(np.argmax(t_array))] if len(t_array) else None,
            earliest_val=val[int(np.argmin(v_array))] if len(v_array) else None,
            gap=gap,
        )
    i_latest = int(np.argmax(t_array))
    j_earliest = int(np.argmin(v_array))
    bound = t_array[i_latest] if gap_value is None else t_array[i_latest] + gap_value
    return TemporalSplitReport(
        n_train=len(t_array),
        n_val=len(v_array),
        n_not_later=int(np.count_nonzero(v_array <= bound)),
        latest_train=train[i_latest],
        earliest_val=val[j_earliest],
        gap=gap,
        n_train_after_earliest_val=int(np.count_nonzero(t_array > v_array[j_earliest])),
    )
