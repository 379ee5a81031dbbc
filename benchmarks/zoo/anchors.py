"""What the usual tools would have said on the same run: the "anchors" of the zoo table.

Each anchor is a pure function over the per-evaluation metric series of one run and returns the
0-based index of the first evaluation at which that tool would stop training (or reduce the learning
rate), or ``None`` if it never would. Each reproduces its tool's rule exactly, at the settings named in
the zoo table:

- :func:`lightning_early_stopping`: ``lightning.pytorch.callbacks.EarlyStopping(monitor="val_loss",
  patience=3)`` (``min_delta=0``, ``check_finite=True``);
- :func:`hf_early_stopping`: ``transformers.EarlyStoppingCallback(early_stopping_patience=1)`` on
  ``eval_loss`` (``early_stopping_threshold=0``), with ``TrainerState.best_metric`` updated after the
  callback as the Trainer does;
- :func:`reduce_lr_on_plateau`: ``torch.optim.lr_scheduler.ReduceLROnPlateau`` with its defaults
  (``mode="min", patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0``), stepped on the
  validation loss;
- Prechelt (1998), "Early stopping - but when?": :func:`prechelt_gl` (GL2: stop when the generalization
  loss exceeds 2%), :func:`prechelt_pq` (PQ0.75: the quotient of GL and the training progress over a strip
  exceeds 0.75) and :func:`prechelt_up` (UP2: the validation loss rose at the end of 2 successive strips).
  One evaluation plays the role of Prechelt's epoch; strips are ``k = 5`` evaluations long (his choice),
  and PQ and UP are checked only at strip ends (evaluations 5, 10, ..., 1-based), as he defines them.
  UP2 is the fastest UP criterion of his comparison; on runs of 10-40 evaluations larger ``s`` rarely
  get enough strips to say anything.

Non-finite losses: Lightning stops on them (``check_finite``); torch and Hugging Face count them as no
improvement; Prechelt's criteria skip them.

>>> val = [0.9, 0.7, 0.6, 0.62, 0.65, 0.7, 0.75]
>>> lightning_early_stopping(val), hf_early_stopping(val), reduce_lr_on_plateau(val), prechelt_gl(val)
(5, 3, None, 3)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fitwatch.detect.trends import finite_or_none, generalization_loss, training_progress

__all__ = [
    "anchors",
    "hf_early_stopping",
    "lightning_early_stopping",
    "prechelt_gl",
    "prechelt_pq",
    "prechelt_up",
    "reduce_lr_on_plateau",
]

#: Prechelt's (1998) training strip length k, in evaluations.
STRIP = 5


def _check_mode(mode: str) -> None:
    if mode not in ("min", "max"):
        raise ValueError(f"Expected `mode` to be 'min' or 'max', but got {mode!r}.")


def _check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"Expected `{name}` to be an int >= {minimum}, but got {type(value).__name__} {value!r}."
        )
    if value < minimum:
        raise ValueError(f"Expected `{name}` to be an int >= {minimum}, but got {value!r}.")


def lightning_early_stopping(
    values: Sequence[float],
    *,
    patience: int = 3,
    min_delta: float = 0.0,
    mode: str = "min",
    check_finite: bool = True,
) -> int | None:
    """Lightning's ``EarlyStopping._evaluate_stopping_criteria`` over a series.

    An evaluation improves when ``value + min_delta < best`` (``mode="min"``; ``value - min_delta > best``
    for ``"max"``), with ``best`` starting at infinity; otherwise the wait count grows, and training stops
    when it reaches ``patience``. With ``check_finite`` a NaN or infinite value stops at once.

    Raises:
        ValueError: If ``mode`` is not ``"min"`` or ``"max"`` or ``patience`` is negative.
        TypeError: If ``patience`` is not an int.

    >>> lightning_early_stopping([1.0, 0.9, 0.95, 0.92, 0.91])
    4
    >>> lightning_early_stopping([1.0, float("nan")])
    1
    """
    _check_mode(mode)
    _check_count("patience", patience, 0)
    sign = 1.0 if mode == "min" else -1.0
    best = math.inf
    wait = 0
    for i, raw in enumerate(values):
        value = float(raw)
        if check_finite and not math.isfinite(value):
            return i
        if sign * value + min_delta < best:
            best, wait = sign * value, 0
        else:
            wait += 1
            if wait >= patience:
                return i
    return None


def hf_early_stopping(
    values: Sequence[float], *, patience: int = 1, threshold: float = 0.0, greater_is_better: bool = False
) -> int | None:
    """Hugging Face ``EarlyStoppingCallback`` over a series of ``eval_loss`` values.

    At each evaluation the callback compares the value with ``state.best_metric`` *before* the Trainer
    updates it: the patience counter resets when the value is strictly better and differs by more than
    ``threshold`` (or when there is no best yet), and grows otherwise; training stops when it reaches
    ``patience``. The Trainer then sets ``best_metric`` to the value if strictly better (no threshold),
    starting from infinity, so a NaN never becomes the best.

    Raises:
        ValueError: If ``patience`` is negative.
        TypeError: If ``patience`` is not an int.

    >>> hf_early_stopping([1.0, 0.9, 0.95])
    2
    >>> hf_early_stopping([1.0, 0.9, 0.89], threshold=0.05)   # 0.89 is better, but by less than 0.05
    2
    """
    _check_count("patience", patience, 0)
    best: float | None = None
    counter = 0
    for i, raw in enumerate(values):
        value = float(raw)
        if best is None or (
            (value > best if greater_is_better else value < best) and abs(value - best) > threshold
        ):
            counter = 0
        else:
            counter += 1
        if counter >= patience:
            return i
        if best is None:
            best = -math.inf if greater_is_better else math.inf
        if (value > best) if greater_is_better else (value < best):
            best = value
    return None


def reduce_lr_on_plateau(
    values: Sequence[float],
    *,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    mode: str = "min",
) -> int | None:
    """Where torch's ``ReduceLROnPlateau`` first reduces the learning rate, stepped once per evaluation.

    A value is better when below ``best * (1 - threshold)`` (``rel``) or ``best - threshold`` (``abs``)
    in ``mode="min"`` (mirrored for ``"max"``); the learning rate is reduced when the count of bad
    evaluations exceeds ``patience``. NaN is never better.

    Raises:
        ValueError: If ``mode`` or ``threshold_mode`` is unknown, or a count is negative.
        TypeError: If a count is not an int.

    >>> reduce_lr_on_plateau([1.0] * 12)   # 11 bad evaluations after the first: more than 10
    11
    """
    _check_mode(mode)
    if threshold_mode not in ("rel", "abs"):
        raise ValueError(f"Expected `threshold_mode` to be 'rel' or 'abs', but got {threshold_mode!r}.")
    _check_count("patience", patience, 0)
    _check_count("cooldown", cooldown, 0)

    def is_better(a: float, best: float) -> bool:
        if mode == "min":
            return a < (best * (1.0 - threshold) if threshold_mode == "rel" else best - threshold)
        return a > (best * (1.0 + threshold) if threshold_mode == "rel" else best + threshold)

    best = math.inf if mode == "min" else -math.inf
    bad = cooling = 0
    for i, raw in enumerate(values):
        value = float(raw)
        if is_better(value, best):
            best, bad = value, 0
        else:
            bad += 1
        if cooling > 0:
            cooling -= 1
            bad = 0
        if bad > patience:
            return i
    return None


def prechelt_gl(val_losses: Sequence[float], *, alpha: float = 2.0) -> int | None:
    """Prechelt's GL_alpha: the first evaluation whose generalization loss ``100 (E_va / E_opt - 1)``
    exceeds ``alpha`` percent, ``E_opt`` being the lowest validation loss so far.

    >>> prechelt_gl([1.0, 0.8, 0.81, 0.817])   # GL = 1.25, then 2.125
    3
    """
    best = math.inf
    for i, raw in enumerate(val_losses):
        value = finite_or_none(raw)
        if value is None:
            continue
        best = min(best, value)
        if generalization_loss(value, best) > alpha:
            return i
    return None


def prechelt_pq(
    val_losses: Sequence[float], train_losses: Sequence[float], *, alpha: float = 0.75, strip: int = STRIP
) -> int | None:
    """Prechelt's PQ_alpha: at the end of a strip, stop when ``GL / P_k`` exceeds ``alpha``.

    ``P_k = 1000 (mean / min - 1)`` of the training losses of the strip's ``k`` evaluations
    (:func:`~fitwatch.detect.trends.training_progress`). A GL above 0 with no training progress at all
    (``P_k = 0``) is an infinite quotient: stop. A strip with missing training losses decides nothing.

    Raises:
        ValueError: If ``strip`` < 2 (``P_k`` needs two training losses).
        TypeError: If ``strip`` is not an int.

    >>> prechelt_pq([1.0, 0.8, 0.7, 0.7, 0.72], [1.0, 0.6, 0.5, 0.45, 0.44])   # GL 2.86, P_5 359: PQ 0.008
    >>> prechelt_pq([1.0, 0.8, 0.7, 0.7, 0.72], [0.46, 0.45, 0.45, 0.44, 0.44])  # P_5 = 18.2: PQ 0.16
    >>> prechelt_pq([1.0, 0.8, 0.7, 0.7, 0.72], [0.44, 0.44, 0.44, 0.44, 0.44])  # no progress
    4
    """
    _check_count("strip", strip, 2)
    best = math.inf
    for i, raw in enumerate(val_losses):
        value = finite_or_none(raw)
        if value is not None:
            best = min(best, value)
        if (i + 1) % strip or value is None:
            continue
        gl = generalization_loss(value, best)
        strip_losses = [finite_or_none(x) for x in train_losses[i + 1 - strip : i + 1]]
        if len(strip_losses) < strip or any(x is None for x in strip_losses):
            continue
        progress = training_progress(strip_losses)  # type: ignore[arg-type]
        if not (math.isfinite(gl) and gl > 0):
            continue
        if progress == 0 or (math.isfinite(progress) and gl / progress > alpha):
            return i
    return None


def prechelt_up(val_losses: Sequence[float], *, successive: int = 2, strip: int = STRIP) -> int | None:
    """Prechelt's UP_s: stop at the end of a strip when the validation loss has risen at the end of ``s``
    successive strips: ``E_va(t) > E_va(t - k)``, ``E_va(t - k) > E_va(t - 2k)``, ... ``s`` times.

    Raises:
        ValueError: If ``successive`` or ``strip`` is not positive.
        TypeError: If one is not an int.

    >>> prechelt_up([1.0, 0.7, 0.72, 0.75, 0.8, 0.85], successive=2, strip=2)   # 0.7 < 0.75 < 0.85
    5
    """
    _check_count("successive", successive, 1)
    _check_count("strip", strip, 1)
    rises = 0
    previous: float | None = None
    for i in range(strip - 1, len(val_losses), strip):
        value = finite_or_none(val_losses[i])
        if value is None:
            continue
        rises = rises + 1 if previous is not None and value > previous else 0
        previous = value
        if rises >= successive:
            return i
    return None


def anchors(
    val_losses: Sequence[float], train_losses: Sequence[float] | None = None
) -> dict[str, int | None]:
    """Every anchor at the zoo table's settings, by column name.

    >>> anchors([0.9, 0.7, 0.6, 0.62, 0.65, 0.7, 0.75])["lightning_es_p3"]
    5
    """
    train = list(train_losses) if train_losses is not None else [math.nan] * len(val_losses)
    return {
        "lightning_es_p3": lightning_early_stopping(val_losses, patience=3),
        "hf_es_p1": hf_early_stopping(val_losses, patience=1),
        "reduce_lr_on_plateau": reduce_lr_on_plateau(val_losses),
        "prechelt_gl2": prechelt_gl(val_losses, alpha=2.0),
        "prechelt_pq0.75": prechelt_pq(val_losses, train, alpha=0.75),
        "prechelt_up2": prechelt_up(val_losses, successive=2),
    }
