"""Entry point of the `chaffee` command: one subcommand per module, each registering itself."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys

# Modules that each expose `register(subparsers)`. Handlers import heavy libraries (Dagster,
# torch) themselves, so `chaffee --help` stays instant.
COMMAND_MODULES = (
    "chaffee_assets.cli.db_cmd",
    "chaffee_assets.cli.dev_cmd",
    "chaffee_assets.cli.ingest_cmd",
    "chaffee_assets.cli.captions_cmd",
    "chaffee_assets.cli.transcribe_cmd",
    "chaffee_assets.cli.search_cmd",
    "chaffee_assets.cli.eval_cmd",
    "chaffee_assets.cli.demo_cmd",
    "chaffee_assets.cli.serve_cmd",
    "chaffee_assets.cli.alerts_cmd",
    "chaffee_assets.cli.speakers_cmd",
)


LOST_CONNECTION = "the connection to PostgreSQL failed"


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chaffee",
        description="Ask Dr Chaffee: turn a YouTube channel into searchable, timestamped text.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _quiet_libraries() -> None:
    # A terminal command prints its own progress: no model-loading bars from Hugging Face. (The
    # Dagster beta features the code location uses knowingly are silenced where it is defined.)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _batch_dagster_events() -> None:
    # A run over a range of days records one materialisation per day and asset; Dagster writes
    # them one statement and transaction at a time unless this opt-in batch size is set, and then
    # writes each step's in one insert. Runs in this process and in the run workers `chaffee dev`'s
    # daemon starts (which inherit the environment) then spend half as much per day of a range
    # (docs/retrieval.md). Any size above the days a run covers (31) batches a whole step.
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "100")


# What dagster-postgres logs before each of its retries of a lost connection to Dagster's
# database: the command says it once, in its error line, if the retries fail.
_RETRY_NOTICE = "Retrying failed database"


def _hide_connection_retries() -> None:
    logging.getLogger().addFilter(lambda record: not str(record.msg).startswith(_RETRY_NOTICE))


def _lost_connection(exc: BaseException) -> BaseException | None:
    """The connection error behind `exc` when it is a connection to PostgreSQL that failed or broke
    (Dagster's storage through SQLAlchemy and psycopg2, or the warehouse through psycopg)."""
    import psycopg
    import sqlalchemy.exc

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.OperationalError | psycopg.OperationalError):
            error = getattr(seen, "orig", None) or seen
            # No SQLSTATE: the client lost or never had the connection; class 08 and 57P01-03: the
            # server ended it. Other operational errors (a cancelled statement) are not outages.
            code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
            if code is None or code.startswith("08") or code in ("57P01", "57P02", "57P03"):
                return error
            return None
        seen = seen.__cause__ or seen.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command. Whatever goes wrong ends as one `error: …` line on stderr, never a traceback
    (set CHAFFEE_DEBUG=1 to see one): 2 for what the user can fix, 1 for anything else."""
    import psycopg

    from chaffee_assets.cli import termination
    from chaffee_assets.cli.terminal import printable
    from chaffee_assets.error_text import one_line
    from chaffee_assets.settings import SettingsError
    from chaffee_assets.warehouse.server import WarehouseError

    _quiet_libraries()
    _hide_connection_retries()
    _batch_dagster_events()
    parser = build_parser()
    args = parser.parse_args(argv)
    termination.install()
    try:
        status = args.handler(args)
    except (UserError, SettingsError, WarehouseError) as exc:
        print(f"error: {printable(one_line(exc))}", file=sys.stderr)
        return 2
    except termination.Terminated:
        print("stopped (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 130
    except psycopg.Error as exc:
        if _debugging():
            raise
        if cause := _lost_connection(exc):
            print(f"error: {LOST_CONNECTION}: {printable(one_line(cause))}", file=sys.stderr)
            return 2
        print(f"error: the database refused: {printable(one_line(exc))}", file=sys.stderr)
        return 1
    except Exception as exc:
        if _debugging():
            raise
        if cause := _lost_connection(exc):
            print(f"error: {LOST_CONNECTION}: {printable(one_line(cause))}", file=sys.stderr)
            return 2
        print(
            f"error: {type(exc).__name__}: {one_line(exc)} (set CHAFFEE_DEBUG=1 to see where)",
            file=sys.stderr,
        )
        return 1
    return int(status or 0)


def _debugging() -> bool:
    # The environment itself, not `settings()`: a malformed setting must not hide the traceback asked for.
    return bool(os.environ.get("CHAFFEE_DEBUG", "").strip())


if __name__ == "__main__":
    sys.exit(main())
