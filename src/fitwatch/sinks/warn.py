"""Findings as Python warnings and log records."""

from __future__ import annotations

import logging
import warnings

from fitwatch.findings import Finding, Severity
from fitwatch.sinks.base import Sink

__all__ = ["WarningSink"]

log = logging.getLogger("fitwatch")


class WarningSink(Sink):
    """Logs every finding at its severity's level to the ``fitwatch`` logger, and raises a
    :class:`~fitwatch.warnings.FitWatchWarning` subclass for new causes of at least ``min_severity``.

    Updates of a cause already shown are logged at DEBUG and never warned again.

    Args:
        warn: Emit Python warnings at all (logging stays on).
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
        log.log(int(finding.severity), "%s", finding)
        if self.warn and finding.severity >= self.min_severity:
            warnings.warn(str(finding), category=finding.warning_class, stacklevel=2)
