"""Calibration kernels against references written from the papers' definitions (numpy, per sample)."""

import math

import numpy as np
import pytest
import torch

from fitwatch.metrics.accumulator import PredictionAccumulator
from fitwatch.metrics.calibration import (
    adaptive_calibration_error,
    bin_sums,
    chance_calibration_error,
    expected_calibration_error,
    maximum_calibration_error,
)
from tests.references import reference_ece_mce


def reference_adaptive_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    order = np.argsort(conf, kind="stable")
    return sum(
        len(idx) / len(conf) * abs(correct[idx].mean() - conf[idx].mean())
        for idx in np.array_split(order, n_bins)
        if len(idx)
    )


def reference_classwise_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    """Kull et al. 2019: mean over classes of the one-vs-rest ECE of p_k over all samples."""
    k = probs.shape[1]
    total = 0.0
    for c in range(k):
        ece, _ = reference_ece_mce(probs[:, c], (labels == c).astype(float), n_bins)
        total += ece
    return total / k


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_bins", [15, 10, 1])
def test_accumulator_calibration_matches_numpy_reference(seed, n_bins):
    rng = np.random.default_rng(seed)
    n, k = 2000, 5
    logits = rng.normal(scale=3.0, size=(n, k)).astype(np.float32)
    labels = np.where(rng.random(n) < 0.7, logits.argmax(1), rng.integers(0, k, n))
    acc = PredictionAccumulator(n_bins=n_bins)
    for chunk in np.array_split(np.arange(n), 7):  # several batches of uneven size
        acc.update(torch.from_numpy(logits[chunk]), torch.from_numpy(labels[chunk]))
    got = acc.compute().summary

    probs = softmax(logits.astype(np.float64))
    conf = torch.softmax(torch.from_numpy(logits), 1).max(1).values.double().numpy()  # same float32 rounding
    correct = (probs.argmax(1) == labels).astype(float)
    ece, mce = reference_ece_mce(conf, correct, n_bins)
    assert got["ece"] == pytest.approx(ece, abs=1e-6)
    assert got["mce"] == pytest.approx(mce, abs=1e-6)
    assert got["classwise_ece"] == pytest.approx(reference_classwise_ece(probs, labels, n_bins), abs=1e-6)
    assert got["brier"] == pytest.approx(np.mean(((probs - np.eye(k)[labels]) ** 2).sum(1)), abs=1e-6)
    assert got["nll"] == pytest.approx(-np.mean(np.log(probs[np.arange(n), labels])), abs=1e-5)
    assert got["adaptive_ece"] == pytest.approx(reference_adaptive_ece(conf, correct, n_bins), abs=3e-3)


def test_confidence_of_exactly_one_falls_in_last_bin():
    # torchmetrics issue #3510: a confidence of 1.0 must land in the last bin, not past it or in bin 0.
    conf = torch.tensor([1.0, 1.0, 0.05])
    bins = bin_sums(conf, torch.tensor([1.0, 0.0, 0.0]), n_bins=15)
    assert bins[-1, 0].item() == 2 and bins[0, 0].item() == 1
    assert expected_calibration_error(bins) == pytest.approx((1.0 + 0.05) / 3)


def test_saturated_logits_keep_their_confidence_in_the_last_bin():
    acc = PredictionAccumulator(n_bins=15)
    logits = torch.tensor([[60.0, 0.0, 0.0], [0.0, 80.0, 0.0]])  # float32 softmax rounds to exactly 1.0
    acc.update(logits, torch.tensor([0, 0]))
    rel = acc.compute().reliability
    assert rel["count"][-1] == 2 and rel["accuracy"][-1] == 0.5


def test_chance_ece_matches_simulated_perfectly_calibrated_model():
    # A perfectly calibrated model: outcomes drawn with the predicted probability. Its mean ECE over many
    # draws is what chance gives; the analytic floor must be close (normal approximation).
    rng = np.random.default_rng(0)
    for n in (100, 1000):
        eces, chances = [], []
        for _ in range(300):
            conf = rng.uniform(0.5, 1.0, n)
            correct = (rng.random(n) < conf).astype(float)
            bins = bin_sums(torch.from_numpy(conf), torch.from_numpy(correct), n_bins=15)
            eces.append(expected_calibration_error(bins))
            chances.append(chance_calibration_error(bins))
        assert np.mean(chances) == pytest.approx(np.mean(eces), rel=0.15)
    assert 0.02 < np.mean(eces) < 0.035  # n=1000: the ~0.02-0.03 the literature quotes


def test_empty_bins_give_nan_not_errors():
    bins = torch.zeros(15, 4, dtype=torch.float64)
    assert math.isnan(expected_calibration_error(bins))
    assert math.isnan(maximum_calibration_error(bins))
    assert math.isnan(adaptive_calibration_error(torch.zeros(100, 4, dtype=torch.float64), 15))


def test_binary_single_logit_brier_is_the_binary_convention():
    rng = np.random.default_rng(3)
    z = rng.normal(size=500).astype(np.float32)
    y = (rng.random(500) < 1 / (1 + np.exp(-z))).astype(np.int64)
    acc = PredictionAccumulator()
    acc.update(torch.from_numpy(z), torch.from_numpy(y))
    got = acc.compute().summary
    p = 1 / (1 + np.exp(-z.astype(np.float64)))
    assert got["brier"] == pytest.approx(np.mean((p - y) ** 2), abs=1e-6)
    from sklearn.metrics import brier_score_loss, log_loss

    assert got["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-6)
    assert got["nll"] == pytest.approx(log_loss(y, p), abs=1e-5)
