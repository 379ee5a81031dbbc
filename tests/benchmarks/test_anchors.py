"""The anchors against the real tools they stand for (Lightning, Hugging Face, torch) over random series,
and Prechelt's criteria against tables computed by hand from the paper's definitions."""

from __future__ import annotations

import doctest
import math
import random
from types import SimpleNamespace

import pytest
import torch

from benchmarks.zoo import anchors
from benchmarks.zoo.anchors import (
    hf_early_stopping,
    lightning_early_stopping,
    prechelt_gl,
    prechelt_pq,
    prechelt_up,
    reduce_lr_on_plateau,
)

NAN, INF = math.nan, math.inf


def random_series(rng: random.Random, *, non_finite: bool) -> list[float]:
    """A loss-like series: a decay, then flat or rising, with noise, exact ties and (optionally) NaN/inf."""
    n = rng.randint(3, 40)
    level, slope, noise = (
        rng.uniform(0.2, 2.0),
        rng.uniform(-0.05, 0.05),
        rng.choice((0.0, 0.001, 0.01, 0.05)),
    )
    out = []
    for i in range(n):
        x = level * (1 + math.exp(-i / rng.uniform(1, 5))) + slope * i + rng.gauss(0, noise)
        if rng.random() < 0.15 and out:
            x = out[-1]  # an exact tie
        if non_finite and rng.random() < 0.05:
            x = rng.choice((NAN, INF))
        out.append(round(x, 4))
    return out


def test_doctests_pass():
    assert doctest.testmod(anchors).failed == 0


# ------------------------------------------------------------------------------------------ Lightning


def real_lightning(values, *, patience, min_delta, mode, check_finite):
    from lightning.pytorch.callbacks import EarlyStopping

    es = EarlyStopping(
        monitor="val_loss", patience=patience, min_delta=min_delta, mode=mode, check_finite=check_finite
    )
    for i, v in enumerate(values):
        should_stop, _ = es._evaluate_stopping_criteria(torch.tensor(v, dtype=torch.float64))
        if should_stop:
            return i
    return None


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("check_finite", [True, False])
def test_lightning_early_stopping_matches_lightning(mode, check_finite):
    rng = random.Random(f"lightning-{mode}-{check_finite}")
    stops = 0
    for _ in range(300):
        values = random_series(rng, non_finite=True)
        kwargs = {
            "patience": rng.choice((0, 1, 3, 5)),
            "min_delta": rng.choice((0.0, 0.001, 0.01)),
            "mode": mode,
            "check_finite": check_finite,
        }
        expected = real_lightning(values, **kwargs)
        assert lightning_early_stopping(values, **kwargs) == expected, (values, kwargs)
        stops += expected is not None
    assert 30 < stops < 300  # the random series exercise both outcomes


# ------------------------------------------------------------------------------------------ Hugging Face


@pytest.fixture(scope="module")
def hf_args(tmp_path_factory):
    from transformers import TrainingArguments

    def make(greater_is_better: bool):
        return TrainingArguments(
            output_dir=str(tmp_path_factory.mktemp("hf")),
            metric_for_best_model="eval_loss",
            greater_is_better=greater_is_better,
            eval_strategy="epoch",
            save_strategy="epoch",
            load_best_model_at_end=True,
            report_to=[],
        )

    return {False: make(False), True: make(True)}


def real_hf(values, args, *, patience, threshold):
    """EarlyStoppingCallback.on_evaluate, then Trainer._determine_best_metric, in the Trainer's order."""
    from transformers import EarlyStoppingCallback, Trainer, TrainerControl, TrainerState

    cb = EarlyStoppingCallback(early_stopping_patience=patience, early_stopping_threshold=threshold)
    state, control = TrainerState(), TrainerControl()
    trainer = SimpleNamespace(args=args, state=state)
    for i, v in enumerate(values):
        metrics = {"eval_loss": v}
        cb.on_evaluate(args, state, control, metrics=metrics)
        if control.should_training_stop:
            return i
        Trainer._determine_best_metric(trainer, metrics=metrics, trial=None)
    return None


@pytest.mark.parametrize("greater_is_better", [False, True])
def test_hf_early_stopping_matches_transformers(hf_args, greater_is_better):
    rng = random.Random(7 + greater_is_better)
    stops = 0
    for _ in range(300):
        values = random_series(rng, non_finite=True)
        kwargs = {"patience": rng.choice((1, 2, 3)), "threshold": rng.choice((0.0, 0.001, 0.01))}
        expected = real_hf(values, hf_args[greater_is_better], **kwargs)
        assert hf_early_stopping(values, greater_is_better=greater_is_better, **kwargs) == expected, (
            values,
            kwargs,
        )
        stops += expected is not None
    assert 30 < stops < 300


# ------------------------------------------------------------------------------------------ torch


def real_reduce_lr_on_plateau(values, **kwargs):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **kwargs)
    for i, v in enumerate(values):
        optimizer.step()  # no gradient: a no-op, in the order a training loop calls them
        scheduler.step(v)
        if optimizer.param_groups[0]["lr"] < 1.0:
            return i
    return None


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("threshold_mode", ["rel", "abs"])
def test_reduce_lr_on_plateau_matches_torch(mode, threshold_mode):
    rng = random.Random(f"torch-{mode}-{threshold_mode}")
    reductions = 0
    for _ in range(300):
        values = random_series(rng, non_finite=True)
        kwargs = {
            "patience": rng.choice((0, 1, 3, 10)),
            "threshold": rng.choice((1e-4, 0.01, 0.05)),
            "threshold_mode": threshold_mode,
            "cooldown": rng.choice((0, 2)),
            "mode": mode,
        }
        expected = real_reduce_lr_on_plateau(values, **kwargs)
        assert reduce_lr_on_plateau(values, **kwargs) == expected, (values, kwargs)
        reductions += expected is not None
    assert 30 < reductions < 300


def test_reduce_lr_on_plateau_defaults_are_torchs():
    import inspect

    real = inspect.signature(torch.optim.lr_scheduler.ReduceLROnPlateau).parameters
    ours = inspect.signature(reduce_lr_on_plateau).parameters
    for name in ("patience", "threshold", "threshold_mode", "cooldown", "mode"):
        assert ours[name].default == real[name].default, name


# ------------------------------------------------------------------------------------------ Prechelt


@pytest.mark.parametrize(
    ("val", "alpha", "expected"),
    [
        # GL(t) = 100 (E_va(t) / min_{t' <= t} E_va(t') - 1)
        ([1.0, 0.8, 0.81, 0.817], 2.0, 3),  # GL: 0, 0, 1.25, 2.125
        ([1.0, 0.8, 0.816, 0.79, 0.8], 2.0, None),  # 2.0 is not > 2; 0.79 becomes the best; 1.27
        ([1.0, 0.5, 0.6], 10.0, 2),  # GL 20
        ([1.0, NAN, 0.9, 1.0], 2.0, 3),  # NaN skipped; GL 11.1
        ([], 2.0, None),
    ],
)
def test_prechelt_gl_hand_table(val, alpha, expected):
    assert prechelt_gl(val, alpha=alpha) == expected


@pytest.mark.parametrize(
    ("val", "train", "strip", "alpha", "expected"),
    [
        # Strip ends (1-based t = 5, 10): GL(5) = 100 (0.72 / 0.7 - 1) = 2.857;
        # P_5 = 1000 (mean / min - 1) over the strip's training losses.
        ([1.0, 0.8, 0.7, 0.7, 0.72], [0.46, 0.45, 0.45, 0.44, 0.44], 5, 0.75, None),  # P = 18.18: PQ 0.157
        ([1.0, 0.8, 0.7, 0.7, 0.72], [0.441, 0.44, 0.44, 0.44, 0.44], 5, 0.75, 4),  # P = 0.4545: PQ 6.29
        ([1.0, 0.8, 0.7, 0.7, 0.72], [0.44] * 5, 5, 0.75, 4),  # P = 0: infinite quotient
        # Strip of 2: t = 2 (GL 0), t = 4: GL = 100 (0.75 / 0.7 - 1) = 7.14,
        # P_2 = 1000 (0.425 / 0.4 - 1) = 62.5
        ([1.0, 0.7, 0.72, 0.75], [0.6, 0.5, 0.45, 0.4], 2, 0.1, 3),  # PQ 0.114 > 0.1
        ([1.0, 0.7, 0.72, 0.75], [0.6, 0.5, 0.45, 0.4], 2, 0.2, None),
        (
            [1.0, 0.7, 0.72, 0.75],
            [0.6, 0.5, NAN, 0.4],
            2,
            0.1,
            None,
        ),  # a strip with a missing loss decides nothing
        (
            [1.0, 0.7, 0.72, 0.75, 0.9],
            [0.6, 0.5, 0.45, 0.4, 0.3],
            2,
            0.1,
            3,
        ),  # t = 5 is not a strip end anyway
    ],
)
def test_prechelt_pq_hand_table(val, train, strip, alpha, expected):
    assert prechelt_pq(val, train, alpha=alpha, strip=strip) == expected


@pytest.mark.parametrize(
    ("val", "strip", "successive", "expected"),
    [
        # Strip ends of k = 2 (0-based 1, 3, 5, ...): compare each with the previous strip end.
        ([1.0, 0.7, 0.72, 0.75, 0.8, 0.85], 2, 2, 5),  # 0.7 < 0.75 < 0.85
        ([1.0, 0.7, 0.72, 0.75, 0.8, 0.85], 2, 3, None),  # only two rises
        (
            [1.0, 0.7, 0.72, 0.75, 0.8, 0.74, 0.8, 0.9],
            2,
            2,
            None,
        ),  # 0.75 -> 0.74 breaks the run; one rise left
        ([1.0, 0.7, 0.72, 0.75, 0.8, 0.74, 0.8, 0.9, 0.9, 0.95], 2, 2, 9),  # 0.74 < 0.9 < 0.95
        ([1.0, 0.7, 0.72, 0.75], 2, 1, 3),
        (
            [0.9, 0.8, 0.7, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7],
            5,
            2,
            14,
        ),  # E(5)=0.7 < E(10)=1.2 < E(15)=1.7
        (
            [0.9, 0.8, 0.7, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6],
            5,
            2,
            None,
        ),  # no third strip end
    ],
)
def test_prechelt_up_hand_table(val, strip, successive, expected):
    assert prechelt_up(val, strip=strip, successive=successive) == expected


def test_anchors_table_columns():
    val = [0.9, 0.7, 0.6, 0.62, 0.65, 0.7, 0.75]
    table = anchors.anchors(val)
    assert table == {
        "lightning_es_p3": 5,
        "hf_es_p1": 3,
        "reduce_lr_on_plateau": None,
        "prechelt_gl2": 3,
        "prechelt_pq0.75": None,
        "prechelt_up2": None,
    }


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: lightning_early_stopping([1.0], mode="mean"),
            ValueError,
            "Expected `mode` to be 'min' or 'max'",
        ),
        (
            lambda: lightning_early_stopping([1.0], patience=-1),
            ValueError,
            "Expected `patience` to be an int >= 0",
        ),
        (
            lambda: lightning_early_stopping([1.0], patience=1.5),
            TypeError,
            "Expected `patience` to be an int",
        ),
        (lambda: hf_early_stopping([1.0], patience=-1), ValueError, "Expected `patience` to be an int >= 0"),
        (lambda: hf_early_stopping([1.0], patience="1"), TypeError, "Expected `patience` to be an int"),
        (lambda: reduce_lr_on_plateau([1.0], mode="avg"), ValueError, "Expected `mode` to be 'min' or 'max'"),
        (lambda: reduce_lr_on_plateau([1.0], threshold_mode="pct"), ValueError, "Expected `threshold_mode`"),
        (
            lambda: reduce_lr_on_plateau([1.0], patience=-2),
            ValueError,
            "Expected `patience` to be an int >= 0",
        ),
        (lambda: reduce_lr_on_plateau([1.0], cooldown=None), TypeError, "Expected `cooldown` to be an int"),
        (lambda: prechelt_pq([1.0], [1.0], strip=1), ValueError, "Expected `strip` to be an int >= 2"),
        (lambda: prechelt_pq([1.0], [1.0], strip=2.0), TypeError, "Expected `strip` to be an int"),
        (lambda: prechelt_up([1.0], successive=0), ValueError, "Expected `successive` to be an int >= 1"),
        (lambda: prechelt_up([1.0], strip=True), TypeError, "Expected `strip` to be an int"),
    ],
)
def test_argument_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
