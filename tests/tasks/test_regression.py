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


def _regression_batches(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, generator=g), torch.randn(8, generator=g), torch.rand((), generator=g)) for _ in range(n)]


def test_held_batches_fold_to_the_same_numbers_without_an_op_while_held():
    # Issue 15: a training step holds its batch by reference (no kernel); the fold gives what per-batch updates give.
    batches = _regression_batches(9)
    held, each = RegressionState(buffer_batches=4), RegressionState()
    held.update(*batches[0])
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for b in batches[1:3]:
            held.update(*b)
    assert [e.name for e in prof.events() if e.name.startswith("aten::")] == []
    for b in batches[3:]:
        held.update(*b)
    for b in batches:
        each.update(*b)
    got, want = held.compute(), each.compute()
    assert got.summary == pytest.approx(want.summary, rel=1e-12)
    assert got.reliability["residual_counts"] == want.reliability["residual_counts"]


def test_a_held_regression_batch_changed_in_place_is_dropped():
    batches = _regression_batches(3, seed=1)
    held, reference = RegressionState(buffer_batches=8), RegressionState()
    for i, (pred, y, loss) in enumerate(batches):
        held.update(pred, y, loss)
        if i:
            reference.update(pred, y, loss)
        else:
            y.fill_(0.0)  # the first batch's targets rewritten after its step
    # The reference's histogram edges come from its own first batch: compare the sums, not the bins.
    got, want = held.compute().summary, reference.compute().summary
    assert held.changed == 1
    assert {k: got[k] for k in ("mse", "mae", "r2", "loss", "samples")} == pytest.approx(
        {k: want[k] for k in ("mse", "mae", "r2", "loss", "samples")}, rel=1e-12)


def test_a_target_column_of_the_whole_batch_is_copied_not_held():
    # `x, y = batch[:, :-1], batch[:, -1]`: holding y would keep every batch alive until the fold.
    g = torch.Generator().manual_seed(2)
    held, each = RegressionState(buffer_batches=8), RegressionState()
    for _ in range(4):
        batch = torch.randn(512, 129, generator=g)
        pred = batch[:, :-1].sum(1) * 0.1
        held.update(pred, batch[:, -1])
        each.update(pred, batch[:, -1].clone())
        batch.zero_()  # the batch moves on; the held copy does not
    assert held._views == (False, True) and held.changed == 0
    assert held.compute().summary == pytest.approx(each.compute().summary, rel=1e-12)


def test_a_later_batch_that_does_not_pair_up_is_counted_not_raised():
    # Only the first batch is a set-up check; later bad input never reaches the user's step as an exception.
    state = RegressionState(buffer_batches=4)
    state.update(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]))
    state.update(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0]))
    assert state.skipped == 1 and state.skipped_shapes == ((3,), (2,))
    assert state.compute().summary["samples"] == 2
    with pytest.raises(ValueError, match="same number of values"):
        RegressionState().update(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0]))


def test_the_observer_warns_once_for_a_later_regression_batch_that_does_not_pair_up():
    from fitwatch.config import FitWatchConfig
    from fitwatch.observer import Observer
    from fitwatch.warnings import FitWatchRuntimeWarning

    observer = Observer(FitWatchConfig(task="regression"))
    observer.train_batch(torch.randn(4, 1), torch.randn(4), torch.tensor(0.5))
    with pytest.warns(FitWatchRuntimeWarning, match="does not pair predictions with targets"):
        observer.train_batch(torch.randn(4, 2), torch.randn(4), torch.tensor(0.5))
    assert observer.train.skipped == 1
