#!/usr/bin/env python3
"""The two commands a new user needs, with nothing but Python 3.11 installed:

python3 dev.py demo    # install labelbot into .venv and run the demo
python3 dev.py test    # install labelbot with its test tools into .venv and run every test
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
        "demo": [python(), "-m", "bot", "demo", *argv[1:]],
        "test": [python(), "-m", "pytest", *argv[1:]],
        "lint": [str(BIN / "ruff"), "check", str(ROOT)],
    }
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    install()
    return subprocess.run(commands[argv[0]], cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
