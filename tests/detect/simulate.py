"""Synthetic evaluation series for the evaluation detectors: healthy runs and runs with one injected fault.

A run is drawn from ``random.Random(seed)`` in two stages. Clean curves first: losses that decay
exponentially from the chance level ``ln C`` (the training loss averaged over the interval since the
previous validation, as the adapters measure it), per-class recalls that saturate, a warmup + linear
decay-to-zero learning rate, a calibrated confidence histogram. Then what a validation set of ``n_val``
samples shows of them: multiplicative noise on the losses, binomial noise on each class's recall
(normal approximation), misclassified samples spread over the other classes (so precision, F1,
accuracy and the predicted counts agree with the recalls), and for each confidence bin the deviation
of a calibrated model's accuracy from its confidence, which makes the ECE and ``ece_chance`` of
:mod:`fitwatch.detect.records`. A fault edits the clean curves from its onset evaluation on.

>>> run = healthy(seed=0, n_evals=12, noise=0.01)
>>> len(run.records), run.onset, run.records[-1].progress
(12, None, 1.0)
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from fitwatch.detect.base import Detector
from fitwatch.detect.records import EvalRecord
from fitwatch.findings import Finding, Severity

#: A common fine-tuning peak learning rate (BERT-base recipes, Devlin et al. 2019: 2e-5 to 5e-5).
BASE_LR = 2e-5
#: Share of training spent in linear warmup (the BERT / HF default recipes use 6-10%).
WARMUP = 0.06
#: Confidence bins of the calibrated model, as offsets from its accuracy, and their shares of the samples.
_BIN_OFFSETS = (-0.25, -0.12, 0.0, 0.06)
_BIN_WEIGHTS = (0.1, 0.2, 0.3, 0.4)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@dataclass
class Curves:
    """Clean (noise-free) per-evaluation quantities of one run; faults edit these."""

    val_loss: list[float]
    train_loss: list[float]
    recall: list[list[float]]
    train_accuracy: list[float]
    overconfidence: list[float]
    lr: list[float]
    support: list[int]
    never_predicted: list[set[int]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.val_loss)


@dataclass(frozen=True)
class Run:
    """A synthetic run: its records, and the evaluation index at which the fault starts (None if healthy)."""

    records: list[EvalRecord]
    onset: int | None
    kind: str


def lr_schedule(progress: float, *, end: float = 1.0) -> float:
    """Warmup then linear decay reaching 0 at ``progress == end`` (and 0 after it).

    >>> round(lr_schedule(0.03) / BASE_LR, 6), lr_schedule(1.0)
    (0.5, 0.0)
    """
    if progress < WARMUP:
        return BASE_LR * progress / WARMUP
    return BASE_LR * max(0.0, (end - progress) / (end - WARMUP))


def healthy_curves(
    rng: random.Random,
    n_evals: int,
    *,
    n_classes: int | None = None,
    imbalance: float | None = None,
    tau: float | None = None,
) -> Curves:
    """Clean curves of a healthy fine-tuning run with ``n_evals`` evaluations."""
    c = n_classes or rng.choice((2, 3, 5))
    tau = tau or rng.uniform(max(1.0, 0.08 * n_evals), max(1.5, 0.3 * n_evals))
    chance_loss = math.log(c)
    floor_val = rng.uniform(0.15, 0.45) * chance_loss
    floor_train = rng.uniform(0.05, 0.6) * floor_val
    # Minority classes: shares decay geometrically by `imbalance` (1.0 = balanced).
    ratio = imbalance if imbalance is not None else rng.uniform(0.5, 1.0)
    shares = [ratio**k for k in range(c)]
    total = sum(shares)
    n_val = rng.choice((300, 1000, 3000))
    support = [max(5, round(n_val * s / total)) for s in shares]
    max_recall = [rng.uniform(0.8, 0.97) * (1.0 - 0.15 * k / c) for k in range(c)]

    def decay(i: float) -> float:
        return math.exp(-(i + 1) / tau)

    def interval_decay(i: int) -> float:  # mean of exp(-s/tau) over the training interval (i, i+1]
        return tau * (math.exp(-i / tau) - math.exp(-(i + 1) / tau))

    val_loss = [floor_val + (chance_loss - floor_val) * decay(i) for i in range(n_evals)]
    train_loss = [floor_train + (chance_loss - floor_train) * interval_decay(i) for i in range(n_evals)]
    recall = [[m - (m - 1.0 / c) * decay(i) for m in max_recall] for i in range(n_evals)]
    train_accuracy = [min(0.999, 1.03 * sum(r) / c) for r in recall]
    lr = [lr_schedule((i + 1) / n_evals) for i in range(n_evals)]
    return Curves(
        val_loss=val_loss,
        train_loss=train_loss,
        recall=recall,
        train_accuracy=train_accuracy,
        overconfidence=[0.0] * n_evals,
        lr=lr,
        support=support,
        never_predicted=[set() for _ in range(n_evals)],
    )


def observe(
    rng: random.Random,
    curves: Curves,
    *,
    noise: float,
    progress_known: bool = True,
    steps_per_eval: int = 100,
) -> list[EvalRecord]:
    """What the validation set shows of ``curves``: one :class:`EvalRecord` per evaluation."""
    c = len(curves.support)
    n_val = sum(curves.support)
    names = [f"class_{k}" for k in range(c)]
    majority = max(curves.support) / n_val
    records = []
    for i in range(curves.n):
        never = curves.never_predicted[i]
        tp = []
        for k, (r, n_k) in enumerate(zip(curves.recall[i], curves.support)):
            sd = math.sqrt(max(r * (1 - r), 1e-4) / n_k)
            obs = 0.0 if k in never else min(1.0, max(0.0, rng.gauss(r, sd)))
            tp.append(round(obs * n_k))
        predicted = list(tp)
        for k, n_k in enumerate(curves.support):  # class k's errors go to the other classes, by size
            others = [j for j in range(c) if j != k and j not in never] or [j for j in range(c) if j != k]
            weight = sum(curves.support[j] for j in others)
            errors, given = n_k - tp[k], 0
            for idx, j in enumerate(others):
                share = (
                    errors - given if idx == len(others) - 1 else round(errors * curves.support[j] / weight)
                )
                predicted[j] += share
                given += share
        precision = [tp[k] / predicted[k] if predicted[k] else 0.0 for k in range(c)]
        recalls = [tp[k] / curves.support[k] for k in range(c)]
        f1 = [2 * p * r / (p + r) if p + r > 0 else 0.0 for p, r in zip(precision, recalls)]
        accuracy = sum(tp) / n_val
        ece, chance = calibration_draw(rng, accuracy, curves.overconfidence[i], n_val, c)
        val_loss = curves.val_loss[i] * (1.0 + noise * rng.gauss(0.0, 1.0))
        train_loss = curves.train_loss[i] * (1.0 + 0.5 * noise * rng.gauss(0.0, 1.0))
        val = {
            "loss": val_loss,
            "nll": val_loss,
            "accuracy": accuracy,
            "macro_f1": sum(f1) / c,
            "ece": ece,
            "ece_chance": chance,
            "samples": float(n_val),
            "majority_fraction": majority,
        }
        train = {
            "loss": train_loss,
            "accuracy": min(1.0, max(0.0, rng.gauss(curves.train_accuracy[i], 0.005))),
        }
        records.append(
            EvalRecord(
                step=(i + 1) * steps_per_eval,
                epoch=i,
                val=val,
                train=train,
                val_per_class={
                    "precision": precision,
                    "recall": recalls,
                    "f1": f1,
                    "support": [float(s) for s in curves.support],
                    "predicted": [float(p) for p in predicted],
                },
                class_names=names,
                lr=[curves.lr[i]],
                progress=(i + 1) / curves.n if progress_known else None,
            )
        )
    return records


def calibration_draw(
    rng: random.Random, accuracy: float, overconfidence: float, n_val: int, n_classes: int
) -> tuple[float, float]:
    """ECE of a model whose bins are ``overconfidence`` above their accuracy, and the chance ECE."""
    ece = chance = 0.0
    for offset, weight in zip(_BIN_OFFSETS, _BIN_WEIGHTS):
        conf = min(0.995, max(1.0 / n_classes, accuracy + offset))
        n_b = max(1.0, weight * n_val)
        sd = math.sqrt(conf * (1 - conf) / n_b)
        ece += weight * abs(rng.gauss(-overconfidence, sd))
        chance += weight * _SQRT_2_OVER_PI * sd
    return ece, chance


# ---------------------------------------------------------------------------------------------- runs


def healthy(seed: int, n_evals: int, noise: float, *, progress_known: bool = True, **kwargs) -> Run:
    """A healthy run: every curve improves and levels off."""
    rng = random.Random(seed)
    curves = healthy_curves(rng, n_evals, **kwargs)
    return Run(observe(rng, curves, noise=noise, progress_known=progress_known), None, "healthy")


def overfitting(
    seed: int, n_evals: int = 30, noise: float = 0.01, *, rise: float = 0.04, accuracy_drop: float = 0.004
) -> Run:
    """Validation loss rises by ``rise`` (relative, per evaluation) after its minimum; training loss falls on.

    The onset is the minimum of the clean validation loss, drawn in the first half of the run.
    """
    rng = random.Random(seed)
    curves = healthy_curves(rng, n_evals, tau=rng.uniform(1.0, 0.1 * n_evals + 1.0))
    onset = rng.randint(max(2, n_evals // 6), n_evals // 2)
    base = curves.val_loss[onset]
    for i in range(onset + 1, n_evals):
        k = i - onset
        curves.val_loss[i] = base * (1.0 + rise * k)
        curves.recall[i] = [r * (1.0 - accuracy_drop * k) for r in curves.recall[onset]]
        curves.overconfidence[i] = 0.004 * k
    return Run(observe(rng, curves, noise=noise), onset, "overfitting")


def memorizing(
    seed: int,
    n_evals: int = 12,
    noise: float = 0.02,
    *,
    rise: float = 0.04,
    train_decay: float = 0.6,
    overconfidence_rate: float = 0.01,
) -> Run:
    """A short run that memorizes its training set: from the onset (evaluation 2-4, as in the zoo's ticket runs)
    the validation loss rises by ``rise`` per evaluation while the training loss shrinks by ``train_decay`` per
    evaluation and every confidence bin drifts ``overconfidence_rate`` above its accuracy; accuracy holds.

    With the minimum this early, the noise of the validation loss cannot be measured yet when the rise begins.
    """
    rng = random.Random(seed)
    curves = healthy_curves(rng, n_evals, tau=rng.uniform(0.8, 1.5))
    onset = rng.randint(2, 4)
    base = curves.val_loss[onset]
    for i in range(onset + 1, n_evals):
        k = i - onset
        curves.val_loss[i] = base * (1.0 + rise * k)
        curves.train_loss[i] = curves.train_loss[onset] * train_decay**k
        curves.recall[i] = list(curves.recall[onset])
        curves.overconfidence[i] = overconfidence_rate * k
    return Run(observe(rng, curves, noise=noise), onset, "memorizing")


def subtle_overfitting(
    seed: int,
    n_evals: int = 30,
    noise: float = 0.01,
    *,
    nll_rise: float = 0.03,
    overconfidence_rate: float = 0.008,
) -> Run:
    """Accuracy keeps improving slowly while NLL rises and the model grows overconfident (Guo et al. 2017)."""
    rng = random.Random(seed)
    curves = healthy_curves(rng, n_evals, tau=rng.uniform(1.0, 0.1 * n_evals + 1.0))
    onset = rng.randint(max(2, n_evals // 6), n_evals // 2)
    base = curves.val_loss[onset]
    for i in range(onset + 1, n_evals):
        k = i - onset
        curves.val_loss[i] = base * (1.0 + nll_rise * k)
        curves.recall[i] = [min(0.99, r + 0.001 * k) for r in curves.recall[onset]]
        curves.overconfidence[i] = overconfidence_rate * k
    return Run(observe(rng, curves, noise=noise), onset, "subtle_overfitting")


def stuck(seed: int, n_evals: int = 20, noise: float = 0.01) -> Run:
    """A learning rate far too low: the losses move a few percent off chance and stay there (a plateau).

    The onset is the first evaluation: the run is on its plateau from the start.
    """
    rng = random.Random(seed)
    curves = healthy_curves(rng, n_evals)
    chance = math.log(len(curves.support))
    for i in range(n_evals):
        settle = 1.0 - math.exp(-(i + 1) / 1.5)
        curves.val_loss[i] = chance * (1.0 - 0.05 * settle)
        curves.train_loss[i] = chance * (1.0 - 0.06 * settle)
        curves.recall[i] = [1.0 / len(curves.support) + 0.1 * settle] * len(curves.support)
        curves.train_accuracy[i] = sum(curves.recall[i]) / len(curves.support)
    return Run(observe(rng, curves, noise=noise), 0, "plateau")


def schedule_ends_early(
    seed: int, n_evals: int = 20, noise: float = 0.01, *, end: float = 0.3, progress_known: bool = True
) -> Run:
    """The learning rate reaches 0 at ``end`` of training (a miscounted number of total steps) while the
    curves are still improving; after that every curve stays where it was.

    The onset is the first evaluation whose learning rate is below 1% of the peak.
    """
    rng = random.Random(seed)
    curves = healthy_curves(rng, n_evals, tau=0.5 * n_evals)
    curves.lr = [lr_schedule((i + 1) / n_evals, end=end) for i in range(n_evals)]
    onset = next(i for i, lr in enumerate(curves.lr) if lr < 0.01 * BASE_LR and (i + 1) / n_evals >= WARMUP)
    for i in range(onset + 1, n_evals):
        curves.val_loss[i] = curves.val_loss[onset]
        curves.train_loss[i] = curves.train_loss[onset]
        curves.recall[i] = list(curves.recall[onset])
        curves.train_accuracy[i] = curves.train_accuracy[onset]
    return Run(observe(rng, curves, noise=noise, progress_known=progress_known), onset, "lr_decayed")


def class_collapse(seed: int, n_evals: int = 20, noise: float = 0.01, *, to: float = 0.03) -> Run:
    """The smallest class's recall falls to ``to`` at the onset while the aggregate metrics stay healthy."""
    rng = random.Random(seed)
    curves = healthy_curves(rng, n_evals, n_classes=rng.choice((3, 5)), imbalance=0.7)
    onset = rng.randint(n_evals // 4, n_evals // 2)
    victim = len(curves.support) - 1
    for i in range(onset, n_evals):
        curves.recall[i][victim] = to
    return Run(observe(rng, curves, noise=noise), onset, "class_collapse")


def never_predicted(seed: int, n_evals: int = 20, noise: float = 0.01) -> Run:
    """From the onset on, the model predicts the smallest class for no sample at all."""
    rng = random.Random(seed)
    curves = healthy_curves(rng, n_evals, n_classes=rng.choice((3, 5)), imbalance=0.7)
    onset = rng.randint(1, n_evals // 2)
    victim = len(curves.support) - 1
    for i in range(onset, n_evals):
        curves.never_predicted[i] = {victim}
    return Run(observe(rng, curves, noise=noise), onset, "never_predicted")


def miscalibration(seed: int, n_evals: int = 20, noise: float = 0.01, *, rate: float = 0.01) -> Run:
    """From the onset on, every confidence bin drifts ``rate`` per evaluation above its accuracy."""
    rng = random.Random(seed)
    curves = healthy_curves(rng, n_evals)
    onset = rng.randint(n_evals // 4, n_evals // 2)
    for i in range(onset + 1, n_evals):
        curves.overconfidence[i] = rate * (i - onset)
    return Run(observe(rng, curves, noise=noise), onset, "calibration")


def failed(seed: int, n_evals: int = 20, noise: float = 0.01, *, progress_known: bool = True) -> Run:
    """A failed run (Mosbach et al. 2021): the model predicts the majority class for nearly everything."""
    rng = random.Random(seed)
    curves = healthy_curves(rng, n_evals, imbalance=rng.uniform(0.4, 0.8))
    prior = [s / sum(curves.support) for s in curves.support]
    entropy = -sum(p * math.log(p) for p in prior)
    for i in range(n_evals):
        curves.recall[i] = [0.995] + [0.005] * (len(prior) - 1)
        curves.val_loss[i] = entropy
        curves.train_loss[i] = entropy * 1.02
        curves.train_accuracy[i] = prior[0]
    return Run(observe(rng, curves, noise=noise, progress_known=progress_known), 0, "failed")


def leaky(seed: int, n_evals: int = 12, noise: float = 0.01) -> Run:
    """Validation samples copied from training: validation near perfect and better than training at once."""
    rng = random.Random(seed)
    curves = healthy_curves(rng, n_evals)
    for i in range(n_evals):
        curves.recall[i] = [0.998] * len(curves.support)
        curves.val_loss[i] = 0.02 + 0.05 * math.exp(-i)
        curves.train_accuracy[i] = min(0.97, 0.6 + 0.1 * i)
        curves.train_loss[i] = max(curves.train_loss[i], 0.3 * math.exp(-0.2 * i))
    return Run(observe(rng, curves, noise=noise), 0, "leak")


# --------------------------------------------------------------------------------------- measuring


def records_from(
    *,
    lr: Sequence[Sequence[float]] | None = None,
    progress: Sequence[float | None] | None = None,
    per_class: Sequence[dict] | None = None,
    class_names: Sequence[str] = (),
    **columns: Sequence[float | None],
) -> list[EvalRecord]:
    """Records from per-evaluation columns: ``val_<metric>=[...]`` and ``train_<metric>=[...]`` (a None entry
    leaves the key out), ``lr`` (per group), ``progress``, ``per_class`` (``val_per_class`` dicts).
    Evaluation ``i`` has epoch ``i`` and step ``100 (i + 1)``.

    >>> r = records_from(val_loss=[1.0, None], train_loss=[2.0, 1.5])
    >>> r[1].val, r[1].train, r[1].epoch, r[1].step
    ({}, {'loss': 1.5}, 1, 200)
    """
    lengths = {len(c) for c in columns.values()} | {
        len(x) for x in (lr, progress, per_class) if x is not None
    }
    (n,) = lengths
    records = []
    for i in range(n):
        split: dict[str, dict[str, float]] = {"val": {}, "train": {}}
        for name, column in columns.items():
            where, metric = name.split("_", 1)
            if column[i] is not None:
                split[where][metric] = column[i]  # type: ignore[assignment]
        records.append(
            EvalRecord(
                step=100 * (i + 1),
                epoch=i,
                val=split["val"],
                train=split["train"],
                val_per_class=per_class[i] if per_class else {},
                class_names=class_names,
                lr=lr[i] if lr else (),
                progress=progress[i] if progress else None,
            )
        )
    return records


def replay(detector: Detector, records: Iterable[EvalRecord]) -> list[Finding | None]:
    """The detector's answer to each record, in order."""
    return [detector.update(r) for r in records]


def resumed(make: Callable[[], Detector], records: Sequence[EvalRecord], split: int) -> list[Finding | None]:
    """The answers of a detector saved after ``split`` records, its state passed through strict JSON
    (no NaN), and restored into a fresh detector that reads the rest."""
    first = make()
    out = [first.update(r) for r in records[:split]]
    state = json.loads(json.dumps(first.state_dict(), allow_nan=False))
    second = make()
    second.load_state_dict(state)
    return out + [second.update(r) for r in records[split:]]


def as_dicts(findings: Iterable[Finding | None]) -> list[dict | None]:
    """Findings as dicts through strict JSON (evidence holding NaN fails), for equality checks."""
    return [None if f is None else json.loads(json.dumps(f.to_dict(), allow_nan=False)) for f in findings]


def first_index(
    findings: Sequence[Finding | None], *, severity: Severity = Severity.WARNING, code: str | None = None
) -> int | None:
    """Index of the first finding at ``severity`` or worse (and of ``code``, when given), or None."""
    for i, f in enumerate(findings):
        if f is not None and f.severity >= severity and (code is None or f.code == code):
            return i
    return None


def rate(hits: Iterable[bool]) -> float:
    """Share of True values."""
    values = list(hits)
    return sum(values) / len(values)


def median(values: Sequence[float]) -> float:
    """Median (the mean of the two middle values for an even count)."""
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2
