"""Task kinds: every rule that differs between the ways a batch asks for an answer, owned by
one object per kind, so the rest of labeling/ (answering, gold, peer agreement, exams,
aggregation, import checks) and the card asks the kind instead of testing `options`.

Two kinds exist, derived from a batch's settings (`BatchSettings.kind`, `kind_for`): `Choice`
(the batch has `options`; a tap picks one) and `FreeText` (no options; a typed reply). A kind
says:

- which settings it needs, and checks them when it is built (a `ValueError` says why not);
- how a worker's input (`Input`: a tap, a set of toggled taps, typed text, a voice note)
  becomes the value stored in `answers.value` (`value`), or None when it is no answer;
- the stored encoding: always a string, as `answers.value` is TEXT on both engines, and
  canonical, so `gold(value(x)) == value(x)`: a choice is the option's text, a multi-select
  a JSON list of option names, a scale a decimal number;
- how two values compare (`key`, `agree`): gold checks, peer agreement and votes use it;
- how a gold answer written in a batch file (or a /gold command) is read (`gold`);
- how its answers are aggregated (`aggregation`, plain data that labeling.aggregation
  dispatches on) and how a guess would fare (`outcomes`, for the "guessing" hypothesis);
- what its card shows and collects (`card`): button rows as (label, payload) pairs, a hint,
  how the worker replies, and what content the item is shown as.

Nothing here knows Telegram or SQL. What a new kind must add outside labeling/:

- a way to name it: a `kind` setting (and its own settings, such as scale bounds) in
  BatchSettings, stored in the batch's settings JSON (no migration); storage's task and
  assignment reads (storage/tasks.py, storage/exams.py) then carry the kind with `options`,
  since the answer path builds `AssignmentState` and `Task` from `batches.options` alone;
- in handlers/: rendering its `CardSpec` (a draft card that keeps the toggled taps and a
  submit button for multi-select; `Reply.VOICE` needs a voice message handler that builds
  `Input(voice=...)`); the callback codec already carries any payload below 1000;
- a migration only for new media on items: audio items need `items.media_type` and
  `items.media_ref` (or `audio`, `audio_file_id` like `image`, `image_file_id`), a pair needs
  the second content (`items.text_b`, `items.image_b`); a model's label to check can stay in
  the item's metadata until it needs indexing.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

MAX_FREE_TEXT = 1000
FREE_TEXT_HINT = "Reply with your answer in a message."
MAX_OPTIONS = 20
MAX_OPTION = 64
# Buttons with labels up to this long go two to a row; longer ones get a row each.
SHORT_LABEL = 14


def normalize_answer(value: str) -> str:
    """Free-text answers compare equal when they differ only in case and white space."""
    return " ".join(value.split()).casefold()


@dataclass(frozen=True, slots=True)
class Voice:
    """A voice note a worker sent: Telegram's file id and its length in seconds."""

    file_id: str
    duration: int


@dataclass(frozen=True, slots=True)
class Input:
    """What a worker did on a card, not yet trusted: a tapped button's payload (`choice`),
    the buttons toggled on a draft card and submitted at once (`choices`), a typed reply
    (`text`) or a voice note (`voice`)."""

    choice: int | None = None
    choices: frozenset[int] | None = None
    text: str | None = None
    voice: Voice | None = None


class Tally(StrEnum):
    """How a kind's answers become one label per item (labeling.aggregation dispatches on it)."""

    # Each answer names one class of a fixed list (choice, model check, pairwise): every
    # method applies, Dawid-Skene too; classes no one chose still count in the confidence.
    CATEGORICAL = "categorical"
    # Each answer is a class of its own after `key` (free text): votes only.
    OPEN = "open"
    # Each option is a yes/no vote of its own (multi-select): the value is a JSON list.
    PER_OPTION = "per_option"
    # Numbers (scales): the median or the mean; the value is a decimal number.
    NUMERIC = "numeric"
    # Kept and exported, not aggregated (voice answers).
    NONE = "none"


VOTES = ("majority_vote", "weighted_vote", "one_coin")
CATEGORICAL_METHODS = (*VOTES, "dawid_skene")
NUMERIC_METHODS = ("median", "mean")


@dataclass(frozen=True, slots=True)
class Aggregation:
    """What labeling.aggregation needs to know of a kind: the shape of its tally, its
    classes in order (ties go to the first; None: the answers make the classes), the methods
    that apply, and for numbers how far apart two answers may be and still agree."""

    tally: Tally
    classes: tuple[str, ...] | None
    methods: tuple[str, ...]
    tolerance: float = 0.0


class Reply(StrEnum):
    """How a worker answers on a card."""

    TAP = "tap"  # one tap on a button submits
    DRAFT = "draft"  # taps toggle buttons; the submit button sends the set
    TEXT = "text"  # a typed message
    VOICE = "voice"  # a voice note


class Content(StrEnum):
    """What the card shows of the item."""

    ITEM = "item"  # the item's text and/or image (audio, once items carry it)
    PAIR = "pair"  # two contents, A and B, to compare
    MODEL_LABEL = "model_label"  # the item and a model's label to check


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    payload: int  # what a tap on it submits as `Input.choice`


Rows = tuple[tuple[Button, ...], ...]


@dataclass(frozen=True, slots=True)
class CardSpec:
    """A card as plain data: handlers/ turns it into Telegram's buttons and text."""

    rows: Rows = ()
    hint: str | None = None  # under the question: how to answer, when buttons do not say
    reply: Reply = Reply.TAP
    content: Content = Content.ITEM

    @property
    def draft(self) -> bool:
        """Whether the card collects several taps before the answer is submitted."""
        return self.reply is Reply.DRAFT


def button_rows(labels: Sequence[str], per_row: int | None = None) -> Rows:
    """One button per label, payload its place; two to a row when all are short (a phone
    shows about 14 characters on half a row), else one."""
    if per_row is None:
        per_row = 2 if labels and max(len(label) for label in labels) <= SHORT_LABEL else 1
    return tuple(
        tuple(Button(label, i) for i, label in enumerate(labels[start : start + per_row], start))
        for start in range(0, len(labels), per_row)
    )


class TaskKind(ABC):
    """The contract every kind fulfils. Defaults fit kinds whose values are text compared
    after normalising case and white space."""

    name: str = ""
    # Agreement with other workers is a fair check of this kind's answers (labeling.regrade
    # compares workers only then): typed answers differ in wording without being wrong.
    peer_checked: bool = True
    # An exam can ask it: a worker's answer is right or wrong at a glance, and the right one
    # can be shown back.
    examinable: bool = True
    # A gold answer the kind refuses, and what it would take, in a coordinator's words.
    not_gold: str = "is not a valid answer"

    @abstractmethod
    def value(self, given: Input) -> str | None:
        """The stored encoding of the worker's input, or None when it is no answer."""

    def too_long(self, given: Input) -> bool:
        """Input refused for its length alone: the worker is told the limit, not that the
        answer is invalid."""
        return False

    def key(self, value: str) -> str:
        """The class a stored value falls in: equal keys are the same answer in a vote."""
        return normalize_answer(value)

    def agree(self, value: str, other: str) -> bool:
        """Whether two stored values count as the same answer (a gold check, peers)."""
        return self.key(value) == self.key(other)

    @abstractmethod
    def gold(self, text: str) -> str | None:
        """The stored encoding of a gold answer as a coordinator writes it, or None when it
        is no valid answer of this kind."""

    @property
    @abstractmethod
    def expected(self) -> str:
        """What a valid answer is, for a coordinator ("one of: cat, dog")."""

    def shown(self, value: str) -> str:
        """A stored value as a person reads it (a right answer shown after a miss)."""
        return value

    @property
    @abstractmethod
    def aggregation(self) -> Aggregation: ...

    @property
    def outcomes(self) -> int | None:
        """Among how many answers a guess picks, each equally likely (the "guessing"
        hypothesis of labeling.gold); None when guessing cannot be put as a number."""
        return None

    @abstractmethod
    def card(self, selected: frozenset[int] = frozenset()) -> CardSpec:
        """The card's buttons and how it is answered (`selected`: a draft's toggled taps)."""


@dataclass(frozen=True, slots=True)
class FreeText(TaskKind):
    """A typed reply, stored trimmed; answers that differ only in case and spacing agree."""

    limit: int = MAX_FREE_TEXT
    name = "free_text"
    peer_checked = False
    examinable = False

    def value(self, given: Input) -> str | None:
        if given.text is None:
            return None
        text = given.text.strip()
        if not text or len(text) > self.limit:
            return None
        return text

    def too_long(self, given: Input) -> bool:
        return given.text is not None and len(given.text.strip()) > self.limit

    def gold(self, text: str) -> str | None:
        # Any text the batch file holds: a gold answer longer than a reply may be is the
        # coordinator's to see in the misses (the import has always taken it).
        return text if text.strip() else None

    @property
    def expected(self) -> str:
        return "a typed answer"

    @property
    def aggregation(self) -> Aggregation:
        return Aggregation(Tally.OPEN, None, VOTES)

    def card(self, selected: frozenset[int] = frozenset()) -> CardSpec:
        return CardSpec(hint=FREE_TEXT_HINT, reply=Reply.TEXT)


@dataclass(frozen=True, slots=True)
class Choice(TaskKind):
    """One option of a fixed list, by a tap; the option's text is stored."""

    options: tuple[str, ...] = field(default=())
    name = "choice"
    not_gold = "is not one of the options"

    def __post_init__(self) -> None:
        check_options(self.options)

    def value(self, given: Input) -> str | None:
        option = given.choice
        if option is None or not 0 <= option < len(self.options):
            return None
        return self.options[option]

    def gold(self, text: str) -> str | None:
        """The option a gold answer names, ignoring case and spacing."""
        wanted = normalize_answer(text)
        return next((o for o in self.options if normalize_answer(o) == wanted), None)

    @property
    def expected(self) -> str:
        return f"one of: {', '.join(self.options)}"

    @property
    def aggregation(self) -> Aggregation:
        return Aggregation(Tally.CATEGORICAL, self.options, CATEGORICAL_METHODS)

    @property
    def outcomes(self) -> int:
        return len(self.options)

    def card(self, selected: frozenset[int] = frozenset()) -> CardSpec:
        return CardSpec(button_rows(self.options))


def check_options(options: Sequence[str]) -> None:
    """Raises ValueError when `options` cannot be a choice's: too few, too many, blank, too
    long, or two that a worker could not tell apart."""
    if len(options) < 2:
        raise ValueError("give at least two options, or none for free-text answers")
    if len(options) > MAX_OPTIONS:
        raise ValueError(f"at most {MAX_OPTIONS} options")
    for option in options:
        if not option or len(option) > MAX_OPTION:
            raise ValueError(f"each option must be 1 to {MAX_OPTION} characters")
    if len({normalize_answer(option) for option in options}) != len(options):
        raise ValueError("options must differ from each other")


TEXT = FreeText()


@lru_cache(maxsize=1024)
def kind_for(options: tuple[str, ...] | None) -> TaskKind:
    """The kind of a batch as today's settings imply it: a choice when it has options, else
    free text. Cached: the answer path asks on every tap."""
    return TEXT if options is None else Choice(options)


def number_text(number: float) -> str:
    """A number as stored and shown: no ".0" on whole numbers, no exponent for small ones."""
    if math.isfinite(number) and number == int(number):
        return str(int(number))
    return f"{number:.6g}"


def json_list(values: Sequence[str]) -> str:
    """A list of names as stored (multi-select): compact JSON, kept readable."""
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))
