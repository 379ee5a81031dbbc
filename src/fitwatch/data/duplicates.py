"""Train/validation duplicates: exact copies by content digest, near copies by MinHash LSH.

A validation sample that also sits in the training set is scored on an answer the model memorised,
so validation metrics come out better than they will be on new data. :func:`find_duplicates` finds

- exact duplicates: equal normalised content (see :mod:`fitwatch.data.content`: text is NFKC-normalised,
  case-folded and whitespace-collapsed; arrays compare dtype, shape and bytes);
- near duplicates, for text, words and token ids: MinHash signatures (Broder 1997) of the set of
  ``shingle``-grams of tokens, bucketed with LSH (Leskovec et al., *Mining of Massive Datasets*, ch. 3),
  and every candidate checked with the exact Jaccard similarity of its two shingle sets, so each
  reported similarity is a true Jaccard and no pair below ``threshold`` is reported.

The validation set is indexed and the training set is streamed through the index, so memory grows
with the validation set only; time is linear in both (``benchmarks/data_duplicates.py`` measures a
million short texts).

>>> report = find_duplicates(
...     ["the cat sat on the mat", "a dog barked at the mailman all day long", "quantum chromodynamics"],
...     ["The  cat sat on the MAT", "a dog barked at the mailman all day long today", "new text"],
...     shingle=3)
>>> report.exact
((0, 0),)
>>> [(t, v, round(s, 3)) for t, v, s in report.near]
[(1, 1, 0.875)]
>>> round(report.fraction, 3)
0.667
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from typing import Any

from fitwatch._validation import check_bool, check_positive_int
from fitwatch.data.content import (
    EMPTY_SEQUENCE,
    content_digest,
    content_tokens,
    sample_kind,
    unsupported_message,
)
from fitwatch.findings import Finding, Severity

__all__ = ["DuplicateReport", "find_duplicates", "shingles"]

#: Jaccard similarity above which two texts count as near duplicates: the NearDup threshold of
#: Lee et al. (2022), "Deduplicating Training Data Makes Language Models Better".
JACCARD_THRESHOLD = 0.8
#: Shingles are word 5-grams, as in Lee et al. (2022) (space-tokenised 5-grams).
SHINGLE_SIZE = 5
#: MinHash permutations. Lee et al. used 9,000 for a web-scale corpus; 128 keeps the signature small and
#: the LSH recall at the threshold at ~95% (see LSH_WEIGHTS); candidates are verified exactly anyway.
NUM_PERM = 128
#: (false-positive, false-negative) weights for datasketch's choice of bands x rows. A false positive
#: costs one exact Jaccard check, a false negative is a missed leak, so recall is weighted 19:1: with
#: 128 permutations this gives 16 bands of 8 rows, which finds a pair at Jaccard 0.8 with probability
#: 1 - (1 - 0.8**8)**16 = 0.947 and at 0.9 with probability > 0.999.
LSH_WEIGHTS = (0.05, 0.95)
#: Seed of the MinHash permutations: fixed, so that two runs over the same data give the same pairs.
MINHASH_SEED = 1
#: Samples per MinHash.bulk call while streaming the training set.
_CHUNK = 4096
#: Kinds of sample near duplicates are defined for (they have tokens).
_TOKEN_KINDS = frozenset({"text", "words", "token ids"})


def shingles(tokens: Sequence[str], size: int) -> set[bytes]:
    """The set of ``size``-grams of ``tokens``, as bytes; a text shorter than ``size`` is one shingle.

    >>> sorted(shingles(["a", "b", "c", "d"], 3))
    [b'a b c', b'b c d']
    >>> shingles(["a", "b"], 3), shingles([], 3)
    ({b'a b'}, set())
    """
    if not tokens:
        return set()
    if len(tokens) <= size:
        return {" ".join(tokens).encode("utf-8", "surrogatepass")}
    return {
        " ".join(tokens[i : i + size]).encode("utf-8", "surrogatepass") for i in range(len(tokens) - size + 1)
    }


def _jaccard(a: set[bytes], b: set[bytes]) -> float:
    return len(a & b) / len(a | b) if (a or b) else 1.0


@dataclass(frozen=True)
class DuplicateReport:
    """Train/validation duplicates found by :func:`find_duplicates`.

    Attributes:
        exact: ``(train_index, val_index)`` pairs with equal normalised content, sorted.
        near: ``(train_index, val_index, jaccard)`` pairs that are not exact copies but whose shingle
            sets have an exact Jaccard similarity of at least ``threshold``, sorted.
        n_train: Number of training samples read.
        n_val: Number of validation samples read.
        kind: Kind of the samples (``"text"``, ``"words"``, ``"token ids"``, ``"array"``, ``"mapping"``),
            ``None`` when both inputs are empty.
        near_searched: Whether near duplicates were searched (``near=True`` and samples with tokens).
        threshold: Jaccard threshold used.
        shingle: Shingle size used (tokens per shingle).
        num_perm: MinHash permutations used.
    """

    exact: tuple[tuple[int, int], ...]
    near: tuple[tuple[int, int, float], ...]
    n_train: int
    n_val: int
    kind: str | None
    near_searched: bool
    threshold: float = JACCARD_THRESHOLD
    shingle: int = SHINGLE_SIZE
    num_perm: int = NUM_PERM

    @cached_property
    def val_indices(self) -> frozenset[int]:
        """Validation indices that have an exact or near copy in the training set."""
        return frozenset(v for _, v in self.exact) | frozenset(v for _, v, _ in self.near)

    @property
    def clean_val_indices(self) -> list[int]:
        """Validation indices with no copy in the training set: the subset to report clean metrics on."""
        involved = self.val_indices
        return [i for i in range(self.n_val) if i not in involved]

    @property
    def fraction(self) -> float:
        """Fraction of the validation set involved in an exact or near pair (0.0 for an empty set)."""
        return len(self.val_indices) / self.n_val if self.n_val else 0.0

    @property
    def ok(self) -> bool:
        """True when no validation sample has a copy in the training set."""
        return not self.exact and not self.near

    def _how(self) -> str:
        return f"Jaccard >= {self.threshold:g} on {self.shingle}-token shingles"

    def __str__(self) -> str:
        head = (
            f"{len(self.val_indices)} of {self.n_val} validation samples ({self.fraction:.1%}) have a copy "
            f"among {self.n_train} training samples: {len(self.exact)} exact pairs, "
            f"{len(self.near)} near pairs"
        )
        if not self.near_searched:
            head += " (near duplicates not searched)"
        else:
            head += f" ({self._how()})"
        lines = [head + "."]
        for t, v in self.exact[:10]:
            lines.append(f"  exact: train[{t}] == val[{v}]")
        for t, v, s in self.near[:10]:
            lines.append(f"  near:  train[{t}] ~ val[{v}] (Jaccard {s:.3f})")
        if len(self.exact) > 10 or len(self.near) > 10:
            lines.append("  ...")
        return "\n".join(lines)

    def to_finding(self, step: int = 0, epoch: int | None = None) -> Finding | None:
        """A ``FW-LEAK-DUPLICATES`` finding, or ``None`` when there are no duplicates."""
        if self.ok:
            return None
        n_involved = len(self.val_indices)
        near_part = f", {len(self.near)} near copies ({self._how()})" if self.near_searched else ""
        message = (
            f"{n_involved} of {self.n_val} validation samples ({self.fraction:.1%}) also appear in the "
            f"training set: {len(self.exact)} exact copies{near_part}. The model is scored on answers it has "
            f"memorised, "
            f"so validation metrics overstate how it does on new data"
        )
        evidence = {
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_val_with_copy": n_involved,
            "fraction": self.fraction,
            "n_exact_pairs": len(self.exact),
            "n_near_pairs": len(self.near),
            "exact_examples": [list(p) for p in self.exact[:5]],
            "near_examples": [[t, v, round(s, 4)] for t, v, s in self.near[:5]],
            "threshold": self.threshold,
            "shingle": self.shingle,
            "num_perm": self.num_perm,
        }
        return Finding(
            code="FW-LEAK-DUPLICATES",
            severity=Severity.WARNING,
            step=step,
            epoch=epoch,
            message=message,
            evidence=evidence,
        )


def _datasketch() -> Any:
    try:
        import datasketch
    except ImportError as err:
        raise ImportError(
            "find_duplicates(near=True) needs the datasketch package: pip install datasketch "
            "(or pass near=False for exact duplicates only)."
        ) from err
    return datasketch


class _KindCheck:
    """The first sample fixes the kind; later ones must match it (empty sequences match words and ids)."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.first = ""
        self.first_empty = ""

    def _mismatch(self, name: str, expected: str, like: str, got: str, sample: Any) -> TypeError:
        shown = repr(sample)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return TypeError(f"Expected `{name}` to be {expected} like `{like}`, but got {got} {shown}.")

    def __call__(self, sample: Any, name: str) -> str:
        kind = sample_kind(sample)
        if kind is None:
            raise TypeError(unsupported_message(name, sample))
        if kind == EMPTY_SEQUENCE:
            if self.kind not in (None, "words", "token ids"):
                raise self._mismatch(name, str(self.kind), self.first, "an empty sequence", sample)
            self.first_empty = self.first_empty or name
            return kind
        if self.kind is None:
            if self.first_empty and kind not in ("words", "token ids"):
                raise self._mismatch(name, "words or token ids", self.first_empty, kind, sample)
            self.kind, self.first = kind, name
        elif kind != self.kind:
            raise self._mismatch(name, self.kind, self.first, kind, sample)
        return kind


def _extract(sample: Any, field: str | None, name: str) -> tuple[Any, str]:
    if field is None:
        return sample, name
    if not isinstance(sample, Mapping):
        raise TypeError(
            f"Expected `{name}` to be a mapping with the field {field!r}, but got {type(sample).__name__}."
        )
    if field not in sample:
        raise ValueError(
            f"Expected `{name}` to have the field {field!r}, but got the fields {sorted(map(str, sample))}."
        )
    return sample[field], f"{name}[{field!r}]"


def _check_samples(name: str, samples: Any) -> None:
    if isinstance(samples, (str, bytes, Mapping)) or not isinstance(samples, Iterable):
        raise TypeError(f"Expected `{name}` to be a sequence of samples, but got {type(samples).__name__}.")


def _random_access(samples: Iterable[Any]) -> Any:
    # Near-duplicate candidates are verified against the validation sample; keep indexable inputs as they are.
    if hasattr(samples, "__getitem__") and hasattr(samples, "__len__"):
        return samples
    return list(samples)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class _NearIndex:
    """MinHash LSH over the distinct validation contents, queried with chunks of training samples.

    Candidates are verified with the exact Jaccard of the two shingle sets, so only true pairs come out.
    """

    def __init__(
        self,
        val: Any,
        field: str | None,
        groups: dict[bytes, list[int]],
        kinds: dict[int, str],
        *,
        threshold: float,
        shingle: int,
        num_perm: int,
    ) -> None:
        self._datasketch = _datasketch()
        self._val, self._field, self._groups, self._kinds = val, field, groups, kinds
        self._threshold, self._shingle = threshold, shingle
        # zlib.crc32 is deterministic across processes (hash() is salted) and runs in C; datasketch's
        # affine32 scheme mixes each input hash with the MurmurHash3 finalizer before permuting it.
        self._minhash_kwargs = {"num_perm": num_perm, "seed": MINHASH_SEED, "hashfunc": zlib.crc32}
        self._lsh = self._datasketch.MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
        self._digest: dict[int, bytes] = {}  # representative validation index -> its content digest
        self._shingles: dict[int, set[bytes]] = {}
        representatives = [(group[0], digest) for digest, group in groups.items()]
        with self._lsh.insertion_session() as session:
            for chunk in _chunks(representatives, _CHUNK):
                kept = [(j, digest, self._compute_shingles(j)) for j, digest in chunk]
                kept = [(j, digest, sets) for j, digest, sets in kept if sets]
                signatures = self._datasketch.MinHash.bulk(
                    [sets for _, _, sets in kept], **self._minhash_kwargs
                )
                for (j, digest, _), signature in zip(kept, signatures):
                    session.insert(j, signature, check_duplication=False)
                    self._digest[j] = digest

    def _compute_shingles(self, j: int) -> set[bytes]:
        sample, _ = _extract(self._val[j], self._field, f"val[{j}]")
        return shingles(content_tokens(sample, self._kinds[j]), self._shingle)

    def _val_shingles(self, j: int) -> set[bytes]:
        # Kept only for validation samples that became candidates, not for the whole index.
        if j not in self._shingles:
            self._shingles[j] = self._compute_shingles(j)
        return self._shingles[j]

    def matches(self, queries: list[tuple[int, bytes, set[bytes]]]) -> Iterator[tuple[int, int, float]]:
        """Verified near pairs ``(train_index, val_index, jaccard)`` for ``(index, digest, shingles)``."""
        signatures = self._datasketch.MinHash.bulk([sets for _, _, sets in queries], **self._minhash_kwargs)
        for (i, digest, train_shingles), signature in zip(queries, signatures):
            for j in self._lsh.query(signature):
                if self._digest[j] == digest:
                    continue  # the exact copy, reported as such
                similarity = _jaccard(train_shingles, self._val_shingles(j))
                if similarity >= self._threshold:
                    yield from ((i, v, similarity) for v in self._groups[self._digest[j]])


def find_duplicates(
    train: Iterable[Any],
    val: Iterable[Any],
    *,
    field: str | None = None,
    near: bool = True,
    threshold: float = JACCARD_THRESHOLD,
    shingle: int = SHINGLE_SIZE,
    num_perm: int = NUM_PERM,
) -> DuplicateReport:
    """Find validation samples that also appear, exactly or nearly, in the training set.

    Args:
        train: Training samples (streamed once; any iterable).
        val: Validation samples (indexed; kept in memory as given, or as a list if not indexable).
        field: For mapping samples (``{"text": ..., "label": ...}``), the field to compare; ``None``
            compares every field.
        near: Also search near duplicates (text, words and token ids only; needs ``datasketch``).
        threshold: Jaccard similarity of the shingle sets at or above which a pair is a near duplicate,
            in ``(0, 1]``; 0.8 as in Lee et al. (2022).
        shingle: Tokens per shingle (5, word 5-grams as in Lee et al. 2022). Short texts with fewer
            tokens are one shingle. Smaller values find copies of very short texts that differ by a word.
        num_perm: MinHash permutations (signature length).

    Returns:
        A :class:`DuplicateReport`.

    Raises:
        TypeError: If ``train`` or ``val`` is not a collection of samples, if a sample is of no supported
            kind, or if a sample's kind differs from the first sample's (the message names the argument and
            index, e.g. ``val[3]``).
        ValueError: If ``threshold`` is not in ``(0, 1]``, or a mapping sample lacks ``field``.
        ImportError: If near duplicates are searched and ``datasketch`` is not installed.
    """
    _check_samples("train", train)
    _check_samples("val", val)
    check_bool("near", near)
    check_positive_int("shingle", shingle)
    check_positive_int("num_perm", num_perm)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(
            f"Expected `threshold` to be a float in (0, 1], but got {type(threshold).__name__} {threshold!r}."
        )
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"Expected `threshold` to be a float in (0, 1], but got {threshold!r}.")
    if field is not None and not isinstance(field, str):
        raise TypeError(f"Expected `field` to be a str or None, but got {type(field).__name__} {field!r}.")

    val = _random_access(val)
    check_kind = _KindCheck()
    # Validation pass: digest -> every validation index with that content; the first is the representative.
    val_groups: dict[bytes, list[int]] = {}
    val_kinds: dict[int, str] = {}
    for j in range(len(val)):
        sample, name = _extract(val[j], field, f"val[{j}]")
        kind = check_kind(sample, name)
        group = val_groups.setdefault(content_digest(sample, name=name), [])
        if not group:
            val_kinds[j] = kind
        group.append(j)

    # Near duplicates are only defined for kinds with tokens; with no such validation sample there is nothing
    # to index, and the training pass still checks kinds and exact copies.
    search_near = near and check_kind.kind in _TOKEN_KINDS
    index = None
    if search_near:
        index = _NearIndex(
            val, field, val_groups, val_kinds, threshold=threshold, shingle=shingle, num_perm=num_perm
        )

    exact: list[tuple[int, int]] = []
    near_pairs: list[tuple[int, int, float]] = []
    n_train = 0
    for chunk in _chunks(enumerate(train), _CHUNK):
        queries: list[tuple[int, bytes, set[bytes]]] = []
        for i, raw in chunk:
            sample, name = _extract(raw, field, f"train[{i}]")
            kind = check_kind(sample, name)
            digest = content_digest(sample, name=name)
            exact.extend((i, j) for j in val_groups.get(digest, ()))
            if index is not None and kind in _TOKEN_KINDS:
                train_shingles = shingles(content_tokens(sample, kind), shingle)
                if train_shingles:
                    queries.append((i, digest, train_shingles))
        n_train += len(chunk)
        if index is not None and queries:
            near_pairs.extend(index.matches(queries))

    return DuplicateReport(
        exact=tuple(sorted(exact)),
        near=tuple(sorted(near_pairs)),
        n_train=n_train,
        n_val=len(val),
        kind=check_kind.kind,
        near_searched=bool(search_near),
        threshold=float(threshold),
        shingle=shingle,
        num_perm=num_perm,
    )
