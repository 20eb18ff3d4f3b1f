"""The PostgreSQL migrations build SQLite's schema: the same tables, columns, keys, indexes and
constraints, and triggers that leave the same rows behind the same statements."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from typing import Any, NamedTuple

import psycopg
import pytest

from storage.db import migrations
from tests.pg import URL_VARIABLE, Connection, connect, fresh_schema

LATEST = max(version for version, _, _ in migrations("sqlite"))

# Past 2^32, so that an id column of 4 bytes would refuse them.
ANN, BOB, BOSS = 5_000_000_001, 5_000_000_002, 7_000_000_001
# A 4-byte REAL would read this back as 1700000128.0.
T = 1_700_000_123.456

Statement = tuple[str, tuple[Any, ...]]


@pytest.fixture
def pg() -> Iterator[Connection]:
    with fresh_schema() as conn:
        yield conn


@pytest.fixture
def lite() -> Iterator[sqlite3.Connection]:
    """An SQLite database in memory that enforces foreign keys, as labelbot's connection does."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    yield conn
    conn.close()


def test_without_a_server_these_tests_skip_but_fail_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(URL_VARIABLE, raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="is not set"):
        connect()
    monkeypatch.setenv(URL_VARIABLE, "postgresql://nobody@127.0.0.1:1/nothing")
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL answers"):
        connect()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no PostgreSQL answers"):
        connect()


# -- applying the migrations ----------------------------------------------------------------


def statements(script: str) -> Iterator[str]:
    """The statements of a PostgreSQL migration, by the rule its files keep (stated in 0005):
    a `;` at the end of a line ends a statement, except inside a $$-quoted function body."""
    pending: list[str] = []
    quoted = False
    for line in script.splitlines():
        pending.append(line)
        quoted ^= line.count("$$") % 2 == 1
        if not quoted and line.rstrip().endswith(";"):
            yield "\n".join(pending)
            pending = []
    leftover = [line for line in pending if line.split("--", 1)[0].strip()]
    assert not leftover, f"a statement is not finished: {leftover}"


def migrate_postgresql(conn: Connection, after: int = 0, up_to: int = LATEST) -> None:
    """Applies the migrations after `after` up to `up_to`, each in one transaction, one
    statement at a time as labelbot's runner does."""
    for version, _, script in migrations("postgresql"):
        if after < version <= up_to:
            with conn.transaction():
                for statement in statements(script):
                    # A second result would mean the split joined two statements.
                    assert conn.execute(statement).nextset() is None, statement


def migrate_sqlite(conn: sqlite3.Connection, after: int = 0, up_to: int = LATEST) -> None:
    for version, _, script in migrations("sqlite"):
        if after < version <= up_to:
            conn.executescript(script)


def test_every_migration_applies_in_one_transaction(pg: Connection) -> None:
    migrate_postgresql(pg)
    names = [(version, name) for version, name, _ in migrations("postgresql")]
    assert names == [(version, name) for version, name, _ in migrations("sqlite")]


def test_a_function_body_is_one_statement() -> None:
    script = (
        "CREATE TABLE t (a INTEGER);\n"
        "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n    UPDATE t SET a = 1;\n    RETURN NULL;\nEND\n$$;\n"
        "-- a comment after the last statement\n"
    )
    found = list(statements(script))
    assert len(found) == 2
    assert found[1].startswith("CREATE FUNCTION") and found[1].endswith("$$;")


# -- the schema, read from each engine ------------------------------------------------------


class Column(NamedTuple):
    name: str
    type: str
    nullable: bool
    default: str | None


class Index(NamedTuple):
    table: str
    unique: bool
    columns: tuple[str, ...]
    where: str | None


def sqlite_columns(conn: sqlite3.Connection) -> dict[str, list[Column]]:
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {
        table: [
            # A key column can never be NULL: a rowid alias or a WITHOUT ROWID table's key.
            Column(name, type_, not (notnull or pk), default)
            for _, name, type_, notnull, default, pk in conn.execute(f"PRAGMA table_info({table})")
        ]
        for table in tables
    }


def postgresql_columns(conn: Connection) -> dict[str, list[Column]]:
    found: dict[str, list[Column]] = {}
    for table, name, type_, nullable, default in conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable = 'YES', column_default"
        " FROM information_schema.columns JOIN information_schema.tables"
        " USING (table_schema, table_name)"
        " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        " ORDER BY table_name, ordinal_position"
    ):
        # 'active'::text is SQLite's 'active'.
        default = None if default is None else re.sub(r"::[a-z ]+$", "", default)
        found.setdefault(table, []).append(Column(name, type_, nullable, default))
    return found


def _where(predicate: str | None) -> str | None:
    """An index's condition without the casts and parentheses PostgreSQL writes into it."""
    if predicate is None:
        return None
    return " ".join(re.sub(r"::text|[()]", "", predicate).split())


def _names(columns: str) -> tuple[str, ...]:
    return tuple(name.strip().strip('"') for name in columns.split(","))


def sqlite_indexes(conn: sqlite3.Connection) -> dict[str, Index]:
    """The indexes made by CREATE INDEX, by name."""
    found = {}
    for name, table, definition in conn.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ):
        columns = tuple(row[2] for row in conn.execute(f"PRAGMA index_info({name})"))
        where = re.search(r"\bWHERE\b(.*)", definition, re.DOTALL)
        unique = definition.startswith("CREATE UNIQUE")
        found[name] = Index(table, unique, columns, _where(where and where[1]))
    return found


def postgresql_indexes(conn: Connection) -> dict[str, Index]:
    """The indexes made by CREATE INDEX (not those behind a key), by name."""
    found = {}
    for name, table, definition in conn.execute(
        "SELECT indexname, tablename, indexdef FROM pg_indexes"
        " WHERE schemaname = current_schema() AND indexname NOT IN"
        " (SELECT conname FROM pg_constraint WHERE connamespace = current_schema()::regnamespace)"
    ):
        parts = re.fullmatch(
            r"CREATE (UNIQUE )?INDEX .* USING btree \((.*?)\)(?: WHERE (.*))?", definition
        )
        assert parts, definition
        found[name] = Index(table, bool(parts[1]), _names(parts[2]), _where(parts[3]))
    return found


class Keys(NamedTuple):
    primary: tuple[str, ...]
    unique: list[tuple[str, ...]]
    foreign: list[tuple[tuple[str, ...], str, tuple[str, ...]]]


def sqlite_keys(conn: sqlite3.Connection, tables: list[str]) -> dict[str, Keys]:
    found = {}
    for table in tables:
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        primary = tuple(row[1] for row in sorted(info, key=lambda row: row[5]) if row[5])
        unique = [
            tuple(row[2] for row in conn.execute(f"PRAGMA index_info({index[1]})"))
            for index in conn.execute(f"PRAGMA index_list({table})")
            if index[3] == "u"
        ]
        foreign = [
            ((source,), target, (column,))
            for _, _, target, source, column, *_ in conn.execute(
                f"PRAGMA foreign_key_list({table})"
            )
        ]
        found[table] = Keys(primary, sorted(unique), sorted(foreign))
    return found


def postgresql_keys(conn: Connection, tables: list[str]) -> dict[str, Keys]:
    found = {table: Keys((), [], []) for table in tables}
    for table, definition in conn.execute(
        "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = current_schema()::regnamespace AND contype IN ('p', 'u', 'f')"
    ):
        if definition.startswith("PRIMARY KEY"):
            found[table] = found[table]._replace(primary=_names(definition[13:-1]))
        elif definition.startswith("UNIQUE"):
            found[table].unique.append(_names(definition[8:-1]))
        else:
            parts = re.fullmatch(r"FOREIGN KEY \((.*)\) REFERENCES (\w+)\((.*)\)", definition)
            assert parts, definition
            found[table].foreign.append((_names(parts[1]), parts[2], _names(parts[3])))
    return {
        table: Keys(keys.primary, sorted(keys.unique), sorted(keys.foreign))
        for table, keys in found.items()
    }


def triggers(definitions: list[str]) -> set[tuple[str, ...]]:
    """Each trigger's name, table, moment, event and the column an UPDATE must set."""
    found: set[tuple[str, ...]] = set()
    for definition in definitions:
        parts = re.match(
            r"CREATE TRIGGER (\w+) (AFTER|BEFORE) (INSERT|UPDATE|DELETE)(?: OF (\w+))?"
            r" ON (?:\w+\.)?(\w+)",
            " ".join(definition.split()),
        )
        assert parts, definition
        name, moment, event, column, table = parts.groups()
        found.add((name, table, moment, event, column or ""))
    return found


# -- the schemas compared -------------------------------------------------------------------


@pytest.fixture
def both(lite: sqlite3.Connection, pg: Connection) -> tuple[sqlite3.Connection, Connection]:
    """Both databases, fully migrated."""
    migrate_sqlite(lite)
    migrate_postgresql(pg)
    return lite, pg


def test_tables_and_columns_match(both: tuple[sqlite3.Connection, Connection]) -> None:
    lite, pg = both
    expected = {
        table: [(c.name, c.nullable, c.default) for c in columns]
        for table, columns in sqlite_columns(lite).items()
    }
    found = {
        table: [(c.name, c.nullable, c.default) for c in columns]
        for table, columns in postgresql_columns(pg).items()
    }
    assert found == expected


def _is_id(column: str) -> bool:
    """Ids, and what holds one or may pass 2^31 (a walk's cursor past the last gold rank)."""
    return column == "id" or column.endswith(("_id", "_by", "_cursor"))


def test_times_are_doubles_and_ids_bigints(both: tuple[sqlite3.Connection, Connection]) -> None:
    """Counters and flags stay INTEGER: SUM of a BIGINT would come back as a Decimal."""
    lite, pg = both
    expected = {
        (table, c.name): {
            "REAL": "double precision",
            "TEXT": "text",
            "INTEGER": "bigint" if _is_id(c.name) else "integer",
        }[c.type]
        for table, columns in sqlite_columns(lite).items()
        for c in columns
    }
    found = {
        (table, c.name): c.type
        for table, columns in postgresql_columns(pg).items()
        for c in columns
    }
    assert found == expected


def test_keys_and_indexes_match(both: tuple[sqlite3.Connection, Connection]) -> None:
    lite, pg = both
    assert postgresql_indexes(pg) == sqlite_indexes(lite)
    tables = list(sqlite_columns(lite))
    assert postgresql_keys(pg, tables) == sqlite_keys(lite, tables)


def test_triggers_fire_on_the_same_events(both: tuple[sqlite3.Connection, Connection]) -> None:
    lite, pg = both
    sqlite_sql = [
        row[0] for row in lite.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'")
    ]
    postgresql_sql = [
        row[0]
        for row in pg.execute(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal"
        )
    ]
    assert triggers(postgresql_sql) == triggers(sqlite_sql)


def test_names_are_those_of_tables_made_as_they_stand(pg: Connection) -> None:
    """A table rebuilt by a migration keeps no name from its rebuild: its constraints and its
    identity are named as PostgreSQL names them for a table made under its final name."""
    migrate_postgresql(pg)
    suffixes = {"p": "pkey", "u": "key", "f": "fkey", "c": "check"}
    names = {}
    for table, name, kind, columns in pg.execute(
        "SELECT conrelid::regclass::text, conname, contype,"
        " ARRAY(SELECT attname FROM unnest(conkey) WITH ORDINALITY AS k (number, place)"
        "  JOIN pg_attribute ON attrelid = conrelid AND attnum = number ORDER BY place)::text[]"
        " FROM pg_constraint WHERE connamespace = current_schema()::regnamespace"
    ):
        # A key is named by no column, a check by its column when it reads only one.
        named_by = [] if kind == "p" or (kind == "c" and len(columns) > 1) else columns
        names[name] = "_".join([table, *named_by, suffixes[kind]])
    assert list(names) == list(names.values())
    sequences = pg.execute(
        "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"
    )
    identities = pg.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    )
    assert {row[0] for row in sequences} == {
        f"{table}_{column}_seq" for table, column in identities
    }


# -- the same statements, the same rows -----------------------------------------------------


def to_psycopg(text: str) -> str:
    """SQLite's `?` placeholders as psycopg's `%s` (a literal % is doubled first)."""
    return text.replace("%", "%%").replace("?", "%s")


def insert(table: str, **values: Any) -> Statement:
    return (
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
        tuple(values.values()),
    )


def sql(text: str, *params: Any) -> Statement:
    return text, params


def run(lite: sqlite3.Connection, pg: Connection, steps: list[Statement]) -> None:
    for text, params in steps:
        lite.execute(text, params)
        pg.execute(to_psycopg(text), params)


def _plain(column: str, value: Any) -> Any:
    """A value as both engines should agree on it: a whole float as an int, so that a number
    reads the same whichever type an engine gave it, and the batch's settings as the JSON they
    hold, not its spacing (json_object and json_build_object space it differently)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if column == "settings":
        return json.loads(value)
    return value


def dump(conn: sqlite3.Connection | Connection, tables: list[str]) -> dict[str, list[Any]]:
    """Every row of every table, in an order that does not depend on the engine."""
    found = {}
    for table in tables:
        cursor = conn.execute(f"SELECT * FROM {table}")
        names = [column[0] for column in cursor.description or ()]
        rows = [
            tuple(_plain(name, value) for name, value in zip(names, row, strict=True))
            for row in cursor
        ]
        found[table] = sorted(rows, key=lambda row: [(value is not None, value) for value in row])
    return found


def tables_of(lite: sqlite3.Connection) -> list[str]:
    query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return sorted(row[0] for row in lite.execute(query))


def _item(position: int, gold: str | None = None, **more: Any) -> Statement:
    wanted = 0 if gold else 2
    text = f"item {position}"
    return insert(
        "items",
        batch_id=1,
        position=position,
        text=text,
        gold=gold,
        wanted=wanted,
        target=2,
        **more,
    )


def _assignment(item: int, worker: int, kind: str, at: float) -> Statement:
    return insert(
        "assignments",
        item_id=item,
        batch_id=1,
        worker_id=worker,
        kind=kind,
        issued_at=at,
        expires_at=at + 600,
    )


def _answer(
    assignment: int, item: int, worker: int, value: str, at: float, **more: Any
) -> Statement:
    return insert(
        "answers",
        assignment_id=assignment,
        item_id=item,
        batch_id=1,
        worker_id=worker,
        value=value,
        duration_ms=1500,
        created_at=at,
        **more,
    )


# Each step names what happens in labelbot; the rows of every table are compared after each.
# Between them they reach every trigger and every branch of one: a task and gold (items
# counted or not, gold issued), an answer to each (gold owed kept or settled, the batch's
# median known or not), a worker with no record yet, gold given back by a skip or an expiry
# and what does not count as given back (a task, an assignment no longer open).
SCENARIO: list[tuple[str, list[Statement]]] = [
    (
        "a batch published with its items",
        [
            insert(
                "batches",
                name="Cats",
                question="Is it a cat?",
                options='["yes", "no"]',
                overlap=2,
                reward=0.25,
                status="open",
                created_by=BOSS,
                created_at=T,
                published_at=T,
                gold_items=3,
                gold_total=3,
                gold_seed="ab12" * 8,
                source_file="file-1",
            ),
            _item(1, external_id="c1"),
            _item(2, external_id="c2"),
            _item(3, "yes"),
            _item(4, "no", image="https://example.org/4.jpg"),
            _item(5, "yes"),
            _item(6, "yes", exam=1, explanation="It purrs"),
        ],
    ),
    (
        "two workers join",
        [
            insert("workers", id=ANN, name="Ann", language="en", created_at=T, last_seen_at=T),
            insert("workers", id=BOB, name="Bob", created_at=T, last_seen_at=T),
        ],
    ),
    ("a task handed out", [_assignment(1, ANN, "task", T + 1)]),
    (
        "the task answered while gold is owed",
        [
            sql("UPDATE worker_batches SET draws = 2, gold_drawn = 1, gold_owed = 1"),
            _answer(1, 1, ANN, "yes", T + 2.5, source="message-1"),
        ],
    ),
    (
        "gold handed out and answered, fast, once the median is known and the reward raised",
        [
            sql("UPDATE batches SET median_ms = 4000, reward = 0.5"),
            _assignment(3, ANN, "gold", T + 3),
            _answer(2, 3, ANN, "yes", T + 3.3, correct=1, fast=1),
        ],
    ),
    (
        "gold skipped",
        [
            _assignment(4, ANN, "gold", T + 4),
            sql("UPDATE assignments SET status = 'skipped', closed_at = ? WHERE id = 3", T + 5),
        ],
    ),
    (
        "a task skipped",
        [
            _assignment(2, ANN, "task", T + 6),
            sql("UPDATE assignments SET status = 'skipped', closed_at = ? WHERE id = 4", T + 7),
        ],
    ),
    (
        "two workers' gold let expire, in one statement",
        [
            _assignment(5, ANN, "gold", T + 8),
            _assignment(5, BOB, "gold", T + 8),
            sql(
                "UPDATE assignments SET status = 'expired', closed_at = ?"
                " WHERE status = 'open' AND expires_at <= ?",
                T + 609,
                T + 608,
            ),
        ],
    ),
    (
        "answered gold marked expired",
        [sql("UPDATE assignments SET status = 'expired' WHERE id = 2")],
    ),
    (
        "an answer from a worker with no record in the batch",
        [
            _assignment(1, BOB, "task", T + 10),
            sql("DELETE FROM worker_batches WHERE worker_id = ?", BOB),
            _answer(7, 1, BOB, "no", T + 11),
        ],
    ),
    (
        "a worker suspended, the worker and the coordinator told",
        [
            sql(
                "UPDATE worker_batches SET status = 'suspended', reason = 'gold accuracy 0.40',"
                " cause = 'gold', changed_at = ? WHERE worker_id = ?",
                T + 12,
                BOB,
            ),
            insert("notices", worker_id=BOB, batch_id=1, kind="suspended", created_at=T + 12),
            insert(
                "notices",
                coordinator_id=BOSS,
                batch_id=1,
                kind="suspensions",
                text="Bob: 40% on gold",
                created_at=T + 12,
            ),
            insert(
                "audit_log",
                actor_id=BOSS,
                action="suspend",
                subject_id=BOB,
                reason="gold",
                created_at=T + 12,
            ),
        ],
    ),
    (
        "the rest of labelbot's tables",
        [
            insert("coordinators", user_id=BOSS, promoted_by=BOSS, created_at=T),
            insert(
                "ledger",
                worker_id=ANN,
                batch_id=1,
                amount=-0.1,
                kind="adjustment",
                note="a typo",
                created_at=T + 13,
            ),
            insert(
                "broadcasts",
                batch_id=1,
                text="Cats are back",
                created_at=T + 14,
                created_by=BOSS,
                paid=1,
                audience="batch",
                source_message="message-2",
            ),
            insert("deliveries", broadcast_id=1, worker_id=ANN, status="sent", updated_at=T + 15),
            insert(
                "deliveries",
                broadcast_id=1,
                worker_id=BOB,
                status="unknown",
                updated_at=T + 15,
                error="stopped",
            ),
            insert(
                "exam_attempts",
                batch_id=1,
                worker_id=BOB,
                started_at=T,
                finished_at=T + 1,
                answered=1,
                correct=1,
                passed=1,
            ),
            insert("exam_answers", attempt_id=1, item_id=6, value="yes", correct=1, created_at=T),
            insert(
                "reports", item_id=2, batch_id=1, worker_id=BOB, reason="unclear", created_at=T + 16
            ),
            sql("UPDATE items SET state = 'broken', reviewed_at = ? WHERE id = 2", T + 17),
            sql("UPDATE workers SET card_message_id = 2000000000123 WHERE id = ?", ANN),
        ],
    ),
]


def test_triggers_leave_the_same_rows(both: tuple[sqlite3.Connection, Connection]) -> None:
    lite, pg = both
    tables = tables_of(lite)
    for step, steps in SCENARIO:
        run(lite, pg, steps)
        assert dump(pg, tables) == dump(lite, tables), step
    # The scenario does what its steps say: Ann's and Bob's records hold each of them.
    counts = (
        "SELECT tasks, gold_issued, answers, gold_answers, gold_correct, fast_answers, judged,"
        " gold_owed, gold_returned FROM worker_batches WHERE worker_id = ?"
    )
    assert lite.execute(counts, (ANN,)).fetchone() == (5, 3, 2, 1, 1, 1, 1, 0, 2)
    assert lite.execute(counts, (BOB,)).fetchone() == (0, 0, 1, 0, 0, 0, 1, 0, 0)
    assert lite.execute("SELECT answers, wanted FROM items WHERE id = 1").fetchone() == (2, 0)


# -- the same rows refused ------------------------------------------------------------------

POSTGRESQL_REFUSALS = {
    "23514": "CHECK",
    "23505": "UNIQUE",
    "23502": "NOT NULL",
    "23503": "FOREIGN KEY",
}

# After the scenario, each statement in turn, with the constraint that refuses it (None: it
# is accepted, and sets up the next one). Together they reach every CHECK of the schema.
REFUSED: list[tuple[Statement, str | None]] = [
    (sql("UPDATE workers SET status = 'gone'"), "CHECK"),
    (sql("UPDATE workers SET notify = 2"), "CHECK"),
    (sql("UPDATE workers SET reachable = -1"), "CHECK"),
    (insert("workers", id=ANN + 9, name=None, created_at=0, last_seen_at=0), "NOT NULL"),
    (sql("UPDATE batches SET overlap = 0"), "CHECK"),
    (sql("UPDATE batches SET gold_ratio = 1.5"), "CHECK"),
    (sql("UPDATE batches SET gold_ratio = 1"), None),
    (sql("UPDATE batches SET reward = -1"), "CHECK"),
    (sql("UPDATE batches SET status = 'live'"), "CHECK"),
    (
        insert(
            "batches", name="Again", question="?", overlap=1, created_at=0, source_file="file-1"
        ),
        "UNIQUE",
    ),
    (sql("DELETE FROM batches"), "FOREIGN KEY"),
    (sql("UPDATE items SET answers = -1 WHERE id = 1"), "CHECK"),
    (sql("UPDATE items SET wanted = -1 WHERE id = 1"), "CHECK"),
    (sql("UPDATE items SET text = NULL WHERE id = 1"), "CHECK"),
    (sql("UPDATE items SET text = NULL WHERE id = 4"), None),
    (sql("UPDATE items SET exam = 2"), "CHECK"),
    (sql("UPDATE items SET compared = 2"), "CHECK"),
    (sql("UPDATE items SET state = 'lost'"), "CHECK"),
    (sql("UPDATE items SET position = 2 WHERE id = 1"), "UNIQUE"),
    (sql("UPDATE items SET external_id = 'c2' WHERE id = 1"), "UNIQUE"),
    (insert("items", batch_id=99, position=9, text="lost", wanted=1), "FOREIGN KEY"),
    (sql("UPDATE assignments SET status = 'lost'"), "CHECK"),
    (sql("UPDATE assignments SET kind = 'bonus'"), "CHECK"),
    (_assignment(1, ANN, "task", 0), "UNIQUE"),
    # PostgreSQL spends an identity value on a refused row, SQLite does not: ids agree only
    # when given.
    (
        insert(
            "assignments", id=8, item_id=2, batch_id=1, worker_id=BOB, issued_at=0, expires_at=0
        ),
        None,
    ),
    (_assignment(3, BOB, "gold", 0), "UNIQUE"),
    (sql("UPDATE answers SET duration_ms = -1"), "CHECK"),
    (sql("UPDATE answers SET correct = 2"), "CHECK"),
    (sql("UPDATE answers SET fast = 2"), "CHECK"),
    (sql("UPDATE answers SET source = 'message-1' WHERE id = 2"), "UNIQUE"),
    (_answer(1, 2, ANN, "no", 0), "UNIQUE"),
    (sql("UPDATE deliveries SET status = 'lost'"), "CHECK"),
    (
        insert("deliveries", broadcast_id=1, worker_id=99, status="sent", updated_at=0),
        "FOREIGN KEY",
    ),
    (insert("worker_batches", worker_id=ANN, batch_id=1), "UNIQUE"),
    (sql("UPDATE worker_batches SET status = 'gone'"), "CHECK"),
    (sql("UPDATE worker_batches SET gold_owed = 2"), "CHECK"),
    (sql("UPDATE exam_attempts SET passed = 2"), "CHECK"),
    (insert("exam_attempts", batch_id=1, worker_id=ANN, started_at=0), None),
    (insert("exam_attempts", batch_id=1, worker_id=ANN, started_at=1), "UNIQUE"),
    (sql("UPDATE exam_answers SET correct = 2"), "CHECK"),
    (
        insert("exam_answers", attempt_id=1, item_id=6, value="no", correct=0, created_at=0),
        "UNIQUE",
    ),
    (insert("coordinators", user_id=BOSS, promoted_by=BOSS, created_at=0), "UNIQUE"),
    (sql("UPDATE ledger SET kind = 'bonus'"), "CHECK"),
    (sql("UPDATE ledger SET answer_id = 1 WHERE answer_id = 2"), "UNIQUE"),
    (sql("UPDATE reports SET reason = 'boring'"), "CHECK"),
    (sql("UPDATE notices SET kind = 'other'"), "CHECK"),
    (sql("UPDATE notices SET status = 'lost'"), "CHECK"),
    (sql("UPDATE notices SET coordinator_id = ? WHERE worker_id IS NOT NULL", BOSS), "CHECK"),
    (sql("UPDATE notices SET worker_id = NULL WHERE worker_id IS NOT NULL"), "CHECK"),
    (sql("UPDATE broadcasts SET paid = 2"), "CHECK"),
    (sql("UPDATE broadcasts SET audience = 'some'"), "CHECK"),
    (insert("broadcasts", text="Again", created_at=0, source_message="message-2"), "UNIQUE"),
]


def sqlite_refusal(conn: sqlite3.Connection, statement: Statement) -> str | None:
    try:
        conn.execute(*statement)
    except sqlite3.IntegrityError as error:
        return str(error).split(" constraint failed")[0]
    return None


def postgresql_refusal(conn: Connection, statement: Statement) -> str | None:
    text, params = statement
    try:
        conn.execute(to_psycopg(text), params)
    except psycopg.errors.IntegrityError as error:
        return POSTGRESQL_REFUSALS[error.sqlstate or ""]
    return None


def test_constraints_refuse_the_same_rows(both: tuple[sqlite3.Connection, Connection]) -> None:
    lite, pg = both
    for _, steps in SCENARIO:
        run(lite, pg, steps)
    for statement, refusal in REFUSED:
        found = (sqlite_refusal(lite, statement), postgresql_refusal(pg, statement))
        assert found == (refusal, refusal), statement
    tables = tables_of(lite)
    assert dump(pg, tables) == dump(lite, tables)


# -- the same rows carried through an upgrade -----------------------------------------------

# Rows written at a version (the key) before the later migrations run over them: the data
# each migration moves, fills in or rebuilds.
SEEDS: dict[int, list[Statement]] = {
    1: [
        insert("workers", id=ANN, name="Ann", created_at=T, last_seen_at=T),
        insert("workers", id=BOB, name="Bob", created_at=T, last_seen_at=T),
        # Batch 1 has every ordinary item answered (complete), batch 2 does not.
        insert(
            "batches",
            name="Cats",
            question="Is it a cat?",
            options='["yes", "no"]',
            overlap=1,
            reward=0.5,
            status="open",
            created_at=T,
        ),
        insert(
            "batches",
            name="Notes",
            question="Why?",
            overlap=2,
            instructions="Be brief",
            created_at=T,
        ),
        insert("items", batch_id=1, position=1, text="a cat", answers=1, wanted=0),
        insert("items", batch_id=1, position=2, text="gold", gold="yes", answers=1, wanted=1),
        insert("items", batch_id=2, position=1, text="why", answers=1, wanted=1),
        *(
            insert(
                "assignments",
                item_id=item,
                batch_id=batch,
                worker_id=worker,
                status=status,
                issued_at=T,
                expires_at=T + 600,
            )
            for item, batch, worker, status in [
                (1, 1, ANN, "answered"),
                (2, 1, ANN, "answered"),
                (3, 2, BOB, "open"),
            ]
        ),
        *(
            insert(
                "answers",
                assignment_id=item,
                item_id=item,
                batch_id=1,
                worker_id=ANN,
                value=value,
                duration_ms=900,
                created_at=T + item,
            )
            for item, value in [(1, "yes"), (2, "no")]
        ),
        insert("broadcasts", batch_id=1, text="Cats", created_at=T),
        insert("deliveries", broadcast_id=1, worker_id=ANN, status="sent", updated_at=T),
    ],
    5: [
        # SQLite's LIKE ignores case: 'Gold accuracy' is gold's cause too.
        sql(
            "UPDATE worker_batches SET status = 'suspended', reason = 'Gold accuracy 0.40',"
            " changed_at = ? WHERE worker_id = ?",
            T + 3,
            ANN,
        ),
        sql(
            "UPDATE worker_batches SET reason = 'reinstated', changed_at = ? WHERE worker_id = ?",
            T + 4,
            BOB,
        ),
        insert(
            "worker_batches",
            worker_id=ANN,
            batch_id=2,
            status="suspended",
            reason="answers 5 times faster than usual",
            changed_at=T + 5,
        ),
        insert(
            "worker_batches",
            worker_id=BOB,
            batch_id=1,
            status="failed",
            reason="exam failed",
            changed_at=T + 6,
        ),
    ],
    7: [
        insert(
            "notices",
            worker_id=ANN,
            batch_id=1,
            kind="suspended",
            status="sent",
            created_at=T,
            updated_at=T + 1,
        ),
        insert("notices", worker_id=BOB, batch_id=1, kind="reinstated", created_at=T + 2),
    ],
}


def test_upgrades_carry_the_same_rows(lite: sqlite3.Connection, pg: Connection) -> None:
    applied = 0
    for version in [*SEEDS, LATEST]:
        migrate_sqlite(lite, applied, version)
        migrate_postgresql(pg, applied, version)
        if applied < 6 <= version:
            # A secret drawn by each engine: alike in form only, then set alike.
            seeds = [row[0] for row in pg.execute("SELECT gold_seed FROM batches")]
            seeds += [row[0] for row in lite.execute("SELECT gold_seed FROM batches")]
            assert all(re.fullmatch("[0-9a-f]{32}", seed) for seed in seeds), seeds
            assert len(set(seeds)) == len(seeds)
            run(lite, pg, [sql("UPDATE batches SET gold_seed = 'seed-' || id")])
        applied = version
        tables = tables_of(lite)
        assert dump(pg, tables) == dump(lite, tables), f"after migration {version}"
        run(lite, pg, SEEDS.get(version, []))
    # The rebuilt notices go on numbering after the rows they were copied with.
    run(lite, pg, [insert("notices", coordinator_id=BOSS, kind="completed", created_at=T)])
    assert dump(pg, ["notices"]) == dump(lite, ["notices"])
