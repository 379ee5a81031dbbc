"""Detectors: pure Python (standard library only) trend kernels and the classes that turn series into findings.

Importing this package registers every built-in detector (each module's ``@register`` runs on import),
so :func:`build_detectors` sees them all.
"""

from fitwatch.detect import (  # noqa: F401  (registration side effects)
    calibration,
    classwise,
    divergence,
    failed_run,
    leakage,
    learning_rate,
    overfitting,
    plateau,
    regularization,
)
from fitwatch.detect.base import DETECTORS, Detector, build_detectors, register
from fitwatch.detect.records import AuditRecord, EvalRecord, StepRecord

__all__ = ["DETECTORS", "AuditRecord", "Detector", "EvalRecord", "StepRecord", "build_detectors", "register"]
