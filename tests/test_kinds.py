"""Task kinds: the two that exist (choice, free text) and the ones that will follow, defined
here through the same contract to show that they fit it: multi-select, rating scale, pairwise
comparison, checking a model's label, and voice answers."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.callbacks import AnswerTap, decode, encode
from labeling.aggregation import AnswerSet, aggregate, label_answers
from labeling.batch import BatchSettings, split_options
from labeling.gold import peer_checks
from labeling.kinds import (
    CATEGORICAL_METHODS,
    MAX_FREE_TEXT,
    NUMERIC_METHODS,
    TEXT,
    Aggregation,
    Button,
    CardSpec,
    Choice,
    Content,
    FreeText,
    Input,
    Reply,
    Tally,
    TaskKind,
    Voice,
    button_rows,
    check_options,
    json_list,
    kind_for,
    normalize_answer,
)
from labeling.quality import is_correct

# The payload of the button that submits a multi-select draft: above any option's place.
SUBMIT = 100


@dataclass(frozen=True, slots=True)
class MultiSelect(TaskKind):
    """Choose all that apply: taps toggle options on a draft card, Done submits the set,
    stored as a JSON list of the chosen options in the options' order."""

    options: tuple[str, ...] = field(default=())
    name = "multi_select"
    not_gold = "does not name options only"

    def __post_init__(self) -> None:
        check_options(self.options)

    def value(self, given: Input) -> str | None:
        picked = given.choices
        if not picked or any(not 0 <= i < len(self.options) for i in picked):
            return None
        return json_list([o for i, o in enumerate(self.options) if i in picked])

    def key(self, value: str) -> str:
        return value  # canonical: the same set is the same string

    def gold(self, text: str) -> str | None:
        try:
            names = json.loads(text) if text.lstrip().startswith("[") else split_options(text)
        except ValueError:
            return None
        if not isinstance(names, list) or not names:
            return None
        wanted = {normalize_answer(str(name)) for name in names}
        known = {normalize_answer(o) for o in self.options}
        if not wanted <= known:
            return None
        return json_list([o for o in self.options if normalize_answer(o) in wanted])

    @property
    def expected(self) -> str:
        return f"one or more of: {', '.join(self.options)}"

    def shown(self, value: str) -> str:
        return ", ".join(json.loads(value))

    @property
    def aggregation(self) -> Aggregation:
        return Aggregation(Tally.PER_OPTION, self.options, CATEGORICAL_METHODS)

    @property
    def outcomes(self) -> int:
        return 2 ** len(self.options) - 1  # any set but the empty one

    def card(self, selected: frozenset[int] = frozenset()) -> CardSpec:
        marked = [("☑ " if i in selected else "☐ ") + o for i, o in enumerate(self.options)]
        done = (Button("Done ✓", SUBMIT),) if selected else ()
        return CardSpec(
            (*button_rows(marked), done) if done else button_rows(marked), None, Reply.DRAFT
        )


@dataclass(frozen=True, slots=True)
class Scale(TaskKind):
    """A rating from `low` to `high`: a tap on a number (or the number typed), stored as the
    number; answers `tolerance` apart or less agree."""

    low: int = 1
    high: int = 5
    tolerance: int = 0
    name = "scale"
    not_gold = "is not a number on the scale"

    def __post_init__(self) -> None:
        if not 1 <= self.high - self.low <= 10:
            raise ValueError("a scale has 2 to 11 points")
        if self.tolerance < 0:
            raise ValueError("tolerance must not be negative")

    def value(self, given: Input) -> str | None:
        if given.choice is not None:
            number: int | None = self.low + given.choice if given.choice >= 0 else None
        else:
            number = self._number(given.text or "")
        if number is None or not self.low <= number <= self.high:
            return None
        return str(number)

    @staticmethod
    def _number(text: str) -> int | None:
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if math.isfinite(number) and number == int(number) else None

    def key(self, value: str) -> str:
        return value

    def agree(self, value: str, other: str) -> bool:
        a, b = self._number(value), self._number(other)
        return a is not None and b is not None and abs(a - b) <= self.tolerance

    def gold(self, text: str) -> str | None:
        number = self._number(text.strip())
        return str(number) if number is not None and self.low <= number <= self.high else None

    @property
    def expected(self) -> str:
        return f"a whole number from {self.low} to {self.high}"

    @property
    def aggregation(self) -> Aggregation:
        return Aggregation(Tally.NUMERIC, None, NUMERIC_METHODS, self.tolerance)

    @property
    def outcomes(self) -> int:
        return self.high - self.low + 1

    def card(self, selected: frozenset[int] = frozenset()) -> CardSpec:
        labels = [str(n) for n in range(self.low, self.high + 1)]
        return CardSpec(button_rows(labels, per_row=6))


@dataclass(frozen=True, slots=True)
class Pairwise(TaskKind):
    """Which of two contents is better (the item shows A and B): "A" or "B" is stored, or
    "same" where ties are allowed."""

    ties: bool = False
    name = "pairwise"
    not_gold = "is not A or B"

    @property
    def classes(self) -> tuple[str, ...]:
        return ("A", "B", "same") if self.ties else ("A", "B")

    def value(self, given: Input) -> str | None:
        if given.choice is None or not 0 <= given.choice < len(self.classes):
            return None
        return self.classes[given.choice]

    def gold(self, text: str) -> str | None:
        wanted = normalize_answer(text)
        return next((c for c in self.classes if normalize_answer(c) == wanted), None)

    @property
    def expected(self) -> str:
        return " or ".join(self.classes)

    @property
    def aggregation(self) -> Aggregation:
        return Aggregation(Tally.CATEGORICAL, self.classes, CATEGORICAL_METHODS)

    @property
    def outcomes(self) -> int:
        return len(self.classes)

    def card(self, selected: frozenset[int] = frozenset()) -> CardSpec:
        labels = ["A is better", "B is better", "About the same"][: len(self.classes)]
        return CardSpec(button_rows(labels, per_row=len(labels)), content=Content.PAIR)


@dataclass(frozen=True, slots=True)
class ModelCheck(TaskKind):
    """Is the model's label (shown with the item) right? "right" or "wrong" is stored."""

    name = "model_check"
    not_gold = "is not right or wrong"
    classes = ("right", "wrong")

    def value(self, given: Input) -> str | None:
        if given.choice not in (0, 1):
            return None
        return self.classes[given.choice]

    def gold(self, text: str) -> str | None:
        wanted = normalize_answer(text)
        return next((c for c in self.classes if c == wanted), None)

    @property
    def expected(self) -> str:
        return "right or wrong"

    @property
    def aggregation(self) -> Aggregation:
        return Aggregation(Tally.CATEGORICAL, self.classes, CATEGORICAL_METHODS)

    @property
    def outcomes(self) -> int:
        return 2

    def card(self, selected: frozenset[int] = frozenset()) -> CardSpec:
        rows = button_rows(["✓ Right", "✗ Wrong"])
        return CardSpec(rows, content=Content.MODEL_LABEL)


@dataclass(frozen=True, slots=True)
class VoiceAnswer(TaskKind):
    """A spoken answer: stored as the voice note's file id and length, collected for
    export, never gold nor compared."""

    max_seconds: int = 60
    name = "voice"
    peer_checked = False
    examinable = False
    not_gold = "cannot be given for voice answers"

    def value(self, given: Input) -> str | None:
        voice = given.voice
        if voice is None or not voice.file_id or not 1 <= voice.duration <= self.max_seconds:
            return None
        return json.dumps({"duration": voice.duration, "file_id": voice.file_id}, sort_keys=True)

    def too_long(self, given: Input) -> bool:
        return given.voice is not None and given.voice.duration > self.max_seconds

    def key(self, value: str) -> str:
        return value

    def gold(self, text: str) -> str | None:
        return None

    @property
    def expected(self) -> str:
        return "a voice message"

    @property
    def aggregation(self) -> Aggregation:
        return Aggregation(Tally.NONE, None, ("none",))

    def card(self, selected: frozenset[int] = frozenset()) -> CardSpec:
        return CardSpec(hint="Reply with a voice message.", reply=Reply.VOICE)


ANIMALS = ("cat", "dog", "bird")
CHOICE = Choice(ANIMALS)
MULTI = MultiSelect(ANIMALS)
SCALE = Scale(1, 5, tolerance=1)
PAIR = Pairwise(ties=True)
CHECK = ModelCheck()
VOICE = VoiceAnswer()


def valid_input(kind: TaskKind) -> st.SearchStrategy[Input]:
    """Inputs a worker could give that the kind must take."""
    if isinstance(kind, Choice):
        return st.builds(Input, choice=st.integers(0, len(kind.options) - 1))
    if isinstance(kind, FreeText):
        text = st.text(min_size=1, max_size=kind.limit).filter(lambda t: bool(t.strip()))
        return st.builds(Input, text=text)
    if isinstance(kind, MultiSelect):
        picked = st.frozensets(st.integers(0, len(kind.options) - 1), min_size=1)
        return st.builds(Input, choices=picked)
    if isinstance(kind, Scale):
        points = kind.high - kind.low
        tapped = st.builds(Input, choice=st.integers(0, points))
        typed = st.builds(Input, text=st.integers(kind.low, kind.high).map(str))
        return tapped | typed
    if isinstance(kind, Pairwise):
        return st.builds(Input, choice=st.integers(0, len(kind.classes) - 1))
    if isinstance(kind, ModelCheck):
        return st.builds(Input, choice=st.integers(0, 1))
    assert isinstance(kind, VoiceAnswer)
    voice = st.builds(Voice, st.text("abcXYZ019_-", min_size=1), st.integers(1, kind.max_seconds))
    return st.builds(Input, voice=voice)


KINDS = (CHOICE, TEXT, MULTI, SCALE, PAIR, CHECK, VOICE)
kind_and_input = st.sampled_from(KINDS).flatmap(
    lambda kind: st.tuples(st.just(kind), valid_input(kind))
)


@given(kind_and_input)
def test_every_kinds_stored_encoding_round_trips(case: tuple[TaskKind, Input]) -> None:
    """What is stored is canonical: read back as a gold answer it is itself, it agrees with
    itself, and it falls in one class however often it is read."""
    kind, given_input = case
    value = kind.value(given_input)
    assert value is not None and not kind.too_long(given_input)
    assert kind.agree(value, value) and kind.key(value) == kind.key(value)
    if kind is not VOICE:  # voice answers are never gold
        assert kind.gold(value) == value
        assert is_correct(value, value, kind)
    assert isinstance(kind.shown(value), str)


anything = st.builds(
    Input,
    choice=st.none() | st.integers(-5, 50),
    choices=st.none() | st.frozensets(st.integers(-5, 50), max_size=5),
    text=st.none() | st.text(max_size=20),
    voice=st.none() | st.builds(Voice, st.text(max_size=5), st.integers(-5, 100)),
)


@given(st.sampled_from(KINDS), anything)
def test_any_input_is_an_answer_in_canonical_form_or_refused(
    kind: TaskKind, given_input: Input
) -> None:
    value = kind.value(given_input)
    if value is None:
        return
    assert kind.agree(value, value)
    if kind is not VOICE:
        assert kind.gold(value) == value


@pytest.mark.parametrize(
    ("kind", "refused"),
    [
        (CHOICE, Input(choice=3)),  # out of range
        (CHOICE, Input(choice=-1)),
        (CHOICE, Input(text="cat")),  # a choice is tapped
        (TEXT, Input(text="   ")),
        (TEXT, Input(choice=0)),
        (MULTI, Input(choices=frozenset())),  # the empty set
        (MULTI, Input(choices=frozenset({0, 3}))),
        (MULTI, Input(choice=0)),  # a lone tap toggles, it does not submit
        (SCALE, Input(choice=5)),  # 1 + 5 is off the 1-5 scale
        (SCALE, Input(text="0")),
        (SCALE, Input(text="7")),
        (SCALE, Input(text="2.5")),
        (SCALE, Input(text="nan")),
        (PAIR, Input(choice=3)),
        (Pairwise(), Input(choice=2)),  # no ties allowed
        (CHECK, Input(choice=2)),
        (VOICE, Input(voice=Voice("f", 0))),
        (VOICE, Input(text="hello")),
    ],
)
def test_invalid_input_is_refused_with_no_value(kind: TaskKind, refused: Input) -> None:
    assert kind.value(refused) is None


@given(st.text(min_size=MAX_FREE_TEXT + 1, max_size=MAX_FREE_TEXT + 50))
def test_text_too_long_is_refused_and_said_so(text: str) -> None:
    long_input = Input(text="x" + text.strip() + "x")
    assert TEXT.value(long_input) is None and TEXT.too_long(long_input)
    assert not CHOICE.too_long(long_input)


def test_a_voice_note_over_the_limit_is_too_long() -> None:
    assert (
        VOICE.too_long(Input(voice=Voice("f", 61)))
        and VOICE.value(Input(voice=Voice("f", 61))) is None
    )


def test_value_encodings() -> None:
    assert CHOICE.value(Input(choice=1)) == "dog"
    assert TEXT.value(Input(text="  A cat \n")) == "A cat"
    # The options' order, whatever order they were tapped in.
    assert MULTI.value(Input(choices=frozenset({2, 0}))) == '["cat","bird"]'
    assert MULTI.shown('["cat","bird"]') == "cat, bird"
    assert SCALE.value(Input(choice=3)) == "4" == SCALE.value(Input(text=" 4 "))
    assert PAIR.value(Input(choice=2)) == "same"
    assert CHECK.value(Input(choice=1)) == "wrong"
    assert VOICE.value(Input(voice=Voice("AwAC", 7))) == '{"duration": 7, "file_id": "AwAC"}'


def test_gold_answers_are_read_in_the_kinds_encoding() -> None:
    assert CHOICE.gold(" DOG ") == "dog" and CHOICE.gold("cow") is None
    assert TEXT.gold("A Cat") == "A Cat"
    assert MULTI.gold("Bird, cat") == '["cat","bird"]' == MULTI.gold('["bird", "cat"]')
    assert MULTI.gold("cat, cow") is None and MULTI.gold("[]") is None
    assert SCALE.gold("4") == "4" == SCALE.gold("4.0") and SCALE.gold("6") is None
    assert PAIR.gold("b") == "B" and Pairwise().gold("same") is None
    assert CHECK.gold("Right") == "right"
    assert VOICE.gold("anything") is None


def test_gold_checks_compare_as_the_kind_says() -> None:
    assert is_correct("Dog", "dog", CHOICE) and is_correct("a  cat", "A cat", TEXT)
    assert is_correct(MULTI.gold("bird,cat") or "", '["cat","bird"]', MULTI)
    assert not is_correct('["cat"]', '["cat","bird"]', MULTI)  # all that apply, not some
    assert is_correct("4", "5", SCALE) and not is_correct("3", "5", SCALE)
    assert not is_correct("4", "5", Scale(1, 5))  # exact without a tolerance
    assert is_correct("A", "A", PAIR) and not is_correct("A", "B", PAIR)


def test_peer_agreement_compares_as_the_kind_says() -> None:
    # Multi-select: the same set is agreement, a subset is not.
    sets = [(1, '["cat","bird"]'), (2, '["cat","bird"]'), (3, '["cat"]')]
    assert peer_checks(sets, MULTI) == [(3, False)]
    # Scales: within the tolerance agrees, for every pair of the others and with each of them.
    assert peer_checks([(1, "3"), (2, "4"), (3, "4")], SCALE) == [
        (1, True),
        (2, True),
        (3, True),
    ]
    assert peer_checks([(1, "1"), (2, "2"), (3, "3")], SCALE) == [(1, False), (3, False)]
    assert peer_checks([(1, "A"), (2, "A"), (3, "B")], PAIR) == [(3, False)]
    # Choices and typed answers keep today's comparison.
    assert peer_checks([(1, "cat"), (2, "Cat"), (3, "cat ")], CHOICE) == peer_checks(
        [(1, "cat"), (2, "Cat"), (3, "cat ")]
    )


def test_aggregation_dispatches_on_the_kind() -> None:
    assert CHOICE.aggregation.tally is Tally.CATEGORICAL and TEXT.aggregation.tally is Tally.OPEN
    answers = [(1, 10, "cat"), (1, 11, "Cat"), (1, 12, "dog"), (2, 10, "bird")]
    labels, alpha = label_answers(answers, CHOICE, "majority_vote")
    expected = aggregate(AnswerSet.build(answers, ANIMALS), "majority_vote").rows()
    assert labels == expected and labels[1].label == "cat"
    assert not math.isnan(alpha)
    # Free text: the classes come from the answers.
    labels, _ = label_answers(
        [(1, 10, "A cat"), (1, 11, "a  cat"), (1, 12, "dog")], TEXT, "one_coin"
    )
    assert labels[1].label == "A cat" and labels[1].answers == 3


def test_multi_select_is_voted_on_option_by_option() -> None:
    answers = [
        (1, 10, '["cat","bird"]'),
        (1, 11, '["cat"]'),
        (1, 12, '["cat","bird"]'),
        (2, 10, '["dog"]'),
    ]
    for method in ("majority_vote", "weighted_vote", "one_coin"):
        labels, _ = label_answers(answers, MULTI, method)
        assert labels[1].label == '["cat","bird"]' and labels[2].label == '["dog"]'
        assert labels[1].agreement == pytest.approx(2 / 3) and labels[1].answers == 3
        assert 0 < labels[1].confidence <= 1
    # Dawid-Skene runs per option too (four answers are too few for its confusion matrices).
    labels, _ = label_answers(answers, MULTI, "dawid_skene")
    assert labels[1].label == '["cat","bird"]'


def test_scales_take_the_median_or_the_mean() -> None:
    answers = [(1, 10, "4"), (1, 11, "5"), (1, 12, "1"), (2, 10, "2"), (2, 11, "3")]
    labels, alpha = label_answers(answers, SCALE, "median")
    assert labels[1].label == "4" and labels[2].label == "2.5"
    assert labels[1].confidence == pytest.approx(2 / 3)  # 4 and 5 are within 1 of 4
    assert math.isnan(alpha)
    labels, _ = label_answers(answers, SCALE, "mean")
    assert labels[1].label == "3.33333"
    with pytest.raises(ValueError, match="cannot be aggregated by one_coin"):
        label_answers(answers, SCALE, "one_coin")


def test_pairs_and_model_checks_are_categorical() -> None:
    answers = [(1, 10, "A"), (1, 11, "A"), (1, 12, "B"), (2, 10, "same")]
    labels, _ = label_answers(answers, PAIR, "dawid_skene")
    assert labels[1].label == "A" and labels[2].label == "same"
    checks = [(1, 10, "right"), (1, 11, "wrong"), (1, 12, "wrong")]
    labels, _ = label_answers(checks, CHECK, "weighted_vote", gold={})
    assert labels[1].label == "wrong"
    assert label_answers(
        [(1, 10, VOICE.value(Input(voice=Voice("f", 3))) or "")], VOICE, "none"
    ) == ({}, pytest.approx(math.nan, nan_ok=True))


def test_cards_are_plain_data_that_fits_the_callback_codec() -> None:
    # Today's choice card: one button per option, two to a row when short.
    assert CHOICE.card() == CardSpec(((Button("cat", 0), Button("dog", 1)), (Button("bird", 2),)))
    long = Choice(("a rather long option", "b"))
    assert [len(row) for row in long.card().rows] == [1, 1]
    assert TEXT.card().reply is Reply.TEXT and TEXT.card().hint and not TEXT.card().rows
    draft = MULTI.card(frozenset({1}))
    assert draft.draft and draft.rows[0][1].label == "☑ dog" and draft.rows[-1][0].payload == SUBMIT
    assert MULTI.card().rows[-1][0].payload != SUBMIT  # nothing to submit yet
    assert PAIR.card().content is Content.PAIR and CHECK.card().content is Content.MODEL_LABEL
    assert VOICE.card().reply is Reply.VOICE
    for kind in KINDS:
        for row in kind.card(frozenset({0})).rows:
            for button in row:
                tap = AnswerTap(2**53 - 1, button.payload)
                assert decode(encode(tap)) == tap


def test_guesses_and_exams_and_peers_follow_the_kind() -> None:
    assert CHOICE.outcomes == 3 and TEXT.outcomes is None and MULTI.outcomes == 7
    assert SCALE.outcomes == 5 and PAIR.outcomes == 3 and CHECK.outcomes == 2
    assert CHOICE.examinable and not TEXT.examinable and not VOICE.examinable
    assert CHOICE.peer_checked and not TEXT.peer_checked


def test_settings_imply_todays_two_kinds() -> None:
    choice = BatchSettings(name="b", question="q?", options="Yes, No")
    assert choice.kind == Choice(("Yes", "No")) and choice.kind is kind_for(("Yes", "No"))
    assert choice.option_count == 2
    typed = BatchSettings(name="b", question="q?")
    assert typed.kind is TEXT and typed.option_count is None


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (("a",), "at least two options"),
        (("a", " A "), "must differ"),
        (("a", ""), "1 to 64 characters"),
        (tuple(str(i) for i in range(21)), "at most 20 options"),
    ],
)
def test_a_kind_checks_its_settings(options: tuple[str, ...], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Choice(options)


def test_future_kinds_check_their_settings() -> None:
    with pytest.raises(ValueError, match="2 to 11 points"):
        Scale(1, 1)
    with pytest.raises(ValueError, match="at least two options"):
        MultiSelect(("only",))
