"""Telegram's checks on what a bot sends: HTML text, lengths and inline keyboards."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_BUTTONS = 100
_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "code", "pre", "blockquote", "tg-emoji",
}  # fmt: skip


class MarkupError(ValueError):
    """Telegram's description of what is wrong, without the 'Bad Request: ' prefix."""


class _TelegramHTML(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TAGS:
            raise MarkupError(f'can\'t parse entities: Unsupported start tag "{tag}"')
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            raise MarkupError(f'can\'t parse entities: Unmatched end tag "{tag}"')
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_text(raw: str, parse_mode: str | None) -> str:
    """The text a user sees: markup removed and entities decoded, as Telegram renders it."""
    if not parse_mode:
        return raw
    if parse_mode.upper() != "HTML":
        raise MarkupError(f"unsupported parse_mode {parse_mode!r} in the sandbox")
    parser = _TelegramHTML()
    parser.feed(raw)
    parser.close()
    if parser.open:
        tag = parser.open[-1]
        raise MarkupError(
            f"can't parse entities: Can't find end tag corresponding to start tag \"{tag}\""
        )
    return "".join(parser.parts)


def utf16_length(text: str) -> int:
    """Telegram counts lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def check_text(text: str, *, caption: bool = False) -> None:
    if caption:
        if utf16_length(text) > MAX_CAPTION:
            raise MarkupError("message caption is too long")
        return
    if not text.strip():
        raise MarkupError("message text is empty")
    if utf16_length(text) > MAX_TEXT:
        raise MarkupError("message is too long")


def check_keyboard(markup: Any) -> dict[str, Any] | None:
    """Validates an inline keyboard; returns it normalised, or None when there is none."""
    if markup is None:
        return None
    if not isinstance(markup, dict) or not isinstance(markup.get("inline_keyboard"), list):
        raise MarkupError("can't parse reply keyboard markup JSON object")
    rows = markup["inline_keyboard"]
    if sum(len(row) if isinstance(row, list) else 0 for row in rows) > MAX_BUTTONS:
        raise MarkupError("BUTTONS_TOO_MUCH")
    for row in rows:
        if not isinstance(row, list):
            raise MarkupError("can't parse inline keyboard button: a row is not an array")
        for button in row:
            if not isinstance(button, dict) or not str(button.get("text", "")).strip():
                raise MarkupError("can't parse inline keyboard button: Text buttons are unallowed")
            data = button.get("callback_data")
            if data is not None:
                if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                    raise MarkupError("BUTTON_DATA_INVALID")
            elif "url" not in button:
                raise MarkupError("can't parse inline keyboard button: a button needs an action")
    return {"inline_keyboard": rows}
