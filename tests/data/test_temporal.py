"""Temporal split check: numbers, datetimes (naive, aware, dates), numpy datetime64, gaps, bad input."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from fitwatch.data import check_temporal_split
from fitwatch.findings import Finding

UTC = dt.timezone.utc


def reference_not_later(train, val, gap=0):
    """Plain definition, written independently: how many validation times are <= max(train) + gap."""
    bound = max(train) + gap
    return sum(1 for v in val if v <= bound)


@pytest.mark.parametrize(
    ("train", "val", "gap", "n_not_later"),
    [
        ([1, 2, 3], [4, 5], None, 0),
        ([1, 2, 3], [3, 4], None, 1),  # equal is not later
        ([1, 2, 3], [4, 5], 1, 1),  # 4 <= 3 + 1
        ([1, 2, 3], [4.5, 5], 1, 0),
        ([5, 1], [2, 3, 9], 0, 2),
        ([1.5], [1.5000001], None, 0),
    ],
)
def test_numbers(train, val, gap, n_not_later):
    report = check_temporal_split(train, val, gap=gap)
    assert report.n_not_later == n_not_later == reference_not_later(train, val, gap or 0)
    assert report.ok is (n_not_later == 0)
    assert report.latest_train == max(train) and report.earliest_val == min(val)


def test_random_split_of_time_ordered_data_is_flagged():
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 1000, size=2000))
    order = rng.permutation(2000)
    train, val = times[order[:1600]], times[order[1600:]]
    report = check_temporal_split(train, val)
    assert report.n_not_later == reference_not_later(train.tolist(), val.tolist())
    assert report.fraction > 0.99
    assert report.n_train_after_earliest_val == int((train > val.min()).sum())
    time_split = check_temporal_split(times[:1600], times[1600:])
    assert time_split.ok and time_split.to_finding() is None


def test_large_integer_times_stay_exact():
    ns = 1_700_000_000_000_000_000  # Unix nanoseconds: beyond float64's 2**53
    assert check_temporal_split([ns], [ns + 1]).ok
    assert not check_temporal_split([ns + 1], [ns]).ok


def test_datetimes_with_timedelta_gap():
    train = [dt.datetime(2024, 1, d) for d in range(1, 31)]
    val = [dt.datetime(2024, 1, 31, 12), dt.datetime(2024, 2, 2)]
    assert check_temporal_split(train, val).ok
    assert check_temporal_split(train, val, gap=dt.timedelta(days=1)).ok  # Jan 31 00:00 < Jan 31 12:00
    report = check_temporal_split(train, val, gap=dt.timedelta(days=2))  # bound Feb 1 00:00
    assert report.n_not_later == 1
    assert report.latest_train == dt.datetime(2024, 1, 30) and report.earliest_val == dt.datetime(
        2024, 1, 31, 12
    )
    assert "2024-01-30T00:00:00" in str(report)


def test_aware_datetimes_compare_in_utc():
    paris = dt.timezone(dt.timedelta(hours=1))
    train = [dt.datetime(2024, 1, 1, 12, tzinfo=UTC)]
    val = [dt.datetime(2024, 1, 1, 12, 30, tzinfo=paris)]  # 11:30 UTC: earlier
    assert check_temporal_split(train, val).n_not_later == 1


def test_dates_and_datetime64():
    assert check_temporal_split([dt.date(2024, 1, 1)], [dt.date(2024, 1, 2)]).ok
    train = np.array(["2024-01-01", "2024-01-05"], dtype="datetime64[D]")
    val = np.array(["2024-01-05T00:00:01", "2024-01-09"], dtype="datetime64[s]")
    assert check_temporal_split(train, val).ok
    report = check_temporal_split(train, val, gap=np.timedelta64(2, "D"))
    assert report.n_not_later == 1
    assert check_temporal_split(train, val, gap=dt.timedelta(days=5)).n_not_later == 2


def test_empty_inputs():
    assert check_temporal_split([], []).ok
    report = check_temporal_split([1, 2], [])
    assert report.ok and report.latest_train == 2 and report.earliest_val is None
    assert check_temporal_split([], [dt.datetime(2024, 1, 1)], gap=dt.timedelta(days=1)).ok


def test_finding():
    finding = check_temporal_split([1, 2, 10], [5, 11, 12]).to_finding(step=4)
    assert isinstance(finding, Finding) and finding.code == "FW-LEAK-TEMPORAL"
    assert finding.evidence["n_val_not_later"] == 1 and finding.evidence["latest_train"] == "10"
    assert finding.evidence["n_train_after_earliest_val"] == 1
    assert "1 of 3 validation times (33.3%) are not later than the latest training time 10" in finding.message
    assert Finding.from_dict(finding.to_dict()) == finding


@pytest.mark.parametrize(
    ("train", "val", "gap", "error", "match"),
    [
        ([1, "2"], [3], None, TypeError, r"Expected `train_times\[1\]` to be a number, a datetime"),
        (
            [1, dt.datetime(2024, 1, 1)],
            [3],
            None,
            TypeError,
            r"Expected `train_times\[1\]` to be a number like `train_times\[0\]`",
        ),
        (
            [1],
            [dt.datetime(2024, 1, 1)],
            None,
            TypeError,
            "Expected `val_times` to be numbers like `train_times`",
        ),
        (
            [dt.datetime(2024, 1, 1)],
            [dt.datetime(2024, 1, 2, tzinfo=UTC)],
            None,
            TypeError,
            "all timezone-aware or all naive",
        ),
        ([1], [2], dt.timedelta(days=1), TypeError, "Expected `gap` to be a number for numeric times"),
        (
            [dt.date(2024, 1, 1)],
            [dt.date(2024, 1, 2)],
            1,
            TypeError,
            "Expected `gap` to be a datetime.timedelta",
        ),
        ([1], [2], -1, ValueError, "Expected `gap` to be non-negative, but got -1"),
        ([1, float("nan")], [2], None, ValueError, "no missing times .* index 1"),
        (
            [1],
            np.array(["NaT"], dtype="datetime64[s]"),
            None,
            ValueError,
            "Expected `val_times` to hold no missing",
        ),
        (np.zeros((2, 2)), [1], None, ValueError, "Expected `train_times` to be one-dimensional"),
        ("2024", [1], None, TypeError, "Expected `train_times` to be a sequence of times, but got str"),
        ([True], [2], None, TypeError, r"Expected `train_times\[0\]` to be a number"),
    ],
)
def test_bad_input(train, val, gap, error, match):
    with pytest.raises(error, match=match):
        check_temporal_split(train, val, gap=gap)
