"""The callback data on task buttons: compact, versionless, and never trusted.

`a:<assignment>:<option>` answers, `s:<assignment>` skips, `r:<assignment>` opens the list of
problems to report and `r:<assignment>:<n>` reports the n-th (0 goes back to the task), `n` asks
for the next task, `x:<attempt>:<item>:<option>` answers an exam question and
`d:<attempt>:<item>` disputes the answer a missed exam question showed; `f:<code>` confirms a
worker's request to be forgotten and `f` cancels it. A task's data
names only the assignment and the option's place, so it tells nothing about the item (gold or
not); whether the assignment is the tapper's and still open is checked on every tap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_ID = 2**53
_PATTERN = re.compile(
    r"a:([0-9]{1,16}):([0-9]{1,3})|s:([0-9]{1,16})|n|x:([0-9]{1,16}):([0-9]{1,16}):([0-9]{1,3})"
    r"|r:([0-9]{1,16})(?::([0-9]))?|d:([0-9]{1,16}):([0-9]{1,16})|f(?::([0-9a-f]{16}))?"
)


@dataclass(frozen=True, slots=True)
class AnswerTap:
    assignment_id: int
    option: int


@dataclass(frozen=True, slots=True)
class SkipTap:
    assignment_id: int


@dataclass(frozen=True, slots=True)
class ReportTap:
    """`choice` None opens the list of problems; 0 goes back to the task; n reports the n-th."""

    assignment_id: int
    choice: int | None = None


@dataclass(frozen=True, slots=True)
class DisputeTap:
    attempt_id: int
    item_id: int


@dataclass(frozen=True, slots=True)
class NextTap:
    pass


@dataclass(frozen=True, slots=True)
class ExamTap:
    attempt_id: int
    item_id: int
    option: int


@dataclass(frozen=True, slots=True)
class ForgetTap:
    """`code` None cancels the request to be forgotten; else it confirms that request."""

    code: str | None = None


Tap = AnswerTap | SkipTap | ReportTap | NextTap | ExamTap | DisputeTap | ForgetTap


def encode(tap: Tap) -> str:
    match tap:
        case AnswerTap(assignment_id, option):
            return f"a:{assignment_id}:{option}"
        case SkipTap(assignment_id):
            return f"s:{assignment_id}"
        case ReportTap(assignment_id, None):
            return f"r:{assignment_id}"
        case ReportTap(assignment_id, choice):
            return f"r:{assignment_id}:{choice}"
        case DisputeTap(attempt_id, item_id):
            return f"d:{attempt_id}:{item_id}"
        case NextTap():
            return "n"
        case ExamTap(attempt_id, item_id, option):
            return f"x:{attempt_id}:{item_id}:{option}"
        case ForgetTap(None):
            return "f"
        case ForgetTap(code):
            return f"f:{code}"
    raise TypeError(tap)


def decode(data: str | None) -> Tap | None:
    """The tap a button's data stands for, or None for anything malformed."""
    if not data or len(data) > 64:
        return None
    match = _PATTERN.fullmatch(data)
    if match is None:
        return None
    if match[1] is not None:
        assignment_id = int(match[1])
        return AnswerTap(assignment_id, int(match[2])) if assignment_id < MAX_ID else None
    if match[3] is not None:
        assignment_id = int(match[3])
        return SkipTap(assignment_id) if assignment_id < MAX_ID else None
    if match[9] is not None:
        attempt_id, item_id = int(match[9]), int(match[10])
        return DisputeTap(attempt_id, item_id) if max(attempt_id, item_id) < MAX_ID else None
    if match[7] is not None:
        assignment_id = int(match[7])
        choice = None if match[8] is None else int(match[8])
        return ReportTap(assignment_id, choice) if assignment_id < MAX_ID else None
    if data[0] == "f":
        return ForgetTap(match[11])
    if match[4] is not None:
        attempt_id, item_id = int(match[4]), int(match[5])
        if attempt_id < MAX_ID and item_id < MAX_ID:
            return ExamTap(attempt_id, item_id, int(match[6]))
        return None
    return NextTap()
