"""Overhead of fitwatch, measured side by side: the same training with and without the callback.

    python -m benchmarks.overhead                 # both frameworks, default and every-diagnostic presets
    python -m benchmarks.overhead --quick         # smoke run (CI-sized, numbers not meaningful)
    python -m benchmarks.overhead --framework hf --preset full --repeats 7

Workload (issue 8): a 4-layer, 256-wide BERT built from a config (no download), sequence classification
on random tokens, sequence length 128, batch 16, on CPU (or the GPU when one is visible). Every run is a
fresh subprocess, so peak memory is that run's own; runs with and without fitwatch alternate (A B B A ...)
so drift in machine load hits both. The step time is the interval between the starts of consecutive
training batches, so it includes every hook of the step; the first steps (warm-up) are dropped. The
validation loop is timed separately. Results: JSON in benchmarks/results/overhead.json and a markdown
table in docs/benchmarks.md between the ``overhead`` markers (``overhead-cuda.json`` and the ``overhead-cuda``
markers when the runs were on a GPU).

On a GPU every run also counts CUDA synchronisations: ``torch.cuda.set_sync_debug_mode("warn")`` makes each
synchronising call raise a warning, and the child records, per training step, how many there were and how many
came from a call stack that passes through fitwatch's own code (the rest are the framework's: loss logging,
gradient clipping, ...). Both arms of a pair run in that mode, so the ratio stays like for like.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"


def _markers(cuda: bool) -> tuple[str, str]:
    name = "overhead-cuda" if cuda else "overhead"
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"

#: fitwatch settings per preset. "default" is FitWatch() as shipped; "full" turns every diagnostic on at the
#: cadence issue 8 names (update ratios every 50 steps, images every validation).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "full": {"diag_every_n_steps": 50, "images": True, "data_checks": {"confident_mistakes": 10}},
}
WORKLOAD = {"layers": 4, "hidden": 256, "heads": 4, "seq": 128, "batch": 16, "labels": 5, "vocab": 8000}
#: --quick only checks that the harness runs end to end: a model small enough for CI.
QUICK_WORKLOAD = {"layers": 1, "hidden": 32, "heads": 2, "seq": 16, "batch": 8, "labels": 5, "vocab": 200}


# ----------------------------------------------------------------------------------------------- child


def _bert(seed: int) -> Any:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    w = WORKLOAD
    config = BertConfig(vocab_size=w["vocab"], hidden_size=w["hidden"], num_hidden_layers=w["layers"],
                        num_attention_heads=w["heads"], intermediate_size=4 * w["hidden"],
                        max_position_embeddings=w["seq"], num_labels=w["labels"])
    return BertForSequenceClassification(config)


class _Tokens:
    def __init__(self, n: int, seed: int) -> None:
        import torch

        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(5, WORKLOAD["vocab"], (n, WORKLOAD["seq"]), generator=g)
        self.y = self.x[:, 0] % WORKLOAD["labels"]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        return {"input_ids": self.x[i], "attention_mask": torch.ones(WORKLOAD["seq"], dtype=torch.long), "labels": self.y[i]}


def _run_lightning(watch: bool, preset: str, steps: int, val_batches: int, out: Path, starts: list[float]) -> dict[str, Any]:
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader

    from fitwatch.lightning import FitWatch

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = _bert(0)

        def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
            out = self.model(**batch)
            return {"loss": out.loss, "logits": out.logits}

        def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
            out = self.model(**batch)
            return {"loss": out.loss, "logits": out.logits}

        def configure_optimizers(self) -> Any:
            return torch.optim.AdamW(self.parameters(), lr=5e-5, weight_decay=0.01)

    class Clock(pl.Callback):
        def __init__(self) -> None:
            self.starts = starts
            self.val: list[float] = []

        def on_train_batch_start(self, *args: Any) -> None:
            self.starts.append(time.perf_counter())

        def on_validation_epoch_start(self, *args: Any) -> None:
            self._v = time.perf_counter()

        def on_validation_epoch_end(self, *args: Any) -> None:
            self.val.append(time.perf_counter() - self._v)

    clock = Clock()
    callbacks: list[Any] = [clock]
    if watch:
        callbacks.append(FitWatch(config=PRESETS[preset], log_dir=out))
    bs = WORKLOAD["batch"]
    train = DataLoader(_Tokens(bs * (steps + 1), 0), batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(0))
    val = DataLoader(_Tokens(bs * val_batches, 1), batch_size=bs)
    trainer = pl.Trainer(
        default_root_dir=out, max_steps=steps + 1, val_check_interval=steps // 2 or 1, limit_val_batches=val_batches,
        num_sanity_val_steps=0, logger=pl.loggers.TensorBoardLogger(out, name="tb"), callbacks=callbacks,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, log_every_n_steps=50,
    )
    trainer.fit(Module(), train, val)
    return {"starts": clock.starts, "val": clock.val}


def _run_hf(watch: bool, preset: str, steps: int, val_batches: int, out: Path, starts: list[float]) -> dict[str, Any]:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from fitwatch.hf import FitWatchCallback

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.starts = starts
            self.val: list[float] = []
            self._v = 0.0

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self.starts.append(time.perf_counter())

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if control.should_evaluate:
                self._v = time.perf_counter()

        def on_evaluate(self, *args: Any, **kwargs: Any) -> None:
            self.val.append(time.perf_counter() - self._v)

    clock = Clock()
    callbacks: list[Any] = [clock]
    if watch:
        callbacks.append(FitWatchCallback(config=PRESETS[preset], log_dir=out))
    bs = WORKLOAD["batch"]
    args = TrainingArguments(
        output_dir=str(out), max_steps=steps + 1, per_device_train_batch_size=bs, per_device_eval_batch_size=bs,
        eval_strategy="steps", eval_steps=steps // 2 or 1, logging_steps=50, report_to=["tensorboard"],
        save_strategy="no", disable_tqdm=True, learning_rate=5e-5, weight_decay=0.01, seed=0,
        use_cpu=not _cuda(),
    )
    trainer = Trainer(model=_bert(0), args=args, train_dataset=_Tokens(bs * (steps + 1), 0),
                      eval_dataset=_Tokens(bs * val_batches, 1), callbacks=callbacks)
    trainer.train()
    return {"starts": clock.starts, "val": clock.val}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class _SyncLog:
    """Records every CUDA synchronisation that ``set_sync_debug_mode("warn")`` reports, with the training step it
    fell in (the number of step starts seen so far) and whether fitwatch's code was on the call stack."""

    def __init__(self, starts: list[float]) -> None:
        import fitwatch

        self.starts = starts
        self.root = str(Path(fitwatch.__file__).parent)
        self.events: list[tuple[int, bool]] = []

    def __enter__(self) -> _SyncLog:
        import warnings

        import torch

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.filterwarnings("always", message=".*synchroniz")
        self._show = warnings.showwarning
        warnings.showwarning = self._record
        torch.cuda.set_sync_debug_mode("warn")
        return self

    def _record(self, message: Any, category: Any, filename: str, lineno: int, *args: Any, **kwargs: Any) -> None:
        if "synchroniz" not in str(message):
            return self._show(message, category, filename, lineno, *args, **kwargs)
        ours = any(frame.filename.startswith(self.root) for frame in traceback.extract_stack())
        self.events.append((len(self.starts), ours))

    def __exit__(self, *exc: Any) -> None:
        import torch

        torch.cuda.set_sync_debug_mode("default")
        self._catch.__exit__(*exc)


def child(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    WORKLOAD.update(spec.get("workload", {}))
    torch.set_num_threads(spec["threads"])
    out = Path(spec["out"])
    run = _run_lightning if spec["framework"] == "lightning" else _run_hf
    t0 = time.perf_counter()
    starts: list[float] = []
    if torch.cuda.is_available():
        with _SyncLog(starts) as syncs:
            timing = run(spec["watch"], spec["preset"], spec["steps"], spec["val_batches"], out, starts)
    else:
        syncs = None
        timing = run(spec["watch"], spec["preset"], spec["steps"], spec["val_batches"], out, starts)
    steps = [b - a for a, b in zip(starts, starts[1:])]
    # drop warm-up steps and the steps whose interval holds a validation loop
    val_steps = {spec["steps"] // 2 or 1}
    kept = [s for i, s in enumerate(steps, start=1) if i > spec["warmup"] and i not in val_steps]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_gpu = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    result = {"step_times": kept, "val_times": timing["val"], "peak_rss_mb": peak_kb / 1024, "peak_gpu_bytes": peak_gpu,
              "wall_s": time.perf_counter() - t0}
    if syncs is not None:
        # step i (1-based) is the interval after the i-th start; steps 1..steps; validation steps counted apart
        per_step = {i: [0, 0] for i in range(1, len(starts) + 1)}
        for step, ours in syncs.events:
            if step in per_step:
                per_step[step][0] += 1
                per_step[step][1] += int(ours)
        result["syncs"] = {"per_step_total": [per_step[i][0] for i in sorted(per_step)],
                           "per_step_fitwatch": [per_step[i][1] for i in sorted(per_step)],
                           "log_every": 50, "validation_steps": sorted(val_steps)}
    return result


# ---------------------------------------------------------------------------------------------- parent


def _spawn(spec: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.overhead", "--child", json.dumps(spec)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({spec}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(framework: str, preset: str, *, repeats: int, steps: int, warmup: int, val_batches: int, threads: int, tmp: Path,
            workload: dict[str, Any]) -> dict[str, Any]:
    """Alternating runs without (A) and with (B) fitwatch: A B, B A, A B, ..."""
    ratios, val_ratios, base_med, watch_med, rss_a, rss_b = [], [], [], [], [], []
    val_a: list[float] = []
    val_b: list[float] = []
    syncs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for r in range(repeats):
        order = (False, True) if r % 2 == 0 else (True, False)
        got = {}
        for watch in order:
            spec = {"framework": framework, "preset": preset, "watch": watch, "steps": steps, "warmup": warmup,
                    "val_batches": val_batches, "threads": threads, "workload": workload,
                    "out": str(tmp / f"{framework}-{preset}-{r}-{int(watch)}")}
            got[watch] = _spawn(spec)
            print(f"  {framework:9s} {preset:7s} repeat {r + 1}/{repeats} {'with' if watch else 'without':7s} "
                  f"median step {statistics.median(got[watch]['step_times']) * 1e3:7.1f} ms", flush=True)
        a, b = statistics.median(got[False]["step_times"]), statistics.median(got[True]["step_times"])
        ratios.append(b / a)
        base_med.append(a)
        watch_med.append(b)
        if got[False]["val_times"] and got[True]["val_times"]:
            val_a.append(statistics.median(got[False]["val_times"]))
            val_b.append(statistics.median(got[True]["val_times"]))
            val_ratios.append(val_b[-1] / val_a[-1])
        rss_a.append(got[False]["peak_rss_mb"])
        rss_b.append(got[True]["peak_rss_mb"])
        for watch in (False, True):
            if "syncs" in got[watch]:
                syncs[watch].append(got[watch]["syncs"])
    return {
        "framework": framework, "preset": preset, "repeats": repeats, "steps": steps,
        "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios), "ratios": ratios,
        "step_ms_without": statistics.median(base_med) * 1e3, "step_ms_with": statistics.median(watch_med) * 1e3,
        "val_ratio_median": statistics.median(val_ratios) if val_ratios else None,
        "val_ms_without": statistics.median(val_a) * 1e3 if val_a else None,
        "val_ms_with": statistics.median(val_b) * 1e3 if val_b else None,
        "peak_rss_mb_without": max(rss_a), "peak_rss_mb_with": max(rss_b),
        **({"syncs": _sync_summary(syncs)} if syncs[True] else {}),
    }


def _sync_summary(runs: dict[bool, list[dict[str, Any]]]) -> dict[str, Any]:
    """Syncs per training step. Step ``i`` is the interval from the ``i``-th batch start to the next; the first
    (fit start: the one-off optimizer audit), the last (fit end) and the ones holding a validation loop are
    reported apart from the steps between, and logging steps (every ``log_every``-th) apart from the rest."""

    def split(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[int]]:
        between, logging = [], []
        for rec in records:
            last = len(rec[key])
            for i, n in enumerate(rec[key], start=1):
                if i in (1, last) or i in rec["validation_steps"]:
                    continue
                (logging if i % rec["log_every"] == 0 else between).append(n)
        return between, logging

    fw_between, fw_logging = split(runs[True], "per_step_fitwatch")
    all_with, _ = split(runs[True], "per_step_total")
    all_without, _ = split(runs[False], "per_step_total")
    where: dict[int, int] = {}  # step -> fitwatch syncs in it, summed over the runs with fitwatch
    for rec in runs[True]:
        for i, n in enumerate(rec["per_step_fitwatch"], start=1):
            if n:
                where[i] = where.get(i, 0) + n
    return {
        "fitwatch_steps_with_syncs": sorted(where.items())[:20],
        "fitwatch_first_step": max((rec["per_step_fitwatch"][0] for rec in runs[True]), default=0),
        "fitwatch_between_logging_max": max(fw_between, default=0),
        "fitwatch_between_logging_total": sum(fw_between), "steps_between_logging": len(fw_between),
        "fitwatch_per_logging_step_max": max(fw_logging, default=0),
        "fitwatch_per_logging_step_median": statistics.median(fw_logging) if fw_logging else 0,
        "all_between_logging_median_with": statistics.median(all_with) if all_with else 0,
        "all_between_logging_median_without": statistics.median(all_without) if all_without else 0,
    }


def state_memory() -> list[dict[str, Any]]:
    """Metric-state bytes for 10 / 1,000 / 10,000 classes, and after 10^3 vs 10^6 validation samples."""
    import torch

    from fitwatch.metrics.accumulator import PredictionAccumulator

    rows = []
    for classes in (10, 1000, 10000):
        for samples in (10**3, 10**6):
            acc = PredictionAccumulator(num_classes=classes, classwise_ece=True, confusion_max_classes=50)
            batch = max(1, min(samples, 4096 * 10 // classes))
            seen = 0
            g = torch.Generator().manual_seed(0)
            while seen < samples:
                n = min(batch, samples - seen)
                acc.update(torch.randn(n, classes, generator=g), torch.randint(0, classes, (n,), generator=g))
                seen += n
                if classes >= 1000 and samples == 10**6 and seen >= 20000:
                    break  # the state size is fixed after the first batch; no need to push all 10^6 through
            rows.append({"classes": classes, "samples": samples if not (classes >= 1000 and samples == 10**6) else seen,
                         "state_bytes": sum(t.numel() * t.element_size() for t in acc.tensors())})
    return rows


def import_times(threads: int) -> dict[str, float]:
    """Seconds to import fitwatch on top of what the user's script imports anyway (median of 5 fresh processes)."""

    def clock(setup: str, stmt: str) -> float:
        code = f"import time\n{setup}\nt = time.perf_counter()\n{stmt}\nprint(time.perf_counter() - t)"
        times = []
        for _ in range(5):
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                                 env={**os.environ, "OMP_NUM_THREADS": str(threads)}, check=True)
            times.append(float(out.stdout.strip().splitlines()[-1]))
        return statistics.median(times)

    return {
        "fitwatch over torch": clock("import torch", "import fitwatch"),
        "fitwatch.lightning over lightning + fitwatch": clock("import lightning.pytorch, fitwatch", "import fitwatch.lightning"),
        "fitwatch.hf over transformers.Trainer + fitwatch": clock("import fitwatch\nfrom transformers import Trainer", "import fitwatch.hf"),
    }


def write_docs(results: dict[str, Any]) -> None:
    lines = [
        f"Measured {results['date']} on {results['machine']} ({results['device']}, {results['threads']} threads); "
        f"`python -m benchmarks.overhead{' --quick' if results['quick'] else ''}`.",
        "",
        "| framework | preset | step without | step with | ratio (median) | ratio range | validation without / with (ratio) | peak RSS without / with |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        val = (f"{r['val_ms_without']:.0f} / {r['val_ms_with']:.0f} ms ({r['val_ratio_median']:.2f})"
               if r.get("val_ms_without") else "n/a")
        lines.append(
            f"| {r['framework']} | {r['preset']} | {r['step_ms_without']:.1f} ms | {r['step_ms_with']:.1f} ms | "
            f"**{r['ratio_median']:.3f}** | {r['ratio_min']:.3f}-{r['ratio_max']:.3f} | {val} | "
            f"{r['peak_rss_mb_without']:.0f} / {r['peak_rss_mb_with']:.0f} MB |"
        )
    if results.get("state_memory"):
        lines += ["", "Metric state (bytes) by number of classes and evaluated samples:", "",
                  "| classes | samples | state bytes |", "|---|---|---|"]
        lines += [f"| {m['classes']:,} | {m['samples']:,} | {m['state_bytes']:,} |" for m in results["state_memory"]]
    if results.get("import_times"):
        lines += ["", "Import time on top of the framework's own (median of 5 fresh processes):", ""]
        lines += [f"- `{k}`: {v * 1e3:.0f} ms" for k, v in results["import_times"].items()]
    cuda = results["device"] != "CPU"
    if cuda:
        lines += ["", "CUDA synchronisations per training step (`torch.cuda.set_sync_debug_mode(\"warn\")`; \"fitwatch\" counts "
                  "the syncs with fitwatch's code on the call stack, summed over the runs; \"all\" every sync in a step, "
                  "the framework's included):", "",
                  "| framework | preset | fitwatch, steps between logging steps (max; total over steps) | fitwatch, per logging step (max) | fitwatch, first step (one-off audit) | all syncs per step without / with (median) |",
                  "|---|---|---|---|---|---|"]
        for r in results["runs"]:
            if "syncs" in r:
                c = r["syncs"]
                lines.append(f"| {r['framework']} | {r['preset']} | {c['fitwatch_between_logging_max']}; "
                             f"{c['fitwatch_between_logging_total']} over {c['steps_between_logging']} | "
                             f"{c['fitwatch_per_logging_step_max']} | {c['fitwatch_first_step']} | "
                             f"{c['all_between_logging_median_without']:g} / {c['all_between_logging_median_with']:g} |")
    start, end = _markers(cuda)
    block = "\n".join(lines)
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + start + "\n" + block + "\n" + end + rest.split(end, 1)[1]
    else:
        title = "## Overhead on a GPU" if cuda else "## Overhead"
        text = text.rstrip() + f"\n\n{title}\n\n{start}\n{block}\n{end}\n"
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", choices=("lightning", "hf", "both"), default="both")
    parser.add_argument("--preset", choices=(*PRESETS, "both"), default="both")
    parser.add_argument("--repeats", type=int, default=5, help="A/B pairs per configuration")
    parser.add_argument("--steps", type=int, default=120, help="training steps per run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 1 pair, a few steps, no docs update")
    parser.add_argument("--results", type=Path, help="JSON output (default benchmarks/results/overhead[-cuda].json)")
    parser.add_argument("--ratios-only", action="store_true", help="print the step ratios and stop (no memory, import, docs)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    import tempfile

    import torch

    if args.quick:
        args.repeats, args.steps = 1, 8
    frameworks = ("lightning", "hf") if args.framework == "both" else (args.framework,)
    presets = tuple(PRESETS) if args.preset == "both" else (args.preset,)
    runs: list[dict[str, Any]] = []
    cuda = torch.cuda.is_available()
    results = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "device": torch.cuda.get_device_name() if cuda else "CPU", "threads": args.threads,
        "quick": args.quick, "workload": QUICK_WORKLOAD if args.quick else WORKLOAD, "runs": runs,
    }
    path = args.results or RESULTS / ("overhead-cuda.json" if cuda else "overhead.json")
    with tempfile.TemporaryDirectory() as tmp:
        for framework in frameworks:
            for preset in presets:
                runs.append(measure(framework, preset, repeats=args.repeats, steps=args.steps, warmup=min(10, args.steps // 4),
                                    val_batches=4 if args.quick else 16, threads=args.threads, tmp=Path(tmp),
                                    workload=QUICK_WORKLOAD if args.quick else WORKLOAD))
                if not args.quick:  # keep what is measured so far should a long run be cut off
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps(results, indent=2))
    if args.ratios_only:  # a short device check: the ratios (and CUDA syncs) alone, written where --results says
        path.write_text(json.dumps(results, indent=2))
        for r in runs:
            print(json.dumps(r))
        return 0
    results["state_memory"] = state_memory()
    results["import_times"] = import_times(args.threads)
    for r in runs:
        print(f"{r['framework']:9s} {r['preset']:7s} ratio {r['ratio_median']:.3f} "
              f"(range {r['ratio_min']:.3f}-{r['ratio_max']:.3f}; {r['step_ms_without']:.1f} -> {r['step_ms_with']:.1f} ms/step)")
    if not args.quick:
        path.write_text(json.dumps(results, indent=2))
        write_docs(results)
        print(f"wrote {path} and {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
