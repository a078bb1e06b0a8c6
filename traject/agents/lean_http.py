"""A lean HTTP/1.1 client for JSON requests to an OpenAI-compatible server (used through
``traject.agents.transport``, which adds the retry policy).

Why not the openai SDK: at a thousand concurrent episodes its per-request CPU (request
transforms, typed response models) and its connection pool (which scans every connection and
waiting request on each event) starve the event loop on a small machine, until connects
time out. This client keeps a plain pool of keep-alive connections (LIFO, so warm sockets
are reused first), writes each request with a single send, and hands back the parsed JSON.

It speaks plain HTTP and HTTPS (``anyio.connect_tcp(tls=...)``), Content-Length and chunked
bodies. It does not do proxies, redirects or HTTP/2. A malformed answer (bad status line,
Content-Length or chunk size) is a retryable ``APIConnectionError`` and its connection is dropped.
"""

from __future__ import annotations

import functools
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel
from anyio.abc import ByteStream

from traject.types import InfraError


class LeanHTTPError(InfraError):
    """A failed request. ``retryable``: a connection failure, a timeout, a malformed answer,
    429 or 5xx. ``attempts``: how many were made (set by the transport's retry policy)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.attempts = 1

    def __str__(self) -> str:
        text = super().__str__()
        return text if self.attempts <= 1 else f"{text} (after {self.attempts} attempt(s))"


# Named as the openai SDK names its errors, so that a trajectory's error reads the same
# whichever transport carried the request.
class APIConnectionError(LeanHTTPError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class APITimeoutError(LeanHTTPError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class APIStatusError(LeanHTTPError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, status=status, retryable=status == 429 or status >= 500)


class APIResponseValidationError(LeanHTTPError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, status=status)


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # One for every client: loading the CA bundle costs a few hundred ms, and simulated users
    # open a client per episode.
    return ssl.create_default_context()


class _Conn:
    __slots__ = ("buf", "stream")

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.buf = bytearray()

    async def _fill(self) -> bool:
        try:
            data = await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return False
        self.buf += data
        return True

    async def read_until(self, sep: bytes) -> bytes | None:
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[: i + len(sep)]
                return out
            start = max(0, len(self.buf) - len(sep) + 1)
            if not await self._fill():
                return None

    async def read_exactly(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            if not await self._fill():
                return None
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_to_eof(self) -> bytes:
        while await self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self.stream.aclose()
            except Exception:  # noqa: BLE001 - closing a dead socket
                pass


class LeanHTTPClient:
    def __init__(self, base_url: str, *, headers: dict[str, str] | None = None, timeout_s: float = 120.0,
                 connect_timeout_s: float = 30.0, max_connections: int = 4096) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        host_header = self.host if parts.port is None else f"{self.host}:{parts.port}"
        fixed = {"Host": host_header, "Content-Type": "application/json", "Accept": "application/json",
                 "Connection": "keep-alive", **(headers or {})}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._idle: list[_Conn] = []
        self.max_connections = max_connections
        self._slots = anyio.Semaphore(max_connections)
        self._ssl = _ssl_context() if self.tls else None
        self._closed = False
        self._loop: object = None

    async def _connect(self) -> _Conn:
        try:
            with anyio.fail_after(self.connect_timeout_s):
                stream = await anyio.connect_tcp(self.host, self.port, tls=self.tls, ssl_context=self._ssl,
                                                 tls_standard_compatible=False)
        except TimeoutError:
            raise APITimeoutError(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as exc:
            raise APIConnectionError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return _Conn(stream)

    async def post_json(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON and return the decoded JSON answer; raise LeanHTTPError."""
        return await self.request_json("POST", path, body)

    async def request_json(self, method: str, path: str, body: Any = None) -> Any:
        """``method`` (GET or POST, with ``body`` as JSON) and the decoded JSON answer."""
        payload = b"" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        request = (b"%s %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n"
                   % (method.encode(), (self.prefix + path).encode(), self._head, len(payload))) + payload
        loop = anyio.lowlevel.current_token()
        if loop is not self._loop:
            # Sockets belong to the event loop that opened them: a client used from a new loop
            # (a second anyio.run) starts with a fresh pool.
            self._loop, self._idle = loop, []
            self._slots = anyio.Semaphore(self.max_connections)
        async with self._slots:
            for attempt in range(2):
                reused = bool(self._idle)
                conn = self._idle.pop() if reused else await self._connect()
                try:
                    with anyio.fail_after(self.timeout_s):
                        result = await self._exchange(conn, request)
                except TimeoutError:
                    await conn.aclose()
                    raise APITimeoutError(f"no answer within {self.timeout_s:g} s") from None
                except BaseException:
                    await conn.aclose()
                    raise
                if result is None:
                    # The server closed the connection before answering. On a reused keep-alive
                    # connection that is the server having dropped an idle socket: try a fresh one.
                    await conn.aclose()
                    if reused and attempt == 0:
                        continue
                    raise APIConnectionError("the server closed the connection without answering")
                status, data, keep = result
                if keep and not self._closed:
                    self._idle.append(conn)
                else:
                    await conn.aclose()
                return _decode(status, data)
        raise AssertionError("unreachable")

    async def _exchange(self, conn: _Conn, request: bytes) -> tuple[int, bytes, bool] | None:
        try:
            await conn.stream.send(request)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return None
        head = await conn.read_until(b"\r\n\r\n")
        if head is None:
            return None
        lines = head.split(b"\r\n")
        try:
            version, status_text = lines[0].split(b" ", 2)[:2]
            status = int(status_text)
        except ValueError:
            raise APIConnectionError(f"not an HTTP response: {lines[0][:80]!r}") from None
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        keep = version == b"HTTP/1.1" and headers.get(b"connection", b"").lower() != b"close"
        if b"content-length" in headers:
            length = headers[b"content-length"]
            if not length.isdigit():
                raise APIConnectionError(f"malformed Content-Length {length[:40]!r} (HTTP {status})")
            data = await conn.read_exactly(int(length))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            data = await _read_chunked(conn)
        else:
            data, keep = await conn.read_to_eof(), False
        if data is None:
            raise APIConnectionError("the connection closed in the middle of the answer")
        return status, data, keep

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.aclose()


async def _read_chunked(conn: _Conn) -> bytes | None:
    out = bytearray()
    while True:
        size_line = await conn.read_until(b"\r\n")
        if size_line is None:
            return None
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            raise APIConnectionError(f"malformed chunk size {size_line[:40]!r}") from None
        if size == 0:
            while (trailer := await conn.read_until(b"\r\n")) not in (b"", None):
                pass
            return bytes(out)
        chunk = await conn.read_exactly(size + 2)
        if chunk is None:
            return None
        out += chunk[:-2]


def _decode(status: int, data: bytes) -> Any:
    try:
        obj = json.loads(data) if data else None
    except ValueError:
        obj = None
    if status >= 400:
        message = data[:300].decode("utf-8", "replace")
        if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
            message = str(obj["error"].get("message", message))
        raise APIStatusError(f"HTTP {status}: {message}", status)
    if obj is None:
        raise APIResponseValidationError(f"HTTP {status}: the answer is not JSON: {data[:120]!r}", status)
    if not isinstance(obj, dict):
        raise APIResponseValidationError(f"HTTP {status}: the answer is not a JSON object: {data[:120]!r}", status)
    return obj


class Attr:
    """Read-only attribute access over decoded JSON, so that code written against the SDK's
    response objects (``resp.choices[0].message.tool_calls``) reads plain dicts too. A field
    the server left out reads as None, as an optional field of the SDK's models does."""

    __slots__ = ("_d",)

    def __init__(self, d: dict[str, Any]) -> None:
        self._d = d

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return wrap(self._d.get(name))

    def __repr__(self) -> str:
        return f"Attr({self._d!r})"


def wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return Attr(value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value
