"""The bot as its own process, as in production, against a sandbox in the benchmark's."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import IO

from bot.local import SANDBOX_TOKEN
from bot.sandbox import Sandbox, SandboxServer

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "replica-webhook-secret-0123456789"
WEBHOOK_SECRET_PATH = "telegram"


def labelbot_env(server: SandboxServer, database: Path, **settings: object) -> dict[str, str]:
    """The environment of `labelbot run` pointed at the sandbox; `settings` are more
    variables, named as in .env.example (lower case is fine): DATABASE_URL among them puts
    the bot on PostgreSQL."""
    return {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": SANDBOX_TOKEN,
        "TELEGRAM_BASE_URL": server.base_url,
        "TELEGRAM_BASE_FILE_URL": server.base_file_url,
        "DATABASE_PATH": str(database),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        **{name.upper(): str(value) for name, value in settings.items()},
    }


async def start(
    command: list[str],
    env: dict[str, str],
    sandbox: Sandbox,
    *,
    stderr: IO[bytes] | None = None,
    port: int | None = None,
) -> asyncio.subprocess.Process:
    """Starts a bot process and waits until it polls the sandbox, or in webhook mode until it
    listens on `port`; its stderr goes to `stderr` (a file, for a test that reads the logs)
    or a pipe."""
    polls = sandbox.calls["get_updates"]
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE if stderr is None else stderr,
    )
    while not (await listening(port) if port else sandbox.calls["get_updates"] > polls):
        if process.returncode is not None:
            said = b"" if process.stderr is None else await process.stderr.read()
            raise RuntimeError(f"the bot exited: {said.decode()}")
        await asyncio.sleep(0.05)
    return process


async def listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def webhook_env(port: int) -> dict[str, object]:
    """The settings of one replica behind the sandbox's webhook."""
    return {
        "webhook_url": f"https://bot.example/{WEBHOOK_SECRET_PATH}",
        "webhook_secret": WEBHOOK_SECRET,
        "webhook_listen": "127.0.0.1",
        "webhook_port": port,
    }


def labelbot_command() -> list[str]:
    return [sys.executable, "-m", "bot", "run"]


async def stop(process: asyncio.subprocess.Process, sandbox: Sandbox) -> None:
    """Stops a bot the way an operator would (SIGINT), killing it if it hangs."""
    if process.returncode is not None:
        return
    sandbox.release_polls()
    process.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(process.wait(), 15)
    except TimeoutError:
        process.kill()
        await process.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
