"""The sandbox's user side over HTTP, for driving it from another process."""

from __future__ import annotations

import httpx

from tests.harness import Harness


async def test_act_as_a_user_over_http(harness: Harness) -> None:
    await harness.add_batch("text\nGreat phone\n", options="yes,no", overlap=1)
    root = harness.server.base_url.removesuffix("/bot")
    async with httpx.AsyncClient(base_url=root) as client:
        await client.post("/sandbox/users/77/send", json={"text": "/next"})
        await harness.user(77).wait_for(lambda u: u.last is not None and u.last.buttons)
        chat = (await client.get("/sandbox/users/77/chat")).json()
        assert chat["messages"][-1]["buttons"][0] == ["yes", "no"]
        pressed = await client.post("/sandbox/users/77/press", json={"text": "yes"})
        assert pressed.status_code == 200
        await harness.user(77).wait_for(lambda u: "Nothing left" in u.last.shown)
        missing = await client.post("/sandbox/users/77/press", json={"text": "no such"})
        assert missing.status_code == 404
        await client.post("/sandbox/faults", json={"code": 429, "method": "send_message"})
        await client.post("/sandbox/users/77/send", json={"text": "/help"})
        await harness.user(77).wait_for(lambda u: "/stats" in u.last.shown)
    assert await harness.query("SELECT value FROM answers") == [("yes",)]
