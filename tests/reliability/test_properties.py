"""Property-based tests (hypothesis) for every detector and trend kernel.

1. Never raises: any sequence of floats (NaN, +-inf, zero, negative, huge), any length, for every kernel; any
   sequence of records with junk in every field the detectors read, for every registered detector (alone and
   together in a :class:`~fitwatch.monitor.Monitor`, where a detector that raised would be disabled with a
   warning, an error under this suite's ``filterwarnings``); findings and states stay strict JSON.
2. Invariances, each following from a definition:

   - **Shift** (adding a constant ``c``): the trend kernels that only look at differences or orderings,
     Theil-Sen slope, Mann-Kendall and the noise estimates, are shift-invariant, and the EMA is
     shift-equivariant. No loss-reading *detector* is, by design: each judges a loss against its own level
     (Prechelt's GL and PQ are ratios, ReduceLROnPlateau's ``rel`` threshold is relative, a spike is a
     multiple of the recent mean, an explosion a multiple of the best EMA, a widening a share of the
     validation loss, a leak a loss ratio): a rise from 0.60 to 0.69 is +15%, from 10.60 to 10.69 +0.8%.
     The detectors that do not read the loss at all are invariant to any change of it (tested below, so
     that one starting to read it is noticed), and a table test shows GL's dependence on the level.
   - **Scale** (multiplying every loss by ``a > 0``): every detector is scale-invariant, GL being a ratio.
     Powers of two make the scaling exact in floating point, so the findings must be identical, not close.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fitwatch.detect import DETECTORS, build_detectors
from fitwatch.detect.overfitting import OverfittingDetector
from fitwatch.detect.records import AuditRecord, EvalRecord, StepRecord
from fitwatch.detect.trends import (
    EMA,
    ema,
    finite,
    finite_or_none,
    generalization_loss,
    mann_kendall,
    relative_improvement,
    rise_since_best,
    robust_noise,
    theil_sen_slope,
    training_progress,
    trimmed_noise,
    two_proportion_z,
)
from fitwatch.monitor import Monitor
from tests.detect import step_series as ss

#: Moderate example counts keep the module at a few seconds; ``derandomize`` makes every run draw the same
#: examples, so a boundary case cannot make CI flaky.
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NASTY = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-308, -1e308, 1e308]
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(NASTY))
series = st.lists(floats, max_size=80)
#: Detectors that read a loss (``val/train["loss"]``, ``val["nll"]`` or step losses).
LOSS_READERS = {
    "overfitting",
    "subtle_overfitting",
    "gap",
    "plateau",
    "lr_decayed",
    "leak_suspicious",
    "divergence",
    "loss_spikes",
}
EVAL_KEYS = (
    "loss",
    "accuracy",
    "macro_f1",
    "weighted_f1",
    "ece",
    "mce",
    "adaptive_ece",
    "classwise_ece",
    "brier",
    "nll",
    "samples",
    "majority_fraction",
    "confidence",
    "ece_chance",
    "nonfinite_logits",
)
PER_CLASS_KEYS = ("precision", "recall", "f1", "support", "predicted")


# ------------------------------------------------------------------------------------------- kernels: no raise


@SETTINGS
@given(series, st.one_of(st.none(), series))
def test_kernels_never_raise_on_any_series(y, x):
    assert finite(y) == [v for v in y if math.isfinite(v)]
    slope = theil_sen_slope(y, x if x is not None and len(x) == len(y) else None)
    assert isinstance(slope, float)
    mk = mann_kendall(y)
    assert 0.0 <= mk.p_increasing <= 1.0 and 0.0 <= mk.p_decreasing <= 1.0
    for order in (1, 2):
        assert robust_noise(y, order=order) >= 0 or math.isnan(robust_noise(y, order=order))
        assert trimmed_noise(y, order=order) >= 0 or math.isnan(trimmed_noise(y, order=order))
    assert len(ema(y, alpha=0.3)) == len(y)
    training_progress(y)
    rise = rise_since_best([None if i % 7 == 3 else v for i, v in enumerate(y)])
    assert rise is None or (rise.since_best >= 0 and 0.0 <= rise.p_increasing <= 1.0)


@SETTINGS
@given(floats, floats, floats, floats)
def test_scalar_kernels_never_raise(a, b, c, d):
    generalization_loss(a, b)
    relative_improvement(a, b, mode="min")
    relative_improvement(a, b, mode="max")
    z = two_proportion_z(a, b, c, d)
    assert isinstance(z, float)
    assert finite_or_none(a) == (a if math.isfinite(a) else None)


@SETTINGS
@given(series, st.floats(min_value=1e-6, max_value=1.0))
def test_incremental_ema_equals_the_batch_ema_and_survives_json(y, alpha):
    tracker = EMA(alpha)
    values = [tracker.update(v) for v in y]
    assert values == pytest.approx(ema(y, alpha), nan_ok=True)
    clone = EMA(alpha)
    clone.load_state_dict(json.loads(json.dumps(tracker.state_dict())))
    assert clone.value == pytest.approx(tracker.value, nan_ok=True)


# ------------------------------------------------------------------------------------------ kernels: shifts


#: Values on a 1/8 grid and integer shifts keep every sum and difference exact in floating point, so the
#: shifted series has exactly the same differences and ties as the original.
grid = st.integers(-8000, 8000).map(lambda k: k / 8)
shift = st.integers(-(10**6), 10**6).map(float)


@SETTINGS
@given(st.lists(grid, max_size=60), shift)
def test_trend_kernels_are_shift_invariant(y, c):
    """Slopes, Mann-Kendall and noise read differences and orderings only."""
    moved = [v + c for v in y]
    assert theil_sen_slope(moved) == pytest.approx(theil_sen_slope(y), nan_ok=True)
    assert mann_kendall(moved) == mann_kendall(y)
    for order in (1, 2):
        assert robust_noise(moved, order=order) == pytest.approx(robust_noise(y, order=order), nan_ok=True)
        assert trimmed_noise(moved, order=order) == pytest.approx(trimmed_noise(y, order=order), nan_ok=True)


@SETTINGS
@given(st.lists(grid, max_size=60), shift, st.sampled_from([0.01, 0.1, 0.5, 1.0]))
def test_the_ema_is_shift_equivariant(y, c, alpha):
    assert ema([v + c for v in y], alpha) == pytest.approx([v + c for v in ema(y, alpha)], rel=1e-9, abs=1e-6)


def test_generalization_loss_is_not_shift_invariant():
    """Prechelt's GL is a ratio to the best loss: the same absolute rise means less at a higher level."""
    assert generalization_loss(0.69, 0.60) == pytest.approx(15.0)
    assert generalization_loss(10.69, 10.60) == pytest.approx(0.849, abs=1e-3)
    rising = [1.00, 0.80, 0.68, 0.62, 0.60, 0.61, 0.64, 0.69, 0.75, 0.82]
    falling_train = [0.85**i for i in range(len(rising))]

    def found(offset):
        det = OverfittingDetector()
        return [
            det.update(EvalRecord(step=i, epoch=i, val={"loss": v + offset}, train={"loss": t + offset}))
            for i, (v, t) in enumerate(zip(rising, falling_train))
        ][-1]

    assert found(0.0) is not None and found(10.0) is None


# ---------------------------------------------------------------------------------------- kernels: scaling


powers = st.sampled_from([2.0**-6, 0.25, 0.5, 2.0, 4.0, 2.0**10])
positive = st.floats(min_value=1e-3, max_value=1e3)


@SETTINGS
@given(positive, positive, powers)
def test_ratio_kernels_are_scale_invariant(current, best, a):
    assert generalization_loss(a * current, a * best) == generalization_loss(current, best)
    assert relative_improvement(a * best, a * current) == pytest.approx(
        relative_improvement(best, current), rel=1e-12
    )


@SETTINGS
@given(st.lists(st.one_of(positive, st.just(math.nan), st.none()), max_size=40), powers)
def test_rise_since_best_and_training_progress_are_scale_invariant(y, a):
    scaled = [None if v is None else a * v for v in y]
    assert training_progress([v for v in scaled if v is not None]) == pytest.approx(
        training_progress([v for v in y if v is not None]), rel=1e-9, nan_ok=True
    )
    r, s = rise_since_best(y), rise_since_best(scaled)
    assert (r is None) == (s is None)
    if r is not None:
        assert (s.best_index, s.since_best, s.p_increasing) == (r.best_index, r.since_best, r.p_increasing)
        assert s.gl == pytest.approx(r.gl, rel=1e-12, nan_ok=True) and s.noise_pct == pytest.approx(
            r.noise_pct, rel=1e-6
        )


# ---------------------------------------------------------------------------------------- detectors: junk


junk = st.one_of(
    st.floats(min_value=-1e100, max_value=1e100), st.sampled_from([math.nan, math.inf, -math.inf, 0.0])
)
metrics = st.dictionaries(
    st.sampled_from(EVAL_KEYS), st.one_of(junk, st.integers(-2, 10**6)), max_size=len(EVAL_KEYS)
)
junk_eval_records = st.builds(
    EvalRecord,
    step=st.integers(0, 10**6),
    epoch=st.none() | st.integers(0, 50),
    val=metrics,
    train=metrics,
    val_per_class=st.dictionaries(st.sampled_from(PER_CLASS_KEYS), st.lists(junk, max_size=6), max_size=5),
    class_names=st.lists(st.text(alphabet="ab0 /", max_size=4), max_size=6),
    lr=st.lists(junk, max_size=3),
    progress=st.none() | junk,
)


def _junk_runs(record_types):
    """Lists of junk records of ``record_types``: the eval records above, step and audit records from ``tests/detect``."""
    others = (
        ss.junk_records(tuple(t for t in record_types if t is not EvalRecord))
        if set(record_types) - {EvalRecord}
        else None
    )
    pieces = [st.lists(junk_eval_records, max_size=12)] if EvalRecord in record_types else []
    if others is not None:
        pieces.append(others)
    return st.lists(st.one_of(*pieces), min_size=1, max_size=3).map(
        lambda parts: [r for part in parts for r in part]
    )


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_survives_junk_records(name):
    cls = DETECTORS[name]

    @SETTINGS
    @given(_junk_runs(cls.record_types))
    def run(records):
        ss.check_survives(cls(), records)

    run()


# ------------------------------------------------------------------------------------- detectors: plausible runs


def _walk(draw, n, start, low=0.8, high=1.25, nan_rate=0.05):
    """A positive random walk in log space (a loss curve), with an occasional NaN."""
    level = draw(st.floats(min_value=start[0], max_value=start[1]))
    out = []
    for _ in range(n):
        level *= draw(st.floats(min_value=low, max_value=high))
        out.append(math.nan if draw(st.floats(min_value=0, max_value=1)) < nan_rate else level)
    return out


@st.composite
def plausible_runs(draw):
    """A run as the Monitor sees it: step records every ``log_every`` steps and an evaluation every epoch, with
    losses that drift and turn, accuracies, per-class numbers and a learning-rate schedule."""
    epochs = draw(st.integers(3, 24))
    log_every, steps_per_epoch = draw(st.sampled_from([(1, 4), (2, 8), (5, 20)]))
    classes = draw(st.integers(2, 5))
    val = _walk(draw, epochs, (0.2, 3.0), 0.85, 1.2)
    train = _walk(draw, epochs, (0.2, 3.0), 0.7, 1.1)
    step_losses = _walk(
        draw,
        epochs * steps_per_epoch,
        (0.2, 3.0),
        0.7,
        1.4,
        nan_rate=draw(st.sampled_from([0.0, 0.0, 0.0, 0.01])),
    )  # mostly finite: explosions get judged
    decay = draw(st.sampled_from([1.0, 0.9, 0.5]))
    records: list = [
        AuditRecord(
            step=0,
            epoch=0,
            optimizer_names=["AdamW"],
            initial_lrs=[1e-3],
            base_lrs=[1e-3],
            max_steps=epochs * steps_per_epoch,
        )
    ]
    for e in range(epochs):
        lr = 1e-3 * decay**e
        for s in range(log_every, steps_per_epoch + 1, log_every):
            step = e * steps_per_epoch + s
            records.append(
                StepRecord(
                    step=step,
                    epoch=e,
                    losses=step_losses[step - log_every : step],
                    lr=[lr],
                    grad_norm=draw(st.floats(0.1, 10.0)),
                    weight_norm=10.0 + 0.01 * step,
                    progress=step / (epochs * steps_per_epoch),
                )
            )
        accuracy = draw(st.floats(0.0, 1.0))
        recall = [draw(st.floats(0.0, 1.0)) for _ in range(classes)]
        records.append(
            EvalRecord(
                step=(e + 1) * steps_per_epoch,
                epoch=e,
                val={
                    "loss": val[e],
                    "nll": val[e],
                    "accuracy": accuracy,
                    "macro_f1": accuracy,
                    "ece": draw(st.floats(0.0, 0.3)),
                    "ece_chance": 0.02,
                    "confidence": draw(st.floats(0.3, 1.0)),
                    "samples": 500.0,
                    "majority_fraction": 1 / classes,
                },
                train={"loss": train[e], "accuracy": draw(st.floats(0.0, 1.0)), "samples": 2000.0},
                val_per_class={
                    "recall": recall,
                    "f1": recall,
                    "precision": recall,
                    "support": [100.0] * classes,
                    "predicted": [100.0 * r for r in recall],
                },
                class_names=[f"c{i}" for i in range(classes)],
                lr=[lr],
                progress=(e + 1) / epochs,
            )
        )
    return records


def _map_losses(records, f):
    out = []
    for r in records:
        if isinstance(r, EvalRecord):
            val = {k: f(v) if k in ("loss", "nll") else v for k, v in r.val.items()}
            train = {k: f(v) if k in ("loss", "nll") else v for k, v in r.train.items()}
            r = EvalRecord(**{**r.__dict__, "val": val, "train": train})
        elif isinstance(r, StepRecord):
            r = StepRecord(**{**r.__dict__, "losses": [f(v) for v in r.losses]})
        out.append(r)
    return out


def _findings(records, names=None):
    """Every finding of every (or the named) detector: ``(record index, detector, code, subject, severity)``."""
    detectors = [d for d in build_detectors() if names is None or d.name in names]
    out = []
    for i, record in enumerate(records):
        for d in detectors:
            if isinstance(record, d.record_types):
                f = d.update(record)
                if f is not None:
                    out.append((i, d.name, f.code, f.subject, int(f.severity)))
    return out


def test_the_loss_readers_are_registered_detectors():
    assert LOSS_READERS < set(DETECTORS)


@SETTINGS
@given(plausible_runs(), powers)
def test_every_detector_is_scale_invariant_in_the_losses(records, a):
    assert _findings(_map_losses(records, lambda v: a * v)) == _findings(records)


@SETTINGS
@given(plausible_runs(), st.floats(min_value=-0.15, max_value=100.0))
def test_detectors_that_do_not_read_the_loss_ignore_any_shift_of_it(records, c):
    others = set(DETECTORS) - LOSS_READERS
    assert _findings(_map_losses(records, lambda v: v + c), others) == _findings(records, others)


def test_the_invariance_tests_can_fail():
    """The runs above are rich enough for a shift to change what the loss readers find: the comparisons are not
    vacuous."""
    changed = []

    @SETTINGS
    @given(plausible_runs())
    def run(records):
        changed.append(
            _findings(_map_losses(records, lambda v: v + 10.0), LOSS_READERS)
            != _findings(records, LOSS_READERS)
        )

    run()
    assert sum(changed) >= 5, f"{sum(changed)} of {len(changed)}"


@SETTINGS
@given(plausible_runs())
def test_a_monitor_with_every_detector_takes_any_plausible_run(records):
    """No detector fails on realistic runs either (a failure would warn, an error in this suite), and what the
    Monitor saves is strict JSON that a new Monitor loads."""
    monitor = Monitor()
    for r in records:
        {EvalRecord: monitor.evaluation, StepRecord: monitor.step, AuditRecord: monitor.audit}[type(r)](r)
    state = json.loads(json.dumps(monitor.state_dict(), allow_nan=False))
    Monitor().load_state_dict(state)
