"""What each scalar tag of a run means to the detectors: its *role*.

``fitwatch report`` reads runs that fitwatch did not log. A role names what a series is (the step-level
training loss, the validation accuracy, the learning rate of one param group) independently of what the
logger called it. Three sources assign roles, strongest first:

1. ``--map TAG=ROLE`` (``TAG=ROLE:SUBJECT`` for the roles that hold one series per param group, block or
   class; ``TAG=none`` drops a tag);
2. fitwatch's own tag scheme (:func:`fitwatch.sinks.tags.parse_tag`), with the tag prefix detected;
3. the usual names of the Hugging Face Trainer's ``TensorBoardCallback`` and of Lightning's
   ``self.log`` and ``LearningRateMonitor`` (:data:`KNOWN_TAGS`, :data:`LR_MONITOR`).

>>> roles = assign_roles(["train/loss", "eval/loss", "eval/accuracy", "train/learning_rate", "eval/runtime"])
>>> roles.tags("val_loss"), roles.tags("lr")
(['eval/loss'], ['train/learning_rate'])
>>> roles.unmapped
[]
>>> parse_mapping("my/valid_nll=val_nll")
RoleMapping(tag='my/valid_nll', role='val_nll', subject=None)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from fitwatch.sinks.tags import CLASS_RUN, DASHBOARD_SECTIONS, HEALTH_COUNTS, SECTIONS, history_tag, is_split, parse_tag

__all__ = [
    "IGNORED_TAGS",
    "KNOWN_TAGS",
    "LR_MONITOR",
    "ROLES",
    "RoleAssignment",
    "RoleMapping",
    "RoleSpec",
    "assign_roles",
    "detect_prefix",
    "fold_dashboard_runs",
    "parse_mapping",
]


@dataclass(frozen=True)
class RoleSpec:
    """One role: what a series with it means and where the replay puts it.

    Attributes:
        name: The role's name, as ``--map`` takes it.
        description: What the series holds (shown by ``fitwatch report --help`` and in docs/report.md).
        multi: One series per subject (param group, parameter block, class) instead of one per run.
    """

    name: str
    description: str
    multi: bool = False


#: Evaluation metrics a role can carry, as ``role suffix -> EvalRecord key`` (see
#: :mod:`fitwatch.detect.records`); ``f1`` is the macro F1.
EVAL_METRICS: Mapping[str, str] = {
    "loss": "loss",
    "accuracy": "accuracy",
    "f1": "macro_f1",
    "weighted_f1": "weighted_f1",
    "ece": "ece",
    "mce": "mce",
    "adaptive_ece": "adaptive_ece",
    "classwise_ece": "classwise_ece",
    "ece_chance": "ece_chance",
    "brier": "brier",
    "nll": "nll",
    "samples": "samples",
    "nonfinite_logits": "nonfinite_logits",
}
#: What each of those metrics is, for ``--help`` and docs/report.md.
_METRIC_TEXT = {
    "loss": "loss",
    "accuracy": "accuracy",
    "f1": "macro F1",
    "weighted_f1": "support-weighted F1",
    "ece": "expected calibration error (ECE, equal-width bins)",
    "mce": "maximum calibration error",
    "adaptive_ece": "adaptive (equal-mass bins) ECE",
    "classwise_ece": "classwise ECE",
    "ece_chance": "ECE a perfectly calibrated model shows on this set (its chance level)",
    "brier": "Brier score",
    "nll": "negative log-likelihood",
    "samples": "number of evaluated targets",
    "nonfinite_logits": "rows with NaN/inf logits",
}
#: Per-class validation lists a role can carry (``EvalRecord.val_per_class`` keys).
CLASS_METRICS = ("precision", "recall", "f1", "support", "predicted")

_ROLES: list[RoleSpec] = [
    RoleSpec(
        "train_loss",
        "training loss logged during training (per step, or averaged over each logging "
        "interval); gives the step records and, averaged since the previous validation, the training loss "
        "of each evaluation",
    ),
    RoleSpec(
        "train_mean_loss",
        "training loss averaged over the interval since the previous validation "
        "(or the epoch), logged at its end; preferred over `train_loss` for the evaluations",
    ),
]
_ROLES += [
    RoleSpec(f"val_{suffix}", f"validation {_METRIC_TEXT[suffix]} at each evaluation")
    for suffix in EVAL_METRICS
]
_ROLES += [
    RoleSpec(
        f"train_{suffix}",
        f"training {_METRIC_TEXT[suffix]} since the previous validation "
        "(averaged over the interval when logged per step)",
    )
    for suffix in EVAL_METRICS
    if suffix != "loss"
]
_ROLES += [
    RoleSpec(
        f"class_{metric}",
        f"validation {'number of predictions' if metric == 'predicted' else metric} of one class "
        "(subject: the class name)",
        multi=True,
    )
    for metric in CLASS_METRICS
]
_ROLES += [
    RoleSpec("lr", "learning rate of one param group (subject: the group)", multi=True),
    RoleSpec("grad_norm", "global gradient 2-norm at logging steps"),
    RoleSpec("weight_norm", "global weight 2-norm at logging steps"),
    RoleSpec(
        "update_ratio", "update-to-weight ratio of one parameter block (subject: the block)", multi=True
    ),
    RoleSpec("nonfinite_loss_steps", "number of steps with a NaN/inf loss since the previous logging step"),
    RoleSpec("epoch", "0-based epoch index (Lightning's `epoch`)"),
    RoleSpec(
        "epoch_progress",
        "epochs completed, fractional: 1.0 at the end of the first (the HF Trainer's `train/epoch`)",
    ),
    RoleSpec("none", "do not use this tag"),
]
#: Every role ``--map`` accepts, by name.
ROLES: Mapping[str, RoleSpec] = {spec.name: spec for spec in _ROLES}

#: The usual scalar names of the HF Trainer (``rewrite_logs``: ``eval_*`` -> ``eval/*``, the rest ->
#: ``train/*``) and of Lightning ``self.log`` calls (``_step``/``_epoch`` suffixes from ``on_step`` /
#: ``on_epoch``), by role; earlier names win when a run has several.
KNOWN_TAGS: Mapping[str, tuple[str, ...]] = {
    "train_loss": ("train/loss", "train_loss_step", "train_loss", "train/loss_step", "training_loss", "loss"),
    "train_mean_loss": ("train_loss_epoch", "train/loss_epoch"),
    "val_loss": (
        "eval/loss",
        "val_loss",
        "val/loss",
        "val_loss_epoch",
        "valid_loss",
        "validation_loss",
        "validation/loss",
    ),
    "val_accuracy": (
        "eval/accuracy",
        "eval/acc",
        "val_acc",
        "val_accuracy",
        "val/acc",
        "val/accuracy",
        "val_acc_epoch",
        "valid_acc",
        "validation_accuracy",
    ),
    "train_accuracy": (
        "train_acc_epoch",
        "train_accuracy_epoch",
        "train_acc",
        "train_accuracy",
        "train/acc",
        "train/accuracy",
        "train_acc_step",
    ),
    "val_f1": (
        "eval/f1",
        "eval/macro_f1",
        "eval/f1_macro",
        "val_f1",
        "val_macro_f1",
        "val/f1",
        "val/macro_f1",
        "val_f1_epoch",
    ),
    "train_f1": ("train_f1_epoch", "train_f1", "train_macro_f1"),
    "val_ece": ("eval/ece", "val_ece", "val/ece"),
    "val_nll": ("eval/nll", "val_nll", "val/nll"),
    "val_brier": ("eval/brier", "val_brier", "val/brier"),
    "grad_norm": ("train/grad_norm", "grad_norm", "grad_2.0_norm_total"),
    "epoch": ("epoch",),
    "epoch_progress": ("train/epoch",),
    "lr": ("train/learning_rate", "learning_rate", "lr"),
}
#: Lightning's ``LearningRateMonitor``: ``lr-<Optimizer>`` and ``lr-<Optimizer>/<group>`` (its momentum and
#: weight-decay series end in ``-momentum`` / ``-weight_decay`` and are not learning rates).
LR_MONITOR = re.compile(r"^lr-(?!.*-(?:momentum|weight_decay)$).+$")
#: Names that are known and carry nothing the detectors read (timings, throughput, totals, the Trainer's
#: whole-run mean ``train/train_loss``), so that they are not listed as unrecognised.
IGNORED_TAGS = re.compile(
    r"^(?:(?:train|eval|test)/.*(?:runtime|_per_second|total_flos|train_loss)|eval/epoch|hp_metric"
    r"|lr-.*-(?:momentum|weight_decay)|test/.*|custom_scalars__config__)$"
)

# fitwatch's own tags, by (section, metric, split): the role they carry.
_FITWATCH_SPLIT_SECTIONS = ("performance", "calibration", "health")
_FITWATCH_SINGLE = {
    ("performance", "step_loss", "train"): "train_loss",
    ("performance", "loss", "train"): "train_mean_loss",
    ("health", "nonfinite_loss_steps", None): "nonfinite_loss_steps",
    ("optimizer", "grad_norm", None): "grad_norm",
    ("weights", "norm", None): "weight_norm",
}
_FITWATCH_MULTI = {("optimizer", "lr"): "lr", ("weights", "update_ratio"): "update_ratio"}
_SUFFIX_OF_KEY = {key: suffix for suffix, key in EVAL_METRICS.items()}


class RoleMapping(NamedTuple):
    """One ``--map`` entry: ``tag`` carries ``role`` (for ``subject`` when the role is per subject)."""

    tag: str
    role: str
    subject: str | None


def parse_mapping(text: str) -> RoleMapping:
    """Parse one ``TAG=ROLE`` or ``TAG=ROLE:SUBJECT`` (the last ``=`` separates; tags may hold one).

    Raises:
        ValueError: If ``text`` has no ``=``, an empty tag, an unknown role, or a subject on a role that has
            none.

    >>> parse_mapping("lr-AdamW/head=lr:head")
    RoleMapping(tag='lr-AdamW/head', role='lr', subject='head')
    >>> parse_mapping("val_acc")
    Traceback (most recent call last):
    ...
    ValueError: Expected `--map` to be TAG=ROLE, but got 'val_acc'.
    """
    if "=" not in text:
        raise ValueError(f"Expected `--map` to be TAG=ROLE, but got {text!r}.")
    tag, _, role = text.rpartition("=")
    tag, role = tag.strip(), role.strip()
    if not tag:
        raise ValueError(f"Expected `--map` to name a tag before '=', but got {text!r}.")
    role, sep, subject = role.partition(":")
    if role not in ROLES:
        raise ValueError(f"Expected a role in `--map` ({', '.join(ROLES)}), but got {role!r} in {text!r}.")
    if sep and not ROLES[role].multi:
        multi = ", ".join(r for r, s in ROLES.items() if s.multi)
        raise ValueError(
            f"Expected a subject after ':' only for the roles {multi}, "
            f"but got {text!r} for the role {role!r}."
        )
    if sep and not subject:
        raise ValueError(f"Expected a subject after ':' in `--map`, but got {text!r}.")
    return RoleMapping(tag, role, subject or None)


def detect_prefix(tags: Iterable[str]) -> str:
    """The tag prefix (``FitWatchConfig.tag_prefix``) under which the most fitwatch tags parse.

    >>> detect_prefix(["fw/performance/loss/val", "fw/calibration/ece/val", "val_loss"])
    'fw/'
    >>> detect_prefix(["performance/loss/val", "eval/loss"])
    ''
    """
    counts: dict[str, int] = {}
    for name in tags:
        parts = name.split("/")
        for i, part in enumerate(parts[:-1]):
            if part in SECTIONS:
                prefix = "/".join(parts[:i]) + ("/" if i else "")
                if parse_tag(name, prefix) is not None:
                    counts[prefix] = counts.get(prefix, 0) + 1
                break
    if not counts:
        return ""
    return max(counts, key=lambda p: (counts[p], p == ""))


@dataclass
class RoleAssignment:
    """Which tag carries which role in one run.

    Attributes:
        series: ``role -> {subject: tag}`` (subject ``""`` for the roles with one series).
        unmapped: Scalar tags that got no role and are not known to carry nothing (candidates for ``--map``).
        fitwatch: Whether the run has fitwatch's own tags.
        prefix: fitwatch's tag prefix in this run (``""`` when none or no fitwatch tags).
    """

    series: dict[str, dict[str, str]] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    fitwatch: bool = False
    prefix: str = ""

    def tags(self, role: str) -> list[str]:
        """The tags carrying ``role`` (one per subject), in assignment order."""
        return list(self.series.get(role, {}).values())

    def add(self, role: str, tag: str, subject: str | None = None) -> None:
        self.series.setdefault(role, {})[
            subject if subject is not None else ("" if not ROLES[role].multi else tag)
        ] = tag


def assign_roles(
    tags: Sequence[str], mappings: Iterable[RoleMapping] = (), *, prefix: str | None = None
) -> RoleAssignment:
    """Give each scalar tag of a run its role (see the module docstring for the precedence).

    Args:
        tags: The run's scalar tags, in the order they first appear (per-class lists follow it).
        mappings: ``--map`` entries; those naming a tag the run does not have are ignored here.
        prefix: fitwatch's tag prefix; detected when ``None``.

    Returns:
        The assignment. A single-series role gets at most one tag: an explicit mapping, else a fitwatch tag,
        else the first name of :data:`KNOWN_TAGS` present.
    """
    present = list(dict.fromkeys(tags))
    out = RoleAssignment()
    used: set[str] = set()
    for m in mappings:
        if m.tag in present and m.tag not in used:
            used.add(m.tag)
            if m.role != "none":
                if not ROLES[m.role].multi:
                    out.series.pop(m.role, None)  # the last explicit mapping of a role wins
                out.add(m.role, m.tag, m.subject)
    out.prefix = detect_prefix(present) if prefix is None else prefix
    for name in present:
        if name in used:
            continue
        parts = parse_tag(name, out.prefix)
        if parts is None:
            continue
        out.fitwatch = True
        role, subject = _fitwatch_role(parts.section, parts.metric, parts.subject, parts.split)
        used.add(name)  # every fitwatch tag is accounted for, read or derived (gap, findings, images)
        if role is None or (not ROLES[role].multi and role in out.series):
            continue
        out.add(role, name, subject)
    for role, candidates in KNOWN_TAGS.items():
        if role in out.series:
            continue
        for name in candidates:
            if name in present and name not in used:
                used.add(name)
                out.add(role, name, "group0" if role == "lr" else None)
                break
    if "lr" not in out.series:
        for name in present:
            if name not in used and LR_MONITOR.match(name):
                used.add(name)
                out.add("lr", name, name[3:])
    known = _all_known()
    out.unmapped = [
        n
        for n in present
        if n not in used and n not in known and not IGNORED_TAGS.match(n) and not LR_MONITOR.match(n)
    ]
    return out


def _all_known() -> set[str]:
    return {name for names in KNOWN_TAGS.values() for name in names}


def _fitwatch_role(
    section: str, metric: str, subject: str | None, split: str | None
) -> tuple[str | None, str | None]:
    """The role of one parsed fitwatch tag, or ``(None, None)`` for tags the replay does not read."""
    single = _FITWATCH_SINGLE.get((section, metric, split))
    if single is not None:
        return single, None
    if (section, metric) in _FITWATCH_MULTI and subject is not None and split is None:
        return _FITWATCH_MULTI[(section, metric)], subject
    if section in _FITWATCH_SPLIT_SECTIONS and subject is None and split is not None:
        suffix = _SUFFIX_OF_KEY.get(metric)
        if suffix is not None and not (split == "train" and suffix == "loss"):
            return f"{split}_{suffix}", None
    if section == "per_class" and split == "val" and subject is not None and metric in CLASS_METRICS:
        return f"class_{metric}", subject
    return None, None


_GROUPS = frozenset(DASHBOARD_SECTIONS.values())


def _history_name(run: str, name: str, value: float) -> tuple[str, float] | None:
    """A dashboard-layout tag of sibling run ``run`` under its history name (any tag prefix), else ``None``."""
    parts = name.split("/")
    for i, part in enumerate(parts[:-1]):
        if part in _GROUPS:
            return history_tag(run, name, value, prefix="/".join(parts[:i]) + ("/" if i else ""))
    return None


def _sibling_name(parent: Any, child: Any) -> str | None:
    """``child``'s path below ``parent`` when it is a sibling run of the dashboard layout (a split, or
    ``class/<name>``), else ``None``."""
    try:
        rel = child.relative_to(parent)
    except ValueError:
        return None
    parts = rel.parts
    if len(parts) == 1 and is_split(parts[0]):
        return parts[0]
    if len(parts) == 2 and parts[0] == CLASS_RUN:
        return "/".join(parts)
    return None


def fold_dashboard_runs(runs: Sequence[Any]) -> list[Any]:
    """Runs read from event files, with fitwatch's dashboard layout folded back into one run per training run.

    Since the dashboard layout (docs/dashboard.md), fitwatch writes each split as a sibling run of the framework's
    run directory (``<run>/train``, ``<run>/val``, ``<run>/class/<name>``) under tags without the split
    (``1_performance/loss``). The report reads one run per training run under the history names
    (``performance/loss/val``), so this merges each sibling run into its parent and renames the tags
    (:func:`fitwatch.sinks.tags.history_tag`). Runs in the earlier layout (one directory, split in the tag) and
    runs of other loggers pass through unchanged.

    Args:
        runs: :class:`fitwatch.report.events.RunEvents`, in discovery order.
    """
    import dataclasses
    from pathlib import Path

    by_dir = {Path(run.directory): run for run in runs}
    parents: dict[Path, Path] = {}
    for directory in by_dir:
        for depth in (1, 2):
            if len(directory.parts) <= depth:
                continue
            parent = directory.parents[depth - 1]
            if _sibling_name(parent, directory) is not None:
                parents[directory] = parent
                break
    if not parents and not any(
        _history_name("", name, 0.0) is not None for run in runs for name in run.scalars
    ):
        return list(runs)
    out: list[Any] = []
    merged: dict[Path, Any] = {}
    for run in runs:
        directory = Path(run.directory)
        home = parents.get(directory, directory)
        target = merged.get(home)
        if target is None:
            base = by_dir.get(home)
            target = dataclasses.replace(
                base if base is not None else run, directory=home, files=[], scalars={}, unreadable=[]
            )
            merged[home] = target
            out.append(target)
        sibling = _sibling_name(home, directory) or ""
        target.files = [*target.files, *run.files]
        target.unreadable = [*target.unreadable, *run.unreadable]
        for name, points in run.scalars.items():
            renamed = [(_history_name(sibling, name, v), s) for s, v in points]
            if renamed and renamed[0][0] is None:
                if sibling:  # a tag of another logger in a split run: kept, named by its run
                    target.scalars.setdefault(f"{sibling}/{name}", []).extend(points)
                else:
                    target.scalars.setdefault(name, []).extend(points)
                continue
            for found, step in renamed:
                if found is not None:
                    target.scalars.setdefault(found[0], []).append((step, found[1]))
    for target in out:
        for name, points in target.scalars.items():
            points.sort(key=lambda p: p[0])
        # The sink leaves out a split's NLL chart when it equals that split's loss (cross-entropy training).
        for split in {parse.split for parse in map(parse_tag, list(target.scalars)) if parse and parse.split}:
            nll, loss = f"calibration/nll/{split}", f"performance/loss/{split}"
            if nll not in target.scalars and loss in target.scalars and f"calibration/ece/{split}" in target.scalars:
                target.scalars[nll] = list(target.scalars[loss])
            # Health counts are written only when nonzero: zero at every other evaluation.
            samples = target.scalars.get(f"health/samples/{split}")
            for metric in HEALTH_COUNTS if samples else ():
                name = f"health/{metric}/{split}"
                written = dict(target.scalars.get(name, []))
                target.scalars[name] = [(step, written.get(step, 0.0)) for step, _ in samples]
    return out
