"""The bot token never shows: not in logs or stderr, errors, messages to users, exports,
status summaries, nor the command line's output."""

from __future__ import annotations

import asyncio
import gzip
import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.process import labelbot_command, labelbot_env, start, stop
from bot.cli import main
from bot.local import SANDBOX_TOKEN
from bot.logs import RedactTokens, redact, setup_logging
from bot.sandbox import Sandbox, SandboxServer
from bot.settings import load_settings
from labeling.export import FORMATS, WHATS
from tests.harness import BOSS, Harness, first_card, press, settle

SECRET_PART = SANDBOX_TOKEN.split(":", 1)[1]
BATCH = "id,text,gold\nr1,first,\nr2,second,\nr3,third,yes\n"


def assert_hidden(where: str, content: str | bytes) -> None:
    data = content.encode() if isinstance(content, str) else content
    if data.startswith(b"\x1f\x8b"):  # a gzipped export
        data = gzip.decompress(data)
    for secret in (SANDBOX_TOKEN, SECRET_PART):
        assert secret.encode() not in data, f"the token shows in {where}"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level, saved_hook = root.handlers[:], root.level, sys.excepthook
    stream = io.StringIO()
    setup_logging("DEBUG", SANDBOX_TOKEN, stream)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    sys.excepthook = saved_hook


async def test_a_whole_run_with_faults_never_shows_the_token(
    tmp_path: Path, captured_logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "s.db"
    async with Harness(database, coordinator_ids=str(BOSS)) as h:
        await h.add_batch(BATCH, options="yes,no", overlap=1, gold_ratio=0, reward=0.05)
        worker = await h.join(1)
        h.sandbox.inject(500, method="edit_message_text")
        h.sandbox.inject(429, method="answer_callback_query", retry_after=1)
        await h.first_task(worker)
        card = worker.last
        assert card is not None
        worker.press("yes", message_id=card.message_id)
        await worker.wait_for(lambda u: card.edits == 1, 15)
        worker.tap(card, "a:999999:0")  # a forged tap
        failing = h.sandbox.inject(
            400,
            method="send_message",
            times=3,
            description=f"Bad Request: boom for bot{SANDBOX_TOKEN}",
        )
        worker.send("/stats")  # fails: the handler's error goes to the log
        await settle(lambda: "handler failed" in captured_logs.getvalue())
        failing.times = 0
        boss = h.user(BOSS)
        boss.send("/status 1")
        await boss.wait_for(lambda u: any(m.photo for m in u.bot_messages), 15)
        boss.send("/workers")
        for what in WHATS:
            for fmt in FORMATS:
                boss.send(f"/export 1 {what} {fmt}")
        await boss.wait_for(
            lambda u: sum(bool(m.document) for m in u.bot_messages) == len(WHATS) * len(FORMATS),
            30,
        )
        for user_id, chat in h.sandbox.chats.items():
            for message in chat.messages.values():
                assert_hidden(f"a message to {user_id}", message.shown)
                for attached in (message.document, message.photo):
                    if attached is not None:
                        assert_hidden(f"{attached.name} sent to {user_id}", attached.content)
            for notice in chat.notices:
                assert_hidden(f"a notice to {user_id}", notice.text)
    logs = captured_logs.getvalue()
    assert "handler failed" in logs  # the failure was logged...
    assert "<token>" in logs  # ...with the token masked where it appeared
    assert_hidden("the logs", logs)
    assert_hidden("stderr", capsys.readouterr().err)


async def labeled(database: Path) -> None:
    """A batch with a few answers (and their pay) in `database`."""
    async with Harness(database) as h:
        await h.add_batch(BATCH, options="yes,no", overlap=1, gold_ratio=0, reward=0.05)
        worker = await h.join(1)
        card = await first_card(h, worker)
        await press(worker, card, "yes")
        await press(worker, card, "no")


def test_the_command_line_never_prints_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "cli.db"
    asyncio.run(labeled(database))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", SANDBOX_TOKEN)
    monkeypatch.setenv("DATABASE_PATH", str(database))
    commands = [["status"], ["status", "1"], ["trust", "1"], ["reports", "1"], ["status", "9"]]
    for what in WHATS:
        for fmt in FORMATS:
            commands += [["export", "1", "--what", what, "--format", fmt]]
            commands += [["export", "1", "--what", what, "--format", fmt, "-o", "-"]]
    for argv in commands:
        main(argv)
        out, err = capsys.readouterr()
        assert out or err
        assert_hidden(f"labelbot {' '.join(argv)}", out + err)
    written = sorted(tmp_path.glob("batch-1-*"))
    assert len(written) >= len(WHATS) * len(FORMATS)
    for path in written:
        assert_hidden(str(path), path.read_bytes())


async def test_the_bot_process_never_writes_the_token_to_stderr(tmp_path: Path) -> None:
    """`labelbot run` logging at DEBUG through faults and a failing handler, and when Telegram
    refuses its token or cannot be reached: its stderr never holds the token."""
    sandbox = Sandbox(SANDBOX_TOKEN)
    stderr_path = tmp_path / "stderr.log"
    async with SandboxServer(sandbox) as server:
        env = labelbot_env(server, tmp_path / "p.db", log_level="DEBUG")
        with stderr_path.open("wb") as stderr:
            bot = await start(labelbot_command(), env, sandbox, stderr=stderr)
            try:
                worker = sandbox.user(1)
                sandbox.inject(500, method="send_message")
                sandbox.inject(
                    400, method="send_message", description=f"Bad Request: bot{SANDBOX_TOKEN}"
                )
                worker.send("/start")
                worker.send("/help")
                # One send each: a new message answered with a 5xx may have arrived, so it is
                # not sent again.
                await settle(lambda: sandbox.calls["send_message"] >= 2, 15)
            finally:
                await stop(bot, sandbox)
    logs = stderr_path.read_text()
    assert "<token>" in logs  # the refusal that carried the token was logged, masked
    assert_hidden("the bot's stderr", logs)
    # Telegram refuses the token (PTB's error quotes it whole), or cannot be reached at all.
    refusing = Sandbox("987654321:" + "r" * 35)
    async with SandboxServer(refusing) as server:
        for base_url in (server.base_url, "http://127.0.0.1:9/bot"):
            env = {**labelbot_env(server, tmp_path / "p.db"), "TELEGRAM_BASE_URL": base_url}
            process = await asyncio.create_subprocess_exec(
                *labelbot_command(),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode != 0 and err
            assert_hidden(f"stderr with Telegram at {base_url}", out + err)


def test_settings_and_their_errors_hide_the_token() -> None:
    settings = load_settings(telegram_bot_token=SANDBOX_TOKEN)
    assert SECRET_PART not in repr(settings) and SECRET_PART not in str(settings)
    record = logging.LogRecord(
        "x",
        logging.ERROR,
        __file__,
        1,
        "GET https://api.telegram.org/bot%s/getMe",
        (SANDBOX_TOKEN,),
        None,
    )
    RedactTokens().filter(record)
    assert record.getMessage() == "GET https://api.telegram.org/bot<token>/getMe"
    assert redact(f"The token `{SANDBOX_TOKEN}` was rejected") == "The token `<token>` was rejected"
