"""Independent reference implementations the tests compare fitwatch against, written from the papers."""

from __future__ import annotations

import numpy as np


def reference_ece_mce(conf: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> tuple[float, float]:
    """ECE and MCE of Guo et al. 2017 (Eqs. 3 and 5), sample by sample: bins I_m = ((m-1)/M, m/M], the
    first bin also holding a confidence of exactly 0."""
    conf, correct = np.asarray(conf, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    n = len(conf)
    ece, mce = 0.0, 0.0
    for m in range(1, n_bins + 1):
        lo, hi = (m - 1) / n_bins, m / n_bins
        in_bin = (conf > lo) & (conf <= hi) if m > 1 else (conf >= 0) & (conf <= hi)
        if in_bin.sum() == 0:
            continue
        gap = abs(correct[in_bin].mean() - conf[in_bin].mean())
        ece += in_bin.sum() / n * gap
        mce = max(mce, gap)
    return ece, mce


def reference_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    return reference_ece_mce(conf, correct, n_bins)[0]
