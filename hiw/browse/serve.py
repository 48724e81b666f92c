"""``hiw browse --serve``: the site over HTTP on loopback only (it opens from disk too; a server suits a remote
machine reached through an SSH tunnel)."""

from __future__ import annotations

import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"  # never another interface: the site shows a dataset's captions and paths


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # one line per request would bury the URL the user needs


def make_server(folder: Path, port: int = 8000) -> ThreadingHTTPServer:
    """A server of ``folder`` on 127.0.0.1:``port`` (0: any free port); call ``serve_forever`` on it."""
    handler = functools.partial(_Quiet, directory=str(Path(folder).resolve()))
    return ThreadingHTTPServer((HOST, port), handler)
