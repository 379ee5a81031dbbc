"""Every GPU measurement of issue 15 in one prepared run (under 8 minutes on one GPU).

    bash benchmarks/gpu.sh                       # on the GPU machine; results under $OUT (or benchmarks/results/gpu)
    python -m benchmarks.gpu --dry-run --out D   # CPU, a few steps: checks that the script runs end to end

What it measures, on a launch-bound small-BERT step (``bert``) and a GPT-2-shaped LM step with GPT-2's 50,257-token
vocabulary (``lm``), Lightning adapter:

1. **Step ratios**: rounds of short fits in one process, one per arm (bare loop, fitwatch default, fitwatch full,
   the peer: ``LearningRateMonitor`` + torchmetrics calibration error, per-class F1 and confusion matrix updated
   each step), arms in rotated order; per round each arm's median step time over the bare arm's
   (:func:`benchmarks.cost.ratio_rounds`). Median and spread over rounds.
2. **Host syncs per step** from fitwatch's code: ``torch.cuda.set_sync_debug_mode("warn")`` on the GPU (each
   synchronising call warns; counted when fitwatch is on the call stack), and on any device the calls of
   ``Tensor.item/cpu/tolist/numpy/__bool__/__float__/__int__`` made from fitwatch's files. Split into plain steps,
   logging steps and evaluations.
3. **A profiler summary of fitwatch's device work**: every hook call is named in the trace
   (:class:`benchmarks.cost.Probe`); the top-level torch ops and the CUDA kernels (count and device time) that
   ran inside them, per kind of step, with the kernels that cost most.

Writes ``gpu.json`` and ``gpu.md`` (a markdown summary for docs/benchmarks.md) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks import cost

#: GPU workloads: a small BERT whose step is launch-bound on a modern GPU, and an LM at GPT-2's vocabulary.
GPU_WORKLOADS: dict[str, dict[str, Any]] = {
    "bert": {"kind": "bert", "layers": 2, "hidden": 128, "heads": 2, "seq": 64, "batch": 32, "vocab": 8000,
             "classes": 5},
    "lm": {"kind": "lm", "layers": 2, "hidden": 256, "heads": 4, "seq": 128, "batch": 8, "vocab": 50257},
}
DRY_WORKLOADS: dict[str, dict[str, Any]] = {
    "bert": dict(cost.QUICK_WORKLOADS["bert"]),
    "lm": {"kind": "lm", "layers": 1, "hidden": 32, "heads": 2, "seq": 16, "batch": 2, "vocab": 32000},
}
SYNC_NAMES = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__")


class SyncCount:
    """Host syncs from fitwatch's own files, per (phase, index) of the probe: patched ``Tensor`` read-backs on any
    device, plus ``set_sync_debug_mode("warn")`` reports on CUDA (with fitwatch on the stack)."""

    def __init__(self, probe: cost.Probe, cuda: bool) -> None:
        import fitwatch

        self.root = str(Path(fitwatch.__file__).parent)
        self.probe = probe
        self.cuda = cuda
        self.reads: dict[tuple[str, int], int] = defaultdict(int)
        self.cuda_syncs: dict[tuple[str, int], int] = defaultdict(int)
        self._saved: list[tuple[str, Any]] = []

    def _where(self) -> tuple[str, int]:
        call = self.probe._current
        return (call["phase"], call["index"]) if call is not None else self.probe.phase

    def __enter__(self) -> SyncCount:
        import torch

        for name in SYNC_NAMES:
            original = getattr(torch.Tensor, name)
            self._saved.append((name, original))
            setattr(torch.Tensor, name, self._wrap(original))
        if self.cuda:
            self._catch = warnings.catch_warnings()
            self._catch.__enter__()
            warnings.filterwarnings("always", message=".*synchroniz")
            self._show = warnings.showwarning
            warnings.showwarning = self._record
            torch.cuda.set_sync_debug_mode("warn")
        return self

    def _wrap(self, original: Any) -> Any:
        count = self

        def wrapper(tensor: Any, *args: Any, **kwargs: Any) -> Any:
            if sys._getframe(1).f_code.co_filename.startswith(count.root):
                count.reads[count._where()] += 1
            return original(tensor, *args, **kwargs)

        return wrapper

    def _record(self, message: Any, category: Any, filename: str, lineno: int, *args: Any, **kwargs: Any) -> None:
        if "synchroniz" not in str(message):
            return self._show(message, category, filename, lineno, *args, **kwargs)
        if any(frame.filename.startswith(self.root) for frame in traceback.extract_stack()):
            self.cuda_syncs[self._where()] += 1

    def __exit__(self, *exc: Any) -> None:
        import torch

        for name, original in self._saved:
            setattr(torch.Tensor, name, original)
        if self.cuda:
            torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning = self._show
            self._catch.__exit__(*exc)


def _step_kinds(probe: cost.Probe) -> dict[int, str]:
    flags: dict[int, set[str]] = defaultdict(set)
    for c in probe.calls:
        if c["phase"] == "step":
            flags[c["index"]].update(c["flags"])
    out = {}
    for i, f in flags.items():
        out[i] = "audit" if "audit" in f else "logging" if "logging" in f else "diag" if "diag" in f \
            else "fold" if "fold" in f else "step"
    return out


def sync_account(w: dict[str, Any], *, steps: int, device: str, tmp: Path) -> dict[str, Any]:
    """One fit at default settings with syncs counted; per kind of step (median) and per evaluation."""
    probe = cost.Probe()
    probe.install(cost._callback_cls("lightning"))
    try:
        out = Path(tempfile.mkdtemp(dir=tmp))
        note: dict[str, Any] = {}
        cb = cost.make_callback("lightning", "default", w, out, task_note=note)
        with cost.quiet(), SyncCount(probe, cuda=device == "cuda") as syncs:
            cost.run_lightning(w, callbacks=[cost._marker_lightning(probe), cb], steps=steps, val_every=steps // 2,
                               val_batches=4, log_every=20, out=out, device=device)
    finally:
        probe.uninstall()
    kinds = _step_kinds(probe)
    result: dict[str, Any] = {"task": note.get("task")}
    for label, counter in (("host_reads", syncs.reads), ("cuda_syncs", syncs.cuda_syncs)):
        per_kind: dict[str, list[int]] = defaultdict(list)
        for i, kind in kinds.items():
            per_kind[kind].append(counter.get(("step", i), 0))
        evals = [v for (phase, _), v in counter.items() if phase == "eval"]
        result[label] = {**{k: {"median": statistics.median(v), "max": max(v), "steps": len(v)} for k, v in per_kind.items()},
                         "evaluation": {"median": statistics.median(evals) if evals else 0, "count": probe.evals}}
    return result


def kernel_account(w: dict[str, Any], *, steps: int, device: str, tmp: Path) -> dict[str, Any]:
    """A profiled fit at default settings: fitwatch's top-level ops, kernels and their device time per kind of step."""
    import torch

    probe = cost.Probe()
    probe.install(cost._callback_cls("lightning"))
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    try:
        out = Path(tempfile.mkdtemp(dir=tmp))
        cb = cost.make_callback("lightning", "default", w, out, task_note={})
        with cost.quiet(), torch.profiler.profile(activities=activities) as prof:
            cost.run_lightning(w, callbacks=[cost._marker_lightning(probe), cb], steps=steps, val_every=steps // 2,
                               val_batches=4, log_every=20, out=out, device=device)
        events = prof.events()
    finally:
        probe.uninstall()
    probe.charge_ops(events)
    by_n = {c["n"]: c for c in probe.calls}
    kernels: dict[str, dict[str, float]] = defaultdict(lambda: {"count": 0, "us": 0.0})
    for c in probe.calls:
        c["kernels"], c["kernel_us"] = 0, 0.0
    for ev in events:
        ks = getattr(ev, "kernels", None) or []
        if not ks:
            continue
        parent, call = ev.cpu_parent, None
        while parent is not None:
            if parent.name.startswith("fitwatch::"):
                call = by_n.get(int(parent.name.rsplit("#", 1)[1]))
            parent = parent.cpu_parent
        if call is None:
            continue
        for k in ks:
            call["kernels"] += 1
            call["kernel_us"] += k.duration
            kernels[k.name]["count"] += 1
            kernels[k.name]["us"] += k.duration
    kinds = _step_kinds(probe)
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    per_step: dict[int, dict[str, float]] = defaultdict(lambda: {"ops": 0, "kernels": 0, "kernel_us": 0.0})
    per_eval: dict[int, dict[str, float]] = defaultdict(lambda: {"ops": 0, "kernels": 0, "kernel_us": 0.0})
    for c in probe.calls:
        target = per_step[c["index"]] if c["phase"] == "step" else per_eval[c["index"]] if c["phase"] == "eval" else None
        if target is not None:
            target["ops"] += c["ops"]
            target["kernels"] += c["kernels"]
            target["kernel_us"] += c["kernel_us"]
    for i, s in per_step.items():
        rows[kinds.get(i, "step")].append(s)
    rows["evaluation"] = list(per_eval.values())
    summary = {kind: {key: statistics.median(r[key] for r in rs) for key in ("ops", "kernels", "kernel_us")} | {"count": len(rs)}
               for kind, rs in rows.items() if rs}
    top = sorted(kernels.items(), key=lambda kv: -kv[1]["us"])[:15]
    return {"per_kind": summary, "top_kernels": [{"name": n[:120], **v} for n, v in top]}


def _arms(w: dict[str, Any], dry: bool) -> tuple[str, ...]:
    """The peer's confusion matrix at vocabulary scale would be vocab x vocab: no one writes it; left out for LMs."""
    if dry:
        return ("bare", "default")
    return ("bare", "default", "full") if w["kind"] == "lm" else ("bare", "default", "full", "peer")


def markdown(result: dict[str, Any]) -> str:
    lines = [f"GPU run: {result['device']}, {result['elapsed_s']:.0f} s.", "",
             "| workload | bare step | fitwatch default | fitwatch full | peer | rounds |", "|---|---|---|---|---|---|"]
    for r in result["ratios"]:
        cells = []
        for arm in ("default", "full", "peer"):
            q = r["ratios"].get(arm)
            cells.append("-" if q is None else f"{q['median']:.3f} ({q['min']:.3f}-{q['max']:.3f})")
        lines.append(f"| {r['workload']} | {r['step_ms']['bare']:.2f} ms | " + " | ".join(cells) + f" | {r['rounds']} |")
    lines += ["", "| workload | kind | host reads from fitwatch | CUDA syncs from fitwatch | fitwatch ops | kernels | kernel time |",
              "|---|---|---|---|---|---|---|"]
    for wl, s in result["syncs"].items():
        k = result["kernels"].get(wl, {}).get("per_kind", {})
        for kind in sorted(set(s["host_reads"]) | set(k)):
            hr = s["host_reads"].get(kind, {}).get("median", "-")
            cs = s["cuda_syncs"].get(kind, {}).get("median", "-")
            kk = k.get(kind, {})
            lines.append(f"| {wl} | {kind} | {hr} | {cs} | {kk.get('ops', '-')} | {kk.get('kernels', '-')} | "
                         f"{kk.get('kernel_us', 0):.0f} µs |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny models, a few steps")
    parser.add_argument("--out", type=Path, default=cost.RESULTS / "gpu")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop adding ratio rounds after this long")
    args = parser.parse_args(argv)
    import torch

    dry = args.dry_run
    device = "cuda" if torch.cuda.is_available() and not dry else "cpu"
    if not dry and device != "cuda":
        print("no GPU visible: run with --dry-run for the CPU check", file=sys.stderr)
        return 2
    if device == "cpu":
        torch.set_num_threads(1)
    workloads = DRY_WORKLOADS if dry else GPU_WORKLOADS
    t0 = time.perf_counter()
    result: dict[str, Any] = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu (dry run)",
                              "dry_run": dry, "workloads": workloads, "ratios": [], "syncs": {}, "kernels": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        steps = 8 if dry else 60
        for name, w in workloads.items():
            result["syncs"][name] = sync_account(w, steps=12 if dry else 60, device=device, tmp=tmp)
            result["kernels"][name] = kernel_account(w, steps=12 if dry else 50, device=device, tmp=tmp)
            print(f"{name}: syncs {json.dumps(result['syncs'][name])}", flush=True)
        for name, w in workloads.items():
            rounds = 1 if dry else 6
            saved = dict(cost.QUICK_WORKLOADS)
            cost.QUICK_WORKLOADS[name] = w  # ratio_rounds reads sizes by name; quick=True selects these
            try:
                r = cost.ratio_rounds(name, rounds=rounds, steps=steps if dry else 100, quick=True, tmp=tmp,
                                      device=device, arms=_arms(w, dry))
            finally:
                cost.QUICK_WORKLOADS.clear()
                cost.QUICK_WORKLOADS.update(saved)
            result["ratios"].append(r)
            print(f"{name}: ratios { {a: round(q['median'], 3) for a, q in r['ratios'].items()} }", flush=True)
            if time.perf_counter() - t0 > args.budget_s:
                break
    result["elapsed_s"] = time.perf_counter() - t0
    (args.out / "gpu.json").write_text(json.dumps(result, indent=1, default=str))
    (args.out / "gpu.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
