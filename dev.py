#!/usr/bin/env python3
"""The two commands a new user needs, with nothing but Python 3.11 installed:

python3 dev.py demo    # install labelbot into .venv and run the demo
python3 dev.py test    # install labelbot with its test tools into .venv and run every test

and the one CI runs after the tests:

python3 dev.py lint    # ruff's checks, its formatting, and mypy's type checks
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def python() -> str:
    return str(BIN / ("python.exe" if os.name == "nt" else "python"))


def install() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py itself runs on older Pythons
        sys.exit(f"labelbot needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists() and not (BIN / "python.exe").exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    subprocess.run(
        [
            python(),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            f"{ROOT}[dev]",
        ],
        check=True,
    )


def main(argv: list[str]) -> int:
    commands = {
        "demo": [[python(), "-m", "bot", "demo", *argv[1:]]],
        # Three test processes, a file each at a time: end-to-end tests mostly wait out
        # Telegram's one message a second per chat, so three share two cores well.
        "test": [[python(), "-m", "pytest", "-n", "3", "--dist", "loadfile", *argv[1:]]],
        # Every check runs even when one fails, so that one pass shows all there is to fix.
        "lint": [
            [python(), "-m", "ruff", "check", "."],
            [python(), "-m", "ruff", "format", "--check", "."],
            [python(), "-m", "mypy"],
        ],
    }
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    install()
    codes = [
        subprocess.run(command, cwd=ROOT, check=False).returncode for command in commands[argv[0]]
    ]
    return next((code for code in codes if code), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
