"""The one place that names TensorBoard tags.

Scheme: ``[prefix]<section>/<metric>[/<subject>][/<split>]``

- ``section`` groups the TensorBoard dashboard: one of :data:`SECTIONS`.
- ``metric``: ``ece``, ``recall``, ``lr``, ...
- ``subject``: a class name (per-class), a param group (optimizer) or a parameter block (weights).
- ``split``: ``train``, ``val``, or ``val_clean`` (validation without the samples duplicated in training), last, so the two splits of one metric sit side by side and a
  custom-scalars chart can overlay them with one regex.

>>> tag("calibration", "ece", split="val")
'calibration/ece/val'
>>> tag("per_class", "recall", subject="cat", split="train")
'per_class/recall/cat/train'
>>> tag("optimizer", "lr", subject="head")
'optimizer/lr/head'
>>> parse_tag("per_class/recall/cat/train")
TagParts(section='per_class', metric='recall', subject='cat', split='train')
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "CLASS_RUN",
    "DASHBOARD_SECTIONS",
    "HEALTH_COUNTS",
    "SECTIONS",
    "SPLITS",
    "TagParts",
    "dashboard_name",
    "dashboard_scalar",
    "history_tag",
    "is_split",
    "parse_tag",
    "sanitize",
    "tag",
]

#: Dashboard sections, in the order the custom-scalars layout shows them.
SECTIONS = (
    "performance",  # loss, accuracy, macro/weighted F1
    "per_class",  # precision, recall, f1, support per class
    "calibration",  # ece, mce, adaptive_ece, classwise_ece, brier, nll
    "gap",  # validation minus training, and its Theil-Sen slope
    "optimizer",  # lr, momentum, weight_decay per param group; grad_norm
    "weights",  # weight norm, update-to-weight ratio per block
    "health",  # non-finite counts, skipped batches
    "findings",  # count of findings, one track per code
    "data",  # data checks (duplicates, label shift, clean-subset metrics)
)
SPLITS = ("train", "val", "val_clean", "val_start", "eval", "test")
#: Other evaluation sets of a fit are ``val_<name>`` (a second Lightning dataloader, an HF ``eval_dataset`` dict).


def is_split(name: str) -> bool:
    """Whether ``name`` is a split: one of :data:`SPLITS`, or ``val_<name>`` for another evaluation set.

    >>> is_split("val_ood"), is_split("cat")
    (True, False)
    """
    return name in SPLITS or (name.startswith("val_") and sanitize(name) == name)

_UNSAFE = re.compile(r"[^\w.\-]+")


def sanitize(name: str) -> str:
    """A class, group or block name made safe for a tag path (no slashes, no spaces).

    >>> sanitize("New York / NY")
    'New_York_NY'
    """
    return _UNSAFE.sub("_", str(name)).strip("_") or "_"


def tag(section: str, metric: str, *, subject: str | None = None, split: str | None = None, prefix: str = "") -> str:
    """Build a tag. Raises ``ValueError`` on an unknown section or split (a bug, not user input)."""
    if section not in SECTIONS:
        raise ValueError(f"Expected `section` to be one of {SECTIONS}, but got {section!r}.")
    if split is not None and not is_split(split):
        raise ValueError(f"Expected `split` to be one of {SPLITS}, but got {split!r}.")
    parts = [section, metric]
    if subject is not None:
        parts.append(sanitize(subject))
    if split is not None:
        parts.append(split)
    return prefix + "/".join(parts)


class TagParts(NamedTuple):
    section: str
    metric: str
    subject: str | None
    split: str | None


def parse_tag(name: str, prefix: str = "") -> TagParts | None:
    """The parts of a tag built by :func:`tag`, or ``None`` for a tag fitwatch did not build."""
    if prefix:
        if not name.startswith(prefix):
            return None
        name = name[len(prefix) :]
    parts = name.split("/")
    if len(parts) < 2 or parts[0] not in SECTIONS:
        return None
    split = parts.pop() if len(parts) > 2 and is_split(parts[-1]) else None
    if len(parts) == 2 and is_split(parts[1]) and split is None:
        return None
    subject = "/".join(parts[2:]) if len(parts) > 2 else None
    return TagParts(parts[0], parts[1], subject, split)


# --- The event-file layout (the dashboard) --------------------------------------------------------------------
#
# ``cb.history`` and ``history.json`` keep the names above. The TensorBoard event files use a layout built for the
# dashboard (docs/dashboard.md), Keras-style: each split is a sibling run of the framework's run directory
# (``<run>/train``, ``<run>/val``) under one tag without the split, so every chart overlays train and validation;
# per-class validation metrics are sibling runs ``<run>/class/<name>`` (one coloured line per class on one
# chart per metric); a leading digit sorts TensorBoard's groups by question, performance first.

#: The event-file group of each section, in the order the dashboard shows them.
DASHBOARD_SECTIONS = {
    "performance": "1_performance",
    "findings": "2_findings",
    "gap": "3_gap",
    "calibration": "4_calibration",
    "per_class": "5_per_class",
    "optimizer": "6_optimizer",
    "weights": "7_weights",
    "data": "8_data",
    "health": "9_health",
}
_SECTION_OF_GROUP = {group: section for section, group in DASHBOARD_SECTIONS.items()}
#: The run (relative to the framework's run directory) that holds a class's validation metrics.
CLASS_RUN = "class"
#: Per-class metrics on the dashboard (validation only; one chart each, one line per class).
DASHBOARD_CLASS_METRICS = ("recall", "precision", "f1", "support", "predicted")
#: Health counts written only when nonzero (the report reads a missing point as 0).
HEALTH_COUNTS = ("nonfinite_logits", "invalid_targets", "nonfinite_loss", "skipped_batches", "nonfinite_loss_steps")
#: Findings tracks on the dashboard: 0 resolved, 1 info, 2 warning, 3 critical (the history keeps logging levels).
_TRACK_OF_LEVEL = {0: 0.0, 20: 1.0, 30: 2.0, 50: 3.0}
_LEVEL_OF_TRACK = {v: float(k) for k, v in _TRACK_OF_LEVEL.items()}


def dashboard_name(name: str, *, prefix: str = "") -> tuple[str, str]:
    """Where a history name goes in the event-file layout: ``(run, tag)``, ``run`` ``""`` for the framework's run
    directory. Names fitwatch did not build pass through unchanged.

    >>> dashboard_name("data/confident_mistakes/val")
    ('val', '8_data/confident_mistakes')
    """
    parts = parse_tag(name, prefix)
    if parts is None:
        return ("", name)
    section, metric, subject, split = parts
    if section == "per_class" and subject is not None and split == "val":
        return (f"{CLASS_RUN}/{subject}", prefix + f"{DASHBOARD_SECTIONS[section]}/{metric}")
    path = [DASHBOARD_SECTIONS[section], metric] + ([subject] if subject else [])
    return (split or "", prefix + "/".join(path))


def dashboard_scalar(name: str, value: float, *, prefix: str = "") -> tuple[str, str, float] | None:
    """Where a history scalar goes in the event files: ``(run, tag, value)``, or ``None`` when it stays off the
    dashboard. ``run`` is ``""`` for the framework's run directory, else a sibling run below it.

    Off the dashboard (kept in ``cb.history``, ``history.json`` and the report): per-class metrics of training,
    health counts that are zero (:data:`HEALTH_COUNTS`) and data scalars (the data report is text). The sink also leaves out per-class runs beyond its ``max_classes``.
    Findings tracks become 0 (resolved), 1 (info), 2 (warning), 3 (critical).

    >>> dashboard_scalar("performance/loss/val", 0.5)
    ('val', '1_performance/loss', 0.5)
    >>> dashboard_scalar("per_class/recall/cat/val", 0.9)
    ('class/cat', '5_per_class/recall', 0.9)
    >>> dashboard_scalar("findings/FW-OVERFIT-GAP", 30.0)
    ('', '2_findings/FW-OVERFIT-GAP', 2.0)
    >>> dashboard_scalar("health/nonfinite_loss/train", 0.0) is None
    True
    """
    parts = parse_tag(name, prefix)
    if parts is not None:
        section, metric, subject, split = parts
        if section == "data" or (section == "health" and metric in HEALTH_COUNTS and value == 0):
            return None
        if section == "per_class" and (split != "val" or metric not in DASHBOARD_CLASS_METRICS or subject is None):
            return None
        if section == "findings" and metric != "count":
            value = _TRACK_OF_LEVEL.get(int(value), value)
    run, name = dashboard_name(name, prefix=prefix)
    return (run, name, value)


def history_tag(run: str, name: str, value: float, *, prefix: str = "") -> tuple[str, float] | None:
    """The history name of a scalar read from the event-file layout: the inverse of :func:`dashboard_scalar`.

    ``run`` is the run's path relative to the framework's run directory (``""``, ``"val"``, ``"class/cat"``).
    Returns ``None`` for a tag that is not in the dashboard layout.

    >>> history_tag("val", "1_performance/loss", 0.5)
    ('performance/loss/val', 0.5)
    >>> history_tag("class/cat", "5_per_class/recall", 0.9)
    ('per_class/recall/cat/val', 0.9)
    >>> history_tag("", "2_findings/FW-OVERFIT-GAP", 2.0)
    ('findings/FW-OVERFIT-GAP', 30.0)
    """
    if prefix:
        if not name.startswith(prefix):
            return None
        name = name[len(prefix) :]
    parts = name.split("/")
    section = _SECTION_OF_GROUP.get(parts[0])
    if section is None or len(parts) < 2:
        return None
    metric, subject = parts[1], "/".join(parts[2:]) or None
    split = None
    if run.startswith(CLASS_RUN + "/"):
        if section != "per_class":
            return None
        subject, split = run[len(CLASS_RUN) + 1 :], "val"
    elif run:
        if not is_split(run):
            return None
        split = run
    if section == "findings" and metric != "count":
        value = _LEVEL_OF_TRACK.get(value, value)
    try:
        return tag(section, metric, subject=subject, split=split, prefix=prefix), value
    except ValueError:
        return None
