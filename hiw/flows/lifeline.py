"""The build's child processes die with it, even when it is killed with SIGKILL (an OOM kill, a cron timeout).

A build starts Prefect's temporary API server, process-pool workers (and multiprocessing's resource tracker), local
Dask worker processes, and whatever those start. ``hold()`` marks the environment every one of them inherits with a
token of this process (``HIW_LIFELINE``), and first starts a watchdog: this file run by a bare interpreter
(``python -I -S lifeline.py PID TOKEN``, standard library only). The watchdog sleeps on a pidfd of PID until PID
exits, however it exits; then it sends SIGTERM to every process whose environment carries the token, and SIGKILL to
those still there after a short grace. On a normal exit or Ctrl-C the build has stopped its children already, and
the watchdog finds nothing.

Why not the alternatives: PR_SET_PDEATHSIG must be set inside each child (Prefect starts its server with no hook
to do so) and fires when the *thread* that started the child exits; pool workers are started from a Prefect
helper thread and Dask workers from a per-process watcher thread. A process group would take hiw out of the
terminal's foreground group (Ctrl-C) or, shared, would kill the rest of the shell pipeline.

Limits: Linux only (pidfd, /proc); elsewhere ``hold`` does nothing. /proc shows a process's environment as it was
at exec, so a child that the build's own process forks without exec is not marked (none does: the pool and Dask
start theirs with "spawn", the server is exec'ed); a descendant that replaces its environment escapes.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

MARK = "HIW_LIFELINE"  # space-separated tokens: a build started inside another build's tree carries both
GRACE_S = 3.0  # from SIGTERM to SIGKILL; the server and the pool and Dask workers stop on SIGTERM in about 0.1 s

_held: tuple[int, str, subprocess.Popen] | None = None  # (pid that holds it, token, watchdog)


def supported() -> bool:
    return sys.platform.startswith("linux") and os.path.isfile(__file__) and bool(sys.executable)


def hold() -> str | None:
    """Start this process's watchdog (once) and mark the environment its future children inherit.

    Call it before any child process starts. Returns the token, or None where it is not supported."""
    global _held
    if _held is not None and _held[0] == os.getpid():
        return _held[1]
    if not supported():
        return None
    import secrets  # here, not above: the watchdog runs this file too, and starts in half the time without them
    import subprocess

    token = f"{os.getpid()}-{secrets.token_hex(6)}"
    # started before the mark is set: the watchdog does not carry its own token (an enclosing build's, if any)
    watchdog = subprocess.Popen(
        [sys.executable, "-I", "-S", __file__, str(os.getpid()), token],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # nothing to say; an inherited pipe would also hold a caller's read open
        start_new_session=True,  # no Ctrl-C or hangup from the terminal: it must outlive the build
        cwd="/",  # it pins no directory (an unmount of the build's folder)
    )
    os.environ[MARK] = " ".join(filter(None, [os.environ.get(MARK), token]))
    _held = (os.getpid(), token, watchdog)
    return token


# The watchdog's side: runs as __main__ under ``python -I -S`` (no site-packages, no hiw imports).


def wait_for_exit(pid: int) -> None:
    """Return once process ``pid``, this process's parent, has exited."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # a kernel before 5.3, or a sandbox that forbids it: watch for being reparented instead
        fd = None
    if os.getppid() != pid:  # it died before the pidfd was opened (the pidfd may even be of a reused pid)
        return
    if fd is not None:
        select.select([fd], [], [])  # a pidfd turns readable when its process exits
        return
    while os.getppid() == pid:
        time.sleep(0.5)


def marked(token: str) -> list[int]:
    """Processes whose environment carries ``token`` (of those this user may read; not this one)."""
    want, prefix, me = token.encode(), f"{MARK}=".encode(), os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:  # gone, or another user's
            continue
        if want in env and any(e.startswith(prefix) and want in e[len(prefix) :].split() for e in env.split(b"\0")):
            found.append(int(name))  # a zombie's environment reads empty: it is dead already
    return found


def send(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def reap(token: str, grace_s: float = GRACE_S) -> None:
    """SIGTERM every process carrying ``token``, then SIGKILL whatever is left after ``grace_s``."""
    termed: set[int] = set()
    deadline = time.monotonic() + grace_s
    while (pids := marked(token)) and time.monotonic() < deadline:
        send([p for p in pids if p not in termed], signal.SIGTERM)
        termed.update(pids)
        time.sleep(0.05)
    for _ in range(100):  # again until none is left: a process may start another while being killed
        if not (pids := marked(token)):
            return
        send(pids, signal.SIGKILL)
        time.sleep(0.05)


def main(argv: list[str]) -> None:
    pid, token = int(argv[1]), argv[2]
    if not token:
        raise SystemExit("lifeline: empty token")
    wait_for_exit(pid)
    reap(token)


if __name__ == "__main__":
    main(sys.argv)
