"""The sink interface, and the guard that keeps a failing sink from touching training."""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fitwatch.findings import Finding
from fitwatch.warnings import FitWatchRuntimeWarning

__all__ = ["EvaluationDetails", "GuardedSinks", "Sink", "user_stacklevel", "warn_at_user_code"]

#: Packages whose frames stand between a warning and the user's code: fitwatch itself and the training
#: frameworks that call its hooks. A warning is attributed to the first frame outside all of them.
FRAMEWORK_PACKAGES = (
    "fitwatch",
    "lightning",
    "pytorch_lightning",
    "lightning_fabric",
    "transformers",
    "accelerate",
    "trl",
    "peft",
    "torch",
)


def _package_dirs() -> tuple[str, ...]:
    """The directories of the framework packages already imported (none is imported here)."""
    dirs = []
    for name in FRAMEWORK_PACKAGES:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            dirs.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    return tuple(dirs)


def user_stacklevel(skip: int = 1) -> int:
    """The ``stacklevel`` that makes :func:`warnings.warn`, called by the caller of this function, point at the
    first frame outside fitwatch and the training frameworks (the user's ``trainer.fit(...)`` line).

    Args:
        skip: Frames between this function and the one that will call ``warnings.warn`` (1: its caller).

    When every frame belongs to a framework (a hook run from a thread), the level goes past the stack and
    Python attributes the warning to ``sys``: hidden rather than pointing into fitwatch.

    >>> user_stacklevel() >= 1
    True
    """
    dirs = _package_dirs()
    frame: Any = sys._getframe(skip)  # the frame that calls warnings.warn: stacklevel 1
    level = 1
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(dirs) and not frame.f_code.co_filename.startswith("<frozen"):
            return level
        frame = frame.f_back
        level += 1
    return level


def warn_at_user_code(message: str, category: type[Warning]) -> None:
    """:func:`warnings.warn` with the location of the user's code (see :func:`user_stacklevel`)."""
    warnings.warn(message, category, stacklevel=user_stacklevel())


@dataclass(frozen=True)
class EvaluationDetails:
    """What an image-drawing sink needs from one split at one evaluation (plain numbers only)."""

    split: str
    class_names: Sequence[str]
    confusion: list[list[int]] | None = None
    reliability: Mapping[str, list[float]] = field(default_factory=dict)
    per_class: Mapping[str, list[float]] = field(default_factory=dict)


class Sink:
    """Where scalars, findings and evaluation details go. Every method is optional (a no-op here).

    Sinks show; they never decide. They are created on rank zero only.
    """

    name = "sink"

    def start(
        self, history: Mapping[str, Sequence[tuple[int, float]]], *, resumed_from: str | None = None
    ) -> None:
        """Attached to a Monitor that already holds ``history`` (empty for a fresh run).

        ``resumed_from`` names the history file (:meth:`history_source`) that ``history`` was read back from
        after a resume, so a sink that owns that file appends to it instead of starting it over.
        """

    def history_source(self) -> str | None:
        """The absolute path of a file where this sink keeps the whole scalar history, if it keeps one."""
        return None

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Write scalar ``values`` (tag -> number) at ``step`` to the dashboard."""

    def record(self, values: Mapping[str, float], step: int) -> None:
        """Scalars appended to the history at ``step`` (those on the dashboard and those kept off it)."""

    def finding(self, finding: Finding, *, new: bool) -> None:
        """Show a finding: ``new`` for a cause seen for the first time (or escalated), else an update."""

    def evaluation(self, details: EvaluationDetails, step: int) -> None:
        """Per-evaluation details (confusion matrix, reliability bins) for images."""

    def text(self, tag: str, text: str, step: int) -> None:
        """Free text (markdown), such as a data-check report."""

    def histogram(self, tag: str, edges: Sequence[float], counts: Sequence[int], step: int) -> None:
        """A histogram given as bin ``edges`` (``len(counts) + 1`` values) and ``counts``."""

    def flush(self, history: Mapping[str, Sequence[tuple[int, float]]]) -> None:
        """Called after each evaluation and at the end, with the whole scalar history (a sink must not write
        all of it here: the cost of an evaluation may not grow with the run)."""

    def finish(self, history: Mapping[str, Sequence[tuple[int, float]]]) -> None:
        """Called once at the end of the run, with the whole scalar history."""

    def close(self) -> None:
        """Release files and writers."""


class GuardedSinks:
    """Calls every sink, and turns a sink's exception into one :class:`FitWatchRuntimeWarning`.

    A sink that raised is disabled for the rest of the run; the others, the in-memory history and
    training go on.
    """

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self._sinks = list(sinks)
        self.failed: dict[str, str] = {}

    @property
    def active(self) -> list[Sink]:
        return list(self._sinks)

    def call(self, method: str, *args: Any, **kwargs: Any) -> None:
        for sink in list(self._sinks):
            try:
                getattr(sink, method)(*args, **kwargs)
            except Warning:
                raise  # a fitwatch warning the user's own filters turned into an error: their choice
            except Exception as err:  # noqa: BLE001  (a sink must never take training down)
                self._sinks.remove(sink)
                self.failed[sink.name] = "".join(traceback.format_exception_only(type(err), err)).strip()
                warn_at_user_code(
                    f"fitwatch: the {sink.name} sink failed in {method}() and is disabled for the rest of the run "
                    f"({self.failed[sink.name]}). Training continues; the in-memory history and other sinks are kept.",
                    FitWatchRuntimeWarning,
                )
                try:
                    sink.close()
                except Exception:  # noqa: BLE001
                    pass
