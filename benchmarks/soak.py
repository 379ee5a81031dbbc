"""Soak: what a long run costs fitwatch at its start and at its end (issue 17).

    python -m benchmarks.soak                 # 20,000 steps, 500 evaluations, at 10 and 200 classes
    python -m benchmarks.soak --quick         # CI-sized (800 steps, 20 evaluations); numbers not meaningful

Workload: a linear classifier (16 features) on random data with Lightning on CPU, so the training itself is
cheap and fitwatch's own cost shows: 40 training batches of 32 per epoch, a validation of 2 batches after each.
Measured per configuration:

- CPU seconds of the fit with fitwatch and of the same fit without it (process time, one process each);
- fitwatch's own time per evaluation interval (every hook of the callback, timed, summed between two
  evaluations), over the first and the last tenth of the run: a cost that grows with the run shows here;
- bytes written to ``history.jsonl`` per evaluation, first tenth against last tenth;
- RSS sampled at every evaluation (first tenth, last, peak);
- sizes at the end: ``history.jsonl``, ``history.json``, ``findings.jsonl`` (and its lines), the Monitor's
  part of the checkpoint state, the whole fitwatch state, and the Lightning checkpoint file.

Results: JSON in ``benchmarks/results/soak.json`` (``soak-quick.json`` for ``--quick``) and a markdown table in
docs/benchmarks.md between the ``soak`` markers (full form only).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
MARKERS = ("<!-- soak:start -->", "<!-- soak:end -->")
BATCHES_PER_EPOCH = 40
BATCH = 32
FEATURES = 16


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _model(classes: int) -> Any:
    import lightning.pytorch as pl
    import torch
    from torch import nn

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(FEATURES, classes)

        def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
            x, y = batch
            logits = self.net(x)
            return {"loss": nn.functional.cross_entropy(logits, y), "logits": logits}

        def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
            x, y = batch
            logits = self.net(x)
            return {"loss": nn.functional.cross_entropy(logits, y), "logits": logits}

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.05)

    return Tiny()


def _loaders(classes: int) -> tuple[Any, Any]:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCHES_PER_EPOCH * BATCH, FEATURES, generator=g)
    y = torch.randint(0, classes, (len(x),), generator=g)
    vx = torch.randn(2 * BATCH, FEATURES, generator=g)
    vy = torch.randint(0, classes, (len(vx),), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=BATCH), DataLoader(TensorDataset(vx, vy), batch_size=BATCH)


class _Timed:
    """Times every ``on_*`` hook and ``state_dict`` of a callback, and samples RSS and the history bytes
    written at each evaluation."""

    def __init__(self, cb: Any) -> None:
        self.cb = cb
        self.spent = 0.0
        self.per_eval: list[float] = []
        self.rss: list[float] = []
        self.history_bytes: list[int] = []
        for name in dir(type(cb)):
            if name.startswith("on_") or name == "state_dict":
                setattr(cb, name, self._wrap(getattr(cb, name)))

    def _wrap(self, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent += time.perf_counter() - start

        return timed

    def evaluation_done(self) -> None:
        self.per_eval.append(self.spent)
        self.spent = 0.0
        self.rss.append(_rss_mb())
        sink = _jsonl_sink(self.cb)
        self.history_bytes.append(0 if sink is None else sink.bytes_written["history.jsonl"])


def _jsonl_sink(cb: Any) -> Any:
    from fitwatch.sinks.jsonl import JsonlSink

    return next((s for s in cb.observer.monitor.sinks.active if isinstance(s, JsonlSink)), None)


def soak(classes: int, evaluations: int, directory: str | os.PathLike[str], *, fitwatch: bool = True) -> dict[str, Any]:
    """One fit of ``evaluations`` epochs (40 steps each, a validation after each) at ``classes`` classes.

    Returns:
        CPU seconds; with ``fitwatch``, also the per-evaluation series (fitwatch seconds, RSS in MB, bytes of
        ``history.jsonl`` written so far) and the final sizes in bytes.
    """
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger

    from fitwatch.lightning import FitWatch

    torch.manual_seed(0)
    directory = Path(directory)
    callbacks: list[Any] = []
    timed = None
    if fitwatch:
        cb = FitWatch(class_names=[f"class {i}" for i in range(classes)], config={"data_checks": False})
        timed = _Timed(cb)

        class Probe(pl.Callback):
            def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
                if not trainer.sanity_checking:
                    timed.evaluation_done()

        callbacks = [cb, Probe()]
    trainer = pl.Trainer(
        max_epochs=evaluations,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger(str(directory), name="soak"),
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=50,
    )
    model = _model(classes)
    train, val = _loaders(classes)
    cpu = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, train, val)
    out: dict[str, Any] = {"cpu_s": time.process_time() - cpu, "steps": trainer.global_step}
    if timed is None:
        return out
    ckpt = directory / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    run_dir = Path(trainer.logger.log_dir)
    state = cb.state_dict()
    findings = run_dir / "findings.jsonl"
    out.update(
        fitwatch_s_per_eval=timed.per_eval,
        rss_mb=timed.rss,
        history_bytes=timed.history_bytes,
        sizes={
            "history.jsonl": (run_dir / "history.jsonl").stat().st_size,
            "history.json": (run_dir / "history.json").stat().st_size,
            "findings.jsonl": findings.stat().st_size if findings.exists() else 0,
            "monitor_state": len(json.dumps(state["observer"]["monitor"])),
            "monitor_state_without_detectors": len(
                json.dumps({k: v for k, v in state["observer"]["monitor"].items() if k != "detectors"})
            ),
            "fitwatch_state": len(json.dumps(state)),
            "checkpoint": ckpt.stat().st_size,
        },
        findings_lines=len(findings.read_text().splitlines()) if findings.exists() else 0,
        findings_codes=sorted({f.code for f in cb.findings}),
    )
    return out


def summarise(classes: int, evaluations: int, run: dict[str, Any], bare: dict[str, Any] | None) -> dict[str, Any]:
    """The row of the table: start (first tenth) against end (last tenth) of the run."""
    tenth = max(2, evaluations // 10)
    per_eval = run["fitwatch_s_per_eval"][1:]  # the first interval holds the set-up
    written = [b - a for a, b in zip(run["history_bytes"], run["history_bytes"][1:])]
    return {
        "classes": classes,
        "steps": run["steps"],
        "evaluations": evaluations,
        "cpu_s": round(run["cpu_s"], 1),
        "bare_cpu_s": None if bare is None else round(bare["cpu_s"], 1),
        "fitwatch_ms_per_eval_start": round(1e3 * statistics.median(per_eval[:tenth]), 2),
        "fitwatch_ms_per_eval_end": round(1e3 * statistics.median(per_eval[-tenth:]), 2),
        "history_bytes_per_eval_start": int(statistics.median(written[:tenth])),
        "history_bytes_per_eval_end": int(statistics.median(written[-tenth:])),
        "rss_mb_start": round(statistics.median(run["rss_mb"][:tenth]), 1),
        "rss_mb_end": round(run["rss_mb"][-1], 1),
        "rss_mb_peak": round(max(run["rss_mb"]), 1),
        "findings_lines": run["findings_lines"],
        "findings_codes": run["findings_codes"],
        **{f"size_{k}": v for k, v in run["sizes"].items()},
    }


def _kb(n: int) -> str:
    return f"{n / 1024:,.0f} KB" if n < 10 * 2**20 else f"{n / 2**20:,.1f} MB"


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| classes | steps / evaluations | CPU s (bare) | fitwatch ms per eval, start -> end | history.jsonl bytes "
        "per eval, start -> end | RSS MB start -> end (peak) | history.jsonl / history.json | findings.jsonl "
        "(lines) | Monitor state (without detectors) | checkpoint file |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['classes']} | {r['steps']:,} / {r['evaluations']} | {r['cpu_s']} ({r['bare_cpu_s']}) | "
            f"{r['fitwatch_ms_per_eval_start']} -> {r['fitwatch_ms_per_eval_end']} | "
            f"{r['history_bytes_per_eval_start']:,} -> {r['history_bytes_per_eval_end']:,} | "
            f"{r['rss_mb_start']} -> {r['rss_mb_end']} ({r['rss_mb_peak']}) | "
            f"{_kb(r['size_history.jsonl'])} / {_kb(r['size_history.json'])} | "
            f"{_kb(r['size_findings.jsonl'])} ({r['findings_lines']}) | "
            f"{_kb(r['size_monitor_state'])} ({_kb(r['size_monitor_state_without_detectors'])}) | "
            f"{_kb(r['size_checkpoint'])} |"
        )
    return "\n".join(lines)


def write_docs(table: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    start, end = MARKERS
    if start not in text:
        text = text.rstrip("\n") + f"\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    DOCS.write_text(f"{head}{start}\n{table}\n{end}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 evaluations (800 steps), 10 classes only")
    parser.add_argument("--classes", type=int, nargs="+", default=None, help="class counts (default 10 200)")
    parser.add_argument("--no-bare", action="store_true", help="skip the run without fitwatch")
    args = parser.parse_args(argv)
    logging.getLogger("fitwatch").setLevel(logging.ERROR)  # findings are counted, not printed
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    evaluations = 20 if args.quick else 20_000 // BATCHES_PER_EPOCH
    classes = args.classes or ([10] if args.quick else [10, 200])
    rows = []
    for c in classes:
        with tempfile.TemporaryDirectory(prefix="fitwatch-soak-") as tmp:
            bare = None if args.no_bare else soak(c, evaluations, Path(tmp) / "bare", fitwatch=False)
            run = soak(c, evaluations, Path(tmp) / "fitwatch")
        row = summarise(c, evaluations, run, bare)
        rows.append(row)
        print(json.dumps(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "soak-quick.json" if args.quick else "soak.json"
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    (RESULTS / name).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    table = render(rows)
    print(table)
    if not args.quick:
        write_docs(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
