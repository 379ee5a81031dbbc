"""FW-DIVERGENCE: non-finite values (with the loss-scaler exception for gradients) and the exploding loss,
checked against a plain re-implementation of the bias-corrected EMA rule, and on simulated runs."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import HealthCheck, given, settings

from fitwatch.detect.divergence import DivergenceDetector, nonfinite_count
from fitwatch.detect.records import AuditRecord, EvalRecord, StepRecord
from fitwatch.findings import Severity

from . import step_series as ss

NAN, INF = math.nan, math.inf


def steps(losses, *, size=10, first_step=0, nonfinite=None):
    """Step records of ``size`` losses each; ``nonfinite[i]`` is the counts of record ``i``."""
    out = []
    for n, i in enumerate(range(0, len(losses), size)):
        chunk = losses[i : i + size]
        counts = (nonfinite or {}).get(n, {})
        out.append(StepRecord(step=first_step + i + len(chunk) - 1, epoch=0, losses=chunk, nonfinite=counts))
    return out


def fired(findings):
    return [i for i, f in enumerate(findings) if f is not None]


# ------------------------------------------------------------------------------------ non-finite values


@pytest.mark.parametrize(
    ("record", "found"),
    [
        (StepRecord(step=9, epoch=0, losses=[1.0] * 9 + [NAN]), {"loss": 1}),
        (StepRecord(step=9, epoch=0, losses=[1.0, INF, -INF]), {"loss": 2}),
        (StepRecord(step=9, epoch=0, losses=[NAN], nonfinite={"loss": 3}), {"loss": 3}),  # the larger count
        (StepRecord(step=9, epoch=0, losses=[1.0], nonfinite={"logits": 2}), {"logits": 2}),
        (StepRecord(step=9, epoch=0, losses=[NAN], nonfinite={"grad": 1}), {"loss": 1, "gradients": 1}),
        (StepRecord(step=9, epoch=0, losses=[1.0], nonfinite={"loss": 0, "logits": 0, "grad": 0}), None),
        (StepRecord(step=9, epoch=0, losses=[1.0], nonfinite={"loss": NAN, "logits": -1}), None),
        (StepRecord(step=9, epoch=0, losses=[1.0], nonfinite={"grad": 5}), None),  # gradients alone: a scaler
        (EvalRecord(step=9, epoch=0, val={"nonfinite_logits": 3, "loss": 0.4}), {"validation logits": 3}),
        (EvalRecord(step=9, epoch=0, val={"nonfinite_logits": 0}), None),
        (EvalRecord(step=9, epoch=0, val={"loss": NAN}), None),
    ],
)
def test_nonfinite_table(record, found):
    finding = DivergenceDetector().update(record)
    if found is None:
        assert finding is None
    else:
        assert finding.code == "FW-DIVERGENCE" and finding.severity is Severity.CRITICAL
        assert finding.evidence["nonfinite"] == found and finding.evidence["first_nonfinite_step"] == 9


def test_nonfinite_message_tracks_the_first_occurrence():
    det = DivergenceDetector()
    det.update(StepRecord(step=49, epoch=1, losses=[1.0] * 49 + [NAN]))
    later = det.update(StepRecord(step=99, epoch=1, losses=[NAN] * 50, nonfinite={"loss": 50, "logits": 7}))
    assert later.message == (
        "NaN/inf values since the previous record in loss (50), logits (7); the first appeared by step 49: "
        "the run has diverged."
    )
    assert later.evidence["nonfinite_total"] == {"loss": 51, "logits": 7}
    val = det.update(EvalRecord(step=99, epoch=1, val={"nonfinite_logits": 12}))
    assert val.message.startswith("NaN/inf values in validation logits (12); the first appeared by step 49")


@pytest.mark.parametrize(
    ("log_every", "grad_records", "first_fire"),
    [
        (50, 2, None),  # two records of overflows: a scaler's bad patch
        (50, 3, 2),  # three records spanning 150 steps: every step skipped
        (1, 30, None),  # per-step logging: 30 calibration overflows span 30 steps, under 100
        (1, 150, 99),  # 100 consecutive steps of overflow
        (500, 1, None),  # one periodic overflow in a 500-step interval
        (500, 3, 2),
    ],
)
def test_gradients_alone_must_persist(log_every, grad_records, first_fire):
    records = [
        StepRecord(
            step=(i + 1) * log_every - 1,
            epoch=0,
            losses=[0.5] * log_every,
            nonfinite={"grad": 1} if i < grad_records else {},
        )
        for i in range(grad_records + 2)
    ]
    found = fired(ss.findings_of(DivergenceDetector(), records))
    assert (found[0] if found else None) == first_fire
    if first_fire is not None:
        f = ss.findings_of(DivergenceDetector(), records)[first_fire]
        assert "more than a loss scaler skips" in f.message
        assert f.evidence["first_nonfinite_step"] == log_every - 1  # where the run of overflows began
        assert found == list(range(first_fire, grad_records))  # until the gradients are finite again


def test_nonfinite_count_reads_counts_defensively():
    assert [nonfinite_count(x) for x in (2, 2.7, "3", None, NAN, INF, -4, object())] == [
        2,
        2,
        3,
        0,
        0,
        1,
        0,
        0,
    ]


# --------------------------------------------------------------------------------------- loss explosion


def reference_explosion_steps(losses, *, alpha=0.1, factor=4.0):
    """Indices of the losses at which the rule holds, written out plainly: EMA m / (1 - (1 - alpha)^t),
    best from the ceil(1 / alpha)-th value on, initial level = median of the first five."""
    m = weight = 0.0
    best = None
    initial = statistics.median(losses[:5])
    out = []
    for i, x in enumerate(losses):
        m = (1 - alpha) * m + alpha * x
        weight = (1 - alpha) * weight + alpha
        level = m / weight
        if i + 1 < math.ceil(1 / alpha):
            continue
        best = level if best is None else min(best, level)
        if level > factor * best and level > initial:
            out.append(i)
    return out


EXPLODING = [2.3] * 20 + [2.3 * 0.9**k for k in range(1, 40)] + [0.04 * 1.25**k for k in range(1, 30)]


@pytest.mark.parametrize(
    "losses",
    [
        EXPLODING,
        [0.69] * 10 + [0.1] * 50 + [0.69] * 40,  # back to the starting level: not above it
        [0.69] * 10 + [0.1] * 50 + [0.8] * 40,  # above it and 8x the best
        [0.7] * 30 + [0.01] * 200 + [0.05] * 100,  # 5x its best late in a healthy run, far below the start
        [0.19, 0.5, 0.6, 0.45, 0.8] + [0.8] * 40,  # one lucky first batch is not the best
        [3.0, 2.0, 1.0, 0.5, 0.2] + [0.1] * 20 + [5.0] * 10,
    ],
    ids=["explodes", "back-to-start", "past-start", "late-5x", "lucky-first-batch", "fast"],
)
def test_explosion_matches_the_plain_rule(losses):
    expected_steps = reference_explosion_steps(losses)
    records = steps(losses)
    expected_records = sorted({i // 10 for i in expected_steps})
    assert fired(ss.findings_of(DivergenceDetector(), records)) == expected_records


def test_explosion_fires_where_expected_and_reads_plainly():
    expected = reference_explosion_steps(EXPLODING)
    assert expected and expected[0] > 59  # only once the loss is above its starting 2.3
    found = ss.findings_of(DivergenceDetector(), steps(EXPLODING))
    first = next(f for f in found if f)
    assert first.code == "FW-DIVERGENCE" and first.severity is Severity.CRITICAL
    ev = first.evidence
    assert ev["initial_loss"] == 2.3 and ev["ratio_to_best"] > 4 and ev["loss_ema"] > 2.3
    assert first.message.startswith(f"The smoothed training loss reached {ev['loss_ema']:.3g} at step ")
    assert f"{ev['ratio_to_best']:.1f}x its best of {ev['best_loss_ema']:.3g}" in first.message
    assert "above its starting level of 2.3: the loss is exploding." in first.message


def test_custom_factor_and_alpha():
    losses = [1.0] * 20 + [0.2] * 40 + [1.1] * 40
    assert reference_explosion_steps(losses, factor=6.0) == []
    assert not any(ss.findings_of(DivergenceDetector(factor=6.0), steps(losses)))
    expected = sorted({i // 10 for i in reference_explosion_steps(losses, alpha=0.5)})
    assert expected and fired(ss.findings_of(DivergenceDetector(alpha=0.5), steps(losses))) == expected


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"factor": 1.0}, ValueError, "Expected `factor` to be a float greater than 1, but got 1.0"),
        ({"factor": "4"}, TypeError, "Expected `factor` to be a positive float, but got str"),
        ({"alpha": 0.0}, ValueError, r"Expected `alpha` to be a float in \(0, 1\], but got 0.0"),
        ({"alpha": 1.5}, ValueError, r"Expected `alpha` to be a float in \(0, 1\], but got 1.5"),
        ({"alpha": None}, TypeError, r"Expected `alpha` to be a float in \(0, 1\], but got NoneType"),
        ({"grad_records": 0}, ValueError, "Expected `grad_records` to be a positive int, but got 0"),
        ({"grad_steps": -1}, ValueError, "Expected `grad_steps` to be a non-negative int, but got -1"),
    ],
)
def test_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DivergenceDetector(**kwargs)


def test_rejects_audit_records():
    with pytest.raises(
        TypeError, match="Expected `record` to be a StepRecord or EvalRecord, but got AuditRecord"
    ):
        DivergenceDetector().update(AuditRecord(step=0, epoch=0))


@pytest.mark.parametrize("split", [3, 6, 9])
def test_state_round_trips_mid_run(split):
    losses = EXPLODING[:80] + [NAN] * 5 + EXPLODING[80:]
    records = steps(losses, nonfinite={2: {"grad": 1}, 3: {"grad": 1}, 4: {"grad": 1}})
    straight = ss.findings_of(DivergenceDetector(grad_steps=20), records)
    assert len(fired(straight)) >= 3
    resumed = ss.resumed_findings(lambda: DivergenceDetector(grad_steps=20), records, split)
    assert [f and f.to_dict() for f in resumed] == [f and f.to_dict() for f in straight]


# ------------------------------------------------------------------------------------------- simulation


def test_no_false_alarm_on_simulated_healthy_runs():
    fired_seeds = [s for s in range(150) if any(ss.findings_of(DivergenceDetector(), ss.healthy_records(s)))]
    assert fired_seeds == []


@pytest.mark.parametrize("log_every", [50, 1])
def test_no_false_alarm_with_a_loss_scaler(log_every):
    seeds = range(40) if log_every == 50 else range(5)
    for seed in seeds:
        run = ss.with_scaler_overflows(ss.seeded_run(seed), random.Random(seed))
        run.log_every = log_every
        assert not any(ss.findings_of(DivergenceDetector(), ss.to_records(run))), seed


@pytest.mark.parametrize("kind", ["loss", "grad"])
def test_nan_found_at_once(kind):
    for seed in range(60):
        rng = random.Random(seed)
        base = ss.seeded_run(1000 + seed)
        onset = int(base.n_steps * rng.uniform(0.3, 0.8))
        step, _ = ss.first_finding(
            DivergenceDetector(), ss.to_records(ss.with_nan(base, onset=onset, kind=kind))
        )
        record_end = (onset // 50) * 50 + 49
        # A NaN loss: the record holding onset. Gradients alone: the third record from it.
        assert step == (record_end if kind == "loss" else record_end + 100), seed


def test_explosions_found_in_the_record_where_the_rule_first_holds():
    delays = []
    for seed in range(100):
        rng = random.Random(seed)
        base = ss.seeded_run(1000 + seed)
        onset = int(base.n_steps * rng.uniform(0.3, 0.8))
        doubling = rng.randint(5, 50)
        run = ss.with_explosion(base, rng, onset=onset, doubling=doubling)
        first_true = reference_explosion_steps(run.losses)[0]
        assert first_true >= onset, seed
        step, _ = ss.first_finding(DivergenceDetector(), ss.to_records(run))
        assert step == (first_true // 50) * 50 + 49, seed
        delays.append((first_true - onset) / doubling)
    # Doublings from onset until the smoothed loss passes its starting level: a late loss of 0.005-0.15
    # needs log2(start / late) of them, plus the EMA's lag of about one horizon.
    assert statistics.median(delays) < 8


# ---------------------------------------------------------------------------------------------- junk in


@pytest.mark.parametrize("cls", [DivergenceDetector])
def test_junk_never_raises_and_state_stays_strict_json(cls):
    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ss.junk_records(cls.record_types))
    def run(records):
        ss.check_survives(cls(), records)

    run()
