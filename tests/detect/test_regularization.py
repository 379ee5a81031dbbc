"""FW-REG-*: the set-up audit detectors on tables of plain data, and FW-REG-WEIGHT-GROWTH on tables, on
measured weight-norm series from real runs and on simulated runs."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from scipy import stats

from fitwatch.detect.records import AuditRecord, StepRecord
from fitwatch.detect.regularization import (
    DecayOnNormDetector,
    EvalModeDetector,
    FrozenParamsDetector,
    MissingParamsDetector,
    NoDecayDetector,
    NoDropoutDetector,
    WeightGrowthDetector,
    growth_verdict,
    is_decoupled_decay,
    under_any,
)
from fitwatch.findings import Severity

from . import step_series as ss

NAN, INF = math.nan, math.inf
AUDITORS = [
    EvalModeDetector,
    NoDropoutDetector,
    DecayOnNormDetector,
    NoDecayDetector,
    MissingParamsDetector,
    FrozenParamsDetector,
]


def audit(**kwargs):
    kwargs.setdefault("step", 100)
    return AuditRecord(epoch=0, **kwargs)


# ---------------------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("name", "prefixes", "inside"),
    [
        ("backbone.layer1.bn1", ["backbone"], True),
        ("backbone", ["backbone"], True),
        ("backbone2.bn", ["backbone"], False),
        ("head.dropout", ["backbone", "head.dropout"], True),
        ("anything", [""], True),
        ("anything", [], False),
    ],
)
def test_under_any(name, prefixes, inside):
    assert under_any(name, prefixes) is inside


@pytest.mark.parametrize(
    ("name", "decoupled"),
    [
        ("AdamW", True),
        ("adamw_torch_fused", True),
        ("PagedAdamW32bit", True),
        ("Lion", True),
        ("LAMB", True),
        ("SGDW", True),
        ("Adam", False),
        ("SGD", False),
        ("Adafactor", False),
    ],
)
def test_is_decoupled_decay(name, decoupled):
    assert is_decoupled_decay(name) is decoupled


# ------------------------------------------------------------------------------------------- eval mode


@pytest.mark.parametrize(
    ("modules", "expected", "reported"),
    [
        ([], [], None),
        (["bert.encoder.layer.0.attention.dropout"], [], ["bert.encoder.layer.0.attention.dropout"]),
        (["backbone.bn1", "backbone.layer1.0.bn1", "head.dropout"], ["backbone"], ["head.dropout"]),
        (["backbone.bn1", "backbone.layer1.0.bn1"], ["backbone"], None),  # a frozen backbone, on purpose
        (["backbone2.bn"], ["backbone"], ["backbone2.bn"]),
        (["a.dropout", "b.norm"], [""], None),
    ],
)
def test_eval_mode_table(modules, expected, reported):
    found = EvalModeDetector().update(audit(eval_mode_modules=modules, frozen_eval_modules_expected=expected))
    if reported is None:
        assert found is None
    else:
        assert found.code == "FW-REG-EVAL-MODE" and found.severity is Severity.WARNING
        assert found.evidence["modules"] == {"count": len(reported), "names": reported}


def test_eval_mode_message_names_modules_and_whole_model():
    modules = [f"layer.{i}.dropout" for i in range(5)]
    found = EvalModeDetector().update(audit(eval_mode_modules=modules, model_training=False))
    assert found.message == (
        "5 dropout/normalization modules are in eval mode while training (the whole model: model.training is "
        "False): `layer.0.dropout`, `layer.1.dropout`, `layer.2.dropout` and 2 more. Dropout is off and "
        "BatchNorm statistics are frozen there."
    )
    assert found.evidence["model_training"] is False


# ------------------------------------------------------------------------------------ dropout and decay


@pytest.mark.parametrize(
    ("probabilities", "fires"),
    [
        ({}, False),  # no dropout modules at all (Llama-style): nothing to say
        ({"a": 0.0, "b": 0.0}, True),
        ({"a": 0.0, "b": 0.1}, False),
        ({"a": NAN, "b": 0.0}, True),  # an unreadable p is left out
        ({"a": NAN}, False),
    ],
)
def test_no_dropout_table(probabilities, fires):
    found = NoDropoutDetector().update(audit(dropout_probabilities=probabilities))
    assert (found is not None) is fires
    if fires:
        assert found.code == "FW-REG-NO-DROPOUT" and found.severity is Severity.INFO


def test_decay_on_norm_counts_norms_and_biases():
    names = ["bert.embeddings.LayerNorm.weight", "bert.pooler.dense.bias", "classifier.bias", "bias"]
    found = DecayOnNormDetector().update(audit(decay_on_norm_or_bias=names))
    assert found.code == "FW-REG-DECAY-ON-NORM" and found.severity is Severity.INFO
    assert (found.evidence["normalization_weights"], found.evidence["biases"]) == (1, 3)
    assert found.message.startswith(
        "Weight decay applies to 1 normalization weight and 3 biases (`bert.embeddings.LayerNorm.weight`, "
        "`bert.pooler.dense.bias`, `classifier.bias` and 1 more)"
    )
    assert DecayOnNormDetector().update(audit()) is None
    one = DecayOnNormDetector().update(audit(decay_on_norm_or_bias=["fc.bias"]))
    assert "applies to 1 bias (`fc.bias`)" in one.message


@pytest.mark.parametrize(
    ("optimizers", "decays", "fires"),
    [
        (["AdamW"], {"decay": 0.0, "no_decay": 0.0}, True),
        (["AdamW"], {"decay": 0.01, "no_decay": 0.0}, False),
        (["Adam"], {"0": 0.0}, False),  # coupled L2 is another matter
        (["AdamW"], {}, False),
        (["SGD", "AdamW"], {"0": 0.0, "1": 0.0}, True),
        (["AdamW"], {"0": NAN, "1": 0.0}, True),
    ],
)
def test_no_decay_table(optimizers, decays, fires):
    found = NoDecayDetector().update(audit(optimizer_names=optimizers, weight_decays=decays))
    assert (found is not None) is fires
    if fires:
        assert found.code == "FW-REG-NO-DECAY" and found.severity is Severity.INFO
        assert found.evidence["optimizers"] == ["AdamW"]


# ----------------------------------------------------------------------------------- missing and frozen


def test_missing_params():
    assert MissingParamsDetector().update(audit()) is None
    found = MissingParamsDetector().update(
        audit(missing_from_optimizer=["classifier.weight", "classifier.bias"], trainable_parameters=201)
    )
    assert found.code == "FW-REG-MISSING-PARAMS" and found.severity is Severity.WARNING
    assert found.message == (
        "2 trainable parameters are in no optimizer param group, so they never train: `classifier.weight`, "
        "`classifier.bias`."
    )
    assert found.evidence == {
        "parameters": {"count": 2, "names": ["classifier.weight", "classifier.bias"]},
        "trainable_parameters": 201,
    }


def test_missing_params_evidence_is_capped():
    names = [f"p{i}" for i in range(80)]
    found = MissingParamsDetector().update(audit(missing_from_optimizer=names))
    assert found.evidence["parameters"]["count"] == 80 and len(found.evidence["parameters"]["names"]) == 50
    assert "and 77 more" in found.message


def test_frozen_params_sequence():
    det = FrozenParamsDetector()
    sequence = [
        audit(step=0, missing_from_optimizer=["head.w"]),  # fit start: nothing unchanged yet
        audit(step=10, unchanged_parameters=["a", "b"]),  # before min_steps: lr 0 / skipped steps are normal
        audit(step=100, unchanged_parameters=["a", "head.w"]),  # head.w is already reported missing
        audit(step=200, unchanged_parameters=["head.w"]),
        audit(step=300, unchanged_parameters=["a", "c"], missing_from_optimizer=["c"]),
    ]
    found = [det.update(r) for r in sequence]
    assert [f and f.evidence["parameters"]["names"] for f in found] == [None, None, ["a"], None, ["a"]]
    assert found[2].code == "FW-REG-FROZEN-PARAMS" and found[2].severity is Severity.WARNING
    assert found[2].message.startswith("1 trainable parameter has not changed in 100 steps: `a`.")
    assert FrozenParamsDetector(min_steps=0).update(audit(step=10, unchanged_parameters=["a"])) is not None


def test_frozen_params_names_a_zero_learning_rate_as_the_cause():
    det = FrozenParamsDetector()
    found = det.update(audit(step=100, unchanged_parameters=["a"], current_lrs=(0.0, 0.0)))
    assert "The learning rate is 0 in every param group" in found.message
    assert "receive no update" not in found.message and found.evidence["learning_rates"] == [0.0, 0.0]
    moving = FrozenParamsDetector().update(audit(step=100, unchanged_parameters=["a"], current_lrs=(1e-3, 0.0)))
    assert "receive no update" in moving.message


def test_frozen_params_state_round_trips():
    records = [audit(step=0, missing_from_optimizer=["m"]), audit(step=50, unchanged_parameters=["m", "x"])]
    straight = ss.findings_of(FrozenParamsDetector(), records)
    resumed = ss.resumed_findings(FrozenParamsDetector, records, 1)
    assert [f and f.to_dict() for f in resumed] == [f and f.to_dict() for f in straight]
    assert straight[1].evidence["parameters"]["names"] == ["x"]


@pytest.mark.parametrize("cls", AUDITORS)
def test_auditors_reject_step_records_and_read_junk_quietly(cls):
    with pytest.raises(TypeError, match="Expected `record` to be an AuditRecord, but got StepRecord"):
        cls().update(StepRecord(step=1, epoch=0))
    junk = audit(
        dropout_probabilities={"a": INF},
        weight_decays={"g": NAN},
        optimizer_names=["AdamW"],
        initial_lrs=[NAN],
        base_lrs=[INF],
        pretrained=True,
    )
    assert cls().update(junk) is None


def test_frozen_params_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Expected `min_steps` to be a non-negative int, but got -1"):
        FrozenParamsDetector(min_steps=-1)
    with pytest.raises(TypeError, match="Expected `min_steps` to be a non-negative int, but got str"):
        FrozenParamsDetector(min_steps="25")


# ----------------------------------------------------------------------------------- growth: the kernel


T = list(range(0, 2000, 50))


@pytest.mark.parametrize(
    ("values", "runaway"),
    [
        ([10.0 + 0.01 * t for t in T], True),  # linear, +195%
        ([10.0 + 0.002 * t for t in T], False),  # linear but only +39%
        ([10.0 * (1 + 1.5 * (1 - math.exp(-t / 300))) for t in T], False),  # +150%, then flat
        ([10.0 * (1 + 0.5 * math.log1p(t / 50)) for t in T], False),  # log growth: slowing
        # Random-walk growth (Adam at too high a rate, no decay) is square-root shaped: 4.5x, recent +36%.
        ([10.0 * math.sqrt(1 + t / 100) for t in T], True),
        ([10.0 * math.sqrt(1 + t / 2000) for t in T], False),  # the same shape, but only +40% in all
        ([10.0] * 20 + [10.0 + 0.02 * (t - 1000) for t in T[20:]], True),  # flat, then a runaway
        ([10.0] * 40, False),
        ([10.0 - 0.001 * t for t in T], False),
    ],
    ids=[
        "linear",
        "linear-small",
        "plateau",
        "log",
        "sqrt",
        "sqrt-small",
        "late-runaway",
        "flat",
        "shrinking",
    ],
)
def test_growth_verdict_table(values, runaway):
    assert growth_verdict(T, values).runaway is runaway


@pytest.mark.parametrize("seed", range(3))
def test_growth_verdict_slopes_match_scipy(seed):
    rng = random.Random(seed)
    ys = [10.0 + 0.01 * t + rng.gauss(0.0, 0.3) for t in T]
    verdict = growth_verdict(T, ys)
    half = len(T) // 2
    assert verdict.slope_earlier == pytest.approx(stats.theilslopes(ys[:half], T[:half]).slope, rel=1e-12)
    assert verdict.slope_recent == pytest.approx(stats.theilslopes(ys[half:], T[half:]).slope, rel=1e-12)
    assert verdict.growth == pytest.approx(ys[-1] / ys[0] - 1)
    assert verdict.recent_growth == pytest.approx(verdict.slope_recent * (T[-1] - T[half]) / ys[half])


def test_growth_verdict_degenerate_inputs():
    assert growth_verdict([0, 1, 2, 3, 4], [1, 2, 3, 4, 5]).runaway is False  # under 6 points
    assert growth_verdict(T, [0.0] + [1.0 + t for t in T[1:]]).runaway is False  # no positive reference
    assert math.isnan(growth_verdict([], []).growth)


# --------------------------------------------------------------------------------- growth: the detector


def norms(values, *, every=50):
    return [StepRecord(step=i * every, epoch=0, weight_norm=v) for i, v in enumerate(values)]


def test_weight_growth_waits_for_points_and_steps():
    steep = [10.0 * (1 + 0.5 * i) for i in range(40)]
    found = ss.findings_of(WeightGrowthDetector(), norms(steep))
    # 16 records at 50 steps span only 750 steps: the first judged record is the 17th (step 800).
    assert [i for i, f in enumerate(found) if f][0] == 16
    dense = ss.findings_of(
        WeightGrowthDetector(), norms([10.0 * (1 + 0.1 * i) for i in range(200)], every=10)
    )
    assert [i for i, f in enumerate(dense) if f][0] == 80  # 800 steps at 10-step logging
    slow = [10.0 * (1 + 0.004 * i) for i in range(100)]  # steady, but +40% over 5000 steps
    assert not any(ss.findings_of(WeightGrowthDetector(), norms(slow)))


def test_weight_growth_message_and_evidence():
    found = [
        f
        for f in ss.findings_of(WeightGrowthDetector(), norms([10.0 * (1 + 0.05 * i) for i in range(40)]))
        if f
    ]
    last = found[-1]
    assert last.code == "FW-REG-WEIGHT-GROWTH" and last.severity is Severity.WARNING
    assert last.evidence["growth"] == pytest.approx(1.95, rel=1e-3) and last.evidence["first_norm"] == 10.0
    assert last.message.startswith(
        "The global weight norm has grown 195% since step 0 (10 -> 29.5) and is not leveling off: the recent "
        "half of the run alone added "
    )


def test_weight_growth_keeps_a_bounded_evenly_spaced_history():
    det = WeightGrowthDetector(max_points=32)
    ss.findings_of(det, norms([10.0 + 0.01 * i for i in range(1000)]))
    steps = [p[0] for p in det.points]
    assert len(steps) <= 32 and det.stride == 32
    assert steps == [i * 32 * 50.0 for i in range(len(steps))]


def test_weight_growth_skips_unusable_norms():
    values = [NAN, INF, -1.0, 0.0, None] + [10.0 * (1 + 0.05 * i) for i in range(40)]
    records = [StepRecord(step=i * 50, epoch=0, weight_norm=v) for i, v in enumerate(values)]
    found = ss.findings_of(WeightGrowthDetector(), records)
    assert found[:21] == [None] * 21 and found[-1].evidence["first_step"] == 250


@pytest.mark.parametrize("split", [10, 20, 30])
def test_weight_growth_state_round_trips(split):
    records = norms([10.0] * 15 + [10.0 * (1 + 0.05 * i) for i in range(60)])
    straight = ss.findings_of(WeightGrowthDetector(max_points=16), records)
    assert any(straight)
    resumed = ss.resumed_findings(lambda: WeightGrowthDetector(max_points=16), records, split)
    assert [f and f.to_dict() for f in resumed] == [f and f.to_dict() for f in straight]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_points": 5}, ValueError, "Expected `min_points` to be an int of at least 6, but got 5"),
        (
            {"max_points": 10},
            ValueError,
            r"Expected `max_points` to be at least `min_points` \(16\), but got 10",
        ),
        ({"min_growth": 0.0}, ValueError, "Expected `min_growth` to be a positive float, but got 0.0"),
        ({"min_recent_growth": -0.3}, ValueError, "Expected `min_recent_growth` to be a positive float"),
        ({"slowdown": 2.0}, ValueError, r"Expected `slowdown` to be a float in \[0, 1\], but got 2.0"),
        ({"alpha": "0.01"}, TypeError, r"Expected `alpha` to be a float in \[0, 1\], but got str"),
        ({"min_steps": -800}, ValueError, "Expected `min_steps` to be a non-negative int, but got -800"),
    ],
)
def test_weight_growth_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        WeightGrowthDetector(**kwargs)


def test_weight_growth_rejects_audit_records():
    with pytest.raises(TypeError, match="Expected `record` to be a StepRecord, but got AuditRecord"):
        WeightGrowthDetector().update(AuditRecord(step=0, epoch=0))


# ------------------------------------------------------------------------- growth: real and simulated


@pytest.mark.parametrize(
    "series",
    [ss.DIGITS_ADAM_1E_3, ss.DIGITS_ADAM_1E_3_LONG, ss.DIGITS_SGD_1E_1, ss.DIGITS_ADAM_1E_6],
    ids=["adam-1e-3", "adam-1e-3-long", "sgd-0.1", "adam-1e-6"],
)
def test_weight_growth_quiet_on_measured_runs_that_level_off(series):
    # Healthy from scratch: +89% (30 epochs), +129% (100 epochs), +267% (SGD), all slowing down.
    assert not any(ss.findings_of(WeightGrowthDetector(), ss.measured_records(series, lr=1e-3)))


def test_weight_growth_flags_the_measured_runaway():
    step, found = ss.first_finding(WeightGrowthDetector(), ss.measured_records(ss.DIGITS_ADAM_1E_1, lr=0.1))
    assert step == 800 and found.evidence["growth"] > 15


@pytest.mark.parametrize("log_every", [50, 10])
def test_weight_growth_no_false_alarm_on_simulated_healthy_runs(log_every):
    seeds = range(150) if log_every == 50 else range(60)
    fired = [
        s
        for s in seeds
        if any(ss.findings_of(WeightGrowthDetector(), ss.healthy_records(s, log_every=log_every)))
    ]
    assert fired == []


def test_weight_growth_detects_simulated_runaways():
    found = 0
    for seed in range(100):
        rng = random.Random(seed)
        run = ss.with_runaway_norm(
            ss.seeded_run(1000 + seed),
            onset=int(3000 * rng.uniform(0.0, 0.5)),
            total_growth=rng.uniform(1.0, 3.0),
        )
        step, _ = ss.first_finding(WeightGrowthDetector(), ss.to_records(run))
        found += step is not None
    assert found >= 95


# ---------------------------------------------------------------------------------------------- junk in


@pytest.mark.parametrize("cls", [*AUDITORS, WeightGrowthDetector])
def test_junk_never_raises_and_state_stays_strict_json(cls):
    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ss.junk_records(cls.record_types))
    def run(records):
        ss.check_survives(cls(), records)

    run()
