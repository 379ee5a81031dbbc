"""``fitwatch demo``: two short real fine-tunes side by side, a healthy one and one that fails quietly.

Both train a small transformer encoder (BERT layers built from a config, MiniLM's tokenizer) on generated
support tickets, on the CPU, with fitwatch attached. The faulty run is the healthy recipe trained three
times longer: its accuracy holds while validation NLL and calibration degrade, the overfitting that
aggregate metrics hide. The demo prints what fitwatch found in each run and where to look.

    fitwatch demo                      # Lightning (the zoo's scenarios)
    fitwatch demo --framework hf       # the same runs with the Hugging Face Trainer
    fitwatch demo --lm                 # a causal-LM fine-tune: healthy next to one that quietly memorises
    fitwatch demo --quick              # CI-sized

Each invocation writes a new folder, ``<out>/demo-<date>-<time>``: a demo never resumes an earlier one. A line per
epoch goes to standard error while the runs train.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
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
#: The language-model pair (``--lm``; see ``fitwatch.scenarios.lm``): a healthy SFT recipe, and 128 documents
#: trained for many epochs with no regularisation.
LM_HEALTHY, LM_FAULTY = "healthy-lm-sft", "memorise-lm"


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
    parser.add_argument("--lm", action="store_true",
                        help="a causal-LM fine-tune (GPT-2 shape, Python docstrings): a healthy run next to one that "
                        "quietly memorises its training set (Lightning)")
    parser.add_argument("--out", type=Path, default=Path("runs"),
                        help="where the runs are written: a new folder demo-<date>-<time> in it (default: ./runs)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the faulty run (default 15; the healthy run trains a third of it)")
    parser.add_argument("--quick", action="store_true", help="CI-sized runs (fewer epochs)")
    parser.add_argument("--fresh", action="store_true", help="no effect: every demo writes a new folder (kept so "
                        "that older command lines still run)")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 3:
        parser.error(f"--epochs must be at least 3, but got {args.epochs}.")
    if args.lm and args.framework != "lightning":
        parser.error("--lm runs with Lightning only (the LM zoo's module); leave out --framework.")

    from rich.console import Console

    console = Console()
    out = _new_folder(args.out)
    if args.lm:
        console.print(
            "[bold]fitwatch demo --lm[/bold]: a small GPT-2-shaped causal LM fine-tuned on Python docstrings, twice: "
            "a careful SFT recipe, and 128 documents trained for many epochs without dropout or weight decay, which "
            "quietly memorises them. CPU only; nothing is downloaded.\n"
        )
    else:
        console.print(
            f"[bold]fitwatch demo[/bold] ({args.framework}): a small transformer encoder trained from scratch on generated "
            "support tickets (5 classes, one a 5% minority), twice: the careful recipe, and the same recipe trained "
            "three times longer. CPU only; nothing is downloaded.\n"
        )
    console.print(f"Writing to {out} (a new folder for each demo; earlier demos are left as they are).\n",
                  highlight=False, soft_wrap=True)
    runs = []
    pair = (LM_HEALTHY, LM_FAULTY) if args.lm else (HEALTHY, FAULTY)
    for name in pair:
        if args.lm:
            # --quick shortens the healthy run only: memorising 128 documents takes the faulty recipe's 30 epochs
            # (about a minute on one CPU thread) before the validation loss turns.
            runs.append(_run_lm(name, log_dir=out / f"lm-{name}", epochs=_epochs(name, args.epochs, faulty=LM_FAULTY),
                                quick=args.quick and name == LM_HEALTHY, console=console))
            continue
        runner = _run_lightning if args.framework == "lightning" else _run_hf
        # --quick shortens the faulty run only: the careful recipe needs its 5 epochs to learn the minority class.
        quick = args.quick and name == FAULTY
        runs.append(runner(name, log_dir=out / f"{args.framework}-{name}", epochs=_epochs(name, args.epochs),
                           quick=quick, console=console))
    _print_summary(console, runs, out, lm=args.lm)
    return 0


def _new_folder(root: Path) -> Path:
    """``root/demo-<date>-<time>`` (with ``-2``, ``-3`` ... when two demos start in the same second), created."""
    stamp = dt.datetime.now().strftime("demo-%Y%m%d-%H%M%S")
    for i in range(1, 1000):
        folder = root / (stamp if i == 1 else f"{stamp}-{i}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"Expected a free demo folder name under {root}, but {stamp}-1..999 all exist.")


def _progress(name: str, epochs: int, line: Mapping[str, float], started: float, epoch: int) -> None:
    """One line per epoch on standard error: which run, how far, the validation numbers so far."""
    shown = ", ".join(f"{k} {v:.3f}" for k, v in line.items() if v == v)
    print(f"  {name}: epoch {epoch}/{epochs}" + (f", {shown}" if shown else "") +
          f" ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)


def _lightning_progress(name: str, epochs: int, metrics: Sequence[tuple[str, str]]) -> Any:
    """A Lightning callback that prints :func:`_progress` after each validation (not the sanity check)."""
    from lightning.pytorch.callbacks import Callback

    class EpochLine(Callback):
        def __init__(self) -> None:
            self.started = time.perf_counter()

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.sanity_checking or not trainer.training and trainer.state.fn != "fit":
                return
            values = {}
            for label, key in metrics:
                value = trainer.callback_metrics.get(key)
                if value is not None:
                    values[label] = float(value)
            _progress(name, epochs, values, self.started, trainer.current_epoch + 1)

    return EpochLine()


def _epochs(name: str, faulty_epochs: int | None, *, faulty: str = FAULTY) -> int | None:
    if faulty_epochs is None:
        return None
    return faulty_epochs if name == faulty else max(1, faulty_epochs // 3)


# --------------------------------------------------------------------------------------------- runs


def _run_lightning(name: str, *, log_dir: Path, epochs: int | None, quick: bool, console: Any) -> DemoRun:
    from fitwatch.scenarios import get_scenario, run_scenario

    scenario = get_scenario(name)
    console.print(f"[bold]{name}[/bold]: {scenario.description}")
    n_epochs = epochs or (scenario.quick_epochs if quick else scenario.epochs)
    progress = _lightning_progress(name, n_epochs, (("val accuracy", "fitwatch_val_accuracy"),
                                                    ("val loss", "fitwatch_val_loss"), ("ECE", "fitwatch_val_ece")))
    result = run_scenario(name, seed=0, epochs=epochs, quick=quick, log_dir=log_dir, progress_bar=False,
                          callbacks=[progress], fitwatch={"images": True, "warn": True})
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

    from transformers import TrainerCallback

    class _EpochLine(TrainerCallback):
        """One line per evaluation on standard error (the bar above is redrawn; this stays in the log)."""

        started = time.perf_counter()

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
            metrics = metrics or {}
            values = {label: float(metrics[key]) for label, key in (("val accuracy", "eval_fitwatch_val_accuracy"),
                                                                    ("val loss", "eval_loss")) if key in metrics}
            _progress(name, int(args.num_train_epochs), values, self.started, round(state.epoch or 0))

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
    trainer.add_callback(_EpochLine())
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


def _run_lm(name: str, *, log_dir: Path, epochs: int | None, quick: bool, console: Any) -> DemoRun:
    """The LM zoo's scenario (:func:`fitwatch.scenarios.lm.run_lm_scenario`'s data, model and recipe), trained with
    its files kept in ``log_dir``: TensorBoard, findings.jsonl, history.json, fingerprint.json."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch.utils.data import DataLoader

    from fitwatch.lightning import FitWatch
    from fitwatch.scenarios.lm import LMModule, build_lm, get_lm_scenario
    from fitwatch.scenarios.lm_data import load_lm_data
    from fitwatch.scenarios.runner import FITWATCH_SETTINGS, LOG_EVERY_N_STEPS

    spec = get_lm_scenario(name)
    console.print(f"[bold]{name}[/bold]: {spec.description}")
    n_epochs = epochs or (spec.quick_epochs if quick else spec.epochs)
    seed = spec.seeds[0]
    pl.seed_everything(seed, verbose=False)
    data = load_lm_data(seed=seed, train_size=spec.train_size, val_size=spec.val_size,
                        completion_only=spec.completion_only, duplicate_fraction=spec.duplicate_fraction)
    module = LMModule(build_lm(len(data.tokenizer), spec.model), spec.recipe, spec.model)
    train = DataLoader(data.train, batch_size=spec.batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    val = DataLoader(data.val, batch_size=100)
    callback = FitWatch(task="causal_lm", config={**FITWATCH_SETTINGS, "images": True, "warn": True})
    progress = _lightning_progress(name, n_epochs, (("val loss", "fitwatch_val_loss"),
                                                    ("val token accuracy", "fitwatch_val_accuracy")))
    trainer = pl.Trainer(
        max_epochs=n_epochs, accelerator="cpu", devices=1, log_every_n_steps=LOG_EVERY_N_STEPS,
        num_sanity_val_steps=0, logger=TensorBoardLogger(str(log_dir), name="", version=""),
        callbacks=[callback, progress], enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(log_dir),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains faster on one thread, and never oversubscribes the CPU
    started = time.perf_counter()
    try:
        trainer.fit(module, train, val)
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - started
    history = callback.history
    final = {
        metric: history[t][-1][1]
        for metric, t in (("loss", "performance/loss/val"), ("perplexity", "performance/perplexity/val"),
                          ("accuracy", "performance/accuracy/val"), ("ece", "calibration/ece/val"))
        if history.get(t)
    }
    steps = [s for s, _ in history.get("performance/loss/val", [])]
    return DemoRun(name, spec.description, list(callback.findings), final, callback.run_dir or log_dir, wall,
                   n_epochs, steps)


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


def _print_summary(console: Any, runs: Sequence[DemoRun], out: Path, *, lm: bool = False) -> None:
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
            when = f"epoch {start.epoch} (0-based)" if start.epoch is not None else f"step {start.step}"
            table.add_row(f.code, f"[{colour}]{f.severity.name.lower()}[/{colour}]", when, f.message)
        console.print(table)

    healthy, faulty = runs
    metrics = ("loss", "perplexity", "accuracy") if lm else ("accuracy", "nll", "ece")
    compare = Table(title="final validation numbers", expand=False)
    compare.add_column("run")
    for metric in metrics:
        compare.add_column(metric, justify="right")
    for run in runs:
        compare.add_row(run.name, *(f"{run.final[m]:.3f}" if m in run.final else "-" for m in metrics))
    console.print()
    console.print(compare)
    caught = {f.code for f in faulty.findings if f.severity >= Severity.WARNING}
    false_alarms = [f.code for f in healthy.findings if f.severity >= Severity.WARNING]
    console.print("\n[bold]What this shows[/bold]")
    if lm and "FW-OVERFIT" in caught:
        console.print(
            f"- The memorising run's training loss kept falling while its validation loss rose (final validation "
            f"perplexity {faulty.final.get('perplexity', float('nan')):.1f} against "
            f"{healthy.final.get('perplexity', float('nan')):.1f} for the careful run); fitwatch flagged it: "
            + ", ".join(sorted(caught)) + ". A checkpoint from the end of that run would ship a model that recites "
            "its 128 training documents."
        )
    elif not lm and ("FW-OVERFIT-SUBTLE" in caught or "FW-OVERFIT" in caught):
        console.print(
            f"- The longer run's accuracy ({faulty.final.get('accuracy', float('nan')):.3f}) is close to the careful "
            f"run's ({healthy.final.get('accuracy', float('nan')):.3f}), yet fitwatch flagged it: "
            + ", ".join(sorted(caught))
            + ". Its validation NLL and calibration got worse while accuracy held: a checkpoint picked by accuracy "
            "would ship an overconfident model."
        )
    else:
        console.print(f"- The {'memorising' if lm else 'longer'} run raised: {', '.join(sorted(caught)) or 'no warning'}.")
    console.print(
        "- The careful run stayed quiet" + (f" (except {', '.join(false_alarms)})." if false_alarms else ": a warning is earned.")
    )
    _print_where_to_look(console, runs, out, lm=lm)


def _print_where_to_look(console: Any, runs: Sequence[DemoRun], out: Path, *, lm: bool = False) -> None:
    """Commands, and only the files that exist (a run folder that holds no findings file is not listed as one)."""
    console.print("\n[bold]Where to look[/bold]")
    has_events = any(out.rglob("events.out.tfevents.*"))
    lines = []
    if has_events:
        lines += [
            f"  tensorboard --logdir {out}",
            "    Scalars: loss and the headline metric, train and validation on one chart, then the findings tracks;",
            "    Custom Scalars: one chart per question; Images: "
            + ("token reliability diagrams;" if lm else "confusion matrices and reliability diagrams;"),
            "    Text: findings",
            f"  fitwatch report {out} --html {out / 'report.html'}    # the same findings from the logs, as one page",
        ]
    fingerprints = [next(iter(sorted(r.log_dir.rglob("fingerprint.json"))), None) for r in runs]
    if all(fingerprints):
        lines.append(f"  fitwatch diff {runs[0].log_dir} {runs[1].log_dir}    # what differs between the two runs")
    for run in runs:
        for name in ("findings.jsonl", "history.json"):
            if (run.log_dir / name).is_file():
                lines.append(f"  {run.log_dir / name}")
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)


if __name__ == "__main__":
    raise SystemExit(main())
