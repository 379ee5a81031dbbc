"""What fitwatch costs on a causal-LM fine-tune at vocabulary scale (the HF Trainer, CPU or GPU).

A GPT-2-shaped model built from a config (no download), 32k and 50k vocabularies, real batch shapes (8 x 128
tokens), trained by the HF ``Trainer`` for a few steps in fresh processes, alternately without and with
``FitWatchCallback()`` at default settings (ABBA order, several pairs). Each process reports its median step
time after warm-up (a callback times ``on_step_begin`` to ``on_step_end``), its peak RSS (CPU) or peak CUDA
memory, and, with fitwatch, the size of the callback state that goes into every checkpoint and of the
history. The table is the median ratio per vocabulary with the spread of the pairs.

    python -m benchmarks.lm_overhead            # the table in docs/benchmarks.md (~5 minutes on 2 cores)
    python -m benchmarks.lm_overhead --quick    # a CI-sized run that prints the table only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "lm_overhead.json"
DOC = ROOT / "docs" / "benchmarks.md"
MARK = ("<!-- lm-overhead:start -->", "<!-- lm-overhead:end -->")


def child(variant: str, vocab: int, steps: int, warmup: int, seq: int, batch: int, device: str) -> dict:
    """One training run in this process; returns its measurements."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=seq, n_embd=256, n_layer=2, n_head=4,
                                       bos_token_id=0, eos_token_id=0))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, vocab, (batch * (steps + warmup), seq), generator=g)

    class Data(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(ids)

        def __getitem__(self, i: int) -> dict:
            labels = ids[i].clone()
            labels[: seq // 4] = -100  # a prompt: completion-only labels
            return {"input_ids": ids[i], "labels": labels}

    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t)

    callbacks: list = [Timer()]
    fitwatch = None
    hook_s: dict[int, float] = {}  # step index -> CPU seconds in fitwatch's hooks
    if variant == "fitwatch":
        from fitwatch.hf import FitWatchCallback

        # CPU time of this thread inside fitwatch's training-step hooks (the forward hook that reduces the
        # logits included): a number that holds on a shared machine, where wall-clock ratios do not.
        for name in ("_capture", "on_pre_optimizer_step", "on_step_end", "on_log"):
            original = getattr(FitWatchCallback, name)

            def timed(*a, _f=original, **k):
                start = time.thread_time()
                try:
                    return _f(*a, **k)
                finally:
                    if _f.__name__ != "_capture" or a[1].training:
                        # Charged to the step being run (on_step_end runs after the timer's, hence the -1).
                        index = len(times) - (1 if _f.__name__ in ("on_step_end", "on_log") else 0)
                        hook_s[index] = hook_s.get(index, 0.0) + time.thread_time() - start

            setattr(FitWatchCallback, name, timed)
        fitwatch = FitWatchCallback()
        callbacks.append(fitwatch)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, max_steps=steps + warmup,
                                 logging_steps=50, report_to=[], save_strategy="no", disable_tqdm=True,
                                 use_cpu=device == "cpu", learning_rate=1e-4, seed=0)
        Trainer(model=model, args=args, train_dataset=Data(), callbacks=callbacks).train()
    result = {"variant": variant, "vocab": vocab, "step_s": statistics.median(times[warmup:]),
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if fitwatch is not None:
        # The median step: the audit step after fit start and logging steps are rarer, and listed apart in
        # benchmarks.cost's account.
        result["hook_ms_per_step"] = 1000 * statistics.median(v for k, v in hook_s.items() if k >= warmup)
        result["state_bytes"] = len(json.dumps(fitwatch.state()))
        result["history_series"] = len(fitwatch.history)
        result["task"] = fitwatch.observer.task if fitwatch.observer is not None else None
    return result


def run_child(variant: str, vocab: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.lm_overhead", "--child", variant, "--vocab", str(vocab),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--seq", str(args.seq),
           "--batch", str(args.batch), "--device", args.device]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict], device: str) -> str:
    lines = [
        f"Causal LM (GPT-2 shape: 2 layers, 256 wide; batch {rows[0]['batch']} x {rows[0]['seq']} tokens), HF "
        f"`Trainer`, {device.upper()}, fresh processes in ABBA order; ratio = fitwatch / bare median step time.",
        "",
        "| vocabulary | bare step (ms) | fitwatch step (ms) | ratio, median [min, max] of pairs | fitwatch's hooks per step (ms CPU, share of the bare step) | peak memory bare -> fitwatch (MB) | callback state (KB) | history series |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['vocab']:,} | {r['bare_ms']:.0f} | {r['fitwatch_ms']:.0f} | {r['ratio']:.3f} "
            f"[{r['ratio_min']:.3f}, {r['ratio_max']:.3f}] | {r['hook_ms']:.1f} ({r['hook_ms'] / r['bare_ms']:.1%}) "
            f"| {r['bare_mb']:.0f} -> {r['fitwatch_mb']:.0f} "
            f"({r['memory_ratio']:+.1%}) | {r['state_kb']:.1f} | {r['series']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["bare", "fitwatch"])
    parser.add_argument("--vocab", type=int, nargs="*", default=[32_000, 50_257])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="small vocabulary, one pair, print only")
    parser.add_argument("--out", type=Path, help="also write the JSON results here")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.vocab[0], args.steps, args.warmup, args.seq, args.batch, args.device)))
        return 0
    if args.quick:
        args.vocab, args.pairs, args.steps, args.warmup, args.seq, args.batch = [2_000], 1, 3, 1, 32, 2
    rows = []
    for vocab in args.vocab:
        bare, watched = [], []
        for pair in range(args.pairs):
            order = ("bare", "fitwatch") if pair % 2 == 0 else ("fitwatch", "bare")
            for variant in order:
                (bare if variant == "bare" else watched).append(run_child(variant, vocab, args))
        ratios = [w["step_s"] / b["step_s"] for b, w in zip(bare, watched)]
        bare_mb = statistics.median(r.get("peak_cuda_mb", r["peak_rss_mb"]) for r in bare)
        watched_mb = statistics.median(r.get("peak_cuda_mb", r["peak_rss_mb"]) for r in watched)
        rows.append({
            "vocab": vocab, "seq": args.seq, "batch": args.batch, "pairs": args.pairs,
            "bare_ms": 1000 * statistics.median(r["step_s"] for r in bare),
            "fitwatch_ms": 1000 * statistics.median(r["step_s"] for r in watched),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "bare_mb": bare_mb, "fitwatch_mb": watched_mb, "memory_ratio": watched_mb / bare_mb - 1,
            "state_kb": watched[0]["state_bytes"] / 1024, "series": watched[0]["history_series"],
            "hook_ms": statistics.median(r["hook_ms_per_step"] for r in watched),
            "task": watched[0]["task"],
        })
        print(f"vocab {vocab}: ratio {rows[-1]['ratio']:.3f} {ratios}", file=sys.stderr)
    text = table(rows, args.device)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    if not args.quick:
        RESULTS.write_text(json.dumps({"device": args.device, "rows": rows}, indent=1) + "\n")
        doc = DOC.read_text()
        block = f"{MARK[0]}\n{text}\n{MARK[1]}"
        if MARK[0] in doc:
            doc = re.sub(re.escape(MARK[0]) + ".*?" + re.escape(MARK[1]), lambda _: block, doc, flags=re.S)
        else:
            doc += f"\n## Language-model overhead at vocabulary scale\n\n`python -m benchmarks.lm_overhead`\n\n{block}\n"
        DOC.write_text(doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
