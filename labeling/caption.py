"""Batch settings written as `key: value` lines, the way a coordinator captions a file."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from labeling.batch import BatchSettings

# Friendlier spellings a coordinator may type on a phone.
ALIASES = {"overlap_max": "max_overlap", "method": "aggregation", "gold": "gold_ratio"}


class CaptionError(ValueError):
    """Every problem found in a caption, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# Not a batch setting: `again: yes` imports a file that was imported before as a new batch.
AGAIN = "again"
YES = ("yes", "y", "true", "1")
NO = ("no", "n", "false", "0", "")


@dataclass(frozen=True, slots=True)
class Caption:
    settings: BatchSettings
    again: bool = False  # import the file even if it was imported before


def parse_caption(caption: str | None, default_name: str) -> BatchSettings:
    """Reads `key: value` lines into batch settings; raises CaptionError listing every
    unknown key, malformed line and invalid value."""
    return read_caption(caption, default_name).settings


def read_caption(caption: str | None, default_name: str) -> Caption:
    """The batch settings of a caption, and whether it asks to import the file again."""
    given: dict[str, str] = {}
    problems = []
    again = False
    for number, raw in enumerate((caption or "").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, colon, value = line.partition(":")
        if not colon:
            problems.append(f"caption line {number}: write settings as 'key: value'")
            continue
        name = key.strip().lower().replace(" ", "_").replace("-", "_")
        name = ALIASES.get(name, name)
        if name == AGAIN:
            again = value.strip().lower() in YES
            if value.strip().lower() not in YES + NO:
                problems.append(f"caption line {number}: again: write yes or no")
        elif name not in BatchSettings.model_fields:
            problems.append(f"caption line {number}: unknown setting '{key.strip()}'")
        elif name in given:
            problems.append(f"caption line {number}: '{key.strip()}' is given twice")
        else:
            given[name] = value.strip()
    given.setdefault("name", default_name)
    if "question" not in given:
        problems.append("the caption needs a 'question: ...' line")
    if problems:
        raise CaptionError(problems)
    try:
        settings = BatchSettings.model_validate(
            {key: value or None for key, value in given.items()}
        )
    except ValidationError as error:
        raise CaptionError(
            [
                f"{'.'.join(map(str, e['loc'])) or 'settings'}: "
                f"{e['msg'].removeprefix('Value error, ')}"
                for e in error.errors()
            ]
        ) from None
    return Caption(settings, again)
