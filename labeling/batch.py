"""A batch's settings and items as coordinators give them, validated before anything is stored."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from labeling.kinds import TaskKind, check_options, kind_for

# Re-exported: it was defined here before task kinds owned it.
from labeling.kinds import normalize_answer as normalize_answer

# Telegram allows 4096 characters in a message and 1024 in a photo caption; a task card adds the
# question, the batch name and a status line, so items are capped below those limits, and the
# card as a whole is checked at import (`card_problem`).
MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
# Room kept on every card for the line above the item (a suspension notice names the batch) and
# the title's decoration ("Training 10 of 10 · "), counted as the phone shows them.
CARD_HEADROOM = 320
# Under the instructions on a batch's first task card: how to read them again later.
REREAD_HINT = "(/instructions shows them again)"
MAX_QUESTION = 500
MAX_TEXT = 3000
MAX_CAPTION_TEXT = 400

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Instructions = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Question = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUESTION)
]


def split_options(value: str) -> list[str]:
    """Options are written `a, b, c`; a `|` separator allows commas inside options."""
    separator = "|" if "|" in value else ","
    return [part.strip() for part in value.split(separator)]


class BatchSettings(BaseModel):
    """How a batch is asked and paid; from CLI flags or a document's caption."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    question: Question
    options: tuple[str, ...] | None = None
    overlap: int = Field(default=3, ge=1, le=100)
    gold_ratio: float = Field(default=0.1, ge=0.0, le=0.5)
    reward: float = Field(default=0.0, ge=0.0, le=1000.0)
    # The coordinator's estimate of a task's time, for the expected hourly rate until real
    # answers show the median.
    seconds_per_task: float = Field(default=15.0, gt=0.0, le=3600.0)
    instructions: Instructions | None = None

    # How answers become labels (see labeling.aggregation). The one-coin vote is the default:
    # one accuracy per worker, learnt from all their answers, down-weights a careless worker
    # gold has not caught yet, and with one number per worker it cannot over-fit the way
    # Dawid-Skene's confusion matrix per worker does when workers answer a dozen items in all.
    aggregation: Literal["majority_vote", "weighted_vote", "one_coin", "dawid_skene"] = "one_coin"
    # Dynamic overlap: an item gets `overlap` answers, then more (up to `max_overlap`) while its
    # label's confidence stays below `confidence_target`.
    confidence_target: float | None = Field(default=None, gt=0.5, lt=1.0)
    max_overlap: int | None = Field(default=None, ge=1, le=100)

    # Trust. Gold comes early: the first `min_gold` gold items within `2 x min_gold` tasks on
    # average, then `gold_ratio` of the tasks. A worker is suspended only when their gold record
    # is strong evidence of an accuracy below `min_accuracy` (0 turns the rule off): a worker
    # `MARGIN` (10 points) above it is suspended with probability at most `suspend_risk`, ever.
    min_gold: int = Field(default=3, ge=1, le=100)
    min_accuracy: float = Field(default=0.6, ge=0.0, le=1.0)
    suspend_risk: float = Field(default=0.02, ge=0.001, le=0.2)
    # When a worker already judged on `min_gold` gold answers has seen every gold item: keep
    # working without checks, or stop. A worker not yet judged is never let through unchecked.
    gold_exhausted: Literal["continue", "stop"] = "continue"

    # Training: an exam of `exam_size` gold items (the batch's first ones) before real work;
    # `exam_pass` is the share to get right; a failed worker may retry after
    # `exam_retry_minutes` (never, when unset). `exam_pool` keeps that many of the first gold
    # items for training (unset: `exam_size`), so that a retry can ask other ones; they are
    # shown with their answers, so they never serve as hidden gold.
    exam_size: int = Field(default=0, ge=0, le=50)
    exam_pass: float = Field(default=0.8, gt=0.0, le=1.0)
    exam_retry_minutes: float | None = Field(default=None, ge=0.0, le=7 * 24 * 60)
    exam_pool: int | None = Field(default=None, ge=1, le=500)

    # Fast answers: faster than `fast_ratio` times the batch's median time are flagged; a worker
    # with at least `fast_suspend` flagged answers, half or more of theirs, is suspended
    # (unset: flag only).
    fast_ratio: float = Field(default=0.25, ge=0.0, lt=1.0)
    fast_suspend: int | None = Field(default=5, ge=1, le=1000)

    @field_validator("aggregation")
    @classmethod
    def _kind_allows(cls, value: str, info: ValidationInfo) -> str:
        if "options" not in info.data:
            return value  # the options were refused: that is the error to report
        kind = kind_for(info.data["options"])
        if value not in kind.aggregation.methods:
            if value == "dawid_skene":
                raise ValueError("Dawid-Skene needs options; free-text answers are voted on")
            raise ValueError(f"{kind.name} answers cannot be aggregated by {value}")
        return value

    @model_validator(mode="after")
    def _check_overlap(self) -> BatchSettings:
        if self.max_overlap is not None and self.max_overlap < self.overlap:
            raise ValueError("max_overlap must be at least overlap")
        if self.confidence_target is not None and self.max_overlap is None:
            raise ValueError("a confidence_target needs a max_overlap to grow towards")
        if self.exam_size and not self.kind.examinable:
            raise ValueError("an exam needs options to choose from")
        if self.exam_pool is not None and self.exam_pool < self.exam_size:
            raise ValueError("exam_pool must be at least exam_size")
        if self.exam_pool is not None and not self.exam_size:
            raise ValueError("exam_pool needs an exam_size")
        return self

    @property
    def kind(self) -> TaskKind:
        """How the batch asks and what its answers are (labeling.kinds), implied by the
        settings: a choice when there are options, else free text."""
        return kind_for(self.options)

    @property
    def option_count(self) -> int | None:
        """Among how many answers a guess picks (the options); None for typed answers."""
        return self.kind.outcomes

    @property
    def training_gold(self) -> int:
        """How many of the batch's first gold items are kept for training."""
        return max(self.exam_size, self.exam_pool or 0)

    @property
    def dynamic_overlap(self) -> bool:
        return self.confidence_target is not None and (self.max_overlap or 0) > self.overlap

    @field_validator("options", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return split_options(value) if value.strip() else None
        return value

    @field_validator("options")
    @classmethod
    def _check_options(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        options = tuple(option.strip() for option in value)
        check_options(options)
        return options

    def canonical_option(self, answer: str) -> str | None:
        """The option an answer names, ignoring case and spacing; None if it names none."""
        assert self.options is not None
        return self.kind.gold(answer)


_URL = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)


class ItemRow(BaseModel):
    """One row of a batch file. Columns other than the known ones are kept as metadata."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    line: int
    external_id: Annotated[str, StringConstraints(max_length=200)] | None = None
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT)] | None = None
    image: Annotated[str, StringConstraints(max_length=2000)] | None = None
    gold: Annotated[str, StringConstraints(max_length=2000)] | None = None
    explanation: Annotated[str, StringConstraints(max_length=2000)] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _needs_content(self) -> ItemRow:
        if not self.text and not self.image:
            raise ValueError("needs a text or an image")
        if self.image and self.text and len(self.text) > MAX_CAPTION_TEXT:
            raise ValueError(
                f"text shown under an image must be at most {MAX_CAPTION_TEXT} characters"
            )
        return self

    @field_validator("image")
    @classmethod
    def _lower_scheme(cls, value: str | None) -> str | None:
        # "HTTPS://..." is a URL too; one spelling downstream means no check can miss it.
        if value and _URL.match(value):
            scheme, rest = value.split(":", 1)
            return f"{scheme.lower()}:{rest}"
        return value

    @property
    def image_is_url(self) -> bool:
        return bool(self.image and _URL.match(self.image))


def card_problem(settings: BatchSettings, item: ItemRow) -> str | None:
    """Why the item's card could never be shown (too long for Telegram), or None. Counts what
    the phone shows: every part of the card, with the instructions, which the first card of a
    batch carries, and the room kept for the status line."""
    parts = [settings.name, settings.instructions or "", item.text or "", settings.question]
    hint = settings.kind.card().hint
    if hint:
        parts.append(hint)
    if settings.instructions:
        parts.append(REREAD_HINT)
    length = sum(len(part) + 2 for part in parts) + CARD_HEADROOM
    limit, where = (CAPTION_LIMIT, "under a picture") if item.image else (MESSAGE_LIMIT, "")
    if length <= limit:
        return None
    where = f" {where}" if where else ""
    return (
        f"its card would be {length} characters with the name, question and instructions,"
        f" over the {limit} Telegram shows{where}: shorten them or the text"
    )
