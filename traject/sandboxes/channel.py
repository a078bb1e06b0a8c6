"""Host-side channels to the in-sandbox executor (see executor.py for the wire protocol).

``SocketChannel`` is the fast path: pooled connections to a unix socket on a bind-mounted
host directory, entirely on the event loop (no thread hop per call). ``DockerExecChannel`` is
the fallback: one ``docker exec`` of the executor in relay mode per request, for daemons whose
filesystem this process cannot see (remote ``DOCKER_HOST``).
"""

from __future__ import annotations

import functools
import json
import socket
import struct
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketStream, UNIXSocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from traject.sandboxes.base import SandboxError

FRAME = struct.Struct(">II")
Header = dict[str, Any]


@functools.cache
def executor_source() -> str:
    return Path(__file__).with_name("executor.py").read_text(encoding="utf-8")


# What each ``docker exec`` of the fallback channel runs: forwards one request frame from
# stdin to the executor's socket and the reply frame back (executor.py's --relay mode does the
# same, but compiling all of executor.py on every call costs tens of milliseconds).
RELAY_SOURCE = """\
import socket, struct, sys, time
def exact(read, n):
    out = b""
    while len(out) < n:
        chunk = read(n - len(out))
        if not chunk:
            sys.exit(3)
        out += chunk
    return out
def frame(read):
    head = exact(read, 8)
    h, b = struct.unpack(">II", head)
    return head + exact(read, h + b)
request = frame(sys.stdin.buffer.read)
for attempt in range(3000):  # the executor may still be starting
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sys.argv[1])
        break
    except OSError:
        s.close()
        if attempt == 2999:
            raise
        time.sleep(0.01)
s.sendall(request)
sys.stdout.buffer.write(frame(s.recv))
sys.stdout.buffer.flush()
"""


def encode_frame(header: Header, body: bytes = b"") -> bytes:
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return FRAME.pack(len(raw), len(body)) + raw + body


def decode_frame(data: bytes) -> tuple[Header, bytes]:
    if len(data) < FRAME.size:
        raise ValueError("short frame")
    hlen, blen = FRAME.unpack_from(data)
    end = FRAME.size + hlen
    if len(data) < end + blen:
        raise ValueError("short frame")
    return json.loads(data[FRAME.size : end]), data[end : end + blen]


class Channel(ABC):
    """Sends one request frame to the executor and returns its reply frame.

    Raises SandboxError when the executor cannot be reached or does not answer in time.
    Cancelling a request drops its connection, which makes the executor kill what it ran.
    """

    @abstractmethod
    async def request(self, header: Header, body: bytes = b"", *, timeout: float) -> tuple[Header, bytes]: ...

    @abstractmethod
    async def aclose(self) -> None: ...


class _Conn:
    __slots__ = ("stream", "reader")

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.reader = BufferedByteReceiveStream(stream)


class SocketChannel(Channel):
    def __init__(self, path: str, describe_failure: Callable[[], Awaitable[str]] | None = None) -> None:
        self.path = path
        self._idle: list[_Conn] = []
        self._closed = False
        self._describe_failure = describe_failure

    async def _connect(self) -> _Conn:
        # Not anyio.connect_unix: when its connect is cancelled while the socket turns
        # writable, its callback hits a cancelled future (InvalidStateError in the loop).
        # A unix-socket connect either completes at once or reports a full backlog.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            while True:
                try:
                    sock.connect(self.path)
                    break
                except (BlockingIOError, InterruptedError):
                    await anyio.sleep(0.001)  # the executor's accept backlog is full
            stream = await UNIXSocketStream.from_socket(sock)
        except BaseException:
            sock.close()
            raise
        return _Conn(stream)

    async def request(self, header: Header, body: bytes = b"", *, timeout: float) -> tuple[Header, bytes]:
        if self._closed:
            raise SandboxError("sandbox is closed")
        conn: _Conn | None = None
        reusable = False
        try:
            with anyio.fail_after(timeout):
                conn = self._idle.pop() if self._idle else await self._connect()
                await conn.stream.send(encode_frame(header, body))
                hlen, blen = FRAME.unpack(await conn.reader.receive_exactly(FRAME.size))
                reply = json.loads(await conn.reader.receive_exactly(hlen))
                data = await conn.reader.receive_exactly(blen) if blen else b""
            reusable = True
            return reply, data
        except TimeoutError:
            raise SandboxError(f"sandbox executor did not answer within {timeout:.1f}s") from None
        except (OSError, anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError,
                anyio.ClosedResourceError) as exc:
            raise SandboxError(await self._failure(exc)) from exc
        finally:
            if conn is not None:
                if reusable and not self._closed:
                    self._idle.append(conn)
                else:
                    with anyio.CancelScope(shield=True):
                        await conn.stream.aclose()

    async def _failure(self, exc: BaseException) -> str:
        what = f"lost the connection to the sandbox executor ({type(exc).__name__}: {exc})"
        if self._describe_failure is not None:
            with anyio.CancelScope(shield=True):
                try:
                    detail = await self._describe_failure()
                except Exception as inner:  # the description is best effort
                    detail = f"state unknown: {inner}"
            what += f"; {detail}"
        return what

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        with anyio.CancelScope(shield=True):
            for conn in idle:
                await conn.stream.aclose()


def _raw_socket(obj: Any) -> socket.socket:
    # docker SDK returns a socket.SocketIO (unix), or an object wrapping a socket (ssh/npipe)
    inner = getattr(obj, "_sock", obj)
    return inner


def _read_multiplexed(sock: socket.socket) -> tuple[bytes, bytes]:
    """Reads docker's multiplexed attach stream (8-byte headers: stream id, size) to EOF."""
    out, err = bytearray(), bytearray()
    buf = bytearray()
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 8:
            kind, size = buf[0], struct.unpack(">I", buf[4:8])[0]
            if len(buf) < 8 + size:
                break
            (out if kind == 1 else err).extend(buf[8 : 8 + size])
            del buf[: 8 + size]
    return bytes(out), bytes(err)


class DockerExecChannel(Channel):
    """Each request runs ``python3 executor.py --relay SOCKET`` through ``docker exec``; the
    relay forwards it to the executor that runs as the container's main process."""

    def __init__(self, api: Any, container_id: str, socket_path: str,
                 describe_failure: Callable[[], Awaitable[str]] | None = None) -> None:
        self.api = api
        self.container_id = container_id
        self.socket_path = socket_path
        self._closed = False
        self._describe_failure = describe_failure

    def _request_sync(self, frame: bytes) -> tuple[Header, bytes]:
        argv = ["python3", "-I", "-S", "-c", RELAY_SOURCE, self.socket_path]
        created = self.api.exec_create(self.container_id, argv, stdin=True, stdout=True, stderr=True)
        sock = _raw_socket(self.api.exec_start(created["Id"], socket=True))
        try:
            sock.sendall(frame)
            out, err = _read_multiplexed(sock)
        finally:
            sock.close()
        try:
            return decode_frame(out)
        except ValueError:
            raise SandboxError(
                "the docker exec relay gave no reply: " + err.decode("utf-8", "replace")[-2000:]
            ) from None

    async def request(self, header: Header, body: bytes = b"", *, timeout: float) -> tuple[Header, bytes]:
        if self._closed:
            raise SandboxError("sandbox is closed")
        frame = encode_frame(header, body)
        try:
            with anyio.fail_after(timeout):
                return await anyio.to_thread.run_sync(self._request_sync, frame, abandon_on_cancel=True)
        except TimeoutError:
            raise SandboxError(f"sandbox executor did not answer within {timeout:.1f}s") from None
        except SandboxError:
            raise
        except Exception as exc:  # docker SDK errors: the container or the daemon is gone
            what = f"docker exec failed ({type(exc).__name__}: {exc})"
            if self._describe_failure is not None:
                with anyio.CancelScope(shield=True):
                    what += "; " + await self._describe_failure()
            raise SandboxError(what) from exc

    async def aclose(self) -> None:
        self._closed = True
