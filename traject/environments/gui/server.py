"""A static file server on 127.0.0.1 for task pages: one per process, several directories
mounted under their own prefixes. Pages need nothing from the network."""

from __future__ import annotations

import hashlib
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Handler(SimpleHTTPRequestHandler):
    mounts: dict[str, Path] = {}

    def translate_path(self, path: str) -> str:
        parts = unquote(urlsplit(path).path).lstrip("/").split("/", 1)
        root = self.mounts.get(parts[0])
        if root is None or len(parts) < 2:
            return "/nonexistent"
        target = (root / parts[1]).resolve()
        if root != target and root not in target.parents:
            return "/nonexistent"
        return str(target)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None


class _Server(ThreadingHTTPServer):
    """A browser that closes a page mid-response (a context closed at the end of an episode)
    is no error of the server's: those disconnects are counted, not printed as tracebacks."""

    daemon_threads = True
    dropped = 0

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):  # BrokenPipeError, ConnectionResetError, ...
            self.dropped += 1
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class PageServer:
    """Serves mounted directories at ``http://127.0.0.1:<port>/<key>/...``."""

    def __init__(self) -> None:
        self._mounts: dict[str, Path] = {}
        handler = type("Handler", (_Handler,), {"mounts": self._mounts})
        self._server = _Server(("127.0.0.1", 0), partial(handler))
        self._thread = threading.Thread(target=self._server.serve_forever, name="traject-page-server",
                                        daemon=True)
        self._thread.start()

    @property
    def dropped_connections(self) -> int:
        """Clients that went away mid-response (not errors, not printed)."""
        return self._server.dropped

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def mount(self, directory: str | Path) -> str:
        """Serve ``directory``; returns its base URL (ending in a slash)."""
        root = Path(directory).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"cannot serve {root}: not a directory")
        key = hashlib.blake2b(str(root).encode(), digest_size=6).hexdigest()
        self._mounts[key] = root
        return f"http://127.0.0.1:{self.port}/{key}/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_server: PageServer | None = None
_lock = threading.Lock()


def page_server() -> PageServer:
    """The process's page server, started on first use."""
    global _server
    with _lock:
        if _server is None:
            _server = PageServer()
        return _server
