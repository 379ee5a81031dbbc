"""``fitwatch demo``: two short real fine-tunes side by side, a healthy one and one that fails quietly.

Both train a small transformer encoder (BERT layers built from a config, MiniLM's tokenizer) on generated
support tickets, on the CPU, with fitwatch attached. The faulty run is the healthy recipe trained three
times longer: its accuracy holds while validation NLL and calibration degrade, the overfitting that
aggregate metrics hide. The demo prints what fitwatch found in each run and where to look.

    fitwatch demo                      # Lightning (the zoo's scenarios)
    fitwatch demo --framework hf       # the same runs with the Hugging Face Trainer
    fitwatch demo --quick              # CI-sized
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fitwatch.findings import Finding, Severity

__all__ = ["DemoRun", "main"]

#: The pair of scenarios (see ``fitwatch.scenarios``): the healthy ticket recipe, and the same recipe trained
#: for 15 epochs instead of 5.
HEALTHY, FAULTY = "healthy-tickets", "subtle-overfit-tickets"


@dataclass
class DemoRun:
    """One finished demo run."""

    name: str
    description: str
    findings: list[Finding]
    final: Mapping[str, float]
    log_dir: Path
    wall_s: float
    epochs: int
    evaluation_steps: Sequence[int] = field(default_factory=list)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fitwatch demo", description=__doc__.split("\n\n")[0].replace("``", ""))
    parser.add_argument("--framework", choices=("lightning", "hf"), default="lightning", help="default: lightning")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="where the runs are written (default: ./runs)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the faulty run (default 15; the healthy run trains a third of it)")
    parser.add_argument("--quick", action="store_true", help="CI-sized runs (fewer epochs)")
    parser.add_argument("--fresh", action="store_true", help="delete earlier demo runs in --out instead of resuming them")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 3:
        parser.error(f"--epochs must be at least 3, but got {args.epochs}.")

    from rich.console import Console

    console = Console()
    console.print(
        f"[bold]fitwatch demo[/bold] ({args.framework}): a small transformer encoder trained from scratch on generated "
        "support tickets (5 classes, one a 5% minority), twice: the careful recipe, and the same recipe trained "
        "three times longer. CPU only; nothing is downloaded.\n"
    )
    runs = []
    for name in (HEALTHY, FAULTY):
        log_dir = args.out / f"{args.framework}-{name}"
        if args.fresh and log_dir.exists():
            shutil.rmtree(log_dir)
        runner = _run_lightning if args.framework == "lightning" else _run_hf
        # --quick shortens the faulty run only: the careful recipe needs its 5 epochs to learn the minority class.
        quick = args.quick and name == FAULTY
        runs.append(runner(name, log_dir=log_dir, epochs=_epochs(name, args.epochs), quick=quick, console=console))
    _print_summary(console, runs, args.out)
    return 0


def _epochs(name: str, faulty_epochs: int | None) -> int | None:
    if faulty_epochs is None:
        return None
    return faulty_epochs if name == FAULTY else max(1, faulty_epochs // 3)


# --------------------------------------------------------------------------------------------- runs


def _run_lightning(name: str, *, log_dir: Path, epochs: int | None, quick: bool, console: Any) -> DemoRun:
    from fitwatch.scenarios import get_scenario, run_scenario

    scenario = get_scenario(name)
    console.print(f"[bold]{name}[/bold]: {scenario.description}")
    result = run_scenario(name, seed=0, epochs=epochs, quick=quick, log_dir=log_dir, progress_bar=True,
                          fitwatch={"images": True, "warn": True})
    final = {k.removeprefix("val_"): v[-1] for k, v in result.series.items() if v and k.startswith("val_")}
    return DemoRun(name, scenario.description, list(result.findings), final, result.log_dir or log_dir, result.wall_s,
                   result.epochs, result.evaluation_steps)


def _run_hf(name: str, *, log_dir: Path, epochs: int | None, quick: bool, console: Any) -> DemoRun:
    """The scenario's data, network and recipe, trained by the Hugging Face ``Trainer``."""
    import torch
    from torch import nn
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import ProgressCallback

    class _QuietProgress(ProgressCallback):
        def on_log(self, *args: Any, **kwargs: Any) -> None:
            return None

    from fitwatch.hf import FitWatchCallback
    from fitwatch.scenarios import get_scenario
    from fitwatch.scenarios.data import load_task
    from fitwatch.scenarios.models import build_network
    from fitwatch.scenarios.runner import trim_padding

    scenario = get_scenario(name)
    console.print(f"[bold]{name}[/bold]: {scenario.description}")
    n_epochs = epochs or (scenario.quick_epochs if quick else scenario.epochs)
    data = load_task(scenario.task, seed=0, train_size=scenario.train_size, class_shares=scenario.class_shares,
                     label_noise=scenario.label_noise)

    class Classifier(nn.Module):
        """The scenario's network with the loss the Trainer expects from a model."""

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = build_network(data, scenario.model)
            self.loss = nn.CrossEntropyLoss(label_smoothing=scenario.recipe.label_smoothing)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None,
                    **_: Any) -> dict[str, torch.Tensor]:
            logits = self.net(input_ids, attention_mask)
            return {"logits": logits} if labels is None else {"loss": self.loss(logits, labels), "logits": logits}

    recipe = scenario.recipe
    args = TrainingArguments(
        output_dir=str(log_dir), num_train_epochs=n_epochs, per_device_train_batch_size=scenario.batch_size,
        per_device_eval_batch_size=128, learning_rate=recipe.lr, weight_decay=recipe.weight_decay,
        warmup_steps=recipe.warmup, lr_scheduler_type=recipe.schedule,  # warmup_steps < 1 is a ratio in transformers 5
        eval_strategy="epoch", logging_steps=10, save_strategy="no", report_to=["tensorboard"], seed=0, data_seed=0,
        use_cpu=True, remove_unused_columns=False, disable_tqdm=False,
    )
    callback = FitWatchCallback(class_names=data.class_names, config={"images": True})
    trainer = Trainer(model=Classifier(), args=args, train_dataset=data.train, eval_dataset=data.val,
                      data_collator=trim_padding, callbacks=[callback])
    # Keep the progress bar, drop the log dictionaries it prints: the summary below says what matters.
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_QuietProgress())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains faster on one thread, and never oversubscribes the CPU
    started = time.perf_counter()
    try:
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - started
    history = callback.history
    final = {
        metric: history[tag][-1][1]
        for metric, tag in (("accuracy", "performance/accuracy/val"), ("nll", "calibration/nll/val"), ("ece", "calibration/ece/val"))
        if history.get(tag)
    }
    steps = [s for s, _ in history.get("performance/accuracy/val", [])]
    return DemoRun(name, scenario.description, callback.findings, final, callback.run_dir or log_dir, wall, n_epochs, steps)


# ------------------------------------------------------------------------------------------ summary


def _first_raised(log_dir: Path) -> dict[tuple[str, str], Finding]:
    """The first event of each cause in the run's findings.jsonl (the callbacks keep the latest state)."""
    import json

    first: dict[tuple[str, str], Finding] = {}
    path = log_dir / "findings.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                finding = Finding.from_dict(json.loads(line))
                first.setdefault(finding.key, finding)
    return first


def _print_summary(console: Any, runs: Sequence[DemoRun], out: Path) -> None:
    from rich.table import Table

    for run in runs:
        warnings = [f for f in run.findings if f.severity >= Severity.WARNING]
        verdict = "[green]quiet: no warning[/green]" if not warnings else f"[red]{len(warnings)} warning(s)[/red]"
        console.print(f"\n[bold]{run.name}[/bold] ({run.epochs} epochs, {run.wall_s:.0f} s): {verdict}")
        if not run.findings:
            continue
        table = Table(show_lines=False, expand=True)
        table.add_column("code", no_wrap=True)
        table.add_column("severity", no_wrap=True)
        table.add_column("first raised", no_wrap=True)
        table.add_column("what fitwatch says")
        first = _first_raised(run.log_dir)
        for f in sorted(run.findings, key=lambda f: (-int(f.severity), first.get(f.key, f).step)):
            colour = {Severity.CRITICAL: "red", Severity.WARNING: "yellow"}.get(f.severity, "dim")
            start = first.get(f.key, f)
            when = f"epoch {start.epoch}" if start.epoch is not None else f"step {start.step}"
            table.add_row(f.code, f"[{colour}]{f.severity.name.lower()}[/{colour}]", when, f.message)
        console.print(table)

    healthy, faulty = runs
    compare = Table(title="final validation numbers", expand=False)
    compare.add_column("run")
    for metric in ("accuracy", "nll", "ece"):
        compare.add_column(metric, justify="right")
    for run in runs:
        compare.add_row(run.name, *(f"{run.final[m]:.3f}" if m in run.final else "-" for m in ("accuracy", "nll", "ece")))
    console.print()
    console.print(compare)
    caught = {f.code for f in faulty.findings if f.severity >= Severity.WARNING}
    false_alarms = [f.code for f in healthy.findings if f.severity >= Severity.WARNING]
    console.print("\n[bold]What this shows[/bold]")
    if "FW-OVERFIT-SUBTLE" in caught or "FW-OVERFIT" in caught:
        console.print(
            f"- The longer run's accuracy ({faulty.final.get('accuracy', float('nan')):.3f}) is close to the careful "
            f"run's ({healthy.final.get('accuracy', float('nan')):.3f}), yet fitwatch flagged it: "
            + ", ".join(sorted(caught))
            + ". Its validation NLL and calibration got worse while accuracy held: a checkpoint picked by accuracy "
            "would ship an overconfident model."
        )
    else:
        console.print(f"- The longer run raised: {', '.join(sorted(caught)) or 'no warning'}.")
    console.print(
        "- The careful run stayed quiet" + (f" (except {', '.join(false_alarms)})." if false_alarms else ": a warning is earned.")
    )
    # Commands are printed unwrapped so they can be copied as they are.
    console.print("\n[bold]Where to look[/bold]")
    for line in (
        f"  tensorboard --logdir {out}",
        "    Custom Scalars: train vs validation per metric, the gaps, per-class recall; Images: confusion matrices",
        "    and reliability diagrams; Text: findings/*, data/confident_mistakes",
        f"  fitwatch report {out} --html {out / 'report.html'}    # the same findings from the logs, as one page",
        *(f"  {r.log_dir / 'findings.jsonl'}" for r in runs),
    ):
        console.print(line, soft_wrap=True, highlight=False)

if __name__ == "__main__":
    raise SystemExit(main())
