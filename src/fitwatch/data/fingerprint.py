"""Run lineage: a fingerprint of what a run was made of, and what changed between two runs.

When a retrained model is quietly worse, the first question is what changed: a library version, the
tokenizer, the model config, the data. :func:`run_fingerprint` records it at fit start as a JSON-safe
dict (package versions, platform, model config and parameter-layout hashes, tokenizer hash, hashes of an
evenly spaced sample of the training and validation data, the git commit of the running script);
:func:`write_fingerprint` saves it as ``fingerprint.json`` in the log directory; :func:`diff_fingerprints`
lists the differences between two of them, each printable on one line, the training arguments first
(``training``: epochs, steps, learning rates, schedule, batch size, accumulation, precision, seed, optimizer),
whether they were given as ``training=`` or, as the callbacks write them, as ``extra={"training": ...}``.
:func:`find_fingerprint` finds the file under a run folder (the callbacks write it into the logger's version
directory, one or two levels down).

>>> a = run_fingerprint(train_samples=["a cat", "a dog"], extra={"lr": 3e-5})
>>> b = run_fingerprint(train_samples=["a cat", "a frog"], extra={"lr": 1e-5})
>>> for change in diff_fingerprints(a, b):
...     print(change)   # doctest: +ELLIPSIS
data.train.hash: ... -> ...
extra.lr: 3e-05 -> 1e-05
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from fitwatch._validation import check_positive_int
from fitwatch.data.content import content_digest

__all__ = [
    "FINGERPRINT_FILE",
    "FingerprintChange",
    "diff_fingerprints",
    "find_fingerprint",
    "read_fingerprint",
    "run_fingerprint",
    "write_fingerprint",
]

#: File name of the fingerprint in a run's log directory.
FINGERPRINT_FILE = "fingerprint.json"
#: Version of the fingerprint layout, so that a reader can tell old files apart.
SCHEMA = 1
#: Distributions whose versions change training results; recorded when installed (read from package
#: metadata, so nothing is imported).
PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "lightning",
    "pytorch-lightning",
    "numpy",
    "torchmetrics",
    "accelerate",
    "datasets",
    "safetensors",
    "sentencepiece",
    "peft",
    "scikit-learn",
    "fitwatch",
)
#: Samples hashed per split: enough to notice a changed, reordered or resampled set, cheap at fit start.
MAX_SAMPLES = 1000
#: Keys that differ between any two runs and say nothing about what the run was made of.
_VOLATILE = frozenset({"created", "schema"})
#: Model config keys that record where or with which library version a config was saved, not what it is.
_CONFIG_VOLATILE = frozenset(
    {"transformers_version", "_name_or_path", "_commit_hash", "_attn_implementation_autoset"}
)
_GIT_TIMEOUT_S = 5.0


def _sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _platform() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": platform.system(),
        "machine": platform.machine(),
    }
    torch = sys.modules.get("torch")  # only if the run already imported it: a fingerprint never imports torch
    if torch is not None:
        info["torch_cuda"] = torch.version.cuda
        cudnn = getattr(torch.backends, "cudnn", None)
        info["cudnn"] = cudnn.version() if cudnn is not None and cudnn.is_available() else None
    return info


def _model(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"class": f"{type(model).__module__}.{type(model).__qualname__}"}
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        settings = {k: v for k, v in config.to_dict().items() if k not in _CONFIG_VOLATILE}
        out["config_hash"] = _sha256(_canonical_json(settings))
        out["name_or_path"] = getattr(config, "_name_or_path", None) or getattr(config, "name_or_path", None)
    if hasattr(model, "named_parameters"):
        layout = []
        total = trainable = 0
        for name, param in model.named_parameters():
            layout.append(f"{name}:{tuple(param.shape)}:{param.dtype}:{param.requires_grad}")
            total += param.numel()
            trainable += param.numel() if param.requires_grad else 0
        # Names, shapes, dtypes and trainability: a new head, a frozen layer or an added adapter changes it.
        out["parameters_hash"] = _sha256("\n".join(layout))
        out["num_parameters"] = total
        out["trainable_parameters"] = trainable
    if len(out) == 1:
        raise TypeError(
            "Expected `model` to be a torch module or to have a `config` with `to_dict()`, "
            f"but got {out['class']}."
        )
    return out


def _tokenizer(tokenizer: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"class": f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}"}
    settings = {
        key: getattr(tokenizer, key)
        for key in ("padding_side", "truncation_side", "model_max_length", "do_lower_case")
        if isinstance(getattr(tokenizer, key, None), (str, int, float, bool))
    }
    special = getattr(tokenizer, "special_tokens_map", None)
    if isinstance(special, Mapping):
        settings["special_tokens"] = {k: str(v) for k, v in special.items()}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        # The serialised fast tokenizer: vocabulary, normalizer, pre-tokenizer, post-processor, added tokens.
        content = backend.to_str()
    elif hasattr(tokenizer, "to_str"):  # a bare `tokenizers.Tokenizer`
        content = tokenizer.to_str()
    elif hasattr(tokenizer, "get_vocab"):
        content = _canonical_json(sorted(tokenizer.get_vocab().items()))
    else:
        raise TypeError(
            f"Expected `tokenizer` to be a Hugging Face tokenizer (with `backend_tokenizer`, `to_str()` or "
            f"`get_vocab()`), but got {out['class']}."
        )
    out["hash"] = _sha256(content + _canonical_json(settings))
    out["vocab_size"] = len(tokenizer) if hasattr(tokenizer, "__len__") else None
    name = getattr(tokenizer, "name_or_path", None)
    if name:
        out["name_or_path"] = str(name)
    return out


def _data(name: str, samples: Iterable[Any], max_samples: int) -> dict[str, Any]:
    if isinstance(samples, (str, bytes, Mapping)) or not isinstance(samples, Iterable):
        raise TypeError(f"Expected `{name}` to be a sequence of samples, but got {type(samples).__name__}.")
    size = len(samples) if hasattr(samples, "__len__") else None
    if size is not None and hasattr(samples, "__getitem__"):
        count = min(size, max_samples)
        # Evenly spaced indices cover the whole set, so a changed tail or a resampled set shows.
        indices = [i * size // count for i in range(count)] if count else []
        picked = ((i, samples[i]) for i in indices)
        sampling = "all" if count == size else "evenly spaced"
    else:
        picked = enumerate(islice(samples, max_samples))
        sampling = "first"
    hasher = hashlib.sha256()
    hashed = 0
    for index, sample in picked:
        hasher.update(content_digest(sample, name=f"{name}[{index}]"))
        hashed += 1
    return {"n": size, "n_hashed": hashed, "sampling": sampling, "hash": hasher.hexdigest()}


def _git() -> dict[str, Any] | None:
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    where = script.parent if script is not None and script.exists() else Path.cwd()

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(where), *args],
                capture_output=True,
                text=True,
                timeout=_GIT_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status), "root": git("rev-parse", "--show-toplevel")}


def run_fingerprint(
    model: Any = None,
    tokenizer: Any = None,
    train_samples: Iterable[Any] | None = None,
    val_samples: Iterable[Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    *,
    training: Mapping[str, Any] | None = None,
    max_samples: int = MAX_SAMPLES,
) -> dict[str, Any]:
    """A JSON-safe fingerprint of what this run is made of.

    Args:
        model: A torch module and/or an object with a Hugging Face ``config``: its class, config hash
            (without the keys that only record where it was saved) and parameter-layout hash.
        tokenizer: A Hugging Face tokenizer (fast or slow) or a ``tokenizers.Tokenizer``: a hash of its
            vocabulary, pipeline and special-token settings.
        train_samples: Training samples (see :mod:`fitwatch.data.content` for the kinds): a hash of up to
            ``max_samples`` of them, evenly spaced when the set is indexable, else the first ones.
        val_samples: Validation samples, likewise.
        extra: Anything else to record (hyperparameters, a data version); must be JSON-serialisable.
        training: The training arguments that change a run, as a flat JSON-serialisable mapping
            (``max_epochs``, ``lr``, ``batch_size``, ...); :func:`diff_fingerprints` lists them first. An
            ``extra["training"]`` mapping is read the same way.
        max_samples: Samples hashed per split.

    Returns:
        ``{"schema", "created", "versions", "platform", "git", ...}`` plus ``model``, ``tokenizer``, ``data``
        ``training`` and ``extra`` for what was given. ``git`` is ``None`` outside a git repository.

    Raises:
        TypeError: If ``model`` or ``tokenizer`` is of no supported kind, a sample cannot be digested, or
            ``extra`` or ``training`` is not a JSON-serialisable mapping.
        ValueError: If ``max_samples`` is not positive.
    """
    check_positive_int("max_samples", max_samples)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "platform": _platform(),
        "git": _git(),
    }
    if model is not None:
        out["model"] = _model(model)
    if tokenizer is not None:
        out["tokenizer"] = _tokenizer(tokenizer)
    data = {}
    for name, samples in (("train", train_samples), ("val", val_samples)):
        if samples is not None:
            data[name] = _data(f"{name}_samples", samples, max_samples)
    if data:
        out["data"] = data
    for name, value in (("training", training), ("extra", extra)):
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise TypeError(f"Expected `{name}` to be a mapping, but got {type(value).__name__}.")
        try:
            out[name] = json.loads(json.dumps(dict(value)))
        except (TypeError, ValueError) as err:
            raise TypeError(f"Expected `{name}` to be JSON-serialisable, but got {err}.") from None
    return out


def write_fingerprint(
    directory: str | os.PathLike[str], fingerprint: Mapping[str, Any] | None = None
) -> Path:
    """Write ``fingerprint`` to ``directory/fingerprint.json`` (default: :func:`run_fingerprint` of nothing).

    Returns:
        The path of the file written.
    """
    path = Path(directory) / FINGERPRINT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = run_fingerprint() if fingerprint is None else fingerprint
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a fingerprint from a ``fingerprint.json`` file or from a run directory that holds one.

    Raises:
        FileNotFoundError: If there is no fingerprint at ``path``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FINGERPRINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Expected a {FINGERPRINT_FILE} at {path}, but there is none.")
    return json.loads(path.read_text())


def find_fingerprint(run: str | os.PathLike[str]) -> tuple[Path, list[Path]]:
    """The ``fingerprint.json`` of the run under ``run``: ``run`` itself when it is the file or holds one,
    else the newest one found below it (the callbacks write it into the logger's version directory).

    Returns:
        The file chosen, and every candidate found (newest first), so that a caller can say which was used.

    Raises:
        FileNotFoundError: If there is no ``fingerprint.json`` at or below ``run``.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = write_fingerprint(root / "lightning_logs" / "version_0", {"versions": {}})
    >>> path, found = find_fingerprint(root)
    >>> path.relative_to(root).as_posix(), len(found)
    ('lightning_logs/version_0/fingerprint.json', 1)
    """
    path = Path(run)
    if path.is_file():
        return path, [path]
    if (path / FINGERPRINT_FILE).is_file():
        return path / FINGERPRINT_FILE, [path / FINGERPRINT_FILE]
    found = [p for p in path.rglob(FINGERPRINT_FILE) if p.is_file()] if path.is_dir() else []
    if not found:
        raise FileNotFoundError(f"Expected a {FINGERPRINT_FILE} at or below {path}, but there is none.")

    def newest_first(p: Path) -> tuple[float, str]:
        try:
            return (-p.stat().st_mtime, str(p))
        except OSError:
            return (0.0, str(p))

    found.sort(key=newest_first)
    return found[0], found


def _lift_training(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    """``extra.training`` (how the callbacks record the training arguments) as the ``training`` section."""
    out = dict(fingerprint)
    extra = out.get("extra")
    if isinstance(extra, Mapping) and isinstance(extra.get("training"), Mapping) and "training" not in out:
        out["training"] = extra["training"]
        rest = {k: v for k, v in extra.items() if k != "training"}
        if rest:
            out["extra"] = rest
        else:
            del out["extra"]
    return out


@dataclass(frozen=True)
class FingerprintChange:
    """One difference between two fingerprints.

    Attributes:
        key: Dotted path of the value, e.g. ``"versions.torch"`` or ``"data.val.hash"``.
        before: Value in the first fingerprint (``None`` when absent there).
        after: Value in the second fingerprint (``None`` when absent there).
        kind: ``"changed"``, ``"added"`` (only in the second) or ``"removed"`` (only in the first).
    """

    key: str
    before: Any
    after: Any
    kind: str = "changed"

    def __str__(self) -> str:
        def show(value: Any, present: bool) -> str:
            if not present:
                return "(absent)"
            if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
                return value[:12]  # a sha256: the first 12 hex digits tell two apart
            return str(value)

        before = show(self.before, self.kind != "added")
        return f"{self.key}: {before} -> {show(self.after, self.kind != 'removed')}"


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            out.update(_flatten(item, path + "."))
        else:
            out[path] = item
    return out


def diff_fingerprints(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[FingerprintChange]:
    """What changed from fingerprint ``a`` to fingerprint ``b`` (the creation time is ignored).

    Returns:
        Changes in the fingerprint's section order (training, versions, platform, git, model, tokenizer,
        data, extra), each printable with ``str()`` as ``key: before -> after``. Training arguments recorded
        as ``extra.training`` are listed as ``training.<argument>``.

    Raises:
        TypeError: If ``a`` or ``b`` is not a mapping.

    >>> old = {"versions": {"torch": "2.3.0"}}
    >>> new = {"versions": {"torch": "2.4.0", "peft": "0.11"}}
    >>> for change in diff_fingerprints(old, new):
    ...     print(change)
    versions.peft: (absent) -> 0.11
    versions.torch: 2.3.0 -> 2.4.0
    >>> for change in diff_fingerprints({"extra": {"training": {"max_epochs": 5, "lr": 1e-3}}},
    ...                                 {"extra": {"training": {"max_epochs": 15, "lr": 1e-3}}}):
    ...     print(change)
    training.max_epochs: 5 -> 15
    """
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, Mapping):
            raise TypeError(f"Expected `{name}` to be a fingerprint mapping, but got {type(value).__name__}.")
    flat_a = {k: v for k, v in _flatten(_lift_training(a)).items() if k.split(".")[0] not in _VOLATILE}
    flat_b = {k: v for k, v in _flatten(_lift_training(b)).items() if k.split(".")[0] not in _VOLATILE}
    sections = ["training", "versions", "platform", "git", "model", "tokenizer", "data", "extra"]

    def order(key: str) -> tuple[int, str]:
        head = key.split(".")[0]
        return (sections.index(head) if head in sections else len(sections), key)

    changes = []
    for key in sorted(flat_a.keys() | flat_b.keys(), key=order):
        if key not in flat_b:
            changes.append(FingerprintChange(key, flat_a[key], None, "removed"))
        elif key not in flat_a:
            changes.append(FingerprintChange(key, None, flat_b[key], "added"))
        elif flat_a[key] != flat_b[key]:
            changes.append(FingerprintChange(key, flat_a[key], flat_b[key]))
    return changes
