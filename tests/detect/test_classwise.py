"""FW-CLASS-COLLAPSE and FW-CLASS-NEVER-PREDICTED: tables of plain numbers, the support guard, several
classes at once, state round trips and simulated false-alarm / detection rates."""

from __future__ import annotations

import dataclasses
import math

import pytest

from fitwatch.detect.classwise import ClassCollapseDetector, NeverPredictedDetector
from fitwatch.detect.records import EvalRecord
from fitwatch.detect.trends import two_proportion_z
from fitwatch.findings import Severity

from . import simulate as sim

NAN, INF = math.nan, math.inf
NAMES = ["neg", "neutral", "pos"]


def rec(
    i, recall, support=(300, 100, 40), predicted=(330, 80, 30), *, accuracy=0.9, majority=0.68, key="recall"
):
    per_class = {key: list(recall), "support": list(support)}
    if predicted is not None:
        per_class["predicted"] = list(predicted)
    val = {"accuracy": accuracy, "majority_fraction": majority}
    return EvalRecord(
        step=100 * (i + 1),
        epoch=i,
        val={k: x for k, x in val.items() if x is not None},
        val_per_class=per_class,
        class_names=NAMES,
    )


def fired(findings):
    return [i for i, f in enumerate(findings) if f is not None]


def recalls(pos, neutral=None):
    """Per-evaluation recall triples with the given 'pos' (and optionally 'neutral') recalls."""
    neutral = neutral or [0.8] * len(pos)
    return [(0.95, n, p) for n, p in zip(neutral, pos)]


# ----------------------------------------------------------------------------------- FW-CLASS-COLLAPSE


def test_collapse_fires_with_subject_and_numbers():
    found = sim.replay(
        ClassCollapseDetector(), [rec(i, r) for i, r in enumerate(recalls([0.6, 0.8, 0.75, 0.1, 0.05, 0.04]))]
    )
    assert fired(found) == [4, 5]
    f = found[-1]
    assert (f.code, f.severity, f.subject) == ("FW-CLASS-COLLAPSE", Severity.WARNING, "pos")
    assert f.key == ("FW-CLASS-COLLAPSE", "pos")
    assert (f.evidence["value"], f.evidence["best"], f.evidence["support"], f.evidence["cause"]) == (
        0.04,
        0.8,
        40,
        "near_zero",
    )
    assert f.message == (
        "recall of class 'pos' fell to 0.04 (best 0.8 at epoch 1; 40 validation samples) while accuracy "
        "looks "
        "healthy at 0.900: the class is collapsing and the aggregate metrics hide it"
    )


def test_collapse_needs_the_other_classes_learned():
    # A class near zero while the others are still at 0.3-0.4 recall: an undertrained model, not a collapse.
    undertrained = [rec(i, (0.4, 0.3, 0.02), accuracy=0.75) for i in range(6)]
    assert fired(sim.replay(ClassCollapseDetector(), undertrained)) == []


@pytest.mark.parametrize(
    ("pos", "kwargs", "expected"),
    [
        # Fallen far: 0.8 -> 0.3 on 40 samples is z = 4.5 >= 3 and at most half the best.
        ([0.6, 0.8, 0.3, 0.3], {}, [3]),
        # Fallen by half but on noise: 0.8 -> 0.35 on 20 samples each is z = 2.88 < 3.
        ([0.6, 0.8, 0.35, 0.35], {"support": (300, 100, 20)}, []),
        # Not fallen far enough: 0.8 -> 0.45 is more than half the best.
        ([0.6, 0.8, 0.45, 0.45], {}, []),
        # One bad evaluation is not a collapse.
        ([0.6, 0.8, 0.02, 0.8, 0.02, 0.8], {}, []),
        # Too few samples to judge (support 15 < 20).
        ([0.6, 0.8, 0.0, 0.0, 0.0], {"support": (300, 100, 15)}, []),
        # The whole run fails (accuracy at the majority baseline): FW-FAILED-RUN's case, not one class.
        ([0.6, 0.8, 0.0, 0.0], {"accuracy": 0.68}, []),
        # Unknown baseline: the aggregate guard is skipped.
        ([0.6, 0.8, 0.0, 0.0], {"majority": None}, [3]),
        # Predicted for no sample at all: FW-CLASS-NEVER-PREDICTED's case.
        ([0.6, 0.8, 0.0, 0.0], {"predicted": (360, 80, 0)}, []),
        # Near zero from the start (a minority class never learned): judged from the third evaluation (the
        # progress is unknown), confirmed on the fourth.
        ([0.02, 0.03, 0.02, 0.02], {}, [3]),
        # Fallen early in training (classes flicker while the model is undertrained): not reported yet.
        ([0.8, 0.3, 0.3], {}, []),
    ],
)
def test_collapse_table(pos, kwargs, expected):
    found = sim.replay(ClassCollapseDetector(), [rec(i, r, **kwargs) for i, r in enumerate(recalls(pos))])
    assert fired(found) == expected


@pytest.mark.parametrize(
    ("pos", "progress", "severities"),
    [
        # Never learned: "not learned yet" (INFO) before half of training, WARNING from then on.
        ([0.02] * 5, (0.1, 0.2, 0.3, 0.5, 0.6), [None, None, "INFO", "WARNING", "WARNING"]),
        # Learned (recall 0.8) and lost: WARNING at once.
        ([0.6, 0.8, 0.03, 0.03, 0.03], (0.1, 0.2, 0.3, 0.35, 0.4), [None, None, None, "WARNING", "WARNING"]),
    ],
)
def test_collapse_tells_a_class_not_learned_yet_from_a_lost_one(pos, progress, severities):
    records = [
        dataclasses.replace(rec(i, r), progress=p) for i, (r, p) in enumerate(zip(recalls(pos), progress))
    ]
    found = sim.replay(ClassCollapseDetector(), records)
    assert [None if f is None else f.severity.name for f in found] == severities
    messages = [f.message for f in found if f is not None]
    if severities[2] == "INFO":
        assert messages[0].endswith(
            "at 30% of training: the model has not learned this class yet; minority classes are often "
            "learned late, so this becomes a warning if it persists"
        )
        assert messages[-1].endswith(
            "at 60% of training: the model has not learned this class, and the aggregate metrics hide it"
        )
    else:
        assert all(m.endswith("the class is collapsing and the aggregate metrics hide it") for m in messages)


def test_collapse_fall_uses_the_two_proportion_z():
    assert two_proportion_z(0.8, 40, 0.3, 40) >= 3 > two_proportion_z(0.8, 20, 0.35, 20)


def test_collapse_reads_f1_when_recall_is_missing():
    rows = [(0.95, 0.8, x) for x in (0.6, 0.8, 0.05, 0.04)]
    found = sim.replay(ClassCollapseDetector(), [rec(i, r, key="f1") for i, r in enumerate(rows)])
    assert fired(found) == [3] and found[-1].message.startswith("f1 of class 'pos' fell to 0.04")


def test_collapse_reports_every_collapsing_class_in_turn():
    rows = recalls([0.6, 0.8, 0.03, 0.03, 0.03, 0.03], neutral=[0.7, 0.8, 0.02, 0.02, 0.02, 0.02])
    found = sim.replay(ClassCollapseDetector(), [rec(i, r, accuracy=0.75) for i, r in enumerate(rows)])
    subjects = [f.subject for f in found if f is not None]
    # Neither reported yet: the worst (neutral, 0.02) first; then the one reported least often.
    assert subjects == ["neutral", "pos", "neutral"]
    assert (
        found[3].evidence["collapsed_classes"] == ["neutral", "pos"]
        and "(also collapsing: pos)" in found[3].message
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_support": 0}, ValueError, "Expected `min_support` to be a positive int"),
        ({"near_zero": 1.5}, ValueError, r"Expected `near_zero` to be a float in \[0, 1\]"),
        ({"drop_ratio": "half"}, TypeError, r"Expected `drop_ratio` to be a float in \[0, 1\]"),
        ({"min_z": 0.0}, ValueError, "Expected `min_z` to be a positive float"),
        ({"confirmations": 0}, ValueError, "Expected `confirmations` to be a positive int"),
        ({"healthy_margin": -0.1}, ValueError, r"Expected `healthy_margin` to be a float in \[0, 1\]"),
    ],
)
def test_collapse_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        ClassCollapseDetector(**kwargs)


# --------------------------------------------------------------------------- FW-CLASS-NEVER-PREDICTED


@pytest.mark.parametrize(
    ("predicted", "support", "expected"),
    [
        # Not predicted at the first evaluation only: early training, not reported.
        ([(330, 110, 0), (300, 100, 40), (300, 100, 40)], (300, 100, 40), []),
        # Persisting: reported from the second evaluation on.
        ([(330, 110, 0), (330, 110, 0), (340, 100, 0)], (300, 100, 40), [1, 2]),
        # Starting later and persisting.
        ([(300, 100, 40), (330, 110, 0), (340, 100, 0)], (300, 100, 40), [2]),
        # Fewer than 5 samples of the class: 0 predictions can be chance.
        ([(330, 110, 0), (330, 110, 0), (340, 100, 0)], (300, 100, 4), []),
        # No support at all: nothing to predict.
        ([(330, 110, 0), (330, 110, 0)], (300, 100, 0), []),
    ],
)
def test_never_predicted_table(predicted, support, expected):
    records = [rec(i, (0.9, 0.8, 0.0), support=support, predicted=p) for i, p in enumerate(predicted)]
    assert fired(sim.replay(NeverPredictedDetector(min_evaluations=1), records)) == expected


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (None, [2, 3]),  # progress unknown: not before the third evaluation
        ((0.05, 0.1, 0.15, 0.3), [3]),  # progress known: not before 20% of training
    ],
)
def test_never_predicted_waits_for_training_to_get_going(progress, expected):
    records = [rec(i, (0.9, 0.8, 0.0), predicted=(330, 110, 0)) for i in range(4)]
    if progress is not None:
        records = [dataclasses.replace(r, progress=p) for r, p in zip(records, progress)]
    assert fired(sim.replay(NeverPredictedDetector(), records)) == expected


def test_never_predicted_says_whether_the_class_was_learned():
    # Recall 0.5 at the first evaluation: learned, then lost; a WARNING at once.
    learned = [
        rec(i, (0.9, 0.8, r), predicted=p)
        for i, (r, p) in enumerate([(0.5, (300, 100, 40))] + [(0.0, (330, 110, 0))] * 3)
    ]
    never = [rec(i, (0.9, 0.8, 0.0), predicted=(330, 110, 0)) for i in range(4)]
    stopped = sim.replay(NeverPredictedDetector(), learned)[-1]
    assert stopped.severity is Severity.WARNING and stopped.evidence["stopped"] == ["pos"]
    assert stopped.message.endswith("the model has stopped predicting 'pos' after learning it")
    not_yet = sim.replay(NeverPredictedDetector(), never)[-1]
    assert not_yet.severity is Severity.INFO
    assert not_yet.message.endswith(
        "the model has not learned to predict it yet; minority classes are often learned late, so this "
        "becomes a warning if it persists"
    )


@pytest.mark.parametrize(
    ("progress", "severities"),
    [
        # Known progress: INFO from 20% of training, WARNING from 50%.
        ((0.1, 0.2, 0.3, 0.4, 0.5, 0.6), [None, "INFO", "INFO", "INFO", "WARNING", "WARNING"]),
        # Unknown progress: INFO from the third evaluation, WARNING from the sixth.
        (None, [None, None, "INFO", "INFO", "INFO", "WARNING"]),
    ],
)
def test_never_predicted_escalates_when_the_class_stays_unlearned(progress, severities):
    records = [rec(i, (0.9, 0.8, 0.0), predicted=(330, 110, 0)) for i in range(6)]
    if progress is not None:
        records = [dataclasses.replace(r, progress=p) for r, p in zip(records, progress)]
    found = sim.replay(NeverPredictedDetector(), records)
    assert [None if f is None else f.severity.name for f in found] == severities


def test_never_predicted_needs_the_other_classes_learned():
    # A class never predicted while the others are at 0.3-0.4 recall: an undertrained model.
    undertrained = [rec(i, (0.4, 0.3, 0.0), predicted=(330, 110, 0), accuracy=0.35) for i in range(6)]
    assert fired(sim.replay(NeverPredictedDetector(), undertrained)) == []
    # Without recalls the guard cannot be checked and is skipped.
    no_recall = [rec(i, (0.4, 0.3, 0.0), predicted=(330, 110, 0), key="f1") for i in range(6)]
    assert fired(sim.replay(NeverPredictedDetector(), no_recall)) == [2, 3, 4, 5]


def test_never_predicted_lists_every_class_with_numbers():
    records = [
        dataclasses.replace(rec(i, (0.99, 0.0, 0.0), predicted=(440, 0, 0)), progress=p)
        for i, p in enumerate((0.3, 0.4, 0.5))
    ]
    found = sim.replay(NeverPredictedDetector(), records)
    f = found[-1]
    assert (f.code, f.severity, f.subject) == ("FW-CLASS-NEVER-PREDICTED", Severity.WARNING, "")
    assert f.evidence["classes"] == ["neutral", "pos"] and f.evidence["evaluations"] == {
        "neutral": 3,
        "pos": 3,
    }
    assert f.message == (
        "classes 'neutral' (100 validation samples), 'pos' (40 validation samples) were predicted for no "
        "validation sample in the last 3 or more evaluations (at 50% of training): the model has not learned "
        "to predict them"
    )


def test_never_predicted_needs_predicted_counts():
    records = [rec(i, (0.9, 0.8, 0.0), predicted=None) for i in range(4)]
    assert fired(sim.replay(NeverPredictedDetector(), records)) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_support": -1}, ValueError, "Expected `min_support` to be a positive int"),
        ({"confirmations": 1}, ValueError, "Expected `confirmations` to be at least 2"),
        ({"confirmations": 2.0}, TypeError, "Expected `confirmations` to be a positive int"),
    ],
)
def test_never_predicted_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        NeverPredictedDetector(**kwargs)


# ------------------------------------------------------------------------------------- state and noise


@pytest.mark.parametrize(
    ("make", "run"),
    [
        (ClassCollapseDetector, sim.class_collapse(seed=4, n_evals=20)),
        (NeverPredictedDetector, sim.never_predicted(seed=4, n_evals=20)),
    ],
)
@pytest.mark.parametrize("split", [1, 6, 13])
def test_state_round_trip_mid_series(make, run, split):
    straight = sim.as_dicts(sim.replay(make(), run.records))
    assert any(straight)
    assert sim.as_dicts(sim.resumed(make, run.records, split)) == straight


@pytest.mark.parametrize(
    ("make", "kwargs"),
    [(ClassCollapseDetector, {"min_support": 10}), (NeverPredictedDetector, {"min_support": 3})],
)
def test_reset_forgets_history_but_keeps_thresholds(make, kwargs):
    det = make(**kwargs)
    sim.replay(det, sim.never_predicted(seed=1).records)
    det.reset()
    assert det.state_dict() == make(**kwargs).state_dict()


@pytest.mark.parametrize("make", [ClassCollapseDetector, NeverPredictedDetector])
def test_garbage_values_never_raise(make):
    junk = [NAN, INF, -INF, None, "x", 0.0, -1.0, 1e308]
    records = [
        EvalRecord(
            step=i,
            epoch=None,
            val={"accuracy": junk[i % 8], "majority_fraction": junk[(i + 1) % 8]},
            val_per_class={
                "recall": [junk[(i + k) % 8] for k in range(3)],
                "support": [junk[(i + 2 * k) % 8] for k in range(2)],  # shorter than the others
                "predicted": [junk[(i + 3 * k) % 8] for k in range(3)],
            },
            class_names=NAMES[: i % 4],
        )
        for i in range(24)
    ]
    sim.replay(make(), records)


# ----------------------------------------------------------------------------------------- simulation


@pytest.mark.parametrize("imbalance", [1.0, 0.5, 0.3])
def test_false_alarms_on_healthy_runs(imbalance):
    alarms = 0
    for seed in range(200):
        run = sim.healthy(seed, 10 + (seed * 7) % 51, 0.01, imbalance=imbalance, n_classes=5)
        alarms += (
            sim.first_index(sim.replay(ClassCollapseDetector(), run.records), severity=Severity.INFO)
            is not None
        )
        alarms += (
            sim.first_index(sim.replay(NeverPredictedDetector(), run.records), severity=Severity.INFO)
            is not None
        )
    assert alarms == 0


@pytest.mark.parametrize(
    ("make", "kind"),
    [(ClassCollapseDetector, sim.class_collapse), (NeverPredictedDetector, sim.never_predicted)],
)
def test_detects_within_one_evaluation(make, kind):
    delays, warned = [], []
    for seed in range(100):
        run = kind(seed, 20, 0.01)
        found = sim.replay(make(), run.records)
        hit = sim.first_index(found, severity=Severity.INFO)
        assert hit is not None, seed
        delays.append(hit - run.onset)
        # A class that was learned is a WARNING at once; one never learned from 50% of training on.
        halfway = next(i for i, r in enumerate(run.records) if r.progress >= 0.5)
        warned.append(sim.first_index(found) <= max(hit, halfway))
    # The second evaluation of the fault confirms it; a fault at the very start of training waits for the
    # guard against undertrained models (20% of training / 3 evaluations).
    assert sorted(delays)[len(delays) // 2] == 1 and max(delays) <= 2
    assert all(warned)
