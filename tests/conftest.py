"""Shared fixtures: event-file reading (the independent check of what reached TensorBoard)."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

os.environ.setdefault("PYTHONHASHSEED", "0")


def read_event_scalars(logdir: str | os.PathLike[str]) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in every event file under ``logdir``, read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out[tag] += [(e.step, e.value) for e in acc.Scalars(tag)]
    return dict(out)


def read_event_tags(logdir: str | os.PathLike[str]) -> dict[str, set[str]]:
    """Tags per kind (``scalars``, ``images``, ``tensors`` (text), ...) under ``logdir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, set[str]] = defaultdict(set)
    for path in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"images": 0, "tensors": 0})
        acc.Reload()
        for kind, tags in acc.Tags().items():
            if isinstance(tags, list):
                out[kind] |= set(tags)
    return dict(out)


@pytest.fixture
def event_scalars():
    return read_event_scalars


@pytest.fixture
def event_tags():
    return read_event_tags
