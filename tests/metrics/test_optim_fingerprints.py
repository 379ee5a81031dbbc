"""Parameter fingerprints for the audit's unchanged-parameter check read a strided sample (issue 15): a trained
parameter is told from a frozen one without reading the whole model in float64 at each audit."""

from __future__ import annotations

import torch
from torch import nn

from fitwatch.metrics.optim import FINGERPRINT_SAMPLE, parameter_fingerprints, unchanged_parameters


def test_a_sampled_fingerprint_sees_one_changed_embedding_row_and_no_change():
    emb = nn.Parameter(torch.randn(30_000, 64))  # 1.9M elements: sampled with a stride below the row width
    head = nn.Parameter(torch.randn(10, 64))
    assert emb.numel() > FINGERPRINT_SAMPLE
    named = [("emb", emb), ("head", head)]
    before = parameter_fingerprints(named)
    with torch.no_grad():
        emb[12_345] += 0.01  # one row, as a sparse update of an embedding moves it
    assert unchanged_parameters(named, before) == ["head"]


def test_a_fingerprint_is_exact_on_small_parameters():
    p = nn.Parameter(torch.arange(12, dtype=torch.float32))
    fp = parameter_fingerprints([("p", p)])["p"]
    assert fp.tolist() == [66.0, float(sum(i * i for i in range(12)))]
