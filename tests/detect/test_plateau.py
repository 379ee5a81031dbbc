"""FW-PLATEAU and FW-LR-DECAYED: ReduceLROnPlateau semantics checked against torch itself, the guards that
tell a plateau from convergence and from a decayed schedule, and simulated false-alarm / detection rates."""

from __future__ import annotations

import math
import random

import pytest
import torch

from fitwatch.detect.plateau import LRDecayedDetector, PlateauDetector
from fitwatch.detect.records import EvalRecord
from fitwatch.findings import Severity

from . import simulate as sim

NAN, INF = math.nan, math.inf
STUCK = [2.30, 2.28, 2.27, 2.27, 2.28, 2.27, 2.28, 2.27, 2.28]


def fired(findings):
    return [i for i, f in enumerate(findings) if f is not None]


# ------------------------------------------------------------------------------------------ FW-PLATEAU


def torch_first_reduction(values, *, patience, threshold):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", patience=patience, threshold=threshold, threshold_mode="rel"
    )
    for i, v in enumerate(values):
        optimizer.step()
        scheduler.step(v)
        if optimizer.param_groups[0]["lr"] < 1.0:
            return i
    return None


@pytest.mark.parametrize("patience", [1, 3, 4])
@pytest.mark.parametrize("threshold", [1e-4, 0.01, 0.05])
def test_plateau_candidate_is_where_torch_reduces(patience, threshold):
    """With the guards off (no trend test, no training or LR data, no noise scaling) the first finding is
    exactly where torch's ReduceLROnPlateau reduces the learning rate."""
    rng = random.Random(f"{patience}-{threshold}")
    reductions = 0
    for _ in range(150):
        n = rng.randint(4, 30)
        level, drift = rng.uniform(0.3, 2.0), rng.uniform(-0.03, 0.005)
        values = [level * (1 + drift * i + rng.gauss(0, 0.01)) for i in range(n)]
        values = [rng.choice((NAN, INF)) if i and rng.random() < 0.05 else v for i, v in enumerate(values)]
        det = PlateauDetector(patience=patience, threshold=threshold, noise_factor=0.0, alpha=1e-12)
        ours = sim.first_index(sim.replay(det, sim.records_from(val_loss=values)), severity=Severity.INFO)
        expected = torch_first_reduction(values, patience=patience, threshold=threshold)
        assert ours == expected, values
        reductions += expected is not None
    assert 10 < reductions < 150


def test_plateau_fires_on_a_stuck_run_with_the_numbers():
    found = sim.replay(
        PlateauDetector(), sim.records_from(val_loss=STUCK, train_loss=[x + 0.01 for x in STUCK])
    )
    # Best 2.27 at epoch 2 (< 2.30 x 0.99); epochs 3-7 are 5 bad evaluations: more than the patience of 4.
    assert fired(found) == [7, 8]
    f = found[-1]
    assert (f.code, f.severity) == ("FW-PLATEAU", Severity.WARNING)
    assert (f.evidence["bad_evaluations"], f.evidence["best_epoch"], f.evidence["best_loss"]) == (6, 2, 2.27)
    assert f.evidence["train_ratio_to_highest"] == pytest.approx(2.29 / 2.31, rel=1e-3)
    assert f.message == (
        "validation loss has not improved by more than 1.0% for 6 evaluations (best 2.27 at epoch 2, now "
        "2.28) and "
        "training loss is flat at 2.29 (99% of its highest, 2.31): the run is stuck on a plateau before "
        "converging"
    )


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        # Converged: training loss flat at 10% of where it started. Quiet.
        ({"val_loss": STUCK, "train_loss": [0.5, 0.1, 0.05, 0.05, 0.051, 0.05, 0.05, 0.049, 0.05]}, []),
        # Validation flat but training loss still falling fast: the model keeps fitting (the gap's business).
        ({"val_loss": STUCK, "train_loss": [2.3 * 0.9**i for i in range(9)]}, []),
        # Validation creeping down significantly (0.4% per evaluation, 2% of the noise-free level over the
        # patience): not a plateau even though no single evaluation beat the best by 1%.
        (
            {
                "val_loss": [1.0, 0.995, 0.99, 0.9851, 0.98, 0.9751, 0.97, 0.9651, 0.96, 0.9551],
                "train_loss": [1.0, 0.995, 0.99, 0.9851, 0.98, 0.9751, 0.97, 0.9651, 0.96, 0.9551],
            },
            [],
        ),
        # A significant but practically nil slope (0.05% per evaluation) is still a plateau.
        (
            {
                "val_loss": [1.0 - 0.0005 * i for i in range(10)],
                "train_loss": [1.01 - 0.0005 * i for i in range(10)],
            },
            [5, 6, 7, 8, 9],
        ),
        # Learning rate decayed to nothing: FW-LR-DECAYED's case.
        ({"val_loss": STUCK, "train_loss": [x + 0.01 for x in STUCK], "lr": [[2e-5]] * 4 + [[1e-7]] * 5}, []),
    ],
)
def test_plateau_guards(columns, expected):
    lr = columns.pop("lr", None)
    assert fired(sim.replay(PlateauDetector(), sim.records_from(lr=lr, **columns))) == expected


def test_plateau_without_training_losses_is_info():
    found = sim.replay(PlateauDetector(), sim.records_from(val_loss=STUCK))
    assert fired(found) == [7, 8] and found[-1].severity is Severity.INFO
    assert "cannot tell a plateau from convergence" in found[-1].message


def test_plateau_noise_scales_the_threshold():
    # 3% noise around a flat level: a 1% threshold counts noise as progress; the noise-scaled one does not.
    rng = random.Random(0)
    values = [1.0 * (1 + rng.gauss(0, 0.03)) for _ in range(30)]
    records = sim.records_from(val_loss=values, train_loss=[1.0] * 30)
    assert sim.first_index(sim.replay(PlateauDetector(), records)) is not None
    scaled = sim.replay(PlateauDetector(), records)
    hit = sim.first_index(scaled)
    assert scaled[hit].evidence["threshold"] > 0.01
    assert sim.first_index(sim.replay(PlateauDetector(noise_factor=0.0), records)) >= hit


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"patience": 0}, ValueError, "Expected `patience` to be a positive int"),
        ({"threshold": 0.0}, ValueError, r"Expected `threshold` to be a float in \(0, 1\)"),
        ({"threshold": "0.1"}, TypeError, r"Expected `threshold` to be a float in \[0, 1\]"),
        ({"alpha": 1.0}, ValueError, r"Expected `alpha` to be a float in \(0, 1\)"),
        ({"converged_fraction": 2.0}, ValueError, r"Expected `converged_fraction` to be a float in \[0, 1\]"),
        ({"lr_fraction": 0.0}, ValueError, r"Expected `lr_fraction` to be a float in \(0, 1\)"),
        ({"noise_factor": -1.0}, ValueError, "Expected `noise_factor` to be a non-negative float"),
        ({"noise_factor": None}, TypeError, "Expected `noise_factor` to be a non-negative float"),
    ],
)
def test_plateau_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        PlateauDetector(**kwargs)


# ---------------------------------------------------------------------------------------- FW-LR-DECAYED


def linear(peak, end, n, *, warmup=0):
    """Per-evaluation learning rates: ``warmup`` evaluations rising, then a linear decay from ``peak`` at the
    first evaluation to 0 at evaluation ``end`` (1-based), and 0 after it."""
    return [
        [peak * (i + 1) / (warmup + 1) if i < warmup else peak * max(0.0, (end - 1 - i) / (end - 1))]
        for i in range(n)
    ]


IMPROVING = [1.0, 0.8, 0.7, 0.64, 0.6, 0.58, 0.58, 0.58, 0.58, 0.58]


def test_lr_decayed_fires_when_the_schedule_ends_early():
    lr = linear(2e-5, 5, 10)  # reaches 0 at evaluation 5 of 10
    found = sim.replay(
        LRDecayedDetector(),
        sim.records_from(val_loss=IMPROVING, lr=lr, progress=[(i + 1) / 10 for i in range(10)]),
    )
    assert fired(found) == [
        4,
        5,
        6,
        7,
    ]  # from 90% of training (evaluation 9) a decayed rate is no longer early
    f = found[4]
    assert (f.code, f.severity) == ("FW-LR-DECAYED", Severity.WARNING)
    assert f.evidence["improvement_before"] == pytest.approx((1.0 - 0.64) / 1.0, rel=1e-3)
    assert f.message == (
        "learning rate fell to 0 (below 1% of its peak 2e-05) at 50% of training while validation loss was "
        "still "
        "improving (1 -> 0.64 over the 4 evaluations before); the schedule ends too early"
    )


@pytest.mark.parametrize(
    ("lr", "progress", "val", "expected"),
    [
        # Healthy linear decay to zero at the end of training, progress known: quiet.
        (linear(2e-5, 10, 10, warmup=1), [(i + 1) / 10 for i in range(10)], IMPROVING, []),
        # Healthy cosine decay to zero (below 1% of the peak from 94% of training): quiet.
        (
            [[2e-5 * 0.5 * (1 + math.cos(math.pi * (i + 1) / 20))] for i in range(20)],
            [(i + 1) / 20 for i in range(20)],
            [1.0 * 0.9**i for i in range(20)],
            [],
        ),
        # Progress unknown: a healthy schedule ends with one evaluation at 0: quiet.
        (linear(2e-5, 10, 10), [None] * 10, IMPROVING, []),
        # Progress unknown, schedule ended at evaluation 5 and training goes on: second decayed evaluation.
        (linear(2e-5, 5, 10), [None] * 10, IMPROVING, [5, 6, 7, 8, 9]),
        # The curve had stopped improving before the decay: an early end that cost nothing.
        (
            linear(2e-5, 8, 10),
            [(i + 1) / 10 for i in range(10)],
            [1.0, 0.6, 0.58, 0.58, 0.58, 0.58, 0.58, 0.58, 0.58, 0.58],
            [],
        ),
        # Warmup from zero at the first evaluation: no peak yet, nothing decayed.
        ([[0.0], [1e-5], [2e-5], [2e-5]], [0.1, 0.2, 0.3, 0.4], [1.0, 0.9, 0.8, 0.7], []),
        # Only one of two param groups decayed (a deliberately frozen group): not a schedule ending early.
        (
            [[2e-5, 1e-3]] * 3 + [[0.0, 1e-3]] * 3,
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            [1.0, 0.8, 0.7, 0.6, 0.6, 0.6],
            [],
        ),
        # Both groups decayed.
        (
            [[2e-5, 1e-3]] * 3 + [[0.0, 0.0]] * 3,
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            [1.0, 0.8, 0.7, 0.6, 0.6, 0.6],
            [3, 4, 5],
        ),
    ],
)
def test_lr_decayed_table(lr, progress, val, expected):
    records = sim.records_from(val_loss=val, lr=lr, progress=progress)
    assert fired(sim.replay(LRDecayedDetector(), records)) == expected


def test_lr_decayed_message_without_progress_and_with_training_loss_only():
    records = sim.records_from(
        val_loss=[None] * 10, train_loss=IMPROVING, lr=linear(2e-5, 5, 10), progress=[None] * 10
    )
    f = sim.replay(LRDecayedDetector(), records)[5]
    assert f.evidence["series"] == "training" and f.evidence["progress"] is None
    assert f.message.startswith(
        "learning rate fell to 0 (below 1% of its peak 2e-05) and stayed there for 2 "
        "evaluations as training went on, while training loss was still improving (1 -> 0.64"
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr_fraction": 1.0}, ValueError, r"Expected `lr_fraction` to be a float in \(0, 1\)"),
        ({"end_progress": -0.1}, ValueError, r"Expected `end_progress` to be a float in \[0, 1\]"),
        ({"min_improvement": "a"}, TypeError, r"Expected `min_improvement` to be a float in \[0, 1\]"),
        (
            {"min_decayed_evaluations": 0},
            ValueError,
            "Expected `min_decayed_evaluations` to be a positive int",
        ),
        ({"lookback": 1}, ValueError, "Expected `lookback` to be at least 2"),
        ({"lookback": 2.0}, TypeError, "Expected `lookback` to be a positive int"),
    ],
)
def test_lr_decayed_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        LRDecayedDetector(**kwargs)


# ------------------------------------------------------------------------------------- state and noise


@pytest.mark.parametrize(
    ("make", "run"),
    [
        (PlateauDetector, sim.stuck(seed=2, n_evals=20)),
        (LRDecayedDetector, sim.schedule_ends_early(seed=2, n_evals=20)),
        (LRDecayedDetector, sim.schedule_ends_early(seed=3, n_evals=20, progress_known=False)),
    ],
)
@pytest.mark.parametrize("split", [2, 7, 12])
def test_state_round_trip_mid_series(make, run, split):
    straight = sim.as_dicts(sim.replay(make(), run.records))
    assert any(straight)
    assert sim.as_dicts(sim.resumed(make, run.records, split)) == straight


@pytest.mark.parametrize(
    ("make", "kwargs"), [(PlateauDetector, {"patience": 6}), (LRDecayedDetector, {"lookback": 3})]
)
def test_reset_forgets_history_but_keeps_thresholds(make, kwargs):
    det = make(**kwargs)
    sim.replay(det, sim.schedule_ends_early(seed=1).records)
    det.reset()
    assert det.state_dict() == make(**kwargs).state_dict()


@pytest.mark.parametrize("make", [PlateauDetector, LRDecayedDetector])
def test_garbage_values_never_raise(make):
    junk = [NAN, INF, -INF, None, "x", 0.0, -1.0, 1e308]
    n = 24
    records = sim.records_from(
        val_loss=[junk[i % 8] for i in range(n)],
        train_loss=[junk[(i + 3) % 8] for i in range(n)],
        lr=[[junk[(i + 5) % 8], 1e-5] for i in range(n)],
        progress=[junk[(i + 1) % 8] if i % 2 else None for i in range(n)],
    )
    sim.replay(make(), records)


# ----------------------------------------------------------------------------------------- simulation


@pytest.mark.parametrize("progress_known", [True, False])
def test_false_alarms_on_healthy_runs(progress_known):
    counts = {"plateau": 0, "lr_decayed": 0}
    for noise in (0.005, 0.01, 0.02, 0.05):
        for seed in range(100):
            run = sim.healthy(seed, 10 + (seed * 7) % 51, noise, progress_known=progress_known)
            counts["plateau"] += sim.first_index(sim.replay(PlateauDetector(), run.records)) is not None
            counts["lr_decayed"] += sim.first_index(sim.replay(LRDecayedDetector(), run.records)) is not None
    assert counts == {"plateau": 0, "lr_decayed": 0}


@pytest.mark.parametrize("noise", [0.01, 0.03])
def test_plateau_detects_a_stuck_run(noise):
    hits = [
        sim.first_index(sim.replay(PlateauDetector(), sim.stuck(seed, 20, noise).records))
        for seed in range(100)
    ]
    assert None not in hits
    # The run settles within ~3 evaluations; then patience + 1 = 5 bad evaluations.
    assert sim.median(hits) <= 8, sorted(hits)


@pytest.mark.parametrize("progress_known", [True, False])
def test_lr_decayed_detects_a_schedule_ending_early(progress_known):
    delays = []
    for seed in range(100):
        run = sim.schedule_ends_early(seed, 20, 0.02, progress_known=progress_known)
        hit = sim.first_index(sim.replay(LRDecayedDetector(), run.records))
        assert hit is not None, seed
        delays.append(hit - run.onset)
    # Known progress: at the first decayed evaluation; unknown: at the second.
    assert max(delays) == (0 if progress_known else 1)


def test_lr_decayed_message_says_when_the_rate_fell():
    # The finding is updated at every evaluation after the decay; its message keeps the moment of the decay.
    lrs = [2e-5, 1.5e-5, 1e-5, 5e-6, 0.0, 0.0, 0.0]
    val = [0.9, 0.7, 0.6, 0.55, 0.53, 0.53, 0.53]
    det = LRDecayedDetector()
    found = [
        det.update(EvalRecord(step=i, epoch=i, val={"loss": x}, lr=[lr], progress=(i + 1) / 20))
        for i, (x, lr) in enumerate(zip(val, lrs))
    ]
    assert [f is not None for f in found] == [False] * 4 + [True] * 3
    assert all("at 25% of training" in f.message for f in found[4:])
    assert (found[-1].evidence["decay_progress"], found[-1].evidence["progress"]) == (0.25, 0.35)
