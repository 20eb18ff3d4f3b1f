"""The `labelbot` command line: a thin layer over the same services the bot uses."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from bot.logs import redact, setup_logging
from bot.settings import Settings, SettingsError, load_settings
from labeling.admin import AdminService
from labeling.batch import BatchSettings
from labeling.batches import BatchService, BatchStateError
from labeling.batchfile import FORMATS as FILE_FORMATS
from labeling.batchfile import MAX_CLI_ITEMS, BatchFileError
from labeling.erasure import ErasureRefused, ErasureService
from labeling.export import FORMATS, WHATS
from labeling.models import BatchNotFound
from labeling.report import format_status
from labeling.review import ItemNotFound, ReviewError, ReviewService, format_problem
from labeling.work import WorkService
from storage import open_engine
from storage.admin import AdminStore
from storage.backup import backup
from storage.batches import BatchStore
from storage.db import latest_version
from storage.engine import Engine
from storage.erasure import ErasureStore
from storage.exams import ExamStore
from storage.reviews import ReviewStore
from storage.tasks import TaskStore
from storage.workers import WorkerStore


class CommandError(Exception):
    """A problem the user can fix, printed as one line without a traceback."""


class NotReady(Exception):
    """labelbot cannot do its work as things stand (the schema is behind, Telegram cannot be
    reached): one line naming the cause and what to check, and exit code 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelbot", description="Data labeling by crowd workers on Telegram."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="run the bot (long polling)")
    demo = commands.add_parser("demo", help="the whole system on this machine, no token needed")
    demo.add_argument("--workers", type=int, default=30, help="simulated workers (default 30)")
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("demo-output"),
        help="folder for the demo's database and exports",
    )
    commands.add_parser("migrate", help="bring the database schema up to date")
    backup = commands.add_parser("backup", help="copy the live database, safely while it runs")
    backup.add_argument("path", type=Path, help="where to write the copy")

    copy = commands.add_parser(
        "copy-db", help="copy the whole database into an empty one, SQLite <-> PostgreSQL"
    )
    copy.add_argument(
        "--to",
        required=True,
        metavar="TARGET",
        help="a postgresql:// URL, or the path of an SQLite file (made if missing)",
    )

    batch = commands.add_parser("import", help="create a batch from a CSV or JSON Lines file")
    batch.add_argument("file", type=Path)
    batch.add_argument("--question", required=True, help="what workers are asked")
    for name, field in BatchSettings.model_fields.items():
        if name == "question":
            continue
        default = "the file's name" if name == "name" else field.default
        batch.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            metavar="VALUE",
            help=f"batch setting {name} (default: {default})",
        )
    batch.add_argument("--format", choices=FILE_FORMATS, help="default: from the file name")

    publish = commands.add_parser("publish", help="open a batch and notify the workers")
    publish.add_argument("batch", type=int)
    status = commands.add_parser("status", help="progress of one batch or all")
    status.add_argument("batch", type=int, nargs="?")

    export = commands.add_parser("export", help="write a batch's labels or answers")
    export.add_argument("batch", type=int)
    export.add_argument("--what", choices=WHATS, default="labels")
    export.add_argument("--format", choices=FORMATS, default="csv")
    export.add_argument("-o", "--output", type=Path, help="default: batch-N-WHAT.FORMAT")

    trust = commands.add_parser("trust", help="each worker's gold accuracy and standing")
    trust.add_argument("batch", type=int)

    reports = commands.add_parser(
        "reports", help="items workers reported, broken items and suspect gold"
    )
    reports.add_argument("batch", type=int)
    gold = commands.add_parser("gold", help="correct a gold item's answer, or drop it from gold")
    gold.add_argument("batch", type=int)
    gold.add_argument("item", help="the item's id from the batch file, or #number")
    action = gold.add_mutually_exclusive_group(required=True)
    action.add_argument("--answer", help="the right answer")
    action.add_argument("--drop", action="store_true", help="make it an ordinary item")
    restore = commands.add_parser(
        "restore", help="put a broken item or suspect gold back into circulation"
    )
    restore.add_argument("batch", type=int)
    restore.add_argument("item", help="the item's id from the batch file, or #number")

    erase = commands.add_parser(
        "erase", help="forget a worker: name and language removed, Telegram id pseudonymised"
    )
    erase.add_argument("worker", type=int, help="the worker's Telegram user id")

    reinstate = commands.add_parser("reinstate", help="let a suspended worker back into a batch")
    reinstate.add_argument("batch", type=int)
    reinstate.add_argument("worker", type=int, help="the worker's Telegram user id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "run":
            return run_bot(settings)
        if args.command == "backup":
            return backup_database(settings, args.path)
        if args.command == "copy-db":
            return copy_db(settings, args.to)
        if args.command == "demo":
            from bot.demo import run_demo  # the demo's simulation is not needed elsewhere

            return asyncio.run(run_demo(workers=args.workers, out=args.out))
        if (
            args.command != "migrate"
            and settings.database_url is None
            and not Path(settings.database_path).exists()
        ):
            raise NotReady(
                f"there is no database at {settings.database_path}: run `labelbot migrate`"
                " to create it"
            )
        return asyncio.run(_with_database(settings, args))
    except (SettingsError, CommandError) as error:
        print(f"labelbot: {error}", file=sys.stderr)
        return 2
    except NotReady as error:
        print(f"labelbot: {error}", file=sys.stderr)
        return 1
    except BatchFileError as error:
        print(
            f"labelbot: the file was not imported, nothing was stored:\n{error.describe()}",
            file=sys.stderr,
        )
        return 1


def copy_db(settings: Settings, target: str) -> int:
    """Copies the configured database (DATABASE_URL, else DATABASE_PATH) into `target`, an
    empty database of the other engine or the same, and prints the rows of each table."""
    from storage.copy import CopyError, copy_database, is_url

    url = _url(settings)
    source = url or str(settings.database_path)
    if not url and not Path(source).exists():
        raise NotReady(f"there is no database at {source}: nothing to copy")
    if source == target or (not is_url(target) and not url and Path(target) == Path(source)):
        raise CommandError("the target is the source")

    async def migrate_target() -> None:
        engine = open_engine(Path(target), target if is_url(target) else None)
        await engine.open()
        try:
            await engine.migrate()
        finally:
            await engine.close()

    try:
        asyncio.run(migrate_target())
        copied = copy_database(source, target)
    except CopyError as error:
        raise CommandError(f"copy-db: {error}; nothing was copied") from None
    except Exception as error:  # the driver's own errors: a refused connection, a bad file
        raise CommandError(f"copy-db failed, nothing was copied: {_redacted(error)}") from None
    width = max(len(done.table) for done in copied)
    for done in copied:
        print(f"{done.table:<{width}} {done.rows:>12,}")
    total = sum(done.rows for done in copied)
    print(f"copied {total:,} rows from {_shown(source)} to {_shown(target)}; every count checked")
    return 0


def _url(settings: Settings) -> str | None:
    return settings.database_url.get_secret_value() if settings.database_url else None


def _shown(where: str) -> str:
    """A database named without its password."""
    from urllib.parse import urlsplit

    if not where.startswith(("postgresql://", "postgres://")):
        return where
    parts = urlsplit(where)
    return f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}"


def _redacted(error: Exception) -> str:
    """An error's first line; libpq's messages name the host, never the password."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def backup_database(settings: Settings, path: Path) -> int:
    if settings.database_url is not None:  # storage.backup copies a SQLite file
        raise CommandError("backup copies SQLite databases; back up PostgreSQL with pg_dump")
    try:
        size = backup(Path(settings.database_path), path)
    except (OSError, sqlite3.Error) as error:
        raise CommandError(f"backup failed: {error}") from None
    print(f"backed up {settings.database_path} to {path} ({size / 1e6:.1f} MB)")
    return 0


def run_bot(settings: Settings) -> int:
    from telegram.error import TelegramError

    from bot.app import ALLOWED_UPDATES, POLL_INTERVAL, WEBHOOK_PATH, build_application

    token = settings.token()
    setup_logging(settings.log_level, token)
    application = build_application(settings)
    try:
        if settings.webhook_url and settings.webhook_secret:
            application.run_webhook(
                listen=settings.webhook_listen,
                port=settings.webhook_port,
                url_path=WEBHOOK_PATH,
                webhook_url=settings.webhook_url,
                secret_token=settings.webhook_secret.get_secret_value(),
                allowed_updates=ALLOWED_UPDATES,
            )
        else:
            application.run_polling(poll_interval=POLL_INTERVAL, allowed_updates=ALLOWED_UPDATES)
    except TelegramError as error:
        raise NotReady(redact(startup_failure(error, settings), token)) from None
    return 0


def startup_failure(error: Exception, settings: Settings) -> str:
    """What stopped `labelbot run` from starting, and what to check, in one line. Never the
    error's text for a refused token: PTB's names the token."""
    from telegram.error import BadRequest, InvalidToken, NetworkError

    if isinstance(error, InvalidToken):
        return (
            "Telegram refused the bot token (401 Unauthorized): check TELEGRAM_BOT_TOKEN"
            " (the token from @BotFather, revoked tokens stop working)"
        )
    if isinstance(error, NetworkError) and not isinstance(error, BadRequest):  # or TimedOut
        return (
            f"cannot reach Telegram at {settings.telegram_base_url}: {error}; check the network"
            " (a proxy, a firewall) and TELEGRAM_BASE_URL"
        )
    if settings.webhook_url:
        return (
            f"Telegram refused the webhook {settings.webhook_url}: {error}; check that"
            " WEBHOOK_URL is a public https address that reaches this bot"
        )
    return f"Telegram refused to start the bot: {error}; check TELEGRAM_BASE_URL"


async def _with_database(settings: Settings, args: argparse.Namespace) -> int:
    db = open_engine(
        settings.database_path, _url(settings), synchronous=settings.sqlite_synchronous
    )
    try:
        await db.open()
    except Exception as error:  # the driver's: a server that does not answer, a refused login
        raise NotReady(f"cannot open the database: {_redacted(error)}") from None
    try:
        return await _on_database(db, settings, args)
    finally:
        await db.close()


async def _on_database(db: Engine, settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "migrate":
        applied = await db.migrate()
        version = await db.schema_version()
        done = f"applied {', '.join(map(str, applied))}" if applied else "nothing to apply"
        where = _shown(url) if (url := _url(settings)) else str(settings.database_path)
        print(f"{where}: schema version {version} ({done})")
        return 0
    await _check_schema(db)
    if args.command == "reinstate":
        return await _reinstate(db, settings, args)
    if args.command == "erase":
        return await _erase(db, settings, args)
    if args.command in _REVIEWS:
        try:
            return await _REVIEWS[args.command](ReviewService(ReviewStore(db)), args)
        except BatchNotFound as error:
            raise CommandError(f"there is no batch {error.args[0]}") from None
        except ItemNotFound as error:
            raise CommandError(f"batch {args.batch} has no item {error.args[0]}") from None
        except ReviewError as error:
            raise CommandError(str(error)) from None
    service = BatchService(
        BatchStore(db, owners=settings.coordinator_ids),
        min_hourly_rate=settings.min_hourly_rate,
        currency=settings.currency,
    )
    handler = _COMMANDS[args.command]
    try:
        return await handler(service, args)
    except BatchNotFound as error:
        raise CommandError(f"there is no batch {error.args[0]}") from None
    except BatchStateError as error:
        raise CommandError(str(error)) from None


async def _check_schema(db: Engine) -> None:
    """Only `migrate` and `run` change the schema: a command that did so on the side could
    surprise a bot running an older labelbot on the same file."""
    version, needed = await db.schema_version(), latest_version()
    if version < needed:
        raise NotReady(
            f"the database is at version {version}, this labelbot needs {needed}:"
            " run `labelbot migrate`"
        )
    if version > needed:
        raise NotReady(
            f"the database is at version {version}, newer than this labelbot knows"
            f" ({needed}): upgrade labelbot"
        )


async def _import(service: BatchService, args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        content = await asyncio.to_thread(path.read_bytes)
    except OSError as error:
        raise CommandError(f"{path}: {error.strerror or error}") from None
    given = {
        name: getattr(args, name)
        for name in BatchSettings.model_fields
        if getattr(args, name, None) is not None
    }
    given.setdefault("name", path.stem)
    try:
        settings = BatchSettings(**given)
    except ValidationError as error:
        reasons = "; ".join(
            f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        raise CommandError(reasons) from None
    imported = await service.import_file(
        content,
        path.name,
        settings,
        base_dir=path.parent.absolute(),
        file_format=args.format,
        max_items=MAX_CLI_ITEMS,
    )
    print(f"{imported.describe()}\nPublish it with: labelbot publish {imported.batch_id}")
    return 0


async def _publish(service: BatchService, args: argparse.Namespace) -> int:
    summary = await service.publish(args.batch)
    print(f"batch {summary.batch_id} is open; the running bot announces it to every active worker.")
    return 0


async def _status(service: BatchService, args: argparse.Namespace) -> int:
    summaries = await service.status(args.batch)
    if not summaries:
        print("no batches yet: create one with labelbot import FILE --question ...")
    for summary in summaries:
        print(format_status(summary))
    return 0


async def _export(service: BatchService, args: argparse.Namespace) -> int:
    path: Path = args.output or Path(f"batch-{args.batch}-{args.what}.{args.format}")
    await service.batches.get(args.batch)  # a missing batch leaves no empty file behind
    opener: Callable[[], AbstractContextManager[TextIO]]
    if str(path) == "-":
        opener = lambda: nullcontext(sys.stdout)  # noqa: E731
    else:
        opener = lambda: path.open("w", encoding="utf-8", newline="")  # noqa: E731
    with opener() as out:
        summary = await service.export(args.batch, args.what, args.format, out)
    if str(path) != "-":
        print(f"wrote {summary.rows} {args.what} rows to {path}")
        if summary.method is not None:
            sidecar = path.with_name(path.name + ".summary.json")
            sidecar.write_text(summary.to_json() + "\n", encoding="utf-8")
            print(f"{summary.describe()}\nsummary: {sidecar}")
        elif args.what == "answers":
            print(summary.describe())
    return 0


async def _reinstate(db: Engine, settings: Settings, args: argparse.Namespace) -> int:
    work = WorkService(
        WorkerStore(db),
        TaskStore(db),
        ExamStore(db),
        assignment_ttl=settings.assignment_timeout_seconds,
    )
    try:
        if not await work.reinstate(args.worker, args.batch):
            raise CommandError(f"worker {args.worker} is not suspended from batch {args.batch}")
    except BatchNotFound as error:
        raise CommandError(f"there is no batch {error.args[0]}") from None
    print(
        f"worker {args.worker} may work on batch {args.batch} again; their answers count, and"
        " the bot will tell them."
    )
    return 0


async def _erase(db: Engine, settings: Settings, args: argparse.Namespace) -> int:
    owners = frozenset(settings.coordinator_ids)
    erasure = ErasureService(ErasureStore(db), AdminService(AdminStore(db), owners).is_coordinator)
    try:
        erased = await erasure.erase(args.worker)
    except ErasureRefused as refused:
        raise CommandError(str(refused)) from None
    # The pseudonym is not shown: printed here, it would tie the two together again.
    print(
        f"worker {args.worker} erased: name and language removed; {erased.describe()}."
        " If they write to the bot again, they start as a new worker."
    )
    return 0


async def _trust(service: BatchService, args: argparse.Namespace) -> int:
    lines = await service.standing_lines(args.batch)
    if not lines:
        print(f"batch {args.batch}: no worker has had a task yet")
    for line in lines:
        print(line)
    return 0


async def _reports(review: ReviewService, args: argparse.Namespace) -> int:
    problems = await review.problems(args.batch)
    if not problems:
        print(f"batch {args.batch}: no reports and no suspect gold")
    for problem in problems:
        print(format_problem(problem))
    return 0


async def _gold(review: ReviewService, args: argparse.Namespace) -> int:
    if args.drop:
        done = await review.drop_gold(args.batch, args.item)
        print(f"{args.item} is an ordinary item now; {done.describe()}")
    else:
        done = await review.correct_gold(args.batch, args.item, args.answer)
        print(f"gold answer of {args.item} corrected; {done.describe()}")
    return 0


async def _restore(review: ReviewService, args: argparse.Namespace) -> int:
    done = await review.restore(args.batch, args.item)
    print(f"{args.item} is back in circulation; {done.describe()}")
    return 0


_REVIEWS: dict[str, Callable[[ReviewService, argparse.Namespace], Awaitable[int]]] = {
    "reports": _reports,
    "gold": _gold,
    "restore": _restore,
}


_COMMANDS: dict[str, Callable[[BatchService, argparse.Namespace], Awaitable[int]]] = {
    "import": _import,
    "publish": _publish,
    "status": _status,
    "export": _export,
    "trust": _trust,
}
