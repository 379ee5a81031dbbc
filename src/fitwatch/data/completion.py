"""Prompt tokens trained by mistake: a completion-only mask that is missing.

In supervised fine-tuning of a language model, each item is a prompt (an instruction template, a system
prompt, the user's turn) followed by the completion the model should learn to write. The usual recipe
trains on the completion only: the prompt positions get the label -100 (TRL's completion-only collators,
``assistant_only_loss``). When the collator simply copies ``input_ids`` into ``labels``, every prompt
token is trained too: nothing fails, the loss falls fast (the template is easy to predict) and the
validation perplexity looks better than the answers deserve, while the model learns to write prompts.

:func:`check_completion_mask` spots it on a sample of training items, as plain lists of token ids: every
non-padding position of (nearly) every item is a label equal to its input id, *and* the items share a long
common token prefix (a template: :data:`MIN_PREFIX` tokens or more, shared by :data:`MIN_SHARE` of the
items). Plain language-model pretraining also labels every token, but its documents do not share a long
opening; a corpus whose documents all begin with the same long header is reported too, since that header
is trained as often as there are documents.

>>> template = list(range(100, 110))                      # 10 tokens of instruction template, then 7
>>> items = [template + [7, i, 8 + i] for i in range(20)]
>>> report = check_completion_mask(items, [list(x) for x in items])
>>> report.prefix_length, report.trained_fraction, report.ok
(11, 1.0, False)
>>> masked = [[-100] * 10 + x[10:] for x in items]       # the prompt at -100: the usual recipe
>>> check_completion_mask(items, masked).ok
True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fitwatch import _validation as v
from fitwatch.findings import Finding, Severity

__all__ = ["MIN_PREFIX", "MIN_SHARE", "CompletionMaskReport", "check_completion_mask", "shared_prefix"]

#: Tokens a shared opening must have to count as a prompt template. The shortest instruction templates
#: ("### Instruction:\n", a chat template's role header) are 5-10 tokens; 8 keeps short common openings
#: of ordinary text (an article, a "def") out.
MIN_PREFIX = 8
#: Share of the items that must train every token and share the opening.
MIN_SHARE = 0.8
#: Prefixes are searched up to this many tokens.
MAX_PREFIX = 256
#: Fewer sampled items than this say nothing.
MIN_ITEMS = 5


def shared_prefix(
    sequences: Sequence[Sequence[int]], min_share: float = MIN_SHARE
) -> tuple[list[int], float]:
    """The longest token prefix that at least ``min_share`` of ``sequences`` begin with, and that share.

    ``min_share`` above one half makes the answer unique: a prefix held by more than half of the sequences
    extends the longest such shorter prefix, so the search grows one token at a time.

    >>> shared_prefix([[1, 2, 3, 4], [1, 2, 3, 9], [1, 2, 5], [7]], min_share=0.75)
    ([1, 2], 0.75)
    >>> shared_prefix([[1], [2]], min_share=0.75)
    ([], 1.0)

    Raises:
        ValueError: If ``min_share`` is not in (0.5, 1].
    """
    if not 0.5 < min_share <= 1.0:
        raise ValueError(f"Expected `min_share` to be in (0.5, 1], but got {min_share!r}.")
    n = len(sequences)
    group = list(range(n))
    prefix: list[int] = []
    share = 1.0
    while n and len(prefix) < MAX_PREFIX:
        position = len(prefix)
        counts = Counter(sequences[i][position] for i in group if len(sequences[i]) > position)
        if not counts:
            break
        token, count = max(counts.items(), key=lambda kv: (kv[1], -kv[0]))
        if count < min_share * n:
            break
        prefix.append(token)
        share = count / n
        group = [i for i in group if len(sequences[i]) > position and sequences[i][position] == token]
    return prefix, share


def _unpadded(
    ids: Sequence[int], labels: Sequence[int], mask: Sequence[int] | None, ignore_index: int
) -> tuple[list[int], list[int]]:
    """The non-padding positions: the attention mask's, or without one, all but a leading or trailing
    run of ignored labels (right or left padding)."""
    if mask is not None:
        keep = [j for j, m in enumerate(mask) if m]
        return [int(ids[j]) for j in keep], [int(labels[j]) for j in keep]
    start, end = 0, len(labels)
    while start < end and labels[start] == ignore_index:
        start += 1
    while end > start and labels[end - 1] == ignore_index:
        end -= 1
    return [int(x) for x in ids[start:end]], [int(x) for x in labels[start:end]]


@dataclass(frozen=True)
class CompletionMaskReport:
    """What :func:`check_completion_mask` found.

    Attributes:
        n_items: Items checked.
        n_fully_trained: Items whose every non-padding position is a label equal to its input id.
        prefix: The longest opening shared by ``min_share`` of the items (token ids).
        prefix_share: The share of the items that begin with it.
        min_prefix: Tokens an opening needs to count as a template.
        min_share: The share required of both.
        prefix_text: ``prefix`` decoded, when a decoder was given.
    """

    n_items: int
    n_fully_trained: int
    prefix: tuple[int, ...]
    prefix_share: float
    min_prefix: int = MIN_PREFIX
    min_share: float = MIN_SHARE
    prefix_text: str | None = None

    @property
    def trained_fraction(self) -> float:
        """Share of the items that train every token."""
        return self.n_fully_trained / self.n_items if self.n_items else 0.0

    @property
    def prefix_length(self) -> int:
        return len(self.prefix)

    @property
    def ok(self) -> bool:
        """No sign of a trained prompt (``True`` too when there are fewer than :data:`MIN_ITEMS` items)."""
        return not (
            self.n_items >= MIN_ITEMS
            and self.trained_fraction >= self.min_share
            and self.prefix_length >= self.min_prefix
        )

    def __str__(self) -> str:
        return (
            f"{self.n_fully_trained} of {self.n_items} items train every token; the longest opening "
            f"shared by {self.min_share:.0%} of them is {self.prefix_length} tokens "
            f"({self.prefix_share:.0%} of the items)"
        )

    def to_finding(self, step: int = 0, epoch: int | None = None) -> Finding | None:
        """A ``FW-LM-PROMPT-TRAINED`` finding (warning), or ``None`` when :attr:`ok`."""
        if self.ok:
            return None
        shown = f' ("{_shorten(self.prefix_text)}")' if self.prefix_text else ""
        message = (
            f"{self.n_fully_trained} of {self.n_items} training items ({self.trained_fraction:.0%}) have a "
            "label on "
            f"every token, equal to the input, and {self.prefix_share:.0%} of them open with the same "
            f"{self.prefix_length} tokens{shown}: the prompt template is trained along with the completion. "
            "The training loss and perplexity mix the template, which the model learns to copy within a few "
            "steps, with the answers, so they look better than the completions deserve"
        )
        evidence = {
            "n_items": self.n_items,
            "n_fully_trained": self.n_fully_trained,
            "trained_fraction": self.trained_fraction,
            "prefix_length": self.prefix_length,
            "prefix_share": self.prefix_share,
            "prefix_ids": list(self.prefix[:32]),
            "min_prefix": self.min_prefix,
            "min_share": self.min_share,
        }
        if self.prefix_text is not None:
            evidence["prefix_text"] = self.prefix_text
        return Finding(
            code="FW-LM-PROMPT-TRAINED",
            severity=Severity.WARNING,
            step=step,
            epoch=epoch,
            message=message,
            evidence=evidence,
        )


def _shorten(text: str | None, limit: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_completion_mask(
    input_ids: Sequence[Sequence[int]],
    labels: Sequence[Sequence[int]],
    attention_mask: Sequence[Sequence[int]] | None = None,
    *,
    ignore_index: int = -100,
    min_prefix: int = MIN_PREFIX,
    min_share: float = MIN_SHARE,
    decode: Callable[[list[int]], str] | None = None,
) -> CompletionMaskReport:
    """Whether the sampled language-model items train their prompt (see the module's docstring).

    Args:
        input_ids: Token ids of each item.
        labels: Labels of each item, in the Hugging Face convention (same length as its ``input_ids``, not
            shifted, ``ignore_index`` where not trained).
        attention_mask: Each item's attention mask (1 on real tokens); without it, padding is a leading or
            trailing run of ``ignore_index`` labels.
        ignore_index: The label of positions not trained.
        min_prefix: Tokens a shared opening needs to count as a template.
        min_share: Share of the items that must train every token and share the opening, in (0.5, 1].
        decode: Turns the shared opening's ids into text for the message (a tokenizer's ``decode``).

    Raises:
        ValueError: If the lists have different lengths, an item's labels and ids differ in length, or a
            setting is out of range.

    >>> ids = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 40 + i, 0, 0] for i in range(6)]
    >>> mask = [[1] * 10 + [0, 0] for _ in ids]
    >>> report = check_completion_mask(ids, [x[:10] + [-100, -100] for x in ids], mask)
    >>> report.n_fully_trained, report.prefix_length, report.to_finding().code
    (6, 9, 'FW-LM-PROMPT-TRAINED')
    """
    v.check_positive_int("min_prefix", min_prefix)
    if not 0.5 < min_share <= 1.0:
        raise ValueError(f"Expected `min_share` to be in (0.5, 1], but got {min_share!r}.")
    if len(labels) != len(input_ids) or (
        attention_mask is not None and len(attention_mask) != len(input_ids)
    ):
        raise ValueError(
            "Expected `input_ids`, `labels` and `attention_mask` to hold the same number of items, but got "
            f"{len(input_ids)}, {len(labels)} and {'-' if attention_mask is None else len(attention_mask)}."
        )
    sequences, trained = [], 0
    for i, (ids, labs) in enumerate(zip(input_ids, labels)):
        mask = None if attention_mask is None else attention_mask[i]
        if len(labs) != len(ids) or (mask is not None and len(mask) != len(ids)):
            raise ValueError(
                f"Expected item {i}'s labels and attention mask to be as long as its input_ids ({len(ids)}), "
                f"but got {len(labs)} and {'-' if mask is None else len(mask)}."
            )
        kept_ids, kept_labels = _unpadded(ids, labs, mask, ignore_index)
        sequences.append(kept_ids)
        if kept_ids and kept_labels == kept_ids:
            trained += 1
    prefix, share = shared_prefix(sequences, min_share)
    return CompletionMaskReport(
        n_items=len(sequences),
        n_fully_trained=trained,
        prefix=tuple(prefix),
        prefix_share=share,
        min_prefix=min_prefix,
        min_share=min_share,
        prefix_text=decode(list(prefix)) if decode is not None and prefix else None,
    )
