"""`chaffee dev`: the Dagster UI and daemon on the project's instance, database ready first."""

from __future__ import annotations

import argparse
import contextlib
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


# `dagster dev` is marked superseded by `dg dev`, which needs the dagster-dg-cli package and a `dg`
# project layout; this code location keeps the classic workspace.yaml layout, so the notice is
# silenced for that one process, knowingly.
_SUPERSEDED_DEV_NOTICE = "ignore:Function `dev_command` is superseded:FutureWarning"


def _dev(args: argparse.Namespace) -> int:
    from chaffee_assets.alerts.channels import alerts_off_notice
    from chaffee_assets.dagster_instance import apply_dagster_environment, project_instance
    from chaffee_assets.settings import settings
    from chaffee_assets.warehouse.migrate import upgrade

    settings()  # a malformed variable stops here in one line, not as a code location error in the UI
    upgrade()
    env = apply_dagster_environment()
    project_instance()  # creates Dagster's tables and sets the pool limits before the UI starts
    print(f"Dagster UI on http://{args.host}:{args.port} (instance: {env['DAGSTER_HOME']}/dagster.yaml)")
    off = alerts_off_notice(settings())
    if off:
        print(off)
    sys.stdout.flush()
    command = [
        sys.executable, "-W", _SUPERSEDED_DEV_NOTICE, "-m", "dagster", "dev",
        "-w", str(PROJECT_ROOT / "workspace.yaml"),
        "-h", args.host, "-p", str(args.port),
    ]  # fmt: skip
    # Ctrl-C (SIGINT) stops it cleanly even when the shell that started it left SIGINT ignored (a
    # background job, nohup): Python then installs no handler of its own, `dagster dev` would inherit
    # the ignore, and nothing but SIGKILL would stop either. Set before starting `dagster dev`, so it
    # starts with the default disposition.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # From DAGSTER_HOME: `dagster dev` warns when the folder it starts in holds a dagster.yaml other
    # than DAGSTER_HOME's, as the checkout does.
    process = subprocess.Popen(
        command, env=os.environ.copy(), cwd=env["DAGSTER_HOME"], start_new_session=True
    )
    # A supervisor stops us with SIGTERM: shut dagster down the same way as on Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return process.wait()
    except KeyboardInterrupt:
        return _stop(process)
    finally:
        if process.poll() is None:
            _stop(process)
        _forget_daemon()


def _forget_daemon() -> None:
    """The daemon is gone: without its last heartbeat, `chaffee ingest` does not wait for it."""
    with contextlib.suppress(Exception):  # best effort on the way out; the heartbeat ages out anyway
        from chaffee_assets.dagster_instance import project_instance

        with project_instance() as instance:
            instance.wipe_daemon_heartbeats()


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(process: subprocess.Popen) -> int:
    # Stop the whole session (webserver, daemon, code servers) the way Ctrl-C does; escalate if a
    # signal is ignored (a background job inherits SIGINT ignored) so nothing is left on the port.
    for sig, grace_s in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace_s)
            break
        except subprocess.TimeoutExpired:
            continue
    _kill_leftovers(process.pid)
    return process.returncode if process.returncode is not None else 1


def _kill_leftovers(session_id: int) -> None:
    """Children that outlive `dagster dev` (a code server mid-shutdown) go with the session."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(session_id, signal.SIGKILL)
