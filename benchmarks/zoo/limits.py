"""What limits the overfitting delay on the zoo's runs: noise per evaluation against rise per evaluation.

``python -m benchmarks.zoo.limits`` reads ``benchmarks/zoo/results.json`` and prints, for every run whose onset
is the minimum of its validation loss (or NLL): the onset, the relative noise of the validation loss measured
over the whole run and as the detector could measure it three evaluations after the onset
(:func:`fitwatch.detect.overfitting.settled_noise` of the series so far), the rise per evaluation after the
onset (Theil-Sen slope of the log loss over the next five evaluations), FitWatch's delay, and the delay of
:func:`known_noise_cusum`: a one-sided CUSUM (Page 1954) told the whole-run noise before the run starts, which
no detector can know. The gap between the last two columns is the price of having to measure the noise.

>>> round(relative_rise([1.0, 0.8, 0.7, 0.77, 0.847, 0.932, 1.025], 2), 3)   # +10% per evaluation, in log
0.095
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist, median

from fitwatch.detect.overfitting import SETTLED_SHARE, settled_noise
from fitwatch.detect.trends import generalization_loss, theil_sen_slope

__all__ = ["known_noise_cusum", "main", "relative_rise", "rows"]

RESULTS = Path(__file__).resolve().parent / "results.json"
#: Page's reference value k and decision interval h, in noise units. With the noise known, k = 1 and h = 5 give
#: at most 2 false alarms in 800 simulated healthy runs of 10-60 evaluations (``tests/zoo/test_limits.py``).
CUSUM_K = 1.0
CUSUM_H = 5.0
#: Evaluations after the onset at which the noise the detector can measure is reported.
LOOK = 3


def _blom_max(m: int) -> float:
    """Expected maximum of ``m`` standard normal draws (Blom 1958): how far the best of ``m`` noisy
    evaluations of a flat loss lies below their level, in noise units."""
    return 0.0 if m <= 1 else NormalDist().inv_cdf((m - 0.375) / (m + 0.25))


def known_noise_cusum(
    values: Sequence[float], noise: float, *, k: float = CUSUM_K, h: float = CUSUM_H, gl_floor: float = 2.0
) -> int | None:
    """The first evaluation at which a one-sided CUSUM of the log excess over the best, in units of a known
    relative ``noise``, passes ``h``; None if it never does.

    ``S_t = max(0, S_{t-1} + z_t - k)``, reset at each new best, with ``z_t = log(E_t / E_best) / noise`` less
    the best's own downward bias (the expected maximum of the ``m`` evaluations since the loss settled, as
    :func:`~fitwatch.detect.overfitting.settled_noise` defines it). The GL must also exceed ``gl_floor``.

    >>> known_noise_cusum([1.0, 0.7, 0.6, 0.62, 0.66, 0.72, 0.8], noise=0.02)   # +3%, +10%, +20% over the best
    5
    >>> known_noise_cusum([1.0, 0.7, 0.6, 0.61, 0.6, 0.605, 0.6], noise=0.02) is None
    True
    """
    best_index, s = -1, 0.0
    finite = [(i, float(x)) for i, x in enumerate(values) if x is not None and math.isfinite(x) and x > 0]
    for n, (i, value) in enumerate(finite):
        seen = finite[: n + 1]
        b, best = min(seen, key=lambda p: p[1])
        if b != best_index:
            best_index, s = b, 0.0
        if b == i:
            continue
        logs = [math.log(x) for _, x in seen[:-1]]
        low, first = min(logs), logs[0]
        start = next(j for j, x in enumerate(logs) if x - low <= SETTLED_SHARE * (first - low))
        z = math.log(value / best) / noise - _blom_max(len(logs) - start)
        s = max(0.0, s + z - k)
        if s >= h and generalization_loss(value, best) > gl_floor:
            return i
    return None


def relative_rise(values: Sequence[float], onset: int, span: int = 5) -> float:
    """Rise per evaluation after ``onset``: Theil-Sen slope of the log over ``onset .. onset + span``."""
    logs = [math.log(x) if x is not None and x > 0 else math.nan for x in values[onset : onset + span + 1]]
    return theil_sen_slope(logs)


def rows(results: dict) -> list[dict]:
    """One row of numbers per run of ``results`` whose onset is a validation minimum."""
    out = []
    for run in results["runs"]:
        if run["onset"] is None or not run["scenario"].startswith(("overfit", "subtle", "label-noise")):
            continue
        key = "val_nll" if run["scenario"].startswith("subtle") else "val_loss"
        values = [math.nan if x is None else x for x in run["series"][key]]
        onset = run["onset"]
        whole = settled_noise(values)
        oracle = known_noise_cusum(values, whole)
        out.append(
            {
                "run": f"{run['scenario']}/{run['seed']}",
                "onset": onset,
                "noise_whole_pct": 100 * whole,
                "noise_at_look_pct": 100 * settled_noise(values[: onset + LOOK + 1]),
                "rise_pct": 100 * relative_rise(values, onset),
                "delay": run["delay"],
                "known_noise_delay": None if oracle is None else oracle - onset,
            }
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table for ``results.json`` (or the file named as the one argument)."""
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0]) if args else RESULTS
    table = rows(json.loads(path.read_text()))
    print(
        f"| run | onset | noise, whole run | noise at onset+{LOOK} | rise per evaluation | FitWatch delay | "
        "CUSUM delay, noise known |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in table:
        known = "-" if r["known_noise_delay"] is None else f"{r['known_noise_delay']:+d}"
        delay = "-" if r["delay"] is None else f"{r['delay']:+d}"
        print(
            f"| {r['run']} | {r['onset']} | {r['noise_whole_pct']:.1f}% | {r['noise_at_look_pct']:.1f}% | "
            f"{r['rise_pct']:.1f}% | {delay} | {known} |"
        )
    delays = [r["delay"] for r in table if r["delay"] is not None]
    known = [r["known_noise_delay"] for r in table if r["known_noise_delay"] is not None]
    if delays and known:
        print(f"\nMedian delay: FitWatch {median(delays):g}, CUSUM told the noise {median(known):g}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
