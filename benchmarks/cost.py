"""An exact account of what fitwatch costs, phase by phase: Python time in its hooks and the torch ops it issues.

    python -m benchmarks.cost                  # the account (both adapters, default and full, three workloads)
    python -m benchmarks.cost --ratios         # step-time ratios: default / full / the peer, against the bare loop
    python -m benchmarks.cost --quick          # CI-sized smoke run of both (numbers not meaningful)

How it counts (issue 15). Every hook fitwatch's callback class defines (and the HF forward hook, and Lightning's
reads of ``state_key``) is wrapped, in this process only, by a probe that

* times the call (``time.thread_time``: the CPU time of the training thread, which holds on a shared machine
  better than wall time; on CPU it includes the kernels fitwatch runs, on a GPU only their launches);
* names it in the profiler (``record_function("fitwatch::<hook>#<n>")``), so that in a second, profiled run
  every top-level ``aten::`` op (one whose ancestors hold no other ``aten::`` op) is charged to the hook call
  it ran in. That is the number of torch ops, hence kernel launches on a GPU, that fitwatch issues: exact,
  without subtracting two runs.

A marker callback placed before fitwatch tells which training step or evaluation each call belongs to. Within a
training step, calls into a few core methods are flagged when they exist (the fold of held batches, the logging
step's record, the update-ratio snapshot, the optimizer audit), so a step is classed as a plain step, a fold
step, a logging step, a diagnostics step or an audit step; the fold's own ops and time are recorded apart. If the
core renames these methods the flags stay silent and such steps count as plain steps: the totals stay exact.

Workloads (CPU, one thread each): ``mlp`` a ~5 ms MLP step (the CPU stand-in for a launch-bound GPU step),
``bert`` a ~80 ms two-layer BERT step built from a config, ``lm`` a GPT-2-shaped causal LM with a 32,000-token
vocabulary. Presets: ``default`` (``FitWatch()`` as shipped) and ``full`` (``configs/fitwatch/full.yaml``).
Results: ``benchmarks/results/cost.json`` (``cost-ratios.json``) and tables in ``docs/benchmarks.md`` between the
``cost`` (``ratios``) markers.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
FULL_PRESET = ROOT / "configs" / "fitwatch" / "full.yaml"

#: Model and batch sizes. ``mlp`` is sized for ~5 ms, ``bert`` for ~80 ms per step on one CPU thread.
WORKLOADS: dict[str, dict[str, Any]] = {
    "mlp": {"kind": "mlp", "features": 256, "hidden": 512, "classes": 10, "batch": 64},
    "bert": {"kind": "bert", "layers": 2, "hidden": 256, "heads": 4, "seq": 128, "batch": 16, "vocab": 8000,
             "classes": 5},
    "lm": {"kind": "lm", "layers": 2, "hidden": 128, "heads": 4, "seq": 64, "batch": 8, "vocab": 32000},
}
QUICK_WORKLOADS: dict[str, dict[str, Any]] = {
    "mlp": {"kind": "mlp", "features": 16, "hidden": 32, "classes": 4, "batch": 8},
    "bert": {"kind": "bert", "layers": 1, "hidden": 32, "heads": 2, "seq": 16, "batch": 4, "vocab": 200, "classes": 3},
    "lm": {"kind": "lm", "layers": 1, "hidden": 32, "heads": 2, "seq": 16, "batch": 2, "vocab": 32000},
}

#: Hooks whose calls belong to an evaluation, and those that end the fit (single-epoch runs).
EVAL_HOOKS = {"on_validation_start", "on_validation_batch_end", "on_validation_epoch_end", "on_prediction_step",
              "on_evaluate"}
EVAL_ENDS = {"on_validation_epoch_end", "on_evaluate"}
END_HOOKS = {"on_train_epoch_end", "on_fit_end", "on_train_end", "on_epoch_end"}
START_HOOKS = {"on_train_start", "on_train_begin", "on_init_end", "setup", "on_fit_start"}
#: Core methods whose calls flag a step (``(module, class, method) -> flag``); absent ones are skipped.
FLAGS = {
    ("fitwatch.metrics.accumulator", "PredictionAccumulator", "_fold"): "fold",
    ("fitwatch.observer", "Observer", "_log_step"): "logging",
    ("fitwatch.metrics.optim", "UpdateRatioTracker", "snapshot"): "diag",
    ("fitwatch.observer", "Observer", "_audit"): "audit",
}


# ---------------------------------------------------------------------------------------------------- probe


class Probe:
    """Wraps fitwatch's hooks to time them and name them in the profiler; see the module docstring."""

    def __init__(self) -> None:
        self.phase: tuple[str, int] = ("fit_start", 0)
        self.evals = 0
        self.calls: list[dict[str, Any]] = []
        self._depth = 0
        self._current: dict[str, Any] | None = None
        self._patches: list[tuple[Any, str, Any]] = []
        self.hook_names: list[str] = []

    # -- patching
    def _patch(self, owner: Any, name: str, new: Any) -> None:
        self._patches.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, new)

    def install(self, callback_cls: type) -> None:
        """Wrap every hook ``callback_cls`` defines itself (``on_*``, ``setup``, the HF forward hook ``_capture``)
        and its ``state_key`` property, and the flagged core methods."""
        for name, value in list(vars(callback_cls).items()):
            if callable(value) and (name.startswith("on_") or name in ("setup", "_capture")):
                self._patch(callback_cls, name, self._hook(name, value))
                self.hook_names.append(name)
        if isinstance(vars(callback_cls).get("state_key"), property):
            getter = vars(callback_cls)["state_key"].fget
            self._patch(callback_cls, "state_key", property(self._hook("state_key", getter)))
        import importlib

        for (module, cls, method), flag in FLAGS.items():
            try:
                owner = getattr(importlib.import_module(module), cls)
            except (ImportError, AttributeError):
                continue
            if method in vars(owner):
                self._patch(owner, method, self._flag(flag, vars(owner)[method]))

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()

    def _hook(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        import torch

        probe = self

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if probe._depth:  # a hook called from a hook (state_key inside on_*) is part of the outer call
                return fn(*args, **kwargs)
            phase = probe.phase
            if name in EVAL_HOOKS or (name == "_capture" and not args[1].training):
                phase = ("eval", probe.evals)
            elif name in END_HOOKS:
                phase = ("fit_end", 0)
            elif name in START_HOOKS:
                phase = ("fit_start", 0)
            call = {"hook": name, "phase": phase[0], "index": phase[1], "n": len(probe.calls), "flags": []}
            probe.calls.append(call)
            probe._current, probe._depth = call, 1
            try:
                with torch.profiler.record_function(f"fitwatch::{name}#{call['n']}"):
                    c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
                    try:
                        return fn(*args, **kwargs)
                    finally:
                        call["cpu_ns"] = time.thread_time_ns() - c0
                        call["wall_ns"] = time.perf_counter_ns() - w0
            finally:
                probe._current, probe._depth = None, 0
                if name in EVAL_ENDS:
                    probe.evals += 1

        return wrapper

    def _flag(self, flag: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        import torch

        probe = self

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = probe._current
            if call is None:
                return fn(*args, **kwargs)
            call["flags"].append(flag)
            with torch.profiler.record_function(f"fitwatch-flag::{flag}"):
                c0 = time.thread_time_ns()
                try:
                    return fn(*args, **kwargs)
                finally:
                    call[f"{flag}_cpu_ns"] = call.get(f"{flag}_cpu_ns", 0) + time.thread_time_ns() - c0

        return wrapper

    # -- profiler attribution
    def charge_ops(self, events: Any) -> None:
        """Charge every top-level ``aten::`` op that ran inside a probed call to that call (``ops``, ``op_names``),
        and those inside a flagged method also to ``<flag>_ops``."""
        by_n = {c["n"]: c for c in self.calls}
        for c in self.calls:
            c["ops"], c["op_names"] = 0, {}
        for ev in events:
            if not ev.name.startswith("aten::"):
                continue
            parent, call, flag, nested = ev.cpu_parent, None, None, False
            while parent is not None:
                if parent.name.startswith("aten::"):
                    nested = True
                    break
                if parent.name.startswith("fitwatch-flag::") and flag is None:
                    flag = parent.name.split("::", 1)[1]
                if parent.name.startswith("fitwatch::"):
                    call = by_n.get(int(parent.name.rsplit("#", 1)[1]))
                parent = parent.cpu_parent
            if nested or call is None:
                continue
            call["ops"] += 1
            call["op_names"][ev.name] = call["op_names"].get(ev.name, 0) + 1
            if flag is not None:
                call[f"{flag}_ops"] = call.get(f"{flag}_ops", 0) + 1


def _marker_lightning(probe: Probe) -> Any:
    import lightning.pytorch as pl

    class Marker(pl.Callback):
        """Placed before fitwatch: tells the probe which step each call belongs to, and times the steps."""

        def __init__(self) -> None:
            self.step = 0
            self.starts: list[float] = []
            self.cpu: list[float] = []  # the training thread's CPU time at the same instants

        def on_train_batch_start(self, *args: Any) -> None:
            self.starts.append(time.perf_counter())
            self.cpu.append(time.thread_time())
            probe.phase = ("step", self.step)
            self.step += 1

    return Marker()


def _marker_hf(probe: Probe) -> Any:
    from transformers import TrainerCallback

    class Marker(TrainerCallback):
        def __init__(self) -> None:
            self.step = 0
            self.starts: list[float] = []

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self.starts.append(time.perf_counter())
            probe.phase = ("step", self.step)
            self.step += 1

    return Marker()


# ---------------------------------------------------------------------------------------------- workloads


class _Data:
    """Random inputs for one workload; items are dicts (HF) with ``labels``."""

    def __init__(self, w: dict[str, Any], n: int, seed: int) -> None:
        import torch

        g = torch.Generator().manual_seed(seed)
        self.w = w
        if w["kind"] == "mlp":
            self.x = torch.randn(n, w["features"], generator=g)
            self.y = torch.randint(0, w["classes"], (n,), generator=g)
        elif w["kind"] == "bert":
            self.x = torch.randint(5, w["vocab"], (n, w["seq"]), generator=g)
            self.y = self.x[:, 0] % w["classes"]
        else:
            self.x = torch.randint(5, w["vocab"], (n, w["seq"]), generator=g)
            self.y = self.x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self.w["kind"] == "mlp":
            return {"x": self.x[i], "labels": self.y[i]}
        return {"input_ids": self.x[i], "labels": self.y[i]}


def build_model(w: dict[str, Any], seed: int = 0) -> Any:
    """The workload's model: an HF-style module whose forward takes the batch dict and returns loss and logits."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if w["kind"] == "mlp":

        class MLP(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = nn.Sequential(nn.Linear(w["features"], w["hidden"]), nn.ReLU(), nn.Dropout(0.1),
                                         nn.Linear(w["hidden"], w["hidden"]), nn.ReLU(), nn.Linear(w["hidden"], w["classes"]))

            def forward(self, x: Any, labels: Any = None) -> dict[str, Any]:
                logits = self.net(x)
                out = {"logits": logits}
                if labels is not None:
                    out["loss"] = nn.functional.cross_entropy(logits, labels)
                return out

        return MLP()
    if w["kind"] == "bert":
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(vocab_size=w["vocab"], hidden_size=w["hidden"], num_hidden_layers=w["layers"],
                            num_attention_heads=w["heads"], intermediate_size=4 * w["hidden"],
                            max_position_embeddings=w["seq"], num_labels=w["classes"])
        return BertForSequenceClassification(config)
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=w["vocab"], n_positions=w["seq"], n_embd=w["hidden"], n_layer=w["layers"],
                        n_head=w["heads"], resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    return GPT2LMHeadModel(config)


def _lightning_module(w: dict[str, Any], device: str = "cpu") -> Any:
    import lightning.pytorch as pl
    import torch

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = build_model(w)

        def _step(self, batch: dict[str, Any]) -> dict[str, Any]:
            out = self.model(**batch)
            return {"loss": out["loss"], "logits": out["logits"]}

        def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
            return self._step(batch)

        def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
            return self._step(batch)

        def configure_optimizers(self) -> Any:
            return torch.optim.AdamW(self.parameters(), lr=1e-4, weight_decay=0.01)

    return Module()


def fitwatch_settings(preset: str, w: dict[str, Any], *, task: str | None) -> dict[str, Any]:
    """``config=`` for the callback: ``{}`` (default) or the full preset, with the data checks' time bounded."""
    settings: dict[str, Any] = {}
    if preset == "full":
        import yaml

        settings = yaml.safe_load(FULL_PRESET.read_text())
    if task is not None:
        settings["task"] = task
    return settings


def _task_for(w: dict[str, Any]) -> str | None:
    return "causal_lm" if w["kind"] == "lm" else None


def run_lightning(w: dict[str, Any], *, callbacks: list[Any], steps: int, val_every: int, val_batches: int,
                  log_every: int, out: Path, device: str = "cpu", train_batches: int | None = None) -> None:
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader

    bs = w["batch"]
    train = DataLoader(_Data(w, bs * (train_batches or steps), 0), batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(0))
    val = DataLoader(_Data(w, bs * max(val_batches, 1), 1), batch_size=bs)
    trainer = pl.Trainer(
        default_root_dir=out, max_steps=steps, val_check_interval=val_every if val_batches else None,
        limit_val_batches=val_batches, num_sanity_val_steps=0, logger=pl.loggers.TensorBoardLogger(out, name="tb"),
        callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        log_every_n_steps=log_every, accelerator="gpu" if device == "cuda" else "cpu", devices=1,
    )
    trainer.fit(_lightning_module(w), train, val if val_batches else None)


def run_hf(w: dict[str, Any], *, callbacks: list[Any], steps: int, val_every: int, val_batches: int, log_every: int,
           out: Path, device: str = "cpu", train_batches: int | None = None) -> None:
    from transformers import Trainer, TrainingArguments

    bs = w["batch"]
    args = TrainingArguments(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=bs, per_device_eval_batch_size=bs,
        eval_strategy="steps" if val_batches else "no", eval_steps=val_every, logging_steps=log_every,
        report_to=["tensorboard"], save_strategy="no", disable_tqdm=True, learning_rate=1e-4, weight_decay=0.01,
        seed=0, use_cpu=device == "cpu", dataloader_num_workers=0,
    )
    trainer = Trainer(model=build_model(w), args=args, train_dataset=_Data(w, bs * (train_batches or steps), 0),
                      eval_dataset=_Data(w, bs * max(val_batches, 1), 1) if val_batches else None, callbacks=callbacks)
    trainer.train()


def make_callback(framework: str, preset: str, w: dict[str, Any], out: Path, *, task_note: dict[str, Any]) -> Any:
    """fitwatch's callback for ``framework``; for the LM, ``task="causal_lm"`` when the callback takes it (else
    ``task_note["task"]`` records the fallback)."""
    cls = _callback_cls(framework)
    task = _task_for(w)
    try:
        cb = cls(config=fitwatch_settings(preset, w, task=task), log_dir=out / "fitwatch")
        task_note["task"] = task or "auto"
        return cb
    except (TypeError, ValueError) as err:
        task_note["task"] = f"auto (task={task!r} refused: {err})"
        return cls(config=fitwatch_settings(preset, w, task=None), log_dir=out / "fitwatch")


def _callback_cls(framework: str) -> type:
    if framework == "lightning":
        from fitwatch.lightning import FitWatch

        return FitWatch
    from fitwatch.hf import FitWatchCallback

    return FitWatchCallback


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    import logging

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        levels = {n: logging.getLogger(n).level for n in ("lightning", "lightning.pytorch", "transformers")}
        for n in levels:
            logging.getLogger(n).setLevel(logging.ERROR)
        try:
            yield
        finally:
            for n, level in levels.items():
                logging.getLogger(n).setLevel(level)


# ---------------------------------------------------------------------------------------------- account


def probed_fit(framework: str, preset: str, w: dict[str, Any], *, steps: int, val_every: int, val_batches: int,
               log_every: int, profile: bool, tmp: Path, device: str = "cpu") -> tuple[Probe, dict[str, Any]]:
    """One fit with fitwatch, probed; with ``profile`` the ops are charged to the calls."""
    import torch

    probe = Probe()
    probe.install(_callback_cls(framework))
    note: dict[str, Any] = {}
    try:
        out = Path(tempfile.mkdtemp(dir=tmp))
        cb = make_callback(framework, preset, w, out, task_note=note)
        marker = _marker_lightning(probe) if framework == "lightning" else _marker_hf(probe)
        run = run_lightning if framework == "lightning" else run_hf
        kwargs = dict(callbacks=[marker, cb], steps=steps, val_every=val_every, val_batches=val_batches,
                      log_every=log_every, out=out, device=device)
        with quiet():
            if profile:
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                    run(w, **kwargs)
                probe.charge_ops(prof.events())
            else:
                run(w, **kwargs)
        starts = marker.starts
        note["step_ms"] = statistics.median([b - a for a, b in zip(starts, starts[1:])][2:] or [0.0]) * 1e3
    finally:
        probe.uninstall()
    return probe, note


def summarise(probe: Probe, *, with_ops: bool) -> dict[str, Any]:
    """Per phase: medians over steps of each class, per evaluation, fit start and end."""
    steps: dict[int, dict[str, Any]] = defaultdict(lambda: {"cpu_ns": 0, "ops": 0, "flags": set(), "op_names": {},
                                                            "fold_ops": 0, "fold_cpu_ns": 0})
    evals: dict[int, dict[str, Any]] = defaultdict(lambda: {"cpu_ns": 0, "ops": 0, "calls": 0})
    ends: dict[str, dict[str, Any]] = {p: {"cpu_ns": 0, "ops": 0} for p in ("fit_start", "fit_end")}
    for c in probe.calls:
        ops = c.get("ops", 0)
        if c["phase"] == "step":
            s = steps[c["index"]]
            s["cpu_ns"] += c["cpu_ns"]
            s["ops"] += ops
            s["flags"].update(c["flags"])
            s["calls"] = s.get("calls", 0) + 1
            s["fold_ops"] += c.get("fold_ops", 0)
            s["fold_cpu_ns"] += c.get("fold_cpu_ns", 0)
            for k, v in c.get("op_names", {}).items():
                s["op_names"][k] = s["op_names"].get(k, 0) + v
        elif c["phase"] == "eval":
            e = evals[c["index"]]
            e["cpu_ns"] += c["cpu_ns"]
            e["ops"] += ops
            e["calls"] += 1
        else:
            ends[c["phase"]]["cpu_ns"] += c["cpu_ns"]
            ends[c["phase"]]["ops"] += ops
    last = max(steps) if steps else -1
    classes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i, s in sorted(steps.items()):
        if i == last:  # the last step also holds the fit's tail (the Trainer's final log)
            continue
        flags = s["flags"]
        kind = "audit" if "audit" in flags else "logging" if "logging" in flags else "diag" if "diag" in flags \
            else "fold" if "fold" in flags else "step"
        classes[kind].append(s)
    out: dict[str, Any] = {"phases": {}}
    for kind, rows in classes.items():
        row = {"count": len(rows), "cpu_us": statistics.median(r["cpu_ns"] for r in rows) / 1e3,
               "calls": statistics.median(r.get("calls", 0) for r in rows)}
        if with_ops:
            row["ops"] = statistics.median(r["ops"] for r in rows)
        if kind == "fold":
            row["fold_cpu_us"] = statistics.median(r["fold_cpu_ns"] for r in rows) / 1e3
            if with_ops:
                row["fold_ops"] = statistics.median(r["fold_ops"] for r in rows)
        if kind == "step" and with_ops:
            names: dict[str, int] = defaultdict(int)
            for r in rows:
                for k, v in r["op_names"].items():
                    names[k] += v
            row["op_names"] = {k: round(v / len(rows), 2) for k, v in sorted(names.items(), key=lambda kv: -kv[1])}
        out["phases"][kind] = row
    if evals:  # the first evaluation apart: it builds the figures and, in HF, may run the data checks
        ordered = [evals[i] for i in sorted(evals)]
        for key, rows in (("first_evaluation", ordered[:1]), ("evaluation", ordered[1:])):
            if rows:
                out["phases"][key] = {"count": len(rows), "cpu_us": statistics.median(e["cpu_ns"] for e in rows) / 1e3,
                                      **({"ops": statistics.median(e["ops"] for e in rows)} if with_ops else {})}
    for p, e in ends.items():
        out["phases"][p] = {"count": 1, "cpu_us": e["cpu_ns"] / 1e3, **({"ops": e["ops"]} if with_ops else {})}
    # all training-step calls, folds included, per step (the amortised per-step cost between evaluations)
    plain = [s for i, s in steps.items() if i != last and not ({"audit", "logging", "diag"} & s["flags"])]
    if plain:
        out["amortised_step"] = {"cpu_us": sum(s["cpu_ns"] for s in plain) / len(plain) / 1e3,
                                 **({"ops": sum(s["ops"] for s in plain) / len(plain)} if with_ops else {})}
    hooks: dict[str, list[int]] = defaultdict(list)
    for c in probe.calls:
        hooks[c["hook"]].append(c["cpu_ns"])
    out["hooks"] = {h: {"calls": len(v), "cpu_us_median": statistics.median(v) / 1e3, "cpu_ms_total": sum(v) / 1e6}
                    for h, v in sorted(hooks.items())}
    return out


def probe_call_us(calls: int = 20_000) -> float:
    """What the probe charges a no-op hook call (its two timer reads): what each timed call carries on top of
    fitwatch's own work (``net`` in the table subtracts it per call)."""

    class Null:
        def on_noop(self) -> None:
            pass

    probe = Probe()
    probe.install(Null)
    try:
        null = Null()
        for _ in range(calls):
            null.on_noop()
        return statistics.median(c["cpu_ns"] for c in probe.calls) / 1e3
    finally:
        probe.uninstall()


def account(framework: str, preset: str, workload: str, *, quick: bool, tmp: Path, device: str = "cpu") -> dict[str, Any]:
    w = (QUICK_WORKLOADS if quick else WORKLOADS)[workload]
    steps = 40 if quick else (96 if workload == "mlp" else 72)
    plan = dict(steps=steps, val_every=steps // 3, val_batches=2 if quick else 8, log_every=20, tmp=tmp, device=device)
    timed, note = probed_fit(framework, preset, w, profile=False, **plan)
    counted, _ = probed_fit(framework, preset, w, profile=True, **plan)
    t = summarise(timed, with_ops=False)
    o = summarise(counted, with_ops=True)
    for kind, row in o["phases"].items():  # times from the plain run, ops from the profiled one
        row["cpu_us"] = t["phases"].get(kind, {}).get("cpu_us", row["cpu_us"])
        if "fold_cpu_us" in row:
            row["fold_cpu_us"] = t["phases"].get(kind, {}).get("fold_cpu_us", row["fold_cpu_us"])
    if "amortised_step" in o:
        o["amortised_step"]["cpu_us"] = t.get("amortised_step", {}).get("cpu_us")
    o["hooks"] = t["hooks"]
    return {"framework": framework, "preset": preset, "workload": workload, "sizes": w, "task": note.get("task"),
            "step_ms": note["step_ms"], **plan, "tmp": None, **o}


# -------------------------------------------------------------------------------------------- op count


def ops_per_plain_step(framework: str = "lightning", *, steps: tuple[int, int] = (32, 288), tmp: Path,
                       w: dict[str, Any] | None = None, difference: bool = True) -> dict[str, Any]:
    """Top-level torch ops fitwatch adds per training step at default settings (no validation, no logging
    step), measured two ways: charged to its hook calls (median over plain steps, and the fold apart), and as the
    difference between two run lengths with and without fitwatch ((W_long - W_short) - (B_long - B_short)) /
    (long - short), which includes the folds amortised and anything issued outside the hooks (only with
    ``difference``; without, one fit of the longer length, charged to the hooks). The run lengths
    differ by a whole number of folds (256 batches each), so the held batches at fit end are the same, and both
    read the same training set (the fit-start data checks scan it: a longer set would cost more ops)."""
    import torch

    w = w or QUICK_WORKLOADS["mlp"]
    run = run_lightning if framework == "lightning" else run_hf
    totals: dict[tuple[bool, int], int] = {}
    plain: list[int] = []
    fold: list[int] = []
    names: dict[str, int] = defaultdict(int)
    for watch in (False, True) if difference else (True,):
        for n in steps if difference else steps[1:]:
            probe = Probe()
            if watch:
                probe.install(_callback_cls(framework))
            try:
                out = Path(tempfile.mkdtemp(dir=tmp))
                cbs: list[Any] = [_marker_lightning(probe) if framework == "lightning" else _marker_hf(probe)]
                if watch:
                    cbs.append(_callback_cls(framework)(config={"log_every_n_steps": 10_000}, log_dir=out / "fitwatch"))
                with quiet(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                    run(w, callbacks=cbs, steps=n, val_every=n, val_batches=0, log_every=10_000, out=out,
                        train_batches=steps[1])
                events = prof.events()
                totals[(watch, n)] = sum(1 for ev in events if ev.name.startswith("aten::") and not _nested(ev))
                if watch and n == steps[1]:
                    probe.charge_ops(events)
                    s = summarise(probe, with_ops=True)
                    plain_row = s["phases"].get("step", {})
                    plain.append(plain_row.get("ops", 0))
                    for k, v in plain_row.get("op_names", {}).items():
                        names[k] += v
                    fold.append(s["phases"].get("fold", {}).get("fold_ops", 0))
            finally:
                probe.uninstall()
    span = steps[1] - steps[0]
    diff = None
    if difference:
        diff = ((totals[(True, steps[1])] - totals[(True, steps[0])])
                - (totals[(False, steps[1])] - totals[(False, steps[0])])) / span
    return {"framework": framework, "ops_per_step_difference": diff, "ops_per_plain_step": plain[0],
            "ops_per_fold": fold[0], "op_names": dict(names), "totals": {f"{'with' if k[0] else 'without'}-{k[1]}": v for k, v in totals.items()}}


def _nested(ev: Any) -> bool:
    parent = ev.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False


# ---------------------------------------------------------------------------------------------- ratios


def _peer(w: dict[str, Any]) -> list[Any]:
    """What a user would otherwise write: LearningRateMonitor plus torchmetrics updated every step. For a
    classifier: calibration error, per-class F1 and the confusion matrix; for a causal LM (a confusion matrix of
    32,000 classes would take 8 GB): perplexity, token accuracy and calibration error on the shifted tokens."""
    import lightning.pytorch as pl
    import torchmetrics.classification as tmc

    lm = w["kind"] == "lm"
    k = w.get("classes") or w["vocab"]

    class Peer(pl.Callback):
        def __init__(self) -> None:
            if lm:
                from torchmetrics.text import Perplexity

                self.metrics = [Perplexity(ignore_index=-100),
                                tmc.MulticlassAccuracy(num_classes=k, ignore_index=-100, average="micro"),
                                tmc.MulticlassCalibrationError(num_classes=k, n_bins=15, ignore_index=-100)]
            else:
                self.metrics = [tmc.MulticlassCalibrationError(num_classes=k, n_bins=15),
                                tmc.MulticlassF1Score(num_classes=k, average=None),
                                tmc.MulticlassConfusionMatrix(num_classes=k)]

        def _update(self, outputs: Any, batch: Any) -> None:
            logits = outputs["logits"].detach()
            target = batch["labels"]
            if lm:
                logits, target = logits[:, :-1], target[:, 1:]
                self.metrics[0].to(logits.device).update(logits, target)
            logits, target = logits.reshape(-1, logits.shape[-1]), target.reshape(-1)
            for m in self.metrics[1 if lm else 0:]:
                m.to(logits.device).update(logits, target)

        def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            self._update(outputs, batch)

        def on_validation_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int,
                                    dataloader_idx: int = 0) -> None:
            self._update(outputs, batch)

        def on_validation_epoch_end(self, trainer: Any, module: Any) -> None:
            self._compute(module)

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            self._compute(module)

        def _compute(self, module: Any) -> None:
            for m in self.metrics:
                if not m.update_count:
                    continue
                value = m.compute()
                if value.numel() == 1:
                    module.log(f"peer_{type(m).__name__}", value)
                m.reset()

    return [pl.callbacks.LearningRateMonitor(logging_interval="step"), Peer()]


#: What ``--ratios`` runs: (workload, framework, with evaluations, rounds, steps per fit without evaluations).
RATIO_PLAN = [
    ("mlp", "lightning", False, 12, 150),
    ("bert", "lightning", False, 4, 24),
    ("lm", "lightning", False, 3, 20),
    ("mlp", "lightning", True, 4, 0),
    ("bert", "lightning", True, 2, 0),
    ("mlp", "hf", True, 4, 0),
]
#: Whole-fit runs with evaluations, per workload: (steps, evaluate every, validation batches).
FIT_SHAPES = {"mlp": (1200, 300, 8), "bert": (24, 8, 2), "lm": (40, 20, 2)}
QUICK_FIT_SHAPES = {"mlp": (30, 10, 2), "bert": (12, 6, 2), "lm": (8, 4, 1)}


def ratio_rounds(workload: str, *, rounds: int, steps: int, quick: bool, tmp: Path, device: str = "cpu",
                 arms: tuple[str, ...] = ("bare", "default", "full", "peer"), framework: str = "lightning",
                 evaluations: bool = False) -> dict[str, Any]:
    """``rounds`` rounds of short fits, one per arm in a rotated order, in this process; per round each arm's
    median step time (warm-up dropped) over the bare arm's, as wall time and as the training thread's CPU time
    (which the machine's other jobs disturb less). With ``evaluations`` the fits validate (:data:`FIT_SHAPES`)
    and each arm's whole-fit CPU time (the process's, every thread: set-up, steps, evaluations, writers) is
    compared as well."""
    w = (QUICK_WORKLOADS if quick else WORKLOADS)[workload]
    per_arm: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    ratios: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    if evaluations:
        steps, val_every, val_batches = (QUICK_FIT_SHAPES if quick else FIT_SHAPES)[workload]
    else:
        val_every, val_batches = steps, 0
    for r in range(rounds):
        order = list(arms[r % len(arms):] + arms[: r % len(arms)])
        if r % 2:
            order.reverse()
        got: dict[str, dict[str, float]] = {}
        for arm in order:
            probe = Probe()  # not installed: only its marker's step clock is used
            marker = _marker_lightning(probe) if framework == "lightning" else _marker_hf(probe)
            out = Path(tempfile.mkdtemp(dir=tmp))
            cbs: list[Any] = [marker]
            if arm in ("default", "full"):
                note: dict[str, Any] = {}
                cbs.append(make_callback(framework, arm, w, out, task_note=note))
            elif arm == "peer":
                cbs.extend(_peer(w))
            run = run_lightning if framework == "lightning" else run_hf
            gc.collect()
            cpu0 = time.process_time()
            with quiet():
                run(w, callbacks=cbs, steps=steps, val_every=val_every, val_batches=val_batches, log_every=50,
                    out=out, device=device)
            fit_cpu = time.process_time() - cpu0
            skip = max(3, steps // 10)
            wall = [b - a for a, b in zip(marker.starts, marker.starts[1:])][skip:]
            cpu = [b - a for a, b in zip(marker.cpu, marker.cpu[1:])][skip:] if getattr(marker, "cpu", None) else wall
            got[arm] = {"wall": statistics.median(wall), "cpu": statistics.median(cpu), "fit_cpu": fit_cpu}
            for key, value in got[arm].items():
                per_arm[arm][key].append(value * 1e3)
        for arm in arms:
            if arm != "bare":
                for key in got[arm]:
                    ratios[arm][key].append(got[arm][key] / got["bare"][key])
    return {
        "workload": workload, "framework": framework, "rounds": rounds, "steps": steps, "sizes": w,
        "evaluations": {"every": val_every, "batches": val_batches} if evaluations else None,
        "step_ms": {a: statistics.median(v["wall"]) for a, v in per_arm.items()},
        "ms": {a: {k: statistics.median(x) for k, x in v.items()} for a, v in per_arm.items()},
        "ratios": {a: {"median": statistics.median(v["wall"]), "min": min(v["wall"]), "max": max(v["wall"]),
                       "q1": _quantile(v["wall"], 0.25), "q3": _quantile(v["wall"], 0.75), "all": v["wall"],
                       "by": {k: _spread(x) for k, x in v.items()}} for a, v in ratios.items()},
    }


def _spread(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "q1": _quantile(values, 0.25), "q3": _quantile(values, 0.75), "all": values}


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


# ---------------------------------------------------------------------------------------------- figures


def figure_cost(classes: tuple[int, ...] = (2, 10, 20, 100), evaluations: int = 8) -> list[dict[str, Any]]:
    """Per evaluation, as the TensorBoard sink draws them (the title names the step, no ``ece`` passed): the time
    of the confusion matrix and the reliability diagram, the first evaluation apart, and the objects left in
    reference cycles (``gc.collect()`` after each evaluation, with automatic collection off)."""
    import gc

    import numpy as np

    from fitwatch.sinks.figures import confusion_matrix_image, reliability_diagram_image

    rng = np.random.default_rng(0)
    rows = []
    for k in classes:
        names = [f"class_{i}" for i in range(k)]
        base = rng.integers(0, 50, (k, k)) + np.diag(np.full(k, 400))
        cm_ms, rel_ms, cycles = [], [], []
        was = gc.isenabled()
        gc.collect()
        gc.disable()
        try:
            for step in range(evaluations):
                m = base + rng.integers(0, 5, (k, k))  # counts move, the most confused classes mostly stay
                acc = np.clip(np.linspace(0.1, 0.95, 15) + rng.normal(0, 0.03, 15), 0, 1)
                rel = {"accuracy": acc.tolist(), "confidence": np.linspace(0.05, 0.97, 15).tolist(),
                       "count": rng.integers(0, 300, 15).astype(float).tolist()}
                t0 = time.thread_time()  # CPU time of this thread: holds on a loaded machine
                confusion_matrix_image(m.tolist(), names, title=f"val step {step}")
                t1 = time.thread_time()
                reliability_diagram_image(rel, title=f"val step {step}")
                t2 = time.thread_time()
                cm_ms.append((t1 - t0) * 1e3)
                rel_ms.append((t2 - t1) * 1e3)
                cycles.append(gc.collect())
        finally:
            if was:
                gc.enable()
        rows.append({"classes": k, "first_ms": cm_ms[0] + rel_ms[0],
                     "confusion_ms": statistics.median(cm_ms[1:]), "reliability_ms": statistics.median(rel_ms[1:]),
                     "per_evaluation_ms": statistics.median(a + b for a, b in zip(cm_ms[1:], rel_ms[1:])),
                     "cycles_first": cycles[0], "cycles_later_max": max(cycles[1:])})
    return rows


def figure_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| classes | confusion matrix | reliability diagram | per evaluation | first evaluation | objects in cycles (first / later) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['classes']} | {r['confusion_ms']:.0f} ms | {r['reliability_ms']:.0f} ms | "
                     f"{r['per_evaluation_ms']:.0f} ms | {r['first_ms']:.0f} ms | {r['cycles_first']} / {r['cycles_later_max']} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- report


def _fmt_us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1e3:.1f} ms" if v >= 10_000 else f"{v:.0f} µs"


def cost_table(results: list[dict[str, Any]]) -> str:
    cols = [("step", "step"), ("fold", "fold step"), ("logging", "logging step"), ("diag", "diag step"),
            ("audit", "audit step"), ("first_evaluation", "1st evaluation"), ("evaluation", "later evaluation"), ("fit_start", "fit start"), ("fit_end", "fit end")]
    lines = ["| adapter | preset | workload (step) | " + " | ".join(c[1] for c in cols) + " | amortised step |",
             "|---|---|---|" + "---|" * (len(cols) + 1)]
    for r in results:
        cells = []
        for key, _ in cols:
            p = r["phases"].get(key)
            if p is None:
                cells.append("-")
                continue
            cell = f"{_fmt_us(p['cpu_us'])}, {p.get('ops', 0):g} ops"
            if key == "fold" and "fold_ops" in p:
                cell += f" (fold {_fmt_us(p.get('fold_cpu_us'))}, {p['fold_ops']:g} ops)"
            cells.append(cell)
        a = r.get("amortised_step") or {}
        amort = f"{_fmt_us(a.get('cpu_us'))}, {a.get('ops', 0):.1f} ops" if a else "-"
        wl = f"{r['workload']} ({r['step_ms']:.0f} ms)" + (f", task {r['task']}" if r["workload"] == "lm" else "")
        lines.append(f"| {r['framework']} | {r['preset']} | {wl} | " + " | ".join(cells) + f" | {amort} |")
    probe = next((r["probe_call_us"] for r in results if r.get("probe_call_us") is not None), None)
    if probe is not None:
        lines += ["", f"The plain step's hook time, net of the probe (which charges {probe:.2f} µs to each timed call):", "",
                  "| adapter | preset | workload | hook calls a step | hook CPU a step | net of the probe |", "|---|---|---|---|---|---|"]
        for r in results:
            p = r["phases"].get("step")
            if p is None or p.get("calls") is None:
                continue
            net = p["cpu_us"] - p["calls"] * probe
            lines.append(f"| {r['framework']} | {r['preset']} | {r['workload']} | {p['calls']:g} | {_fmt_us(p['cpu_us'])} | "
                         f"{_fmt_us(net)} |")
    return "\n".join(lines)


def _cell(q: dict[str, Any] | None) -> str:
    if q is None:
        return "-"
    return f"**{q['median']:.3f}** ({q['q1']:.3f}-{q['q3']:.3f}; {q['min']:.3f}-{q['max']:.3f})"


def ratio_table(results: list[dict[str, Any]]) -> str:
    """Per workload: the step-time ratios (training-thread CPU and wall) and, for runs with evaluations, the
    whole-fit CPU ratio; each cell the median over the rounds (interquartile range; range)."""
    lines = ["| workload | measure | bare | fitwatch default | fitwatch full | peer | rounds |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        by = {a: q.get("by") or {"wall": q} for a, q in r["ratios"].items()}
        ms = r.get("ms") or {"bare": {"wall": r["step_ms"]["bare"]}}
        evals = r.get("evaluations")
        name = f"{r['workload']} ({r.get('framework', 'lightning')}{', validating' if evals else ''})"
        rows = [("cpu", "step, CPU"), ("wall", "step, wall")]
        if evals:
            rows.append(("fit_cpu", f"whole fit with evaluations, CPU ({r['steps']} steps, one every {evals['every']})"))
        for key, label in rows:
            if key not in ms["bare"]:
                continue
            bare = ms["bare"][key]
            bare_text = f"{bare / 1e3:.2f} s" if key == "fit_cpu" else f"{bare:.1f} ms"
            cells = [_cell(by.get(arm, {}).get(key)) for arm in ("default", "full", "peer")]
            lines.append(f"| {name} | {label} | {bare_text} | " + " | ".join(cells) + f" | {r['rounds']} |")
    return "\n".join(lines)


COST_INTRO = """### Cost account (issue 15): what fitwatch itself does, per phase

`python -m benchmarks.cost` (Lightning and HF adapters, CPU, one thread). Each cell: the median CPU time of the
training thread spent in fitwatch's hooks (their calls timed one by one; on CPU the time includes the kernels they
run) and the number of top-level torch ops they issue (`torch.profiler`, each op charged to the hook call it ran in;
on a GPU each is at least one kernel launch). *step*: a training step with no fold, logging or diagnostics;
*fold step*: a step that folds the 256 held batches (the fold's own share in brackets; none in these runs, whose
evaluations every 32 steps fold what is held, so the fold's ~120 ops are in the evaluation columns); *logging step*: every
`log_every_n_steps` (20 here); *diag step*: update ratios (every 50 steps); *audit step*: the first step and the
first after each evaluation (the optimizer/model audit); *1st evaluation*: builds the figures (and in HF may run the
data checks); *later evaluation*: the median of the others; *fit start*: data checks, fingerprints, model audit set-up;
*amortised step*: all non-logging steps with their folds, averaged. Full numbers (per hook, op names) in
`benchmarks/results/cost.json`. Every cell is CPU time on this shared 2-core machine in a real loop, where the
model's own work has evicted fitwatch's code and data from the caches between two hooks: the same calls repeated
in a warm micro-benchmark take several times less (Lightning's batch-end hook ~9 µs, its before-step hook ~2 µs)."""

RATIOS_INTRO = """### Ratios against the bare loop (issue 15)

`python -m benchmarks.cost --ratios` (CPU, one torch thread): rounds of short fits in one process, one fit per arm
in a rotated order (the bare loop; fitwatch default; fitwatch full = `configs/fitwatch/full.yaml`; and the peer a
user would otherwise write: `LearningRateMonitor` plus torchmetrics updated every step and computed at each
evaluation: `MulticlassCalibrationError`, `MulticlassF1Score(average=None)` and `MulticlassConfusionMatrix` for a
classifier; `Perplexity`, `MulticlassAccuracy` and `MulticlassCalibrationError` on the shifted tokens for the causal
LM). *step*: per round, each arm's median step time (warm-up dropped; a step's time includes what every hook does
in it, the folds among them) over the bare arm's, as the training thread's CPU time (which the machine's other
jobs disturb less) and as wall time. *whole fit*: the process's CPU time (every thread: set-up, data checks,
steps, evaluations, writers, images) for a fit that validates on a schedule, over the bare fit's. Cells: the
median over the rounds (interquartile range; range). `mlp` is the ~5 ms step (the CPU stand-in for a
launch-bound GPU step), `bert` a ~80 ms two-layer BERT step, `lm` a GPT-2-shaped causal LM with a 32,000-token
vocabulary."""


FIGURES_INTRO = """### Images per evaluation (issue 15)

`python -m benchmarks.cost --figures`: the confusion matrix and the reliability diagram as the TensorBoard sink
draws them at each evaluation (CPU time of the drawing thread). Before (the figure rebuilt at every call, two panels, one text
artist per cell), wall time on a quieter machine, at 2 / 10 / 20 classes: confusion matrix 86 / 390 / 1,350 ms, reliability
diagram 130 ms, and 3,800 / 16,900 / 52,300 (+7,500) objects left in reference cycles per evaluation. Now each
figure is built once per layout and only its data is redrawn (Agg blitting; cell counts stamped from pre-rasterised
digits); beyond 12 classes the 12 most confused are shown, and a change of that set redraws the tick labels. On top
of that, `image_budget` (default 0.01) draws an evaluation's images only while the drawing so far plus this one
stays within 1% of the time since the run's first step; the last evaluation's are always drawn, at the end of the
run. A run whose evaluations come every few seconds draws a few; one that evaluates every few minutes draws every
evaluation's."""


def _merged(path: Path, new: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> list[dict[str, Any]]:
    """The saved results with the rows of ``new`` in place of those with the same key (new keys appended)."""
    try:
        old = json.loads(path.read_text())["results"]
    except (OSError, ValueError, KeyError):
        return new
    fresh = {key(r): r for r in new}
    out = [fresh.pop(key(r), r) for r in old]
    return out + list(fresh.values())


def write_docs(name: str, body: str) -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = DOCS.read_text()
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOCS.write_text(text)


def _machine() -> dict[str, Any]:
    import subprocess

    import torch

    import fitwatch

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        head = None
    return {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "git_head": head,
            "fitwatch_source": str(Path(fitwatch.__file__).parent)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized smoke run; writes nothing unless --write")
    parser.add_argument("--ratios", action="store_true", help="the step-time ratio table instead of the account")
    parser.add_argument("--framework", choices=("lightning", "hf"), action="append")
    parser.add_argument("--workload", choices=tuple(WORKLOADS), action="append")
    parser.add_argument("--preset", choices=("default", "full"), action="append")
    parser.add_argument("--rounds", type=int, default=None, help="ratio rounds per workload")
    parser.add_argument("--write", action="store_true", help="with --quick: still write the results and docs")
    parser.add_argument("--render", action="store_true", help="rewrite the docs tables from the saved results")
    parser.add_argument("--figures", action="store_true", help="the per-evaluation cost of the images")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    write = args.write or not args.quick
    if args.figures:
        rows = figure_cost(evaluations=3 if args.quick else 8)
        table = figure_table(rows)
        print(table)
        if write:
            (RESULTS / "cost-figures.json").write_text(json.dumps({"machine": _machine(), "results": rows}, indent=1))
            write_docs("figures", FIGURES_INTRO + "\n\n" + table)
        return 0
    if args.render:
        if (RESULTS / "cost.json").exists():
            write_docs("cost", COST_INTRO + "\n\n" + cost_table(json.loads((RESULTS / "cost.json").read_text())["results"]))
        if (RESULTS / "cost-ratios.json").exists():
            data = json.loads((RESULTS / "cost-ratios.json").read_text())
            write_docs("ratios", RATIOS_INTRO + "\n\n" + ratio_table(data["results"]))
        return 0
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.ratios:
            results = []
            for wl, framework, evaluations, rounds, steps in RATIO_PLAN:
                if (args.workload and wl not in args.workload) or (args.framework and framework not in args.framework):
                    continue
                t0 = time.perf_counter()
                arms = ("bare", "default", "full", "peer") if framework == "lightning" else ("bare", "default", "full")
                r = ratio_rounds(wl, rounds=args.rounds or (2 if args.quick else rounds), steps=12 if args.quick else steps,
                                 quick=args.quick, tmp=tmp, framework=framework, evaluations=evaluations, arms=arms)
                print(f"{wl} {framework} evaluations={evaluations}: "
                      + json.dumps({a: {k: round(v["median"], 3) for k, v in q["by"].items()} for a, q in r["ratios"].items()})
                      + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
                results.append(r)
            if write and (args.workload or args.framework):  # a partial rerun replaces its rows, keeps the others
                results = _merged(RESULTS / "cost-ratios.json", results,
                                  lambda r: (r["workload"], r.get("framework"), bool(r.get("evaluations"))))
            table = ratio_table(results)
            print(table)
            if write:
                (RESULTS / "cost-ratios.json").write_text(json.dumps({"machine": _machine(), "results": results}, indent=1))
                write_docs("ratios", RATIOS_INTRO + "\n\n" + table)
            return 0
        results = []
        probe_us = probe_call_us()
        for wl in args.workload or list(WORKLOADS):
            for fw in args.framework or ["lightning", "hf"]:
                for preset in args.preset or ["default", "full"]:
                    t0 = time.perf_counter()
                    r = account(fw, preset, wl, quick=args.quick, tmp=tmp)
                    r["probe_call_us"] = probe_us
                    print(f"{fw:9s} {preset:7s} {wl:5s} step {r['step_ms']:.1f} ms  "
                          + "  ".join(f"{k}={v['cpu_us']:.0f}us/{v.get('ops', 0):g}ops" for k, v in r["phases"].items())
                          + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
                    results.append(r)
        if write and (args.workload or args.framework or args.preset):
            results = _merged(RESULTS / "cost.json", results, lambda r: (r["framework"], r["preset"], r["workload"]))
        table = cost_table(results)
        print(table)
        if write:
            (RESULTS / "cost.json").write_text(json.dumps({"machine": _machine(), "results": results}, indent=1, default=str))
            write_docs("cost", COST_INTRO + "\n\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
