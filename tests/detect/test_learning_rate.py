"""FW-LR-TOO-HIGH / FW-LR-TOO-LOW, FW-LOSS-SPIKES and FW-LR-NO-WARMUP: exact behaviour on tables of plain
numbers, measured series from real runs, and false-alarm / detection rates on simulated runs."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import HealthCheck, given, settings

from fitwatch.detect.learning_rate import (
    LossSpikeDetector,
    UpdateRatioDetector,
    WarmupDetector,
    geometric_mean,
    optimizer_family,
    schedule_phase,
)
from fitwatch.detect.records import AuditRecord, EvalRecord, StepRecord
from fitwatch.findings import Severity

from . import step_series as ss

NAN, INF = math.nan, math.inf
HIGH, LOW = "FW-LR-TOO-HIGH", "FW-LR-TOO-LOW"


def codes(findings):
    return [None if f is None else f.code for f in findings]


def diag(step, ratio, *, lr=(1e-3,), blocks=3):
    """A diagnostic step record with ``blocks`` blocks at ``ratio`` (or a mapping of block ratios)."""
    ratios = ratio if isinstance(ratio, dict) else {f"layer.{i}": ratio for i in range(blocks)}
    return StepRecord(step=step, epoch=0, lr=list(lr), update_ratios=ratios)


# ------------------------------------------------------------------------------------------ kernels


@pytest.mark.parametrize(
    ("lr", "previous", "peak", "expected"),
    [
        (2e-5, 1e-5, 2e-5, "warmup"),
        (2e-5, None, 2e-5, "steady"),
        (2e-5, 2e-5, 2e-5, "steady"),
        (2e-5 * (1 + 1e-9), 2e-5, 2e-5 * (1 + 1e-9), "steady"),  # float noise is not a rise
        (1.0e-5, 1.1e-5, 2e-5, "steady"),  # exactly half the peak: still steady
        (0.9e-5, 1.0e-5, 2e-5, "decayed"),
        (0.0, 0.0, 0.0, "unknown"),
        (NAN, 1e-5, 2e-5, "unknown"),
    ],
)
def test_schedule_phase(lr, previous, peak, expected):
    assert schedule_phase(lr, previous, peak, 0.5) == expected


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("Adam", "adaptive"),
        ("AdamW", "adaptive"),
        ("FusedAdam", "adaptive"),
        ("AdamW8bit", "adaptive"),
        ("Adafactor", "adaptive"),
        ("Lion", "adaptive"),
        ("RMSprop", "adaptive"),
        ("RAdam", "rectified"),
        ("SGD", "sgd"),
        ("LBFGS", "unknown"),
        ("Adagrad", "unknown"),
    ],
)
def test_optimizer_family(name, family):
    assert optimizer_family(name) == family


def test_geometric_mean_matches_the_log_mean():
    values = [3e-2, 3e-3, 3e-2]
    assert geometric_mean(values) == pytest.approx(math.prod(values) ** (1 / 3), rel=1e-9)
    assert geometric_mean([2.0, NAN, INF, -1.0, 8.0]) == pytest.approx(4.0)


# --------------------------------------------------------------------------------- update ratio: tables


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (3e-2, [None, None, None, HIGH, HIGH, HIGH]),
        (1.01e-2, [None, None, None, HIGH, HIGH, HIGH]),
        (0.99e-2, [None] * 6),
        (1e-3, [None] * 6),
        (5.1e-6, [None] * 6),
        (4.9e-6, [None, None, None, LOW, LOW, LOW]),
        (0.0, [None, None, None, LOW, LOW, LOW]),  # nothing moves at a positive learning rate
    ],
)
def test_update_ratio_thresholds_after_the_first_diagnostic(ratio, expected):
    # Record 0 is the run's first diagnostic (Adam's sign step): skipped. Records 1-3 fill the window.
    records = [diag(50 * (i + 1), ratio) for i in range(6)]
    assert codes(ss.findings_of(UpdateRatioDetector(), records)) == expected


@pytest.mark.parametrize(
    ("sequence", "fires"),
    [
        ([3e-2, 3e-2, 3e-3, 3e-2], True),  # one record back in range: geometric mean 1.39e-2 still high
        ([3e-2, 3e-2, 1e-3, 3e-2], False),  # geometric mean 9.65e-3
        ([1.0, 1e-3, 1e-3, 1e-3], False),  # a huge first step is skipped altogether
    ],
)
def test_update_ratio_is_persistent_geometric_mean(sequence, fires):
    records = [diag(50 * (i + 1), r) for i, r in enumerate(sequence)]
    expected = math.prod(sequence[1:]) ** (1 / 3) > 1e-2
    assert expected is fires
    assert (ss.findings_of(UpdateRatioDetector(), records)[-1] is not None) is fires


def test_update_ratio_median_block_speaks_and_worst_block_is_named():
    one_wild_block = {"head": 5.0, "a": 1e-3, "b": 1e-3}
    assert (
        ss.findings_of(UpdateRatioDetector(), [diag(50 * (i + 1), one_wild_block) for i in range(5)])
        == [None] * 5
    )
    high = {"a": 3e-2, "b": 4e-2, "head": 1e-3}
    found = ss.findings_of(UpdateRatioDetector(), [diag(50 * (i + 1), high) for i in range(4)])[-1]
    assert found.code == HIGH and found.severity is Severity.WARNING and found.subject == ""
    assert found.evidence["median_update_ratio"] == pytest.approx(3e-2, rel=1e-3)
    assert (found.evidence["worst_block"], found.evidence["worst_update_ratio"]) == ("b", 4e-2)
    assert found.evidence["factor"] == pytest.approx(30.0, rel=1e-3)
    assert "3.0e-02" in found.message and "30x" in found.message and "`b`" in found.message
    low = {"a": 1e-6, "b": 2e-6, "emb": 1e-8}
    found = ss.findings_of(UpdateRatioDetector(), [diag(50 * (i + 1), low) for i in range(4)])[-1]
    assert found.code == LOW and found.evidence["worst_block"] == "emb"
    assert "1000x below" in found.message  # the median block, 1e-6


def test_update_ratio_ignores_warmup_and_the_decayed_tail():
    lrs = [1e-4, 2e-4, 3e-4, 4e-4, 4e-4, 4e-4, 4e-4, 3e-4, 2e-4, 1e-4]
    records = [diag(50 * (i + 1), 3e-2, lr=(lr,)) for i, lr in enumerate(lrs)]
    # rising: not judged; 4e-4 x3 fills the window; 2e-4 is exactly half the peak (judged); 1e-4 is decayed.
    expected = [None] * 6 + [HIGH, HIGH, HIGH, None]
    assert codes(ss.findings_of(UpdateRatioDetector(), records)) == expected


def test_update_ratio_warmup_restart_clears_the_window():
    lrs = [1e-3, 1e-3, 1e-3, 2e-3, 2e-3, 2e-3, 2e-3]  # a restart (rise) after two judged records
    records = [diag(50 * (i + 1), 3e-2, lr=(lr,)) for i, lr in enumerate(lrs)]
    assert codes(ss.findings_of(UpdateRatioDetector(), records)) == [None] * 6 + [HIGH]


@pytest.mark.parametrize(("raw", "fires"), [(3.2e-6, False), (2.9e-6, True)])
def test_update_ratio_low_side_is_rescaled_to_the_peak_lr(raw, fires):
    # At 60% of the peak, Adam's ratio is 60% of what the peak gives: 3.2e-6 -> 5.3e-6, 2.9e-6 -> 4.8e-6.
    records = [diag(50, 1e-3, lr=(1e-3,))] + [diag(50 * (i + 1), raw, lr=(6e-4,)) for i in range(1, 4)]
    assert (ss.findings_of(UpdateRatioDetector(), records)[-1] is not None) is fires


def test_update_ratio_lr_zero_and_unknown_lr():
    at_zero = [diag(50 * (i + 1), 0.0, lr=(0.0,)) for i in range(6)]
    assert ss.findings_of(UpdateRatioDetector(), at_zero) == [None] * 6
    no_lr = [diag(50 * (i + 1), 3e-2, lr=()) for i in range(4)]
    found = ss.findings_of(UpdateRatioDetector(), no_lr)[-1]
    assert (
        found.code == HIGH
        and found.evidence["lr"] is None
        and "learning rate" not in found.message.split(",")[0]
    )


def test_update_ratio_skips_non_finite_values_and_plain_steps():
    junk = {"a": NAN, "b": INF, "c": -1.0}
    records = [diag(50 * (i + 1), junk, lr=(NAN, INF)) for i in range(5)]
    records += [StepRecord(step=300 + i, epoch=0, losses=[1.0], lr=[1e-3]) for i in range(5)]  # no ratios
    assert ss.findings_of(UpdateRatioDetector(), records) == [None] * 10


@pytest.mark.parametrize("offset", [-2, -1, 1])
def test_update_ratio_state_round_trips_mid_run(offset):
    records = ss.to_records(ss.with_lr_factor(ss.seeded_run(3), 100.0))
    straight = ss.findings_of(UpdateRatioDetector(), records)
    first = next(i for i, f in enumerate(straight) if f)
    resumed = ss.resumed_findings(UpdateRatioDetector, records, first + offset)  # window half full, or full
    assert [f and f.to_dict() for f in resumed] == [f and f.to_dict() for f in straight]


def test_update_ratio_reset_forgets_history():
    det = UpdateRatioDetector(high=2e-2)
    ss.findings_of(det, [diag(50 * (i + 1), 3e-2) for i in range(4)])
    det.reset()
    assert det.high == 2e-2 and det.state_dict() == UpdateRatioDetector(high=2e-2).state_dict()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"high": 1e-6}, ValueError, "Expected `high` to be greater than `low`"),
        ({"high": 0.0}, ValueError, "Expected `high` to be a positive float, but got 0.0"),
        ({"low": NAN}, ValueError, "Expected `low` to be a positive float"),
        ({"patience": 0}, ValueError, "Expected `patience` to be a positive int, but got 0"),
        ({"patience": 2.0}, TypeError, "Expected `patience` to be a positive int, but got float"),
        ({"decay_fraction": 1.5}, ValueError, r"Expected `decay_fraction` to be a float in \[0, 1\]"),
        ({"high": "1e-2"}, TypeError, "Expected `high` to be a positive float, but got str"),
        ({"min_step": -1}, ValueError, "Expected `min_step` to be a non-negative int, but got -1"),
        ({"min_step": 1.5}, TypeError, "Expected `min_step` to be a non-negative int, but got float"),
    ],
)
def test_update_ratio_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        UpdateRatioDetector(**kwargs)


@pytest.mark.parametrize("cls", [UpdateRatioDetector, LossSpikeDetector])
def test_step_detectors_reject_other_records(cls):
    with pytest.raises(TypeError, match="Expected `record` to be a StepRecord, but got EvalRecord"):
        cls().update(EvalRecord(step=1, epoch=0, val={}))


# ---------------------------------------------------------------------------- update ratio: real runs


def test_update_ratio_quiet_on_measured_healthy_runs():
    for series in (ss.DIGITS_ADAM_1E_3, ss.DIGITS_ADAM_1E_3_LONG):
        assert not any(ss.findings_of(UpdateRatioDetector(), ss.measured_records(series, lr=1e-3)))
    assert not any(ss.findings_of(UpdateRatioDetector(), ss.minilm_records()))


@pytest.mark.parametrize("series", [ss.DIGITS_ADAM_1E_1, ss.DIGITS_SGD_1E_1], ids=["adam-0.1", "sgd-0.1"])
def test_update_ratio_flags_measured_too_high_runs_at_the_third_judged_record(series):
    # Step 0 is the first diagnostic and 50 is inside the early transient (before `min_step`): 100, 150 and
    # 200 are judged.
    step, found = ss.first_finding(UpdateRatioDetector(), ss.measured_records(series, lr=0.1))
    assert (step, found.code) == (200, HIGH)


def test_update_ratio_on_a_measured_fine_tune_scaled_100x():
    # Adam's ratio is proportional to the learning rate: 100x off scales it by 100 (at 100x lower, gradients
    # stay consistent, so the early ratios, not the noise floor, are the right ones to scale).
    low = ss.minilm_records(ratio_factor=0.01)
    high = ss.minilm_records(ratio_factor=100.0)
    # Known limit of this 200-step run: its steady phase is steps 20-100 (warmup before, lr under half the
    # peak from 120), almost all of it inside the early transient (`min_step=100`): no verdict either way.
    assert not any(ss.findings_of(UpdateRatioDetector(), low)) and not any(
        ss.findings_of(UpdateRatioDetector(), high)
    )
    # Without the transient horizon, 40, 60 and 80 are judged and both are caught by step 80.
    assert codes(ss.findings_of(UpdateRatioDetector(min_step=0), low)) == [None] * 4 + [LOW, LOW] + [None] * 4
    assert codes(ss.findings_of(UpdateRatioDetector(min_step=0), high)) == [None] * 4 + [HIGH] + [None] * 5


def test_update_ratio_skips_the_early_transient_of_training_from_scratch():
    # Measured on the zoo's healthy 2-layer BERT trained from scratch (AdamW 1e-3, 5% warmup, diagnostics
    # every 10 steps): median ratio per record. 1e-2 .. 1.1e-2 at steps 50-90, then it settles.
    bert = [
        (10, 3.0e-3),
        (30, 4.6e-3),
        (50, 9.9e-3),
        (60, 1.05e-2),
        (70, 1.1e-2),
        (80, 1.05e-2),
        (90, 9.9e-3),
        (110, 6.7e-3),
        (130, 6.9e-3),
        (150, 4.4e-3),
        (170, 6.4e-3),
        (190, 4.5e-3),
    ]
    records = [diag(s, r, lr=(9e-4,)) for s, r in bert]
    assert not any(ss.findings_of(UpdateRatioDetector(), records))
    assert any(ss.findings_of(UpdateRatioDetector(min_step=0), records))


def test_update_ratio_known_limit_from_scratch_too_low():
    # From scratch rms(theta) is ~0.07, so even 1e-6 with Adam moves weights 7e-6 .. 1.2e-5 per step: above
    # every healthy fine-tune's floor is where `low` must sit, so this run is left to the plateau detector.
    assert not any(ss.findings_of(UpdateRatioDetector(), ss.measured_records(ss.DIGITS_ADAM_1E_6, lr=1e-6)))


# ---------------------------------------------------------------------------- update ratio: simulation


def test_update_ratio_no_false_alarm_on_simulated_healthy_runs():
    fired = [
        seed for seed in range(150) if any(ss.findings_of(UpdateRatioDetector(), ss.healthy_records(seed)))
    ]
    assert fired == []


def _judged_from(run):
    """First step at which the schedule is steady (warmup over) and the early transient past: judging starts."""
    peak = max(run.lrs)
    return max(UpdateRatioDetector().min_step, next(s for s, lr in enumerate(run.lrs) if lr >= peak))


@pytest.mark.parametrize(("factor", "code", "min_rate"), [(100.0, HIGH, 0.8), (0.01, LOW, 0.85)])
def test_update_ratio_detects_lr_100x_off_within_four_records(factor, code, min_rate):
    delays = []
    for seed in range(100):
        run = ss.with_lr_factor(ss.seeded_run(1000 + seed), factor)
        step, _ = ss.first_finding(UpdateRatioDetector(), ss.to_records(run), code)
        if step is not None:
            delays.append(step - _judged_from(run))
    assert len(delays) / 100 >= min_rate
    # Judging starts at the first record after warmup; the third judged record decides.
    assert statistics.median(delays) <= 4 * 50


def test_update_ratio_catches_every_100x_too_low_fine_tune():
    found = 0
    total = 0
    for seed in range(100):
        base = ss.seeded_run(1000 + seed)
        if base.regime != "finetune":
            continue
        total += 1
        step, _ = ss.first_finding(UpdateRatioDetector(), ss.to_records(ss.with_lr_factor(base, 0.01)), LOW)
        found += step is not None
    assert total > 30 and found == total


# ----------------------------------------------------------------------------------- loss spikes: tables


def in_records(losses, *, size=25, first_step=0):
    """Step records of ``size`` losses each."""
    out = []
    for i in range(0, len(losses), size):
        chunk = losses[i : i + size]
        out.append(StepRecord(step=first_step + i + len(chunk) - 1, epoch=0, losses=chunk, lr=[1e-3]))
    return out


BASE = [0.9, 1.1] * 50  # mean 1.0, sd 0.1; initial loss (median of the first five) 0.9


@pytest.mark.parametrize(
    ("k", "records_with_findings"),
    [(1, []), (5, []), (6, [4]), (30, [4, 5])],
)
def test_loss_spikes_needs_six_consecutive_steps(k, records_with_findings):
    losses = BASE + [3.0] * k + [1.0] * (150 - k)
    found = ss.findings_of(LossSpikeDetector(), in_records(losses))
    assert [i for i, f in enumerate(found) if f] == records_with_findings


def test_loss_spikes_message_and_evidence():
    losses = BASE + [3.0] * 4 + [4.0] + [3.0] * 25 + [1.0] * 20
    found = ss.findings_of(LossSpikeDetector(), in_records(losses))
    during, after = found[4], found[5]
    assert during.code == "FW-LOSS-SPIKES" and during.severity is Severity.WARNING
    assert during.evidence == {
        "recent_mean": 1.0,
        "peak_loss": 4.0,
        "consecutive_steps": 25,
        "onset_step": 100,
        "episodes": 1,
        "ratio": 2.0,
        "ongoing": True,
    }
    assert "mean of 1 on 25 consecutive steps from step 100, peaking at 4, and is still up" in during.message
    assert after.evidence["consecutive_steps"] == 30 and after.evidence["ongoing"] is False
    assert "then came back down" in after.message


@pytest.mark.parametrize(("level", "fires"), [(1.95, False), (2.05, True)])
def test_loss_spikes_ratio_bar(level, fires):
    losses = [0.99, 1.01] * 50 + [level] * 10 + [1.0] * 15
    assert any(ss.findings_of(LossSpikeDetector(), in_records(losses))) is fires


# Heavy-tailed late training: nine batches at 0.002 and one with a hard example at 0.182; mean 0.02.
HEAVY = ([0.182] + [0.002] * 9) * 10


@pytest.mark.parametrize(("level", "fires"), [(0.1, False), (0.2, True)])
def test_loss_spikes_noise_floor_keeps_heavy_tails_quiet(level, fires):
    mean, sd = statistics.fmean(HEAVY), statistics.pstdev(HEAVY)
    assert (mean, round(sd, 3)) == (pytest.approx(0.02), 0.054)
    # 0.1 is 5x the mean but 0.08 above it, under 3 sd; 0.2 clears 3 sd (0.162).
    assert (level - mean >= 3 * sd) is fires and level >= 2 * mean
    losses = HEAVY + [level] * 8 + [0.002] * 17
    assert any(ss.findings_of(LossSpikeDetector(), in_records(losses))) is fires


@pytest.mark.parametrize(("level", "fires"), [(0.04, False), (0.07, True)])
def test_loss_spikes_min_rise_when_the_window_is_flat(level, fires):
    # Initial loss 1.0, then a flat 0.01: sd 0, so the floor is 5% of the initial loss (0.05).
    losses = [1.0] * 5 + [0.01] * 120 + [level] * 8 + [0.01] * 17
    assert any(ss.findings_of(LossSpikeDetector(), in_records(losses))) is fires


def test_loss_spikes_lasting_level_becomes_the_reference():
    losses = BASE + [3.0] * 300
    found = ss.findings_of(LossSpikeDetector(), in_records(losses, size=10))
    steps = [r.step for r, f in zip(in_records(losses, size=10), found, strict=True) if f]
    assert steps[0] == 109  # the record holding the sixth step at 3.0
    assert 200 <= steps[-1] <= 250  # after ~`window` steps at 3.0 the new level is the reference
    assert steps == list(range(109, steps[-1] + 1, 10))


def test_loss_spikes_counts_episodes_and_skips_nan_inside_a_run():
    spike = [3.0, 3.0, 3.0, NAN, 3.0, 3.0, 3.0]
    losses = BASE + spike + [1.0] * 50 + spike + [1.0] * 43
    found = [f for f in ss.findings_of(LossSpikeDetector(), in_records(losses)) if f]
    assert [f.evidence["episodes"] for f in found] == [1, 2]
    assert [f.evidence["consecutive_steps"] for f in found] == [6, 6]


def test_loss_spikes_ignores_non_positive_losses():
    losses = [-1.1, -0.9] * 50 + [5.0] * 20 + [-1.0] * 30
    assert not any(ss.findings_of(LossSpikeDetector(), in_records(losses)))


def test_loss_spikes_recovers_after_absurd_losses():
    # 1e300 squares to inf; once it has left the 100-step window the running sums must be finite again.
    det = LossSpikeDetector()
    ss.findings_of(det, in_records([1e300, -1e300] + BASE + BASE))
    assert (det.ref_sum, det.ref_sumsq) == (pytest.approx(100.0), pytest.approx(101.0))
    assert any(ss.findings_of(det, in_records([3.0] * 10 + [1.0] * 15, first_step=202)))


def test_loss_spikes_state_round_trips_mid_spike():
    losses = BASE + [3.0] * 30 + [1.0] * 40 + [3.5] * 12 + [1.0] * 18
    records = in_records(losses, size=10)
    straight = ss.findings_of(LossSpikeDetector(), records)
    for split in (11, 12, 15):  # mid-run, at its end, between episodes
        resumed = ss.resumed_findings(LossSpikeDetector, records, split)
        assert [f and f.to_dict() for f in resumed] == [f and f.to_dict() for f in straight]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ratio": 1.0}, ValueError, "Expected `ratio` to be a float greater than 1, but got 1.0"),
        ({"min_consecutive": 0}, ValueError, "Expected `min_consecutive` to be a positive int"),
        (
            {"window": 10, "min_history": 20},
            ValueError,
            r"Expected `min_history` to be at most `window` \(10\)",
        ),
        ({"min_rise": 2.0}, ValueError, r"Expected `min_rise` to be a float in \[0, 1\]"),
        ({"noise_multiplier": -3.0}, ValueError, "Expected `noise_multiplier` to be a positive float"),
        ({"window": 100.0}, TypeError, "Expected `window` to be a positive int, but got float"),
    ],
)
def test_loss_spikes_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        LossSpikeDetector(**kwargs)


# ------------------------------------------------------------------------------- loss spikes: simulation


@pytest.mark.parametrize("log_every", [50, 10])
def test_loss_spikes_no_false_alarm_on_simulated_healthy_runs(log_every):
    seeds = range(150) if log_every == 50 else range(60)
    fired = [
        s
        for s in seeds
        if any(ss.findings_of(LossSpikeDetector(), ss.healthy_records(s, log_every=log_every)))
    ]
    assert fired == []


def test_loss_spikes_detects_returns_to_the_initial_loss_within_two_records():
    delays = []
    for seed in range(100):
        rng = random.Random(seed)
        base = ss.seeded_run(1000 + seed)
        onset = int(base.n_steps * rng.uniform(0.3, 0.8))
        run = ss.with_spike(base, rng, onset=onset, length=rng.randint(10, 60), level=rng.uniform(1.0, 1.5))
        step, _ = ss.first_finding(LossSpikeDetector(), ss.to_records(run))
        if step is not None:
            delays.append(step - onset)
    assert len(delays) >= 93
    assert max(delays) < 2 * 50  # found at the first or second record after onset


# ---------------------------------------------------------------------------------------------- warmup


def audit(*, pretrained=True, optimizers=("AdamW",), initial=(2e-4,), base=(2e-4,), step=0):
    return AuditRecord(
        step=step,
        epoch=0,
        pretrained=pretrained,
        optimizer_names=list(optimizers),
        initial_lrs=list(initial),
        base_lrs=list(base),
    )


@pytest.mark.parametrize(
    ("kwargs", "fires"),
    [
        ({}, True),
        ({"initial": (0.0,)}, False),  # HF linear warmup starts at 0
        ({"initial": (2e-4 / 3,)}, False),  # torch LinearLR's default start factor
        ({"initial": (1e-4,)}, True),  # half the base rate: no warmup worth the name (boundary)
        ({"initial": (1e-4,), "base": (1e-4,)}, True),  # the threshold itself counts as large
        ({"initial": (5e-5,), "base": (5e-5,)}, False),  # the BERT recipe's rates
        ({"pretrained": False}, False),
        ({"pretrained": None}, False),
        ({"optimizers": ("RAdam",)}, False),  # rectified: no warmup needed
        ({"optimizers": ("LBFGS",)}, False),
        ({"optimizers": ("SGD",), "initial": (0.1,), "base": (0.1,)}, True),
        ({"optimizers": ("SGD",), "initial": (0.05,), "base": (0.05,)}, False),
        ({"optimizers": ("AdamW", "SGD"), "initial": (0.01,), "base": (0.01,)}, False),  # higher bar applies
        ({"initial": (2e-4,), "base": ()}, True),  # no scheduler: base = initial
        ({"initial": (NAN, 0.0, INF), "base": (2e-4, 2e-4, 2e-4)}, False),
    ],
)
def test_warmup_table(kwargs, fires):
    assert (WarmupDetector().update(audit(**kwargs)) is not None) is fires


def test_warmup_judges_only_audits_that_carry_the_first_steps_lr():
    # The observer fills `initial_lrs` only in the first audit of a run started at step 0; later audits
    # (after warmup the LR is the base rate itself) and resumed runs (mid-schedule) leave it empty.
    det = WarmupDetector()
    assert det.update(audit(initial=(0.0,), step=1)) is None
    assert det.update(audit(initial=(), step=500)) is None
    assert WarmupDetector().update(audit(initial=(), step=500)) is None


def test_warmup_names_the_worst_group():
    found = WarmupDetector().update(audit(initial=(0.0, 3e-4, 2e-4), base=(2e-4, 3e-4, 2e-4), step=0))
    assert found.code == "FW-LR-NO-WARMUP" and found.severity is Severity.WARNING
    assert found.evidence["groups_without_warmup"] == [1, 2] and found.evidence["initial_lr"] == 3e-4
    assert (
        "AdamW at learning rate 3.0e-04" in found.message and "param group 1 starts at 100%" in found.message
    )


def test_warmup_custom_thresholds_and_errors():
    assert WarmupDetector(adaptive_lr=1e-3).update(audit()) is None
    assert (
        WarmupDetector().update(audit(initial=(1e-4,), base=(3e-4,))) is None
    )  # a third of the base: warmup
    assert WarmupDetector(no_warmup_fraction=0.2).update(audit(initial=(1e-4,), base=(3e-4,))) is not None
    with pytest.raises(ValueError, match="Expected `adaptive_lr` to be a positive float, but got 0"):
        WarmupDetector(adaptive_lr=0)
    with pytest.raises(ValueError, match=r"Expected `no_warmup_fraction` to be a float in \[0, 1\]"):
        WarmupDetector(no_warmup_fraction=2.0)
    with pytest.raises(TypeError, match="Expected `record` to be an AuditRecord, but got StepRecord"):
        WarmupDetector().update(StepRecord(step=1, epoch=0))


# ---------------------------------------------------------------------------------------------- junk in


@pytest.mark.parametrize("cls", [UpdateRatioDetector, LossSpikeDetector, WarmupDetector])
def test_junk_never_raises_and_state_stays_strict_json(cls):
    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ss.junk_records(cls.record_types))
    def run(records):
        ss.check_survives(cls(), records)

    run()


# ---------------------------------------------------------------------------------------- configuration


def test_registered_under_their_configuration_names():
    from fitwatch.detect import divergence, regularization
    from fitwatch.detect.base import DETECTORS, build_detectors

    mine = {
        "update_ratio": UpdateRatioDetector,
        "loss_spikes": LossSpikeDetector,
        "warmup": WarmupDetector,
        "divergence": divergence.DivergenceDetector,
        "eval_mode": regularization.EvalModeDetector,
        "dropout": regularization.NoDropoutDetector,
        "decay_on_norm": regularization.DecayOnNormDetector,
        "no_decay": regularization.NoDecayDetector,
        "missing_params": regularization.MissingParamsDetector,
        "frozen_params": regularization.FrozenParamsDetector,
        "weight_growth": regularization.WeightGrowthDetector,
    }
    assert {name: DETECTORS[name] for name in mine} == mine
    built = build_detectors({"update_ratio": {"high": 2e-2}, "loss_spikes": {"enabled": False}})
    ratio = [d for d in built if isinstance(d, UpdateRatioDetector)]
    assert len(ratio) == 1 and ratio[0].high == 2e-2
    assert not any(isinstance(d, LossSpikeDetector) for d in built)
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['args'\] for detector 'dropout'"):
        build_detectors({"dropout": {"args": 1}})
