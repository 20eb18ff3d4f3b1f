"""The bot's side of the sandbox: Bot API methods answered the way Telegram answers them,
errors included, over chats, messages, updates and files held in memory. HTTP stays outside:
server.py serves these methods, webhook.py posts updates to a bot that set a webhook."""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.sandbox.faults import Fault, Hold
from bot.sandbox.fetch import FetchError, fetch_image
from bot.sandbox.markup import MarkupError, check_keyboard, check_text, visible_text
from bot.sandbox.updates import Updates
from bot.sandbox.users import SandboxUser
from bot.sandbox.webhook import (
    DEFAULT_CONNECTIONS,
    MAX_CONNECTIONS,
    POST_TIMEOUT,
    Delivery,
    Webhook,
)
from bot.sandbox.wire import (
    TELEGRAM_LIMITS,
    ApiError,
    Bucket,
    Chat,
    Limits,
    Message,
    Notice,
    Params,
    StoredFile,
    bad_request,
)

MAX_DOWNLOAD = 20 * 1024 * 1024  # bots download files up to 20 MB
MAX_UPLOAD = 50 * 1024 * 1024  # and upload up to 50 MB
CALLBACK_TTL = 15.0  # a callback query must be answered within about this time
CANT_INITIATE = "Forbidden: bot can't initiate conversation with a user"


class Sandbox:
    """One bot and its users, in memory. `limits` are Telegram's flood limits (None switches
    them off, for benchmarks that measure the bot rather than Telegram); `clock` times them
    and the age of callback queries, so tests can move time on."""

    def __init__(
        self,
        token: str,
        *,
        username: str = "labelbot_sandbox_bot",
        limits: Limits | None = TELEGRAM_LIMITS,
        callback_ttl: float = CALLBACK_TTL,
        clock: Callable[[], float] = time.monotonic,
        fetch: Callable[[str], Awaitable[tuple[bytes, str]]] = fetch_image,
    ) -> None:
        self.token = token
        bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        self.bot_user = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "labelbot",
            "username": username,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.chats: dict[int, Chat] = {}
        self.files: dict[str, StoredFile] = {}
        self._url_files: dict[str, StoredFile] = {}
        self.commands: list[dict[str, Any]] = []
        self.webhook: Webhook | None = None
        self.delivery: Delivery | None = None  # posts updates while a webhook is set
        self.faults: list[Fault] = []
        self.holds: list[Hold] = []
        self.calls: Counter[str] = Counter()
        self.calls_by_chat: Counter[tuple[str, int]] = Counter()
        self.updates = Updates()
        self._file_ids = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._queries: dict[str, tuple[int, float]] = {}
        self._poll_generation = 0
        self._releases = 0
        self.limits = limits
        self.callback_ttl = callback_ttl
        self.clock = clock
        self.fetch = fetch
        self.limited: Counter[int] = Counter()  # 429s answered per chat for going too fast
        self._overall = Bucket.full(limits.overall, clock()) if limits else None
        self._paid = Bucket.full(limits.paid, clock()) if limits else None

    # -- the bot side ----------------------------------------------------------------------

    async def call(self, method: str, params: Params) -> Any:
        """Runs one Bot API method; raises ApiError as Telegram would answer."""
        handler = _METHODS.get(method.lower())
        if handler is None:
            raise ApiError(404, "Not Found: method not found")
        chat_id = params.int("chat_id") if "chat_id" in params.values else None
        self.calls[handler.__name__] += 1
        if chat_id is not None:
            self.calls_by_chat[(handler.__name__, chat_id)] += 1
        fault = self._take_fault(handler.__name__, chat_id)
        if fault is not None and fault.when == "before":
            await fault.strike()
        await self._wait_holds(handler.__name__, params)
        result = handler(self, params)
        if asyncio.iscoroutine(result):
            result = await result
        if fault is not None and fault.when == "after":
            await fault.strike()
        return result

    async def _wait_holds(self, method: str, params: Params) -> None:
        for hold in [hold for hold in self.holds if hold.matches(method, params)]:
            await hold.wait()

    def _take_fault(self, method: str, chat_id: int | None) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.matches(method, chat_id):
                fault.times -= 1
                return fault
        return None

    def _chat(self, params: Params) -> tuple[int, Chat]:
        chat_id = params.int("chat_id")
        if chat_id is None:
            raise bad_request("chat_id is empty")
        chat = self.chats.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if not chat.started:
            raise ApiError(403, CANT_INITIATE)
        return chat_id, chat

    def _message(self, params: Params) -> tuple[Chat, Message]:
        _, chat = self._chat(params)
        message = chat.messages.get(params.int("message_id") or 0)
        if message is None or not message.from_bot:
            raise bad_request("message to edit not found")
        return chat, message

    def _markup(self, params: Params) -> dict[str, Any] | None:
        try:
            return check_keyboard(params.json("reply_markup"))
        except MarkupError as error:
            raise bad_request(str(error)) from None

    @staticmethod
    def _render(raw: str, parse_mode: str | None, *, caption: bool = False) -> str:
        try:
            shown = visible_text(raw, parse_mode)
            check_text(shown, caption=caption)
        except MarkupError as error:
            raise bad_request(str(error)) from None
        return shown

    def get_me(self, params: Params) -> dict[str, Any]:
        return self.bot_user

    def delete_webhook(self, params: Params) -> bool:
        self.webhook = None
        return True

    def set_webhook(self, params: Params) -> bool:
        url = params.str("url") or ""
        if not url:
            self.webhook = None
            return True
        if not url.startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.str("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("secret token contains unallowed characters")
        # Telegram takes any number and clamps it into its range.
        connections = params.int("max_connections", DEFAULT_CONNECTIONS) or 0
        connections = min(max(connections, 1), MAX_CONNECTIONS)
        self.webhook = Webhook(url, secret, connections)
        self.updates.wake()  # the updates waiting for it go out now
        return True

    def get_webhook_info(self, params: Params) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }
        if self.webhook is not None:
            info.update(self.webhook.info())
        return info

    def set_my_commands(self, params: Params) -> bool:
        self.commands = params.json("commands") or []
        return True

    async def get_updates(self, params: Params) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active;"
                " use deleteWebhook to delete the webhook first",
            )
        offset = params.int("offset", 0) or 0
        limit = min(max(params.int("limit", 100) or 100, 1), 100)
        timeout = max(params.int("timeout", 0) or 0, 0)
        self._poll_generation += 1
        generation, releases = self._poll_generation, self._releases
        self.updates.wake()  # a poll still waiting learns that it has been superseded
        deadline = time.monotonic() + timeout
        while True:
            batch = self.updates.poll(offset, limit)
            if batch:
                return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            event = self.updates.changed
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return []
            if releases != self._releases:
                return []
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only"
                    " one bot instance is running",
                )

    async def send_message(self, params: Params) -> dict[str, Any]:
        return await self._send(params, "text")

    async def send_photo(self, params: Params) -> dict[str, Any]:
        return await self._send(params, "caption", media="photo")

    async def send_document(self, params: Params) -> dict[str, Any]:
        return await self._send(params, "caption", media="document")

    async def _send(self, params: Params, field: str, media: str | None = None) -> dict[str, Any]:
        chat_id, chat = self._chat(params)
        raw = params.str(field) or ""
        parse_mode = params.str("parse_mode")
        shown = self._render(raw, parse_mode, caption=field == "caption")
        markup = self._markup(params)
        attached = {}
        if media is not None:
            attached[media] = await self._input_file(params, media, photo=media == "photo")
        self._admit(chat_id, chat, paid=params.bool("allow_paid_broadcast"))
        message = self._add(
            chat_id, chat, True, raw=raw, parse_mode=parse_mode, reply_markup=markup,
            **{field: shown}, **attached,
        )  # fmt: skip
        return self.message_json(message)

    def _admit(self, chat_id: int, chat: Chat, *, paid: bool) -> None:
        """Counts one new message against Telegram's limits, or answers 429 with the whole
        seconds until it would fit."""
        if self.limits is None:
            return
        now = self.clock()
        overall = self._paid if paid else self._overall
        assert overall is not None
        if chat.bucket is None:
            kind = self.limits.private if chat.kind == "private" else self.limits.group
            chat.bucket = Bucket.full(kind, now)
        wait = max(overall.wait(now), chat.bucket.wait(now))
        if wait > 0:
            self.limited[chat_id] += 1
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {seconds}", seconds)
        overall.tokens -= 1
        chat.bucket.tokens -= 1

    def edit_message_text(self, params: Params) -> dict[str, Any]:
        return self._edit(params, "text")

    def edit_message_caption(self, params: Params) -> dict[str, Any]:
        return self._edit(params, "caption")

    def _edit(self, params: Params, field: str) -> dict[str, Any]:
        chat, message = self._message(params)
        if (message.text is None) == (field == "text"):
            raise bad_request(f"there is no {field} in the message to edit")
        raw = params.str(field) or ""
        parse_mode = params.str("parse_mode")
        shown = self._render(raw, parse_mode, caption=field == "caption")
        markup = self._markup(params)
        self._check_modified(message, shown, markup, message.photo)
        message.raw, message.parse_mode, message.reply_markup = raw, parse_mode, markup
        setattr(message, field, shown)
        return self._edited(chat, message)

    async def edit_message_media(self, params: Params) -> dict[str, Any]:
        chat, message = self._message(params)
        if message.photo is None:
            raise bad_request("there is no media in the message to edit")
        media = params.json("media")
        if not isinstance(media, dict) or media.get("type") != "photo":
            raise bad_request("the sandbox edits photos only")
        source = str(media.get("media", ""))
        if source.startswith("attach://"):
            upload = params.files.get(source.removeprefix("attach://"))
            if upload is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
            photo = self._store(upload.content, upload.filename, "image/jpeg", "photos")
        else:
            photo = await self._file_reference(source, photo=True)
        raw = str(media.get("caption") or "")
        parse_mode = media.get("parse_mode")
        shown = self._render(raw, parse_mode, caption=True)
        markup = self._markup(params)
        self._check_modified(message, shown, markup, photo)
        message.raw, message.parse_mode, message.caption, message.photo = (
            raw,
            parse_mode,
            shown,
            photo,
        )
        message.reply_markup = markup
        return self._edited(chat, message)

    def edit_message_reply_markup(self, params: Params) -> dict[str, Any]:
        chat, message = self._message(params)
        markup = self._markup(params)
        self._check_modified(message, message.shown, markup, message.photo)
        message.reply_markup = markup
        return self._edited(chat, message)

    def answer_callback_query(self, params: Params) -> bool:
        query_id = params.str("callback_query_id") or ""
        entry = self._queries.pop(query_id, None)
        if entry is None or self.clock() - entry[1] > self.callback_ttl:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        chat = self.chats[entry[0]]
        text = params.str("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        chat.notices.append(Notice(text or "", params.bool("show_alert")))
        chat.touch()
        return True

    def get_file(self, params: Params) -> dict[str, Any]:
        stored = self.files.get(params.str("file_id") or "")
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.content) > MAX_DOWNLOAD:
            raise bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "file_size": len(stored.content),
            "file_path": stored.path,
        }

    def download(self, path: str) -> bytes:
        for stored in self.files.values():
            if stored.path == path:
                return stored.content
        raise ApiError(404, "Not Found")

    # -- helpers for the bot side ----------------------------------------------------------

    def _check_modified(
        self,
        message: Message,
        shown: str,
        markup: dict[str, Any] | None,
        photo: StoredFile | None,
    ) -> None:
        """Telegram compares what the user would see (text with its markup stripped, the
        buttons, the photo), not the request: other markup around the same text changes
        nothing."""
        if (message.shown, message.reply_markup, message.photo) == (shown, markup, photo):
            raise bad_request(
                "message is not modified: specified new message content and reply markup are"
                " exactly the same as a current content and reply markup of the message"
            )

    def _edited(self, chat: Chat, message: Message) -> dict[str, Any]:
        message.edits += 1
        chat.touch()
        return self.message_json(message)

    async def _input_file(self, params: Params, name: str, *, photo: bool) -> StoredFile:
        upload = params.files.get(name)
        if upload is not None:
            if len(upload.content) > MAX_UPLOAD:
                raise ApiError(413, "Request Entity Too Large")
            folder = "photos" if photo else "documents"
            return self._store(upload.content, upload.filename, upload.mime_type, folder)
        reference = params.str(name)
        if not reference:
            raise bad_request(f"there is no {name} in the request")
        return await self._file_reference(reference, photo=photo)

    async def _file_reference(self, reference: str, *, photo: bool) -> StoredFile:
        if reference in self.files:
            return self.files[reference]
        if reference.startswith(("http://", "https://")):
            if reference not in self._url_files:
                try:
                    content, mime = await self.fetch(reference)
                except FetchError as error:
                    raise bad_request(str(error)) from None
                name = reference.rsplit("/", 1)[-1]
                stored = self._store(content, name, mime, "photos" if photo else "documents")
                stored.url = reference
                self._url_files[reference] = stored
            return self._url_files[reference]
        raise bad_request("wrong file identifier/HTTP URL specified")

    def _store(self, content: bytes, name: str | None, mime: str | None, folder: str) -> StoredFile:
        number = next(self._file_ids)
        suffix = name.rsplit(".", 1)[-1] if name and "." in name else "bin"
        stored = StoredFile(
            file_id=f"F{number:08d}{'P' if folder == 'photos' else 'D'}",
            unique_id=f"U{number:08d}",
            path=f"{folder}/file_{number}.{suffix}",
            content=content,
            name=name,
            mime_type=mime,
        )
        self.files[stored.file_id] = stored
        return stored

    def _add(self, chat_id: int, chat: Chat, from_bot: bool, **fields: Any) -> Message:
        # Message ids count per chat, as in Telegram: id 2 exists in many chats.
        message = Message(next(chat.message_ids), chat_id, from_bot, int(time.time()), **fields)
        chat.messages[message.message_id] = message
        chat.started = chat.started or not from_bot
        chat.touch()
        return message

    def message_json(self, message: Message) -> dict[str, Any]:
        chat = self.chats[message.chat_id]
        data: dict[str, Any] = {
            "message_id": message.message_id,
            "from": self.bot_user if message.from_bot else chat.user,
            "chat": {"id": message.chat_id, "type": chat.kind},
            "date": message.date,
        }
        if chat.kind == "private":
            data["chat"]["first_name"] = chat.user["first_name"]
        else:
            data["chat"]["title"] = chat.user["title"]
        if message.edits:
            data["edit_date"] = int(time.time())
        if message.text is not None:
            data["text"] = message.text
            if not message.from_bot and message.text.startswith("/"):
                length = len(message.text.split()[0])
                data["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        if message.caption:
            data["caption"] = message.caption
        if message.photo is not None:
            data["photo"] = message.photo.as_photo()
        if message.document is not None:
            data["document"] = message.document.as_document()
        if message.reply_markup:
            data["reply_markup"] = message.reply_markup
        if message.attachment:
            data.update(message.attachment)
        return data

    # -- for tests: users and groups to act as, trouble to order, updates to replay -------

    def user(
        self,
        user_id: int,
        first_name: str | None = None,
        language: str | None = "en",
        *,
        started: bool = False,
    ) -> SandboxUser:
        """Acts as user `user_id`; the chat with the bot opens on first use. The bot may write
        to them once they have written to it, or when `started` says they did in the past."""
        if user_id not in self.chats:
            self.chats[user_id] = Chat(
                user={
                    "id": user_id,
                    "is_bot": False,
                    "first_name": first_name or f"User {user_id}",
                    "language_code": language,
                }
            )
        self.chats[user_id].started |= started
        return SandboxUser(self, user_id)

    def group(self, chat_id: int, title: str = "Group") -> SandboxUser:
        """A group the bot is a member of (Telegram's group ids are negative); returns a view
        of what its members read there."""
        if chat_id not in self.chats:
            self.chats[chat_id] = Chat(user={"title": title}, kind="group", started=True)
        return SandboxUser(self, chat_id)

    def inject(self, code: int | None = None, **kwargs: Any) -> Fault:
        """Troubles the next matching call(s): an error (429, 403, 5xx; 0 drops the
        connection), before the method runs or after it (`when="after"`: the effect stays,
        the answer is lost), or an answer held back for `delay` seconds."""
        fault = Fault(code, **kwargs)
        self.faults.append(fault)
        return fault

    def hold(self, method: str, when: Callable[[Params], bool] | None = None) -> Hold:
        """Makes the next calls of `method` ("editMessageText" or "edit_message_text") wait
        until the hold is released or dropped: to stop the bot between two of its calls."""
        handler = _METHODS.get(method.replace("_", "").lower())
        if handler is None:
            raise ValueError(f"the sandbox has no method {method!r}")
        hold = Hold(handler.__name__, when)
        self.holds.append(hold)
        return hold

    def replay(self, update_id: int) -> None:
        """Delivers an update again, as Telegram does when a bot did not confirm it."""
        self.updates.replay(update_id)

    def release_polls(self) -> None:
        """Ends waiting long polls now, so a bot that is stopping need not wait them out."""
        self._releases += 1
        self.updates.wake()

    def route_webhook(
        self,
        endpoints: Sequence[str],
        *,
        duplicates: float = 0.0,
        timeout: float = POST_TIMEOUT,
    ) -> Delivery:
        """Says which local endpoints (the bot's replicas) stand behind the webhook's public
        URL: from now on, while a webhook is set, the sandbox posts the bot's updates to them
        itself, in turn, as Telegram does through a load balancer. `duplicates` is the share
        of updates posted twice, their first answer lost on purpose; `timeout` how long an
        answer may take. Called again, it changes them. Returns the delivery, whose `lose`
        loses the next answers."""
        delivery = self.delivery or Delivery(self.updates, lambda: self.webhook)
        delivery.route(endpoints, duplicates=duplicates, timeout=timeout)
        if self.delivery is None:
            delivery.start()
            self.delivery = delivery
        return delivery

    async def close(self) -> None:
        """Stops the webhook's delivery, if any: nothing of the sandbox runs after this."""
        if self.delivery is not None:
            await self.delivery.stop()
            self.delivery = None

    def new_query(self, chat_id: int) -> str:
        query_id = str(next(self._query_ids))
        self._queries[query_id] = (chat_id, self.clock())
        return query_id


_METHODS: dict[str, Callable[[Sandbox, Params], Any]] = {
    name.replace("_", ""): getattr(Sandbox, name)
    for name in (
        "get_me",
        "get_updates",
        "delete_webhook",
        "set_webhook",
        "get_webhook_info",
        "set_my_commands",
        "send_message",
        "send_photo",
        "send_document",
        "edit_message_text",
        "edit_message_caption",
        "edit_message_media",
        "edit_message_reply_markup",
        "answer_callback_query",
        "get_file",
    )
}
