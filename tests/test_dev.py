"""`python3 dev.py lint`, which CI runs: every check runs, and any one failing fails it."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

import dev


@pytest.mark.parametrize(
    ("failing", "expected"), [(None, 0), ("ruff", 1), ("mypy", 1), ("format", 1)]
)
def test_lint_runs_ruff_then_mypy_and_fails_when_either_does(
    monkeypatch: pytest.MonkeyPatch, failing: str | None, expected: int
) -> None:
    ran: list[list[str]] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
        ran.append(command)
        failed = failing is not None and failing in command
        return subprocess.CompletedProcess(command, 1 if failed else 0)

    monkeypatch.setattr(dev, "install", lambda: None)
    monkeypatch.setattr(subprocess, "run", run)
    assert dev.main(["lint"]) == expected
    assert [command[1:] for command in ran] == [
        ["-m", "ruff", "check", "."],
        ["-m", "ruff", "format", "--check", "."],
        ["-m", "mypy"],
    ]
