"""Host-side channels to the in-sandbox executor (see executor.py for the wire protocol).

``SocketChannel`` is the fast path: pooled connections to a unix socket on a bind-mounted
host directory, entirely on the event loop (no thread hop per call). ``StdioChannel`` is the
fast path for daemons whose filesystem this process cannot see (tcp, ssh, docker-in-docker):
every request multiplexed over one long-lived ``docker exec`` stream. ``DockerExecChannel``
(one ``docker exec`` per request) is kept for when a long-lived stream is not wanted.
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


# What the stdio channel's one long-lived ``docker exec`` runs: many requests multiplexed over
# its stdin/stdout. In: ``>II`` (request id, length) + one executor frame; a zero length
# cancels that request (its executor connection is dropped, which kills what it ran). Out:
# ``>II`` (request id, length) + the executor's reply frame; zero length: no reply (the
# executor connection failed). One thread per request, one executor connection each.
STDIO_RELAY_SOURCE = """\
import os, socket, struct, sys, threading, time
HEAD = struct.Struct(">II")
IN, OUT = sys.stdin.buffer, sys.stdout.buffer
wlock = threading.Lock()
conns = {}
def exact(read, n):
    out = b""
    while len(out) < n:
        chunk = read(n - len(out))
        if not chunk:
            return None
        out += chunk
    return out
def connect(path):
    for attempt in range(3000):  # the executor may still be starting
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            time.sleep(0.01)
    raise OSError("executor socket never appeared")
def serve(rid, frame):
    reply = b""
    try:
        s = connect(sys.argv[1])
        conns[rid] = s
        try:
            s.sendall(frame)
            head = exact(s.recv, 8)
            if head is not None:
                h, b = struct.unpack(">II", head)
                rest = exact(s.recv, h + b)
                reply = head + rest if rest is not None else b""
        finally:
            conns.pop(rid, None)
            s.close()
    except OSError:
        pass
    with wlock:
        OUT.write(HEAD.pack(rid, len(reply)) + reply)
        OUT.flush()
while True:
    head = exact(IN.read, 8)
    if head is None:
        os._exit(0)
    rid, n = HEAD.unpack(head)
    if n == 0:
        s = conns.get(rid)
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        continue
    frame = exact(IN.read, n)
    if frame is None:
        os._exit(0)
    threading.Thread(target=serve, args=(rid, frame), daemon=True).start()
"""

RELAY_HEAD = struct.Struct(">II")
DOCKER_HEAD = struct.Struct(">BxxxI")


class _BlockingSocketStream:
    """receive/send/aclose over a socket-like object the event loop cannot poll (docker's
    ssh transport, TLS): each call runs in a worker thread."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await anyio.to_thread.run_sync(self.sock.recv, max_bytes, abandon_on_cancel=True)
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        await anyio.to_thread.run_sync(self.sock.sendall, item)

    async def aclose(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class StdioChannel(Channel):
    """The fast channel without a shared filesystem: one long-lived ``docker exec`` of a relay
    (STDIO_RELAY_SOURCE) whose stdin/stdout carry every request, multiplexed by id, over the
    daemon's hijacked connection. Works with any daemon (tcp, ssh, unix); a lost stream is
    reopened by the next request."""

    def __init__(self, api: Any, container_id: str, socket_path: str,
                 describe_failure: Callable[[], Awaitable[str]] | None = None) -> None:
        self.api = api
        self.container_id = container_id
        self.socket_path = socket_path
        self._describe_failure = describe_failure
        self._closed = False
        self._stream: Any = None
        self._reader: BufferedByteReceiveStream | None = None
        self._connect_lock = anyio.Lock()
        self._write_lock = anyio.Lock()
        self._read_lock = anyio.Lock()
        self._next_id = 0
        self._pending: set[int] = set()
        self._replies: dict[int, bytes] = {}
        self._generation = 0
        self._broken: str | None = None
        # docker's stream framing and our framing, kept across cancelled reads
        self._chunk_kind = 0
        self._chunk_left = 0
        self._out = bytearray()
        self._err = bytearray()

    def _open_sync(self) -> Any:
        argv = ["python3", "-I", "-S", "-u", "-c", STDIO_RELAY_SOURCE, self.socket_path]
        created = self.api.exec_create(self.container_id, argv, stdin=True, stdout=True, stderr=True)
        wrapper = self.api.exec_start(created["Id"], socket=True)
        sock = _raw_socket(wrapper)
        if type(sock) is not socket.socket:
            return sock
        # our own descriptor: the SDK's wrappers would close theirs when collected
        own = sock.dup()
        wrapper.close()
        sock.close()
        return own

    async def _connection(self) -> int:
        async with self._connect_lock:
            if self._stream is None:
                sock = await anyio.to_thread.run_sync(self._open_sync)
                if type(sock) is socket.socket and sock.family in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
                    stream: Any = await (UNIXSocketStream if sock.family == socket.AF_UNIX else SocketStream).from_socket(sock)
                else:
                    stream = _BlockingSocketStream(sock)
                self._stream, self._reader = stream, BufferedByteReceiveStream(stream)
                self._generation += 1
                self._broken = None
                self._chunk_kind = self._chunk_left = 0
                self._out.clear()
                self._err.clear()
            return self._generation

    async def _drop(self, why: str) -> None:
        stream, self._stream, self._reader = self._stream, None, None
        self._broken = why
        if stream is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _pump(self) -> None:
        """Read what the relay sent next (at least one chunk) and file complete replies."""
        assert self._reader is not None
        if self._chunk_left == 0:
            kind, size = DOCKER_HEAD.unpack(await self._reader.receive_exactly(DOCKER_HEAD.size))
            self._chunk_kind, self._chunk_left = kind, size
            if size == 0:
                return
        data = await self._reader.receive(self._chunk_left)
        self._chunk_left -= len(data)
        if self._chunk_kind == 2:
            self._err += data
            del self._err[:-4000]
            return
        self._out += data
        while len(self._out) >= RELAY_HEAD.size:
            rid, n = RELAY_HEAD.unpack_from(self._out)
            if len(self._out) < RELAY_HEAD.size + n:
                break
            reply = bytes(self._out[RELAY_HEAD.size : RELAY_HEAD.size + n])
            del self._out[: RELAY_HEAD.size + n]
            if rid in self._pending:
                self._replies[rid] = reply

    async def request(self, header: Header, body: bytes = b"", *, timeout: float) -> tuple[Header, bytes]:
        if self._closed:
            raise SandboxError("sandbox is closed")
        frame = encode_frame(header, body)
        self._next_id = rid = (self._next_id + 1) & 0xFFFFFFFF or 1
        self._pending.add(rid)
        answered = False
        generation = 0
        try:
            with anyio.fail_after(timeout):
                try:
                    generation = await self._connection()
                    async with self._write_lock:
                        with anyio.CancelScope(shield=True):  # a half-sent frame would desync the relay
                            await self._stream.send(RELAY_HEAD.pack(rid, len(frame)) + frame)
                    while rid not in self._replies:
                        async with self._read_lock:
                            if rid in self._replies:
                                break
                            if self._generation != generation or self._stream is None:
                                raise anyio.BrokenResourceError(self._broken or "stream reopened")
                            try:
                                await self._pump()
                            except (OSError, anyio.EndOfStream, anyio.IncompleteRead,
                                    anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                                err = self._err.decode("utf-8", "replace")[-1500:]
                                await self._drop(f"{type(exc).__name__}: {exc}" + (f"; relay said: {err}" if err else ""))
                                raise
                except (OSError, anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError,
                        anyio.ClosedResourceError) as exc:
                    raise SandboxError(await self._failure(self._broken or f"{type(exc).__name__}: {exc}")) from exc
                except SandboxError:
                    raise
                except Exception as exc:  # docker SDK errors: the container or the daemon is gone
                    raise SandboxError(await self._failure(f"{type(exc).__name__}: {exc}")) from exc
            reply = self._replies.pop(rid)
            answered = True
            if not reply:
                raise SandboxError(await self._failure("the executor dropped the request"))
            try:
                return decode_frame(reply)
            except ValueError:
                raise SandboxError("the sandbox relay sent a malformed reply") from None
        except TimeoutError:
            raise SandboxError(f"sandbox executor did not answer within {timeout:.1f}s") from None
        finally:
            self._pending.discard(rid)
            self._replies.pop(rid, None)
            if not answered and self._stream is not None and generation == self._generation:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    try:  # cancel: the relay drops that executor connection
                        async with self._write_lock:
                            await self._stream.send(RELAY_HEAD.pack(rid, 0))
                    except Exception:  # noqa: BLE001 - the stream is gone; so is the request
                        pass

    async def _failure(self, why: str) -> str:
        what = f"lost the stdio channel to the sandbox executor ({why})"
        if self._describe_failure is not None:
            with anyio.CancelScope(shield=True):
                try:
                    what += "; " + await self._describe_failure()
                except Exception as inner:  # noqa: BLE001 - the description is best effort
                    what += f"; state unknown: {inner}"
        return what

    async def aclose(self) -> None:
        self._closed = True
        await self._drop("closed")
