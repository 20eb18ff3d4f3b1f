"""PostgreSQL for the tests: a connection in a schema of its own, or a skip with the reason.

Point LABELBOT_TEST_POSTGRES at a database the tests may create schemas in, for instance
postgresql://postgres@127.0.0.1:5432/test. Without it, or with no server answering, the tests
that need PostgreSQL are skipped, except under CI (the variable CI set), where they fail: there
a skipped engine would pass unnoticed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn
from urllib.parse import quote

import psycopg
import pytest

URL_VARIABLE = "LABELBOT_TEST_POSTGRES"

Connection = psycopg.Connection[tuple[Any, ...]]


@contextmanager
def fresh_schema() -> Iterator[Connection]:
    """An autocommit connection whose search_path is a new, empty schema, dropped afterwards,
    so that tests running in parallel on one database never see each other's tables."""
    conn = connect()
    schema = f"t_{secrets.token_hex(6)}"
    try:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path TO {schema}")
        yield conn
    finally:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.close()


@contextmanager
def schema_url() -> Iterator[str]:
    """The test server's URL with a new, empty schema as its search path (dropped
    afterwards), for labelbot's own PostgreSQL engine."""
    with fresh_schema() as conn:
        schema = conn.execute("SHOW search_path").fetchone()
        assert schema is not None
        options = quote(f"-csearch_path={schema[0]}")
        url = os.environ[URL_VARIABLE]
        yield f"{url}{'&' if '?' in url else '?'}options={options}"


def connect() -> Connection:
    """An autocommit connection to the test server; skips (fails under CI) without one."""
    url = os.environ.get(URL_VARIABLE)
    if not url:
        _unavailable(f"{URL_VARIABLE} is not set")
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        # The first line only: the rest repeats the address for each one tried.
        _unavailable(f"no PostgreSQL answers at {URL_VARIABLE}: {str(error).splitlines()[0]}")


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
