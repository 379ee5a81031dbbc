"""fitwatch: training-loop callbacks that catch the silent failures of fine-tuning.

The adapters live in their own modules so that ``import fitwatch`` imports neither Lightning
nor transformers::

    from fitwatch.lightning import FitWatch          # PyTorch Lightning
    from fitwatch.hf import FitWatchCallback         # Hugging Face Trainer
"""

from fitwatch.config import FitWatchConfig
from fitwatch.findings import CATALOGUE, Finding, Severity
from fitwatch.warnings import (
    CalibrationWarning,
    ClassCollapseWarning,
    DataLeakageWarning,
    DataQualityWarning,
    DivergenceWarning,
    FailedRunWarning,
    FitWatchRuntimeWarning,
    FitWatchWarning,
    LearningRateWarning,
    OverfittingWarning,
    PipelineDriftWarning,
    PlateauWarning,
    RegularizationWarning,
)

__version__ = "0.1.0"

__all__ = [
    "CATALOGUE",
    "CalibrationWarning",
    "ClassCollapseWarning",
    "DataLeakageWarning",
    "DataQualityWarning",
    "DivergenceWarning",
    "FailedRunWarning",
    "Finding",
    "FitWatchConfig",
    "FitWatchRuntimeWarning",
    "FitWatchWarning",
    "LearningRateWarning",
    "OverfittingWarning",
    "PipelineDriftWarning",
    "PlateauWarning",
    "RegularizationWarning",
    "Severity",
    "__version__",
]
