"""Launching the multi-process scripts of this package, and reading and comparing what each rank wrote."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from fitwatch.sinks.tags import parse_tag

ROOT = Path(__file__).resolve().parents[2]
#: Tags written from step records: each rank's own training batches, never reduced across ranks (a per-step
#: collective would cost a host sync every step), so they differ between one process and two by design.
PER_RANK_TAGS = ("optimizer/", "weights/", "performance/step_loss/", "health/nonfinite_loss_steps")
#: Losses are float32 batch means weighted back into sums, so their order of summation shows at ~1e-7.
LOSS_RTOL = 1e-6
#: Everything else is float64 sums of the same terms in another order.
RTOL = 1e-9


def launch(command: Sequence[str], out: Path, *, timeout: float) -> dict[int, dict[str, Any]]:
    """Run ``command`` from the repository root and return ``{rank: what that rank wrote}``.

    The command runs in a session of its own so that, on timeout, the launcher and every rank it started
    are killed together: a hang fails the test instead of blocking the suite.
    """
    path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p] + [str(ROOT)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    env.pop("PYTEST_CURRENT_TEST", None)
    log = out.parent / f"{out.name}.launcher.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            list(command), cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(
                f"{' '.join(command)} did not finish in {timeout:.0f} s (a hang?)\n{_tails(out, log)}"
            )
    if code != 0:
        pytest.fail(f"{' '.join(command)} exited with {code}\n{_tails(out, log)}")
    return {int(p.stem[4:]): json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))}


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def torchrun(module: str, *args: str, nproc: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        module,
        *args,
    ]


def _tails(out: Path, log: Path) -> str:
    parts = []
    for path in [log, *sorted(out.glob("stderr_rank*.txt"))]:
        if path.exists():
            parts.append(f"--- {path.name} ---\n{path.read_text()[-3000:]}")
    return "\n".join(parts)


def stderr_of(out: Path, rank: int) -> str:
    return (out / f"stderr_rank{rank}.txt").read_text()


def reduced_tags(history: Mapping[str, Any]) -> list[str]:
    """The tags that come from numbers reduced across ranks (every tag but :data:`PER_RANK_TAGS`)."""
    return sorted(t for t in history if not t.startswith(PER_RANK_TAGS))


def assert_same_history(
    expected: Mapping[str, list], actual: Mapping[str, list], *, skip: Sequence[str] = ()
) -> None:
    """Every reduced tag of ``expected`` is in ``actual`` at the same steps with the same values."""
    tags = [t for t in reduced_tags(expected) if t not in skip]
    assert tags == [t for t in reduced_tags(actual) if t not in skip]
    for name in tags:
        rtol = LOSS_RTOL if _is_loss(name) else RTOL
        got, want = actual[name], expected[name]
        assert [s for s, _ in got] == [s for s, _ in want], name
        for (_, a), (_, b) in zip(got, want):
            assert _close(a, b, rtol), (name, a, b)


def assert_same_details(expected: Sequence[Mapping], actual: Sequence[Mapping]) -> None:
    """Calibration bins, confusion matrices and per-class lists of every evaluation agree: counts exactly,
    sums of probabilities to :data:`RTOL`."""
    assert [(d["step"], d["split"]) for d in actual] == [(d["step"], d["split"]) for d in expected]
    for got, want in zip(actual, expected):
        assert got["confusion"] == want["confusion"]
        assert got["reliability"]["count"] == want["reliability"]["count"]
        for key in set(want["reliability"]) | set(want["per_class"]):
            source = "reliability" if key in want["reliability"] else "per_class"
            assert len(got[source][key]) == len(want[source][key]), key
            for a, b in zip(got[source][key], want[source][key]):
                assert _close(a, b, RTOL), (got["step"], key, a, b)


def assert_same_findings(expected: Sequence[Mapping], actual: Sequence[Mapping]) -> None:
    """The same causes (code, subject), raised at the same step with the same severity and evidence."""

    def key(f: Mapping[str, Any]) -> tuple[str, str]:
        return f["code"], f["subject"]

    assert sorted(map(key, actual)) == sorted(map(key, expected))
    mine = {key(f): f for f in actual}
    for want in expected:
        got = mine[key(want)]
        assert (got["step"], got["severity"]) == (want["step"], want["severity"]), key(want)
        _assert_close_tree(got["evidence"], want["evidence"], key(want))


def _assert_close_tree(a: Any, b: Any, where: Any) -> None:
    if isinstance(b, Mapping):
        assert isinstance(a, Mapping) and set(a) == set(b), where
        for k in b:
            _assert_close_tree(a[k], b[k], where)
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), where
        for x, y in zip(a, b):
            _assert_close_tree(x, y, where)
    elif isinstance(b, float):
        assert isinstance(a, (int, float)) and _close(a, b, LOSS_RTOL), (where, a, b)
    else:
        assert a == b, (where, a, b)


def _is_loss(name: str) -> bool:
    parts = parse_tag(name)
    return parts is not None and (parts.section == "gap" or "loss" in parts.metric)


def _close(a: Any, b: Any, rtol: float) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rtol * max(1.0, abs(b))


def record_details(monitor: Any, details: list[dict[str, Any]]) -> None:
    """Make ``monitor`` also append each evaluation's details (what sinks would show) to ``details``, on every
    rank (only rank zero has sinks to show them)."""
    show = monitor.details

    def capture(d: Any, step: int) -> None:
        details.append(
            {
                "step": step,
                "split": d.split,
                "reliability": dict(d.reliability),
                "confusion": d.confusion,
                "per_class": dict(d.per_class),
            }
        )
        show(d, step)

    monitor.details = capture


def assert_stopped_together(
    two: Mapping[int, Mapping[str, Any]], *, nan_step: int, log_every: int, steps_per_epoch: int, max_steps: int
) -> None:
    """Rank 1 alone saw a NaN loss at ``nan_step``; both ranks stopped together at the logging step whose step
    record holds it (stop_on acts on a per-step finding at once, not at the next evaluation), before
    ``max_steps``."""
    assert "FW-DIVERGENCE" in {f["code"] for f in two[1]["findings"]}
    # Only rank 1's losses held the NaN: rank 0 stopped on rank 1's word.
    rank0 = [v for _, v in two[0]["history"]["health/nonfinite_loss_steps"]]
    assert rank0 == [0.0] * len(rank0)
    assert 1.0 in [v for _, v in two[1]["history"]["health/nonfinite_loss_steps"]]
    found_at = math.ceil((nan_step + 1) / log_every) * log_every
    assert two[0]["global_step"] == two[1]["global_step"] == found_at < max_steps

