"""The users' side of the sandbox: what a simulated person sees in their chat with the bot,
and what they send and tap there."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.sandbox.wire import Message, Notice

if TYPE_CHECKING:
    from bot.sandbox.api import Sandbox


class SandboxUser:
    """One user's view of the chat with the bot, and the things they can do in it."""

    def __init__(self, sandbox: Sandbox, user_id: int) -> None:
        self.sandbox = sandbox
        self.user_id = user_id
        self.chat = sandbox.chats[user_id]
        self.last_update_id = 0

    def send(self, text: str) -> int:
        """Sends a text message or a /command; returns the update id."""
        message = self.sandbox._add(self.user_id, self.chat, False, text=text, raw=text)
        return self._push_message(message)

    def send_document(
        self, filename: str, content: bytes, caption: str | None = None, mime_type: str = "text/csv"
    ) -> int:
        stored = self.sandbox._store(content, filename, mime_type, "documents")
        message = self.sandbox._add(
            self.user_id, self.chat, False, document=stored, caption=caption, raw=caption
        )
        return self._push_message(message)

    def send_photo(self, content: bytes, caption: str | None = None) -> int:
        """Sends a photo from the phone's gallery."""
        stored = self.sandbox._store(content, "photo.jpg", "image/jpeg", "photos")
        message = self.sandbox._add(
            self.user_id, self.chat, False, photo=stored, caption=caption, raw=caption
        )
        return self._push_message(message)

    def send_sticker(self, emoji: str = "\N{THUMBS UP SIGN}") -> int:
        stored = self.sandbox._store(
            b"RIFF\x00\x00\x00\x00WEBP", "sticker.webp", "image/webp", "stickers"
        )
        sticker = {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return self._send_attachment({"sticker": sticker})

    def send_voice(self, content: bytes = b"OggS\x00\x02", duration: int = 2) -> int:
        stored = self.sandbox._store(content, "voice.ogg", "audio/ogg", "voice")
        voice = {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": len(content),
        }
        return self._send_attachment({"voice": voice})

    def _send_attachment(self, attachment: dict[str, Any]) -> int:
        message = self.sandbox._add(self.user_id, self.chat, False, attachment=attachment)
        return self._push_message(message)

    def press(self, text: str, *, message_id: int | None = None, times: int = 1) -> list[int]:
        """Taps the button labelled `text` on the newest message that has it (or on
        `message_id`); `times` > 1 taps it again before the bot can react, as a double tap."""
        message = self._message_with(text, message_id)
        button = message.find_button(text)
        assert button is not None
        if "callback_data" not in button:
            raise ValueError(f"button {text!r} opens a URL, it sends nothing to the bot")
        return [self.tap(message, button["callback_data"]) for _ in range(times)]

    def tap(self, message: Message, data: str) -> int:
        """Sends a callback query with any data, as a forged or replayed client could."""
        payload = {
            "callback_query": {
                "id": self.sandbox.new_query(self.user_id),
                "from": self.chat.user,
                "message": self.sandbox.message_json(message),
                "chat_instance": f"ci{self.user_id}",
                "data": data,
            }
        }
        self.last_update_id = self.sandbox.updates.push(payload)
        return self.last_update_id

    def block(self, blocked: bool = True) -> None:
        self.chat.blocked = blocked

    @property
    def messages(self) -> list[Message]:
        return list(self.chat.messages.values())

    @property
    def bot_messages(self) -> list[Message]:
        return [message for message in self.chat.messages.values() if message.from_bot]

    @property
    def last(self) -> Message | None:
        """The newest message from the bot."""
        bot = self.bot_messages
        return bot[-1] if bot else None

    @property
    def notices(self) -> list[Notice]:
        return self.chat.notices

    async def wait_for(
        self, condition: Callable[[SandboxUser], bool], timeout: float = 10.0
    ) -> None:
        """Waits until `condition` holds for what this user sees."""
        async with asyncio.timeout(timeout):
            while not condition(self):
                await self.chat.changed()

    def _message_with(self, text: str, message_id: int | None) -> Message:
        if message_id is not None:
            candidates = [self.chat.messages[message_id]]
        else:
            candidates = list(reversed(self.bot_messages))
        for message in candidates:
            if message.find_button(text) is not None:
                return message
        raise LookupError(f"user {self.user_id} sees no button {text!r}")

    def _push_message(self, message: Message) -> int:
        self.last_update_id = self.sandbox.updates.push(
            {"message": self.sandbox.message_json(message)}
        )
        return self.last_update_id
