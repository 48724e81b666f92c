"""A real `prefect server start` for the tests that need one: deployments, schedules, global concurrency limits,
artifacts and task runs read back from the server's database.

The rest of the suite keeps Prefect's ephemeral server (tests/conftest.py pops PREFECT_API_URL): nothing here
changes this process's environment. Subprocesses (`hiw`, `prefect`) get the server's URL through
``server.env``; in-process client calls go through ``server.api()`` / ``server.client()``, which set it with
Prefect's ``temporary_settings``. Tests reach the helpers through the ``prefect_server`` fixture's methods.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
TESTS = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM ``proc``, then kill it if it is still there after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


@dataclass(frozen=True)
class PrefectServer:
    """A running ``prefect server start`` and the ways tests talk to it."""

    api_url: str  # http://127.0.0.1:PORT/api
    env: dict[str, str]  # os.environ with PREFECT_API_URL pointing at this server (for subprocesses)
    log: Path  # the server's own output

    def hiw(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None, cwd=None):
        """Run ``hiw ARGS`` against the server and wait for it (``CompletedProcess``, text output)."""
        return self.run([str(BIN / "hiw"), *args], timeout=timeout, env=env, cwd=cwd)

    def prefect(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None, cwd=None):
        """Run ``prefect ARGS`` against the server and wait for it."""
        return self.run([str(BIN / "prefect"), *args], timeout=timeout, env=env, cwd=cwd)

    def run(self, argv: list[str], timeout: float, env: dict[str, str] | None = None, cwd=None):
        return subprocess.run(
            argv, capture_output=True, text=True, env={**self.env, **(env or {})}, cwd=cwd, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    @contextmanager
    def background(self, argv: list[str], log: Path, env: dict[str, str] | None = None, cwd=None):
        """A long-running process (``hiw deploy``, ``prefect worker start``) talking to the server, output to
        ``log``; yields the Popen and stops it (SIGTERM, then kill) when the block ends."""
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**self.env, **(env or {})},
                cwd=cwd,
            )  # fmt: skip
        try:
            yield proc
        finally:
            stop(proc)

    @contextmanager
    def api(self) -> Iterator[None]:
        """In-process Prefect calls (``get_client``, ``run_deployment``, ``Artifact.get``) go to the server."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            yield

    @contextmanager
    def client(self):
        """A synchronous Prefect client of the server."""
        from prefect import get_client

        with self.api(), get_client(sync_client=True) as c:
            yield c

    @contextmanager
    def tag_limit(self, tag: str, limit: int) -> Iterator[None]:
        """The concurrency limit ``tag:<tag>`` on the server for the duration of the block."""
        with self.client() as c:
            c.create_concurrency_limit(tag=tag, concurrency_limit=limit)
        try:
            yield
        finally:
            with self.client() as c:
                c.delete_concurrency_limit_by_tag(tag)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory) -> Iterator[PrefectServer]:
    """``prefect server start`` on a free port with its own PREFECT_HOME (database), for the whole session."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    server_env = {
        **os.environ,
        "PREFECT_HOME": str(home),  # its own database, away from the tests' ephemeral one
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    server_env.pop("PREFECT_API_URL", None)
    log = home / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=server_env, cwd=home,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not healthy(api_url):
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited with {proc.returncode}:\n{log_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after {START_TIMEOUT_S} s:\n{log_tail(log)}")
            time.sleep(0.5)
        # the clients keep the tests' PREFECT_HOME (tests/conftest.py); COLUMNS: rich tables unwrapped
        env = {**os.environ, "PREFECT_API_URL": api_url, "COLUMNS": "200"}
        yield PrefectServer(api_url, env, log)
    finally:
        stop(proc)
