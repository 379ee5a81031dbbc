"""Warning classes: one base, one subclass per family of finding.

Every finding fitwatch raises is emitted once per cause as a subclass of :class:`FitWatchWarning`,
so the standard :mod:`warnings` filters work as people expect::

    import warnings
    from fitwatch import CalibrationWarning

    warnings.filterwarnings("ignore", category=CalibrationWarning)   # silence one family
    warnings.filterwarnings("error", category=FitWatchWarning)       # fail a CI run on any

:class:`FitWatchRuntimeWarning` is different in kind: it reports a problem of fitwatch itself
(a sink that failed, a batch it could not read). Training always goes on after it.
"""

from __future__ import annotations

__all__ = [
    "CalibrationWarning",
    "ClassCollapseWarning",
    "DataLeakageWarning",
    "DataQualityWarning",
    "DivergenceWarning",
    "FailedRunWarning",
    "FitWatchRuntimeWarning",
    "FitWatchWarning",
    "LearningRateWarning",
    "OverfittingWarning",
    "PipelineDriftWarning",
    "PlateauWarning",
    "RegularizationWarning",
]


class FitWatchWarning(UserWarning):
    """Base class of every warning fitwatch emits."""


class OverfittingWarning(FitWatchWarning):
    """Validation loss, calibration or the train-validation gap is getting worse while training improves."""


class PlateauWarning(FitWatchWarning):
    """The monitored metric stopped improving before training converged."""


class CalibrationWarning(FitWatchWarning):
    """Predicted confidences no longer match observed accuracy."""


class ClassCollapseWarning(FitWatchWarning):
    """One class is failing behind a healthy-looking average."""


class LearningRateWarning(FitWatchWarning):
    """The learning rate or its schedule is off (too high, too low, no warmup, decayed too early)."""


class RegularizationWarning(FitWatchWarning):
    """Regularization or optimizer set-up is broken (eval mode, weight decay on norms, missing parameters)."""


class DivergenceWarning(FitWatchWarning):
    """Non-finite values or an exploding loss."""


class FailedRunWarning(FitWatchWarning):
    """The run is no better than predicting the majority class after a fair share of training."""


class DataLeakageWarning(FitWatchWarning):
    """Training data leaks into validation (duplicates, time order, suspiciously good scores)."""


class PipelineDriftWarning(FitWatchWarning):
    """Training and inference preprocessing disagree."""


class DataQualityWarning(FitWatchWarning):
    """The data itself looks off: label shift between splits, suspected mislabeled samples."""


class FitWatchRuntimeWarning(FitWatchWarning):
    """A problem inside fitwatch (a sink failed, a batch could not be read); training carries on."""
