"""Argument checks with one voice: every message names the argument, what was expected and what came.

>>> check_positive_int("n_bins", 15)
15
>>> check_positive_int("n_bins", 0)
Traceback (most recent call last):
...
ValueError: Expected `n_bins` to be a positive int, but got 0.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

__all__ = [
    "check_bool",
    "check_choice",
    "check_fraction",
    "check_int_in_range",
    "check_non_negative_int",
    "check_positive_float",
    "check_positive_int",
]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any) -> int:
    if not _is_int(value):
        raise TypeError(f"Expected `{name}` to be a positive int, but got {type(value).__name__} {value!r}.")
    if value <= 0:
        raise ValueError(f"Expected `{name}` to be a positive int, but got {value!r}.")
    return value


def check_int_in_range(name: str, value: Any, low: int, high: int) -> int:
    """An int in ``[low, high]``.

    >>> check_int_in_range("n_bins", 1, 2, 1000)
    Traceback (most recent call last):
    ...
    ValueError: Expected `n_bins` to be an int in [2, 1000], but got 1.
    """
    if not _is_int(value):
        raise TypeError(f"Expected `{name}` to be an int in [{low}, {high}], but got {type(value).__name__} {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"Expected `{name}` to be an int in [{low}, {high}], but got {value!r}.")
    return value


def check_non_negative_int(name: str, value: Any) -> int:
    if not _is_int(value):
        raise TypeError(f"Expected `{name}` to be a non-negative int, but got {type(value).__name__} {value!r}.")
    if value < 0:
        raise ValueError(f"Expected `{name}` to be a non-negative int, but got {value!r}.")
    return value


def check_positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Expected `{name}` to be a positive float, but got {type(value).__name__} {value!r}.")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"Expected `{name}` to be a positive float, but got {value!r}.")
    return float(value)


def check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Expected `{name}` to be a float in [0, 1], but got {type(value).__name__} {value!r}.")
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"Expected `{name}` to be a float in [0, 1], but got {value!r}.")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"Expected `{name}` to be a bool, but got {type(value).__name__} {value!r}.")
    return value


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"Expected `{name}` to be one of {options}, but got {value!r}.")
    return value
