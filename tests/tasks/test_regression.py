"""Regression metrics against scikit-learn on the same predictions, batch by batch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from fitwatch.tasks.regression import RESIDUAL_BINS, RegressionState


@pytest.mark.parametrize("shape", [(16,), (16, 1)])
def test_metrics_match_scikit_learn(shape):
    g = torch.Generator().manual_seed(0)
    state = RegressionState()
    preds, targets = [], []
    for _ in range(5):
        y = torch.randn(shape, generator=g) * 3 + 10
        p = y + torch.randn(shape, generator=g)
        state.update(p, y, loss=torch.nn.functional.mse_loss(p, y))
        preds.append(p.reshape(-1))
        targets.append(y.reshape(-1))
    p, y = torch.cat(preds).double().numpy(), torch.cat(targets).double().numpy()
    s = state.compute().summary
    assert s["mse"] == pytest.approx(mean_squared_error(y, p), rel=1e-9)
    assert s["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-9)
    assert s["r2"] == pytest.approx(r2_score(y, p), rel=1e-9)
    assert s["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, p)), rel=1e-9)
    assert s["loss"] == pytest.approx(mean_squared_error(y, p), rel=1e-6)  # equal batch sizes: mean of means
    assert s["samples"] == len(y)


def test_residual_histogram_counts_every_residual():
    state = RegressionState()
    y = torch.linspace(-1, 1, 50)
    p = y + torch.linspace(-0.5, 0.5, 50)
    state.update(p, y)
    state.update(p + 100.0, y)  # far outside: the overflow bin
    result = state.compute()
    counts = result.reliability["residual_counts"]
    assert len(counts) == RESIDUAL_BINS + 2 and sum(counts) == 100 and counts[-1] == 50


def test_nonfinite_predictions_are_counted_and_skipped():
    state = RegressionState()
    state.update(torch.tensor([1.0, float("nan"), 3.0]), torch.tensor([1.0, 2.0, 2.0]))
    s = state.compute().summary
    assert s["nonfinite_logits"] == 1 and s["samples"] == 2 and s["mse"] == pytest.approx(0.5)


def test_state_round_trip_and_reset():
    state = RegressionState()
    state.update(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 2.5]))
    clone = RegressionState()
    clone.load_state_dict(json.loads(json.dumps(state.state_dict())))
    assert clone.compute().summary == state.compute().summary
    state.reset()
    assert state.compute().summary["samples"] == 0
