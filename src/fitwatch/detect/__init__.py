"""Detectors: pure Python (standard library only) trend kernels and the classes that turn series into findings."""

from fitwatch.detect.base import DETECTORS, Detector, build_detectors, register
from fitwatch.detect.records import AuditRecord, EvalRecord, StepRecord

__all__ = ["DETECTORS", "AuditRecord", "Detector", "EvalRecord", "StepRecord", "build_detectors", "register"]
