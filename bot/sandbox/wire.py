"""What passes between the bot, the sandbox and its users: Bot API errors, request parameters,
files, messages and chats, and the flood limits Telegram counts them against."""

from __future__ import annotations

import asyncio
import builtins
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal


class ApiError(Exception):
    """An error as the Bot API reports it."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


@dataclass(slots=True)
class UploadedFile:
    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"


@dataclass(slots=True)
class StoredFile:
    file_id: str
    unique_id: str
    path: str
    content: bytes
    name: str | None = None
    mime_type: str | None = None
    url: str | None = None  # a photo sent by URL, fetched from it

    def as_document(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.unique_id,
            "file_name": self.name,
            "mime_type": self.mime_type,
            "file_size": len(self.content),
        }

    def as_photo(self) -> list[dict[str, Any]]:
        return [
            {
                "file_id": self.file_id,
                "file_unique_id": self.unique_id,
                "width": 800,
                "height": 600,
                "file_size": len(self.content),
            }
        ]


@dataclass(slots=True)
class Message:
    message_id: int
    chat_id: int
    from_bot: bool
    date: int
    raw: str | None = None  # text or caption as sent, markup included
    parse_mode: str | None = None
    text: str | None = None  # what the user sees
    caption: str | None = None
    photo: StoredFile | None = None
    document: StoredFile | None = None
    reply_markup: dict[str, Any] | None = None
    attachment: dict[str, Any] | None = None  # a user's sticker or voice note, as Telegram's JSON
    edits: int = 0
    sent_at: float = field(default_factory=time.monotonic)  # for benchmarks' timing

    @property
    def buttons(self) -> list[list[str]]:
        if not self.reply_markup:
            return []
        return [[button["text"] for button in row] for row in self.reply_markup["inline_keyboard"]]

    @property
    def shown(self) -> str:
        """The text or caption the user reads."""
        return self.text if self.text is not None else (self.caption or "")

    def find_button(self, text: str) -> dict[str, Any] | None:
        for row in (self.reply_markup or {}).get("inline_keyboard", []):
            for button in row:
                if button["text"] == text:
                    return button
        return None


@dataclass(slots=True)
class Notice:
    """An answer to a callback query: a toast, or an alert the user must dismiss."""

    text: str
    alert: bool


@dataclass(slots=True)
class Bucket:
    """A token bucket: `burst` messages at once, then `rate` a second."""

    rate: float
    burst: int
    tokens: float
    stamp: float

    @classmethod
    def full(cls, rate_and_burst: tuple[float, int], now: float) -> Bucket:
        rate, burst = rate_and_burst
        return cls(rate, burst, float(burst), now)

    def wait(self, now: float) -> float:
        """Seconds until one more message fits; 0 when it fits now."""
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


@dataclass(frozen=True, slots=True)
class Limits:
    """Telegram's flood limits on the messages a bot sends, as (per second, burst): across
    all chats (paid broadcasts have their own), in one private chat, in one group. Edits and
    callback answers are not limited this way."""

    overall: tuple[float, int] = (30.0, 30)
    paid: tuple[float, int] = (1000.0, 1000)
    private: tuple[float, int] = (1.0, 3)
    group: tuple[float, int] = (20 / 60, 3)


TELEGRAM_LIMITS = Limits()


@dataclass
class Chat:
    user: dict[str, Any]  # the private chat's user; a group's title for groups
    kind: Literal["private", "group"] = "private"
    started: bool = False  # the user has written to the bot: the bot may write to them
    messages: dict[int, Message] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)
    blocked: bool = False
    bucket: Bucket | None = None
    message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        await self._changed.wait()


class Params:
    """A request's parameters, read the way Telegram reads them (form values are strings).
    Its readers are named after the types they return, which hides those types' names inside
    the class: annotations there say `builtins.str`."""

    def __init__(self, values: dict[str, Any], files: dict[str, UploadedFile]) -> None:
        self.values = values
        self.files = files

    def str(self, name: str) -> str | None:
        value = self.values.get(name)
        return None if value is None else str(value)

    def int(self, name: builtins.str, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f'field "{name}" must be a number') from None

    def bool(self, name: builtins.str) -> builtins.bool:
        value = self.values.get(name)
        return value is True or str(value).lower() in ("true", "1")

    def json(self, name: builtins.str) -> Any:
        value = self.values.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                raise bad_request(f"can't parse {name} JSON object") from None
        return value
