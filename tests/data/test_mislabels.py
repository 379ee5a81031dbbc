"""Area under the margin and forgetting events: references, a flipped-label problem, no host sync, resume."""

from __future__ import annotations

import math

import pytest
import torch

from fitwatch.data import AreaUnderMargin, ForgettingEvents
from fitwatch.findings import Finding


def reference_aum(batches):
    """Pleiss et al. 2020, Eq. 1-2 per sample: mean over presentations of z_y - max_{i != y} z_i."""
    margins: dict[int, list[float]] = {}
    for logits, targets, ids in batches:
        for row, y, i in zip(logits.tolist(), targets.tolist(), ids.tolist()):
            others = [z for c, z in enumerate(row) if c != y]
            margins.setdefault(i, []).append(row[y] - max(others))
    return {i: sum(m) / len(m) for i, m in margins.items()}


def reference_forgetting(batches):
    """Toneva et al. 2019: count correct -> incorrect transitions; never-correct samples count as infinite."""
    last, forgotten, learned = {}, {}, {}
    for logits, targets, ids in batches:
        for row, y, i in zip(logits.tolist(), targets.tolist(), ids.tolist()):
            correct = max(range(len(row)), key=row.__getitem__) == y
            if last.get(i) is True and not correct:
                forgotten[i] = forgotten.get(i, 0) + 1
            learned[i] = learned.get(i, False) or correct
            last[i] = correct
    return {i: (forgotten.get(i, 0) if learned[i] else math.inf) for i in last}


def random_batches(n_batches=30, batch=16, classes=5, n_ids=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        out.append(
            (
                torch.randn(batch, classes, generator=g) * 2,
                torch.randint(0, classes, (batch,), generator=g),
                torch.randperm(n_ids, generator=g)[:batch],
            )
        )
    return out


@pytest.mark.parametrize("num_samples", [40, None])
def test_aum_matches_reference(num_samples):
    batches = random_batches()
    aum = AreaUnderMargin(num_samples=num_samples, flush_every=7)
    for batch in batches:
        aum.update(*batch)
    reference = reference_aum(batches)
    scores = aum.scores()
    for i, value in reference.items():
        assert scores[i].item() == pytest.approx(value, abs=1e-5)
    assert int((~scores.isnan()).sum()) == len(reference)
    ranked = sorted(reference.items(), key=lambda kv: kv[1])[:5]
    assert [i for i, _ in aum.top_k(5)] == [i for i, _ in ranked]


@pytest.mark.parametrize("num_samples", [40, None])
def test_forgetting_matches_reference(num_samples):
    batches = random_batches(seed=1)
    tracker = ForgettingEvents(num_samples=num_samples, flush_every=4)
    for batch in batches:
        tracker.update(*batch)
    reference = reference_forgetting(batches)
    scores = tracker.scores()
    for i, value in reference.items():
        assert scores[i].item() == value
    top = tracker.top_k(10)
    expected = sorted(reference.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert top == [(i, float(v)) for i, v in expected]


def test_growth_to_larger_ids():
    aum = AreaUnderMargin(flush_every=2)
    logits = torch.tensor([[1.0, 0.0]])
    for sample_id in (0, 5, 300, 2):
        aum.update(logits, torch.tensor([0]), torch.tensor([sample_id]))
    scores = aum.scores()
    assert aum.capacity >= 301
    assert sorted(i for i, _ in aum.top_k(10)) == [0, 2, 5, 300]
    assert torch.isnan(scores[1])


def flipped_label_problem(n=800, classes=4, noise=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, 16, generator=g) * 2.0
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + torch.randn(n, 16, generator=g)
    flipped = torch.randperm(n, generator=g)[: int(noise * n)]
    noisy = y.clone()
    noisy[flipped] = (y[flipped] + torch.randint(1, classes, (len(flipped),), generator=g)) % classes
    return x, noisy, set(flipped.tolist())


def train_tracking(x, y, trackers, epochs=8, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(epochs):
        for ids in torch.randperm(len(x)).split(64):
            logits = model(x[ids])
            for tracker in trackers:
                tracker.update(logits, y[ids], ids)
            loss = torch.nn.functional.cross_entropy(logits, y[ids])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def test_aum_ranks_flipped_labels_first():
    x, y, flipped = flipped_label_problem()
    aum = AreaUnderMargin(num_samples=len(x))
    forgetting = ForgettingEvents(num_samples=len(x))
    train_tracking(x, y, [aum, forgetting])
    k = len(flipped)
    aum_precision = len({i for i, _ in aum.top_k(k)} & flipped) / k
    forgetting_precision = len({i for i, _ in forgetting.top_k(k)} & flipped) / k
    print(f"precision at k={k}: AUM {aum_precision:.3f}, forgetting {forgetting_precision:.3f}")
    assert aum_precision >= 0.9
    assert forgetting_precision >= 0.7
    finding = aum.to_finding(step=100, epoch=7, k=10)
    assert isinstance(finding, Finding) and finding.code == "FW-MISLABEL-SUSPECTS"
    assert len(finding.evidence["suspects"]) == 10
    assert all(a < 0 for _, a in finding.evidence["suspects"])
    assert finding.evidence["n_negative"] >= 0.9 * k
    assert Finding.from_dict(finding.to_dict()) == finding
    forgetting_finding = forgetting.to_finding(k=5)
    assert forgetting_finding.subject == "forgetting" and len(forgetting_finding.evidence["suspects"]) == 5


def test_no_host_sync_per_update():
    # Meta tensors have no data: any .item(), .tolist() or data-dependent shape would raise.
    logits = torch.randn(8, 3, device="meta")
    targets = torch.zeros(8, dtype=torch.long, device="meta")
    ids = torch.zeros(8, dtype=torch.long, device="meta")
    for tracker in (AreaUnderMargin(num_samples=100), ForgettingEvents(num_samples=100)):
        for _ in range(5):
            tracker.update(logits, targets, ids)
        assert tracker.capacity == 100
    queued = AreaUnderMargin(flush_every=10)
    for _ in range(9):
        queued.update(logits, targets, ids)  # queued on the device until the flush
    with pytest.raises(RuntimeError, match="meta"):
        queued.update(logits, targets, ids)  # the flush reads the largest id once


def test_state_dict_round_trip_and_old_states():
    batches = random_batches(seed=2)
    for cls in (AreaUnderMargin, ForgettingEvents):
        tracker = cls(flush_every=3)
        for batch in batches[:10]:
            tracker.update(*batch)
        state = tracker.state_dict()
        resumed = cls()
        resumed.load_state_dict(state)
        for batch in batches[10:]:
            tracker.update(*batch)
            resumed.update(*batch)
        assert torch.equal(tracker.scores().nan_to_num(-7), resumed.scores().nan_to_num(-7))
        assert resumed.updates == tracker.updates == 30
        old = {k: v for k, v in state.items() if k not in ("updates", "flush_every")}
        legacy = cls()
        legacy.load_state_dict(old)
        assert legacy.updates == 0 and legacy.flush_every == 50


def test_resume_into_a_larger_num_samples():
    grown = AreaUnderMargin()
    grown.update(torch.tensor([[0.0, 1.0]]), torch.tensor([0]), torch.tensor([3]))
    resumed = AreaUnderMargin(num_samples=10)
    resumed.load_state_dict({k: v for k, v in grown.state_dict().items() if k != "num_samples"})
    assert resumed.capacity == 4
    resumed.update(torch.tensor([[2.0, 0.0]]), torch.tensor([0]), torch.tensor([9]))
    assert resumed.capacity == 10
    assert resumed.top_k(2) == [(3, -1.0), (9, 2.0)]


def test_empty_and_nothing_suspicious():
    assert AreaUnderMargin().top_k(3) == [] and AreaUnderMargin().to_finding() is None
    aum = AreaUnderMargin()
    aum.update(torch.tensor([[5.0, 0.0]]), torch.tensor([0]), torch.tensor([0]))
    assert aum.to_finding() is None
    forgetting = ForgettingEvents()
    forgetting.update(torch.tensor([[5.0, 0.0]]), torch.tensor([0]), torch.tensor([0]))
    assert forgetting.to_finding() is None
    aum.reset()
    assert aum.capacity == 0 and aum.updates == 0


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (
            (torch.zeros(2, 3), [0, 1], torch.tensor([0, 1])),
            TypeError,
            "Expected `targets` to be a torch.Tensor, but got list",
        ),
        (
            (torch.zeros(2), torch.tensor([0, 1]), torch.tensor([0, 1])),
            ValueError,
            r"Expected `logits` to have shape \(batch, classes\)",
        ),
        ((torch.zeros(2, 1), torch.tensor([0, 1]), torch.tensor([0, 1])), ValueError, "at least 2 classes"),
        (
            (torch.zeros(2, 3), torch.tensor([0]), torch.tensor([0, 1])),
            ValueError,
            r"Expected `targets` to have shape \(2,\)",
        ),
        (
            (torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([0.0, 1.0])),
            TypeError,
            "Expected `sample_ids` to hold integers",
        ),
    ],
)
def test_bad_update(args, error, match):
    for cls in (AreaUnderMargin, ForgettingEvents):
        with pytest.raises(error, match=match):
            cls().update(*args)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_samples": 0}, ValueError, "Expected `num_samples` to be a positive int, but got 0"),
        ({"num_samples": 2.0}, TypeError, "Expected `num_samples` to be a positive int"),
        ({"flush_every": 0}, ValueError, "Expected `flush_every` to be a positive int"),
    ],
)
def test_bad_construction(kwargs, error, match):
    for cls in (AreaUnderMargin, ForgettingEvents):
        with pytest.raises(error, match=match):
            cls(**kwargs)


def test_bad_k():
    for cls in (AreaUnderMargin, ForgettingEvents):
        with pytest.raises(ValueError, match="Expected `k` to be a positive int, but got 0"):
            cls().top_k(0)


def test_ids_outside_num_samples_are_dropped_not_fatal():
    # ids kept from before a split (not positions) must never crash a training step
    aum = AreaUnderMargin(num_samples=4)
    aum.update(torch.tensor([[0.0, 1.0], [3.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 0, 0]), torch.tensor([1, 57, -2]))
    assert aum.dropped == 2
    assert aum.top_k(4) == [(1, -1.0)]
    assert aum.scores().shape == (4,)
