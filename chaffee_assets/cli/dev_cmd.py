"""`chaffee dev`: the Dagster UI and daemon on the project's instance, database ready first."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from chaffee_assets.settings import PROJECT_ROOT


def register(subparsers: argparse._SubParsersAction) -> None:
    dev = subparsers.add_parser(
        "dev",
        help="start the Dagster UI + daemon (http://127.0.0.1:3000) on the warehouse",
        description="Ensure the database is up and migrated, export the URLs dagster.yaml needs, "
        "and run `dagster dev` on workspace.yaml. Ctrl-C stops it.",
    )
    dev.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    dev.add_argument("--port", type=int, default=3000, help="webserver port (default 3000)")
    dev.set_defaults(handler=_dev)


def _dev(args: argparse.Namespace) -> int:
    from chaffee_assets.dagster_instance import apply_dagster_environment, project_instance
    from chaffee_assets.warehouse.migrate import upgrade

    upgrade()
    env = apply_dagster_environment()
    project_instance()  # creates Dagster's tables and sets the gpu pool limit before the UI starts
    print(f"Dagster UI on http://{args.host}:{args.port} (instance: {env['DAGSTER_HOME']}/dagster.yaml)")
    sys.stdout.flush()
    command = [
        sys.executable, "-m", "dagster", "dev",
        "-w", str(PROJECT_ROOT / "workspace.yaml"),
        "-h", args.host, "-p", str(args.port),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=os.environ.copy(), start_new_session=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        return _stop(process)
    finally:
        if process.poll() is None:
            _stop(process)


def _stop(process: subprocess.Popen) -> int:
    # dagster dev shuts its webserver, daemon and code servers down on SIGINT/SIGTERM; signal the
    # whole session so nothing is left holding the port.
    try:
        os.killpg(process.pid, signal.SIGTERM)
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()
    except ProcessLookupError:
        return 0
