"""deploy/compose.yaml's services as local processes: the same commands, environment and health checks,
with compose's interpolation, its volumes as host folders and its service names as 127.0.0.1.

Containers cannot run on the test machines, so this is how the deployment is tested: everything a
service runs is read from the Compose file here, never written down a second time.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
# The image's WORKDIR: the repository's files are there, so commands name paths relative to it.
IMAGE_WORKDIR = "/opt/chaffee"
# Variables the image itself sets (deploy/Dockerfile's ENV) that the processes need too.
IMAGE_ENVIRONMENT = {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}

_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class ComposeError(ValueError):
    """A Compose file this module cannot run as written."""


def load_compose(path: Path = COMPOSE_FILE) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's interpolation: `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
    `${VAR?error}`, `$VAR`, and `$$` for a literal dollar."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        value = variables.get(name)
        unset_or_empty = value is None or (value == "" and operator is not None and operator.startswith(":"))
        if operator in (":-", "-") and (value is None if operator == "-" else unset_or_empty):
            return interpolate(argument, variables)
        if operator in (":?", "?") and (value is None if operator == "?" else unset_or_empty):
            raise ComposeError(f"{name}: {argument or 'is required'}")
        return value or ""

    return _REFERENCE.sub(replace, text)


def referenced_variables(compose_text: str) -> set[str]:
    """Every variable a Compose file's text interpolates."""
    return {m.group(1) or m.group(4) for m in _REFERENCE.finditer(compose_text) if m.group(0) != "$$"}


@dataclass
class ServiceProcess:
    """One service as a process: its argv, its whole environment and its health check command."""

    name: str
    argv: list[str]
    environment: dict[str, str]  # what compose.yaml sets, interpolated and mapped to this machine
    healthcheck: str | None
    process: subprocess.Popen | None = None
    output: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.output[-200:])


def service_process(
    compose: dict,
    name: str,
    variables: Mapping[str, str],
    mounts: Mapping[str, Path],
) -> ServiceProcess:
    """What running service `name` means on this machine.

    `variables` play the env file's part; `mounts` give each container folder the service mounts
    (its volumes, and folders the image provides such as DAGSTER_HOME) a host folder. A value naming
    a mounted folder is rewritten to the host folder; a value that is another service's name (a
    hostname on compose's network) becomes 127.0.0.1.
    """
    service = compose["services"][name]
    for volume in service.get("volumes", []):
        target = interpolate(volume, variables).split(":")[1]
        if target not in mounts:
            raise ComposeError(f"{name} mounts {target}, which has no host folder here")
    command = service.get("command")
    if command is None:
        raise ComposeError(f"{name} has no command")
    if isinstance(command, str):
        argv = shlex.split(interpolate(command, variables))
    else:
        argv = [interpolate(str(part), variables) for part in command]
    environment = {
        key: _on_this_machine(interpolate(str(value), variables), compose, mounts)
        for key, value in (service.get("environment") or {}).items()
    }
    check = (service.get("healthcheck") or {}).get("test")
    healthcheck = None
    if check:
        if check[0] != "CMD-SHELL":
            raise ComposeError(f"{name}'s health check must be CMD-SHELL")
        healthcheck = interpolate(check[1], variables)
    return ServiceProcess(name, argv, environment, healthcheck)


def _on_this_machine(value: str, compose: dict, mounts: Mapping[str, Path]) -> str:
    if value in compose["services"]:
        return "127.0.0.1"
    for container_path, host_path in sorted(mounts.items(), key=lambda item: -len(item[0])):
        if value == container_path or value.startswith(container_path + "/"):
            return str(host_path) + value[len(container_path) :]
    return value


def base_environment() -> dict[str, str]:
    """What a container has before compose's variables: the image's own, and the interpreter's path.
    Nothing of this machine's project settings leaks in (no DATABASE_URL, no keys, no homes)."""
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "HOME", "PYTHONPATH", "CI")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(IMAGE_ENVIRONMENT)
    return env


def start(service: ServiceProcess) -> None:
    """Start the service's command in the image's working directory, in its own process group."""
    env = {**base_environment(), **service.environment}
    service.process = subprocess.Popen(
        service.argv,
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    stream = service.process.stdout
    threading.Thread(target=lambda: service.output.extend(iter(stream.readline, "")), daemon=True).start()


def run_to_completion(service: ServiceProcess, timeout_s: float) -> None:
    """Start a one-shot service and wait for it to exit 0, as compose's
    `condition: service_completed_successfully` does before it starts what depends on it."""
    start(service)
    assert service.process
    try:
        returncode = service.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"{service.name} still running after {timeout_s:.0f} s:\n{service.log()}"
        ) from None
    if returncode != 0:
        time.sleep(0.2)  # the reader thread's last lines
        raise AssertionError(f"{service.name} exited with {returncode}:\n{service.log()}")


def wait_healthy(service: ServiceProcess, timeout_s: float) -> None:
    """Run the service's own health check until it passes, as Docker does."""
    assert service.healthcheck and service.process
    env = {**base_environment(), **service.environment}
    deadline = time.monotonic() + timeout_s
    while True:
        if service.process.poll() is not None:
            raise AssertionError(f"{service.name} exited with {service.process.returncode}:\n{service.log()}")
        check = subprocess.run(
            ["sh", "-c", service.healthcheck], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
        )
        if check.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{service.name} not healthy after {timeout_s:.0f} s ({check.stderr.strip()[-300:]}):\n"
                f"{service.log()}"
            )
        time.sleep(1)


# `docker compose down` waits this long after SIGTERM before it kills a container.
STOP_GRACE_S = 10.0


def stop_all(services: list[ServiceProcess]) -> None:
    """SIGTERM to every service at once, as `docker compose down` sends, then SIGKILL to any still
    running after STOP_GRACE_S."""
    running_now = [s.process for s in services if s.process is not None and s.process.poll() is None]
    for process in running_now:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for process in running_now:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@contextlib.contextmanager
def running(services: list[ServiceProcess]) -> Iterator[None]:
    try:
        yield
    finally:
        stop_all(services)
