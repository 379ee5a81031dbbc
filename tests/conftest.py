"""Shared fixtures: event-file reading (the independent check of what reached TensorBoard)."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

os.environ.setdefault("PYTHONHASHSEED", "0")


def _history_name(path: Path, logdir: Path, tag: str, value: float, raw: bool) -> tuple[str, float]:
    """A tag of fitwatch's dashboard layout (sibling runs ``train``, ``val``, ``class/<name>``; docs/dashboard.md)
    under its history name (``performance/loss/val``), so tests can name what they check as ``cb.history`` does."""
    if raw:
        return tag, value
    from fitwatch.report.roles import _history_name as fold
    from fitwatch.sinks.tags import is_split

    parts = path.parent.relative_to(logdir).parts if path.parent != logdir else ()
    if len(parts) >= 2 and parts[-2] == "class":
        sibling = "/".join(parts[-2:])
    elif parts and is_split(parts[-1]):
        sibling = parts[-1]
    else:
        sibling = ""
    suffix = "/text_summary" if tag.endswith("/text_summary") else ""
    found = fold(sibling, tag[: len(tag) - len(suffix)], value)
    return (found[0] + suffix, found[1]) if found is not None else (tag, value)


def read_event_scalars(logdir: str | os.PathLike[str], *, raw: bool = False) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in every event file under ``logdir``, read with TensorBoard's own reader. fitwatch's tags come
    under their history names unless ``raw`` (then as the event files hold them, runs merged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    root = Path(logdir)
    for path in sorted(root.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            for e in acc.Scalars(tag):
                name, value = _history_name(path, root, tag, e.value, raw)
                out[name].append((e.step, value))
    return dict(out)


def read_event_tags(logdir: str | os.PathLike[str], *, raw: bool = False) -> dict[str, set[str]]:
    """Tags per kind (``scalars``, ``images``, ``tensors`` (text), ...) under ``logdir``; fitwatch's under their
    history names unless ``raw``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, set[str]] = defaultdict(set)
    root = Path(logdir)
    for path in sorted(root.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"images": 0, "tensors": 0})
        acc.Reload()
        for kind, tags in acc.Tags().items():
            if isinstance(tags, list):
                out[kind] |= {_history_name(path, root, t, 1.0, raw)[0] for t in tags}
    return dict(out)


@pytest.fixture
def event_scalars():
    return read_event_scalars


@pytest.fixture
def event_tags():
    return read_event_tags
