"""The data sets shared beside the checkout (../shared/data), for tests that need them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(*parts: str, root: Path = SHARED_DATA) -> Path:
    """A folder of the shared data. Where it is missing the test skips with a one-line reason,
    except under CI (the variable CI set), where a skip would pass unnoticed: it fails."""
    folder = root.joinpath(*parts)
    if folder.is_dir():
        return folder
    reason = f"{folder} is missing: the shared data belongs beside the checkout, in ../shared/data"
    if os.environ.get("CI"):
        pytest.fail(f"CI runs every test: {reason}", pytrace=False)
    pytest.skip(reason)
