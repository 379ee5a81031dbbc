"""The canonical content of a sample: one normalisation and one digest for duplicate checks and fingerprints.

Two samples are the same content when their digests are equal. What "the same" means depends on the
kind of sample:

- ``"text"`` (``str``): Unicode NFKC-normalised, case-folded, whitespace collapsed, so that
  ``"Café  au lait"`` and ``"CAFÉ au lait"`` match (a case- or spacing-only copy is still a leak);
- ``"words"`` (a list or tuple of ``str``, a pre-tokenised text): each word normalised like text;
- ``"token ids"`` (a list or tuple of ints): the ids in order;
- ``"array"`` (a numpy array or a torch tensor): dtype, shape and bytes, so a float32 and a float64
  copy of the same values differ, and a numpy array equals a torch tensor with the same dtype and values;
- ``"mapping"`` (a dict of any of these, plus scalar fields such as a label): every field, or one named field.

>>> normalize_text("  Straße\\tIS\\u00a0here ")
'strasse is here'
>>> content_digest("Hello   World") == content_digest("hello world")
True
>>> sample_kind([101, 2023, 102]), sample_kind(["hello", "world"]), sample_kind({"text": "hi"})
('token ids', 'words', 'mapping')
"""

from __future__ import annotations

import hashlib
import numbers
import re
import sys
import unicodedata
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "KINDS",
    "content_digest",
    "content_tokens",
    "normalize_text",
    "sample_kind",
    "unsupported_message",
]

#: The kinds of sample a digest is defined for, as :func:`sample_kind` names them.
KINDS = ("text", "words", "token ids", "array", "mapping")
#: An empty list or tuple: compatible with both "words" and "token ids".
EMPTY_SEQUENCE = "empty sequence"
#: Unicode normal form: NFKC folds compatibility characters (non-breaking spaces, ligatures,
#: full-width letters) onto their plain forms, the usual choice for deduplication.
UNICODE_FORM = "NFKC"
#: 16 bytes of BLAKE2b: collisions are out of reach (2^64 samples for a 50% chance) at half the memory
#: of SHA-256.
DIGEST_SIZE = 16

_WORD = re.compile(r"\w+")


def normalize_text(text: str) -> str:
    """NFKC-normalise, case-fold and collapse whitespace: the form text duplicates are compared in.

    >>> normalize_text("Ｆｕｌｌ-width  ＴＥＸＴ")
    'full-width text'
    """
    return " ".join(unicodedata.normalize(UNICODE_FORM, text).casefold().split())


def _torch_tensor_type() -> type | None:
    # A tensor can only exist if torch is already imported, so this never imports torch itself.
    torch = sys.modules.get("torch")
    return None if torch is None else torch.Tensor


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def sample_kind(sample: Any) -> str | None:
    """The kind of ``sample`` (one of :data:`KINDS`, or ``"empty sequence"``), or ``None`` if unsupported.

    >>> sample_kind("a text"), sample_kind(()), sample_kind({1, 2})
    ('text', 'empty sequence', None)
    """
    if isinstance(sample, str):
        return "text"
    if isinstance(sample, (list, tuple)):
        if not sample:
            return EMPTY_SEQUENCE
        if all(isinstance(s, str) for s in sample):
            return "words"
        if all(_is_int(s) for s in sample):
            return "token ids"
        return None
    if isinstance(sample, np.ndarray):
        return None if sample.dtype.hasobject else "array"
    tensor_type = _torch_tensor_type()
    if tensor_type is not None and isinstance(sample, tensor_type):
        return "array"
    if isinstance(sample, Mapping):
        return "mapping"
    return None


def unsupported_message(name: str, sample: Any) -> str:
    """The one error message for a sample no digest is defined for.

    >>> unsupported_message("train[3]", {1, 2})
    'Expected `train[3]` to be text, words, token ids, an array or a mapping of those, but got set {1, 2}.'
    """
    shown = repr(sample)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return (
        f"Expected `{name}` to be text, words, token ids, an array or a mapping of those, "
        f"but got {type(sample).__name__} {shown}."
    )


def _array_bytes(sample: Any) -> tuple[str, tuple[int, ...], bytes]:
    if isinstance(sample, np.ndarray):
        array = np.ascontiguousarray(sample)
        return array.dtype.name, array.shape, array.tobytes()
    import torch  # already imported: the sample is a tensor

    tensor = sample.detach().cpu().contiguous()
    dtype = str(tensor.dtype).removeprefix("torch.")
    # Reinterpreting as bytes works for every dtype, bfloat16 included, which numpy cannot hold.
    raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
    return dtype, tuple(tensor.shape), raw


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, numbers.Number, np.generic))


def _feed(hasher: Any, sample: Any, name: str, *, in_mapping: bool = False) -> None:
    kind = sample_kind(sample)
    if kind is None and in_mapping and _is_scalar(sample):
        # Fields next to the content (a label, a score, an id) are plain scalars; their repr is their content.
        hasher.update(
            b"scalar\x00" + repr(sample.item() if isinstance(sample, np.generic) else sample).encode()
        )
        return
    if kind is None:
        raise TypeError(unsupported_message(name, sample))
    hasher.update(kind.encode() + b"\x00")
    if kind == "text":
        hasher.update(normalize_text(sample).encode("utf-8", "surrogatepass"))
    elif kind == "words":
        hasher.update("\x1f".join(normalize_text(w) for w in sample).encode("utf-8", "surrogatepass"))
    elif kind == "token ids":
        hasher.update(",".join(str(int(t)) for t in sample).encode())
    elif kind == "array":
        dtype, shape, raw = _array_bytes(sample)
        hasher.update(f"{dtype}{shape}".encode() + b"\x00" + raw)
    elif kind == "mapping":
        keys = sorted(sample, key=str)
        for key in keys:
            hasher.update(b"\x1e" + str(key).encode() + b"\x1d")
            _feed(hasher, sample[key], f"{name}[{key!r}]", in_mapping=True)
    # EMPTY_SEQUENCE: the kind tag alone is the content.


def content_digest(sample: Any, *, name: str = "sample") -> bytes:
    """A 16-byte digest of the normalised content of ``sample``.

    Args:
        sample: Text, words, token ids, a numpy array, a torch tensor, or a mapping of those.
        name: How error messages call the sample, e.g. ``"val[12]"``.

    Raises:
        TypeError: If ``sample`` (or a field of it) is none of the supported kinds.

    >>> import numpy as np
    >>> content_digest(np.arange(3)) == content_digest(np.arange(3.0))   # dtype is part of the content
    False
    >>> len(content_digest({"text": "hi", "label": 1}))
    16
    """
    hasher = hashlib.blake2b(digest_size=DIGEST_SIZE)
    _feed(hasher, sample, name)
    return hasher.digest()


def content_tokens(sample: Any, kind: str) -> list[str]:
    """The tokens near-duplicate shingles are built from, or ``[]`` for kinds without tokens.

    Text is split on word characters after :func:`normalize_text`, so punctuation does not separate
    two near-copies; words are normalised one by one; token ids are used as they are.

    >>> content_tokens("Hello, World!  Again", "text")
    ['hello', 'world', 'again']
    >>> content_tokens([7, 8], "token ids")
    ['7', '8']
    """
    if kind == "text":
        return _WORD.findall(normalize_text(sample))
    if kind == "words":
        return [normalize_text(w) for w in sample]
    if kind == "token ids":
        return [str(int(t)) for t in sample]
    return []
