"""Data checks for failures that never raise: pipeline drift, leakage, label shift, bad labels, version skew.

Every check is a plain function or class over plain inputs (no Lightning, no transformers); each result
turns into a :class:`~fitwatch.findings.Finding` with ``.to_finding()``. Nothing here warns or prints.

- :func:`compare_pipelines` / :func:`assert_pipelines_match`: golden records through the training and
  inference preprocessing, stage by stage;
- :func:`find_duplicates`: exact and near duplicates between training and validation;
- :func:`check_temporal_split`: validation strictly later than training;
- :func:`label_shift`: class proportions, chi-square and total variation between splits;
- :class:`AreaUnderMargin`, :class:`ForgettingEvents`: suspected mislabeled training samples;
- :class:`ConfidentMistakes`: the most confidently wrong validation samples;
- :func:`run_fingerprint`, :func:`diff_fingerprints`, :func:`write_fingerprint`: run lineage.

The torch-based trackers are imported on first use, so ``from fitwatch.data import find_duplicates`` (or
the ``fitwatch diff`` command) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fitwatch.data.chi_square import chi2_sf
from fitwatch.data.content import content_digest, normalize_text
from fitwatch.data.duplicates import DuplicateReport, find_duplicates
from fitwatch.data.fingerprint import (
    FingerprintChange,
    diff_fingerprints,
    find_fingerprint,
    read_fingerprint,
    run_fingerprint,
    write_fingerprint,
)
from fitwatch.data.label_shift import LabelShiftReport, label_shift
from fitwatch.data.pipelines import (
    PipelineComparison,
    SampleDifference,
    StageError,
    assert_pipelines_match,
    compare_pipelines,
)
from fitwatch.data.temporal import TemporalSplitReport, check_temporal_split

if TYPE_CHECKING:
    from fitwatch.data.mislabels import AreaUnderMargin, ForgettingEvents
    from fitwatch.data.mistakes import ConfidentMistakes, Mistake

#: Names served from modules that import torch, loaded on first access (PEP 562).
_LAZY = {
    "AreaUnderMargin": "fitwatch.data.mislabels",
    "ForgettingEvents": "fitwatch.data.mislabels",
    "ConfidentMistakes": "fitwatch.data.mistakes",
    "Mistake": "fitwatch.data.mistakes",
}

__all__ = [
    "AreaUnderMargin",
    "ConfidentMistakes",
    "DuplicateReport",
    "FingerprintChange",
    "ForgettingEvents",
    "LabelShiftReport",
    "Mistake",
    "PipelineComparison",
    "SampleDifference",
    "StageError",
    "TemporalSplitReport",
    "assert_pipelines_match",
    "check_temporal_split",
    "chi2_sf",
    "compare_pipelines",
    "content_digest",
    "diff_fingerprints",
    "find_duplicates",
    "find_fingerprint",
    "label_shift",
    "normalize_text",
    "read_fingerprint",
    "run_fingerprint",
    "write_fingerprint",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fitwatch.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
