"""The sandbox over HTTP: the Bot API at /bot<token>/<method>, files at /file/bot<token>/<path>,
and the user side at /sandbox/... so that another process can act as users."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import BodyPartReader, web

from bot.sandbox.api import Sandbox
from bot.sandbox.faults import Disconnect
from bot.sandbox.wire import ApiError, Params, UploadedFile

log = logging.getLogger(__name__)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def _read_params(request: web.Request) -> Params:
    values: dict[str, Any] = dict(request.query)
    files: dict[str, UploadedFile] = {}
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            values.update(body)
    elif request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                content = bytes(await part.read())
                mime = part.headers.get("Content-Type", "application/octet-stream")
                files[part.name] = UploadedFile(part.filename, content, mime)
            else:
                values[part.name] = await part.text()
    elif request.can_read_body:
        values.update(await request.post())
    return Params(values, files)


class SandboxServer:
    """Serves one Sandbox on loopback; `base_url` and `base_file_url` are what PTB needs."""

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sandbox = sandbox
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._bot_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        app.router.add_post("/sandbox/users/{user_id}/send", self._user_send)
        app.router.add_post("/sandbox/users/{user_id}/press", self._user_press)
        app.router.add_post("/sandbox/users/{user_id}/document", self._user_document)
        app.router.add_get("/sandbox/users/{user_id}/chat", self._user_chat)
        app.router.add_post("/sandbox/faults", self._fault)
        self.app = app

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    async def start(self) -> SandboxServer:
        # Telegram answers a long poll after its own timeout; keep-alive connections live long.
        self._runner = web.AppRunner(self.app, access_log=None, keepalive_timeout=75)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        if self.port == 0:  # the OS chose a free port
            self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Stops serving, and the sandbox with it: its webhook's delivery ends too."""
        await self.sandbox.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SandboxServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _check_token(self, request: web.Request) -> None:
        if request.match_info["token"] != self.sandbox.token:
            raise ApiError(401, "Unauthorized")

    async def _bot_api(self, request: web.Request) -> web.Response:
        try:
            self._check_token(request)
            params = await _read_params(request)
            result = await self.sandbox.call(request.match_info["method"], params)
        except ApiError as error:
            return web.json_response(error.payload(), status=error.code, dumps=_dumps)
        except Disconnect:
            if request.transport is not None:
                request.transport.close()
            raise ConnectionResetError("the sandbox dropped the connection") from None
        except Exception as error:  # a sandbox bug still answers in the Bot API's shape
            log.exception("sandbox failed on %s", request.match_info["method"])
            failure = ApiError(500, f"Internal Server Error: sandbox: {error!r}")
            return web.json_response(failure.payload(), status=500, dumps=_dumps)
        return web.json_response({"ok": True, "result": result}, dumps=_dumps)

    async def _file(self, request: web.Request) -> web.Response:
        try:
            self._check_token(request)
            content = self.sandbox.download(request.match_info["path"])
        except ApiError as error:
            return web.json_response(error.payload(), status=error.code, dumps=_dumps)
        return web.Response(body=content, content_type="application/octet-stream")

    # -- the user side over HTTP -----------------------------------------------------------

    def _user(self, request: web.Request) -> Any:
        return self.sandbox.user(int(request.match_info["user_id"]))

    async def _user_send(self, request: web.Request) -> web.Response:
        body = await request.json()
        update_id = self._user(request).send(str(body["text"]))
        return web.json_response({"update_id": update_id})

    async def _user_press(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            ids = self._user(request).press(str(body["text"]), times=int(body.get("times", 1)))
        except LookupError as error:
            return web.json_response({"error": str(error)}, status=404)
        return web.json_response({"update_ids": ids})

    async def _user_document(self, request: web.Request) -> web.Response:
        params = await _read_params(request)
        upload = params.files.get("document")
        if upload is None:
            return web.json_response({"error": "send the file as 'document'"}, status=400)
        update_id = self._user(request).send_document(
            upload.filename, upload.content, params.str("caption"), upload.mime_type
        )
        return web.json_response({"update_id": update_id})

    async def _user_chat(self, request: web.Request) -> web.Response:
        user = self._user(request)
        messages = [
            {
                "message_id": message.message_id,
                "from_bot": message.from_bot,
                "text": message.shown,
                "photo": message.photo is not None,
                "document": message.document.name if message.document else None,
                "buttons": message.buttons,
            }
            for message in user.messages
        ]
        notices = [{"text": notice.text, "alert": notice.alert} for notice in user.notices]
        return web.json_response({"messages": messages, "notices": notices}, dumps=_dumps)

    async def _fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        code = body.pop("code", None)
        try:
            self.sandbox.inject(None if code is None else int(code), **body)
        except (TypeError, ValueError) as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response({"ok": True})
