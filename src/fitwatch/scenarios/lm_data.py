"""The language-model zoo's data: Python's standard-library docstrings as a supervised fine-tuning set.

Every machine with Python has the same English text: the docstrings of the standard library. The corpus
is read from the source files with :mod:`ast` (nothing is imported, so no module runs), in sorted path
order, one *document* per documented function or method: its dotted name, its arguments and the first
paragraph of its docstring. Test packages, IDLE, tkinter and the demos are left out; dunder methods and
docstrings under :data:`MIN_WORDS` words are dropped (``"Return self==value."`` says nothing), and
documents whose docstring is already in the corpus (case and spacing aside) are dropped, so that no two
documents differ by their name only.

A :class:`WordTokenizer` (lower-cased words and punctuation, the :data:`VOCAB_SIZE` most frequent over the
corpus, built in a fraction of a second, nothing downloaded; one for the whole corpus, as a pretrained
tokenizer would be) turns each document into a prompt/completion pair in an instruction template
(:data:`PROMPT_TEMPLATE`)::

    <bos> below is a python function . write its docstring . function : json . decoder . jsondecoder
    . decode docstring : <sep> return the python representation of ` ` s ` ` ( a ` ` str ` ` ... <eos>

The documents are then deduplicated once more as token sequences, exactly and nearly (Jaccard >= 0.8 on
5-token shingles, with :func:`fitwatch.data.find_duplicates`, the test FitWatch applies across splits), so
that a healthy split has no duplicate to report: what a careful engineer does before splitting.

Items are ``{"input_ids", "attention_mask", "labels"}`` tensors of :data:`MAX_LENGTH` tokens (right
padding), in the Hugging Face convention: labels not shifted, -100 on the positions that are not trained:
the padding, and the prompt when the completion-only mask is on (as TRL's completion-only collators do).
"""

from __future__ import annotations

import ast
import functools
import gc
import random
import re
import sysconfig
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from fitwatch import _validation as v

__all__ = [
    "MAX_LENGTH",
    "PROMPT_TEMPLATE",
    "VOCAB_SIZE",
    "Document",
    "LMData",
    "SFTDataset",
    "WordTokenizer",
    "encode_example",
    "load_corpus",
    "load_lm_data",
    "sft_corpus",
]

#: Tokens per item (prompt, completion and padding).
MAX_LENGTH = 48
#: Words in the tokenizer's vocabulary, special tokens included.
VOCAB_SIZE = 2048
#: Docstrings with fewer words are dropped.
MIN_WORDS = 6
#: The prompt of every item; ``{name}`` is the function's dotted name.
PROMPT_TEMPLATE = "below is a python function . write its docstring . function : {name} docstring :"
#: Top-level standard-library packages left out: tests, GUI code, demos and bundled wheels.
_SKIPPED_TOP = frozenset(
    {"site-packages", "test", "idlelib", "lib2to3", "tkinter", "turtledemo", "ensurepip"}
)
_SKIPPED_DIRS = frozenset({"test", "tests", "idle_test"})
_WORD = re.compile(r"[a-z0-9_]+|[^\sa-z0-9_]")
SPECIALS = ("<pad>", "<unk>", "<bos>", "<sep>", "<eos>")
PAD, UNK, BOS, SEP, EOS = range(len(SPECIALS))


@dataclass(frozen=True)
class Document:
    """One documented function: ``name`` (module and qualified name) and its docstring's first paragraph
    on one line."""

    name: str
    docstring: str

    @property
    def prompt(self) -> str:
        return PROMPT_TEMPLATE.format(name=self.name)


def _stdlib_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in _SKIPPED_TOP or any(p in _SKIPPED_DIRS for p in parts[:-1]):
            continue
        files.append(path)
    return files


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _documents_of(tree: ast.AST, module: str) -> list[Document]:
    out: list[Document] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(child)
                if doc and not (child.name.startswith("__") and child.name.endswith("__")):
                    paragraph = " ".join(doc.split("\n\n")[0].split())
                    out.append(Document(f"{module}.{prefix}{child.name}", paragraph))

    visit(tree, "")
    return out


@functools.lru_cache(maxsize=2)
def load_corpus(root: str | None = None) -> tuple[Document, ...]:
    """Every documented function of the standard library at ``root`` (default: this Python's), in path
    order, deduplicated by docstring. Parsed with :mod:`ast`; nothing is imported.

    >>> docs = load_corpus()
    >>> len(docs) > 3000, all(len(d.docstring.split()) >= MIN_WORDS for d in docs)
    (True, True)
    """
    base = Path(root) if root is not None else Path(sysconfig.get_paths()["stdlib"])
    seen: set[str] = set()
    docs: list[Document] = []
    for path in _stdlib_files(base):
        # Syntax trees are many small objects freed at once: the cyclic collector only slows parsing down.
        collecting = gc.isenabled()
        gc.disable()
        try:
            found = _documents_of(ast.parse(path.read_text(encoding="utf-8")), _module_name(base, path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        finally:
            if collecting:
                gc.enable()
        for doc in found:
            key = " ".join(_WORD.findall(doc.docstring.lower()))
            if len(doc.docstring.split()) < MIN_WORDS or key in seen:
                continue
            seen.add(key)
            docs.append(doc)
    return tuple(docs)


class WordTokenizer:
    """Lower-cased words and single punctuation marks; the ``size`` most frequent over ``texts`` (ties by
    the word), after :data:`SPECIALS`; anything else is ``<unk>``.

    >>> tok = WordTokenizer(["Return the value.", "return a value"], size=8)
    >>> tok.encode("Return the value!")
    [5, 1, 6, 1]
    >>> tok.decode(tok.encode("return value"))
    'return value'
    """

    def __init__(self, texts: Sequence[str], *, size: int = VOCAB_SIZE) -> None:
        v.check_positive_int("size", size)
        counts = Counter(w for t in texts for w in _WORD.findall(t.lower()))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        words = [w for w, _ in ranked[: max(0, size - len(SPECIALS))]]
        self.vocab: list[str] = [*SPECIALS, *words]
        self.ids: dict[str, int] = {w: i for i, w in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(w, UNK) for w in _WORD.findall(text.lower())]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.vocab[i] for i in ids if i != PAD)


def encode_example(
    tokenizer: WordTokenizer,
    doc: Document,
    *,
    max_length: int = MAX_LENGTH,
    completion_only: bool = True,
) -> dict[str, Tensor]:
    """One padded item: ``<bos> prompt <sep> completion <eos>``, cut to ``max_length`` (the prompt keeps
    at most half of it, so every item has a completion). Labels are the input ids (not shifted), -100 on
    the padding and, with ``completion_only``, on ``<bos>``, the prompt and ``<sep>``.

    >>> tok = WordTokenizer([PROMPT_TEMPLATE, "adds two numbers and returns the sum"])
    >>> item = encode_example(tok, Document("m.add", "Adds two numbers and returns the sum."))
    >>> n_prompt = 1 + len(tok.encode(Document("m.add", "").prompt)) + 1
    >>> (item["labels"][:n_prompt] == -100).all().item(), item["labels"][n_prompt].item() == tok.ids["adds"]
    (True, True)
    """
    prompt = [BOS, *tokenizer.encode(doc.prompt)][: max_length // 2] + [SEP]
    completion = [*tokenizer.encode(doc.docstring), EOS][: max_length - len(prompt)]
    ids = prompt + completion
    pad = max_length - len(ids)
    labels = ([-100] * len(prompt) if completion_only else list(prompt)) + completion
    return {
        "input_ids": torch.tensor(ids + [PAD] * pad),
        "attention_mask": torch.tensor([1] * len(ids) + [0] * pad),
        "labels": torch.tensor(labels + [-100] * pad),
    }


@functools.lru_cache(maxsize=2)
def sft_corpus(max_length: int = MAX_LENGTH) -> tuple[WordTokenizer, tuple[Document, ...]]:
    """The tokenizer (over the whole corpus) and the documents left once their encoded items are
    deduplicated, exactly and nearly, in corpus order (the later document of a pair goes)."""
    from fitwatch.data.duplicates import find_duplicates

    docs = load_corpus()
    tokenizer = WordTokenizer([d.prompt + " " + d.docstring for d in docs])
    tokens = []
    for doc in docs:
        item = encode_example(tokenizer, doc, max_length=max_length)
        tokens.append(item["input_ids"][item["attention_mask"].bool()].tolist())
    report = find_duplicates(tokens, tokens, near=True)
    dropped = {max(t, v) for t, v in report.exact if t != v}
    dropped |= {max(t, v) for t, v, _ in report.near if t != v}
    return tokenizer, tuple(d for i, d in enumerate(docs) if i not in dropped)


class SFTDataset(Dataset):
    """Encoded items of a list of documents (encoded once, up front)."""

    def __init__(self, items: Sequence[Mapping[str, Tensor]]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Mapping[str, Tensor]:
        return self.items[index]


@dataclass(frozen=True)
class LMData:
    """The splits of one LM scenario run.

    Attributes:
        train: Training items.
        val: Validation items.
        tokenizer: The tokenizer (built on the whole corpus).
        train_docs: The training documents, in item order.
        val_docs: The validation documents, in item order.
        duplicated: Validation documents copied into the training set (the duplicate fault).
        rest_docs: The corpus's other documents (in neither split): what a base model is pretrained on.
    """

    train: SFTDataset
    val: SFTDataset
    tokenizer: WordTokenizer
    train_docs: tuple[Document, ...]
    val_docs: tuple[Document, ...]
    duplicated: int = 0
    rest_docs: tuple[Document, ...] = ()


def load_lm_data(
    *,
    seed: int,
    train_size: int,
    val_size: int,
    completion_only: bool = True,
    duplicate_fraction: float = 0.0,
    max_length: int = MAX_LENGTH,
) -> LMData:
    """Split the deduplicated corpus (:func:`sft_corpus`) at random (``seed``) into ``val_size`` validation
    and ``train_size`` training documents and encode them.

    Args:
        seed: Seeds the split and the choice of duplicated documents.
        train_size: Training documents (before duplicates are added).
        val_size: Validation documents.
        completion_only: Labels on the completion only (the prompt at -100); ``False`` trains the prompt too.
        duplicate_fraction: Share of the validation documents also put in the training set (each once, at a
            random place): documents copied between splits, as when two dumps of the same source are
            concatenated before splitting.
        max_length: Tokens per item.

    Raises:
        ValueError: If the corpus has fewer than ``train_size + val_size`` documents or an argument is out
            of range.
    """
    v.check_positive_int("train_size", train_size)
    v.check_positive_int("val_size", val_size)
    v.check_fraction("duplicate_fraction", duplicate_fraction)
    tokenizer, documents = sft_corpus(max_length)
    corpus = list(documents)
    if train_size + val_size > len(corpus):
        raise ValueError(
            f"Expected `train_size + val_size` to be at most {len(corpus)} (the corpus), "
            f"but got {train_size + val_size}."
        )
    rng = random.Random(seed)
    rng.shuffle(corpus)
    val_docs = corpus[:val_size]
    train_docs = corpus[val_size : val_size + train_size]
    copied = rng.sample(val_docs, round(duplicate_fraction * val_size)) if duplicate_fraction else []
    for doc in copied:
        train_docs.insert(rng.randrange(len(train_docs) + 1), doc)

    def encode(docs: Sequence[Document]) -> SFTDataset:
        # Both splits go through the same encoding, as one collator serves both in real code.
        return SFTDataset(
            [
                encode_example(tokenizer, d, max_length=max_length, completion_only=completion_only)
                for d in docs
            ]
        )

    return LMData(
        train=encode(train_docs),
        val=encode(val_docs),
        tokenizer=tokenizer,
        train_docs=tuple(train_docs),
        val_docs=tuple(val_docs),
        duplicated=len(copied),
        rest_docs=tuple(corpus[val_size + train_size :]),
    )
