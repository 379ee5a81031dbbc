"""Findings as Python warnings and log records, each shown once on the console."""

from __future__ import annotations

import logging
import re
import warnings

from fitwatch.findings import Finding, Severity
from fitwatch.sinks.base import Sink, user_stacklevel

__all__ = ["WarningSink"]

log = logging.getLogger("fitwatch")


def _ignored(message: str, category: type[Warning], module: str) -> bool:
    """Whether the user's warning filters discard this warning (the first filter that matches says ``ignore``).

    Mirrors :mod:`warnings`' own matching over the public ``warnings.filters`` list (line numbers aside).
    """
    for action, text, cls, mod, _lineno in warnings.filters:
        if _matches(text, message) and issubclass(category, cls) and _matches(mod, module):
            return action == "ignore"
    return False


def _matches(pattern: re.Pattern[str] | str | None, value: str) -> bool:
    if pattern is None:
        return True
    return bool(re.match(pattern, value) if isinstance(pattern, str) else pattern.match(value))


class WarningSink(Sink):
    """Shows each new cause of at least ``min_severity`` once on the console: as a
    :class:`~fitwatch.warnings.FitWatchWarning` subclass, attributed to the user's code (the line that called
    ``trainer.fit``), not to fitwatch's frames.

    Every finding also goes to the ``fitwatch`` logger, at a level that keeps it off the console when the
    warning already shows it: DEBUG for a warned cause and for updates of a cause already shown; its severity's
    level when it is not warned (``warn=False``, below ``min_severity``, or discarded by the user's warning
    filters), so that it is shown once, by logging.

    Args:
        warn: Emit Python warnings at all (findings are then logged at their severity's level).
        min_severity: The least severity that becomes a Python warning (INFO findings are logged only).
    """

    name = "warnings"

    def __init__(self, *, warn: bool = True, min_severity: Severity = Severity.WARNING) -> None:
        self.warn = warn
        self.min_severity = Severity.parse(min_severity)

    def finding(self, finding: Finding, *, new: bool) -> None:
        if not new:
            log.debug("fitwatch finding updated: %s", finding)
            return
        message = str(finding)
        if self.warn and finding.severity >= self.min_severity:
            level = user_stacklevel()
            frame = _frame(level)
            module = frame.f_globals.get("__name__", "") if frame is not None else "sys"
            if not _ignored(message, finding.warning_class, module):
                log.debug("%s", message)  # for log files; the warning is the console's copy
                warnings.warn(message, category=finding.warning_class, stacklevel=level)
                return
        log.log(int(finding.severity), "%s", message)


def _frame(level: int):  # type: ignore[no-untyped-def]
    """The frame ``warnings.warn(..., stacklevel=level)`` names when our caller calls it (our caller is 1)."""
    import sys

    try:
        return sys._getframe(level)
    except ValueError:
        return None
