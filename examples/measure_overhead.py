"""Overhead of ``FitWatchCallback`` on the MiniLM fine-tune: the same run with and without it.

Each run is a fresh process (``examples/hf_text_classification.py`` with ``--with_fitwatch true|false``),
same seed, same data, same flags. Runs alternate in ABBA order, so that a slow drift of the machine's load
weighs on both arms alike, and ``/proc/loadavg`` is recorded before and after each one::

    python examples/measure_overhead.py configs/hf_text_classification.yaml --repeats 2

Reported per arm: ``train_runtime`` (the Trainer's, evaluations included), the median optimizer-step
time (forward, backward, optimizer step and fitwatch's per-step hooks), the CPU time of the training loop
(less sensitive than wall time to other processes on the same cores), and the process wall time (imports
and model loading included). The ratios are with / without, from the medians of each arm.
Extra flags after the config go to every run (``--num_train_epochs 1``).

Runs use one torch thread by default (``--threads``). On cores shared with other processes, two OpenMP
threads spin-wait for each other whenever one is descheduled: the same 10-step run measured 0.44 s and
5.6 s back to back (CPU time too), which drowns any overhead. One thread per run measured within 3%.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

_EXAMPLE = Path(__file__).resolve().parent / "hf_text_classification.py"
_MARKER = "MEASURE_OVERHEAD_RESULT "


def _loadavg() -> tuple[float, float, float]:
    try:
        one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:  # not Linux
        return (float("nan"),) * 3
    return float(one), float(five), float(fifteen)


def _child(config: str, flags: list[str]) -> None:
    """Run the example in this process and print its timings as one JSON line."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("hf_text_classification", _EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    sys.modules["hf_text_classification"] = example
    spec.loader.exec_module(example)
    result = example.run(example.load_config(config, flags))
    out = {
        "train_runtime": result.train_metrics["train_runtime"],
        "median_step": result.timer.median_step_seconds,
        "train_cpu": result.timer.train_cpu_seconds,
        # Same seed, same data: fitwatch only observes, so the training loss must be the same in both arms.
        "train_loss": result.train_metrics["train_loss"],
        "steps": len(result.timer.step_seconds),
        "findings": [] if result.callback is None else [f.code for f in result.callback.findings],
        "accuracy": None,
    }
    if result.callback is not None:
        series = result.callback.history.get("performance/accuracy/val")
        out["accuracy"] = series[-1][1] if series else None
    print(_MARKER + json.dumps(out), flush=True)


def _run(
    config: str, flags: list[str], with_fitwatch: bool, output_dir: str, threads: int
) -> dict[str, object]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [
        sys.executable,
        __file__,
        "--child",
        config,
        *flags,
        "--with_fitwatch",
        str(with_fitwatch).lower(),
        "--output_dir",
        output_dir,
        "--disable_tqdm",
        "true",
    ]
    before = _loadavg()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - start
    after = _loadavg()
    if done.returncode != 0:
        raise RuntimeError(f"run failed ({done.returncode}):\n{done.stderr[-4000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith(_MARKER))
    return {
        **json.loads(line[len(_MARKER) :]),
        "wall": wall,
        "load_before": before,
        "load_after": after,
        "with_fitwatch": with_fitwatch,
    }


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[2:])
        return []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--repeats", type=int, default=2, help="pairs of runs (ABBA order)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per run (see above)")
    args, flags = parser.parse_known_args(argv)
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = (False, True) if r % 2 == 0 else (True, False)
            for with_fitwatch in order:
                result = _run(args.config, flags, with_fitwatch, f"{tmp}/run{len(runs)}", args.threads)
                runs.append(result)
                arm = "with" if with_fitwatch else "without"
                print(
                    f"{arm:>7} fitwatch: train_runtime {result['train_runtime']:.1f} s, "
                    f"median step {result['median_step']:.3f} s, train CPU {result['train_cpu']:.1f} s, "
                    f"wall {result['wall']:.1f} s, train_loss {result['train_loss']:.6f}, "
                    f"loadavg {result['load_before'][0]:.2f} -> {result['load_after'][0]:.2f}",
                    flush=True,
                )

    def median(key: str, with_fitwatch: bool) -> float:
        return statistics.median(float(run[key]) for run in runs if run["with_fitwatch"] is with_fitwatch)

    for key in ("train_runtime", "median_step", "train_cpu", "wall"):
        on, off = median(key, True), median(key, False)
        print(f"{key:>13}: with {on:.3f} s / without {off:.3f} s = {on / off:.3f}")
    return runs


if __name__ == "__main__":
    main()
