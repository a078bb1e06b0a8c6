"""ExecutorSandbox: the Sandbox contract spoken to an in-sandbox executor over a Channel.

The Docker and local backends differ only in how they start the executor and tear it down;
exec, files and sessions are all implemented here, once.
"""

from __future__ import annotations

import errno
import secrets
from collections.abc import Callable
from typing import Any

import anyio

from traject.sandboxes.base import ExecResult, SandboxError, SessionResult
from traject.sandboxes.channel import Channel, Header

# Extra seconds the host waits beyond a command's own timeout before it calls the executor
# unresponsive (killing a large process tree takes a moment).
REPLY_MARGIN_S = 10.0
FILE_TIMEOUT_S = 60.0

_OS_ERRORS: dict[str, type[OSError]] = {
    cls.__name__: cls
    for cls in (
        FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
        PermissionError, OSError,
    )
}


def truncation_marker(omitted: int) -> str:
    return f"\n[... {omitted} bytes of output truncated ...]\n"


def _assemble(data: bytes, spec: list[int], offset: int) -> tuple[str, bool, int]:
    head_len, tail_len, omitted = spec
    head = data[offset : offset + head_len]
    tail = data[offset + head_len : offset + head_len + tail_len]
    text = head.decode("utf-8", "replace")
    if omitted:
        text += truncation_marker(omitted)
    text += tail.decode("utf-8", "replace")
    return text, omitted > 0, offset + head_len + tail_len


def _raise_reply_error(reply: Header, path: str | None = None) -> None:
    kind = reply.get("kind", "")
    message = reply.get("error", "unknown error")
    if kind in _OS_ERRORS:
        code = reply.get("errno") or errno.EIO
        raise _OS_ERRORS[kind](code, message, reply.get("filename") or path)
    if kind == "LookupError":
        raise SandboxError(message)
    raise SandboxError(f"sandbox executor error ({kind}): {message}")


class ExecutorSession:
    def __init__(self, sandbox: ExecutorSandbox, session_id: str) -> None:
        self._sandbox = sandbox
        self.session_id = session_id
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(self, data: bytes, *, marker: str, timeout: float) -> SessionResult:
        if self._closed:
            raise SandboxError(f"session {self.session_id} is closed")
        header = {
            "op": "session_run",
            "session": self.session_id,
            "marker": marker,
            "timeout": timeout,
            "limit": self._sandbox.output_limit,
        }
        reply, body = await self._sandbox._request(header, data, timeout=timeout + REPLY_MARGIN_S)
        if not reply.get("ok"):
            if reply.get("kind") == "LookupError":
                self._closed = True
            _raise_reply_error(reply)
        output, truncated, _ = _assemble(body, reply["output"], 0)
        if reply["exited"]:
            self._closed = True
        return SessionResult(
            output=output,
            status=reply["status"],
            timed_out=reply["timed_out"],
            exited=reply["exited"],
            exit_code=reply["exit_code"],
            duration_s=reply["duration_s"],
            truncated=truncated,
            oom_killed=reply.get("oom_killed", False),
        )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sandbox.closed:
            return
        with anyio.CancelScope(shield=True):
            try:
                await self._sandbox._request(
                    {"op": "session_close", "session": self.session_id}, timeout=FILE_TIMEOUT_S
                )
            except SandboxError:
                pass  # the sandbox is gone, and the session with it


class ExecutorSandbox:
    """Base of the backends. Subclasses set ``_channel`` and implement ``_teardown``."""

    backend: str = "executor"

    def __init__(self, *, workspace: str, output_limit: int, shell: str) -> None:
        self._workspace = workspace
        self.output_limit = output_limit
        self.shell = shell
        self._channel: Channel | None = None
        self._closed = False
        self._close_callbacks: list[Callable[[], None]] = []

    @property
    def workspace(self) -> str:
        return self._workspace

    @property
    def closed(self) -> bool:
        return self._closed

    async def _request(self, header: Header, body: bytes = b"", *, timeout: float) -> tuple[Header, bytes]:
        if self._closed or self._channel is None:
            raise SandboxError("sandbox is closed")
        return await self._channel.request(header, body, timeout=timeout)

    async def ping(self, timeout: float = 5.0) -> dict[str, Any]:
        reply, _ = await self._request({"op": "ping"}, timeout=timeout)
        return reply

    async def exec(
        self,
        cmd: str | list[str],
        *,
        timeout: float,
        stdin: bytes | None = None,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        argv = [self.shell, "-c", cmd] if isinstance(cmd, str) else list(cmd)
        if not argv:
            raise ValueError("empty command")
        header = {
            "op": "exec",
            "argv": argv,
            "timeout": timeout,
            "cwd": workdir,
            "env": env,
            "limit": self.output_limit,
            "stdin": stdin is not None,
        }
        reply, body = await self._request(header, stdin or b"", timeout=timeout + REPLY_MARGIN_S)
        if not reply.get("ok"):
            _raise_reply_error(reply)
        stdout, t_out, offset = _assemble(body, reply["stdout"], 0)
        stderr, t_err, _ = _assemble(body, reply["stderr"], offset)
        if reply["oom_killed"]:
            stderr += "\n[killed: out of memory (the sandbox's memory limit was reached)]\n"
        elif reply["timed_out"]:
            stderr += f"\n[killed: timed out after {timeout:g}s]\n"
        return ExecResult(
            exit_code=reply["exit_code"],
            stdout=stdout,
            stderr=stderr,
            timed_out=reply["timed_out"],
            duration_s=reply["duration_s"],
            truncated=t_out or t_err,
            oom_killed=reply["oom_killed"],
        )

    async def write_file(self, path: str, data: bytes) -> None:
        reply, _ = await self._request({"op": "write", "path": path}, data, timeout=FILE_TIMEOUT_S)
        if not reply.get("ok"):
            _raise_reply_error(reply, path)

    async def read_file(self, path: str) -> bytes:
        reply, data = await self._request({"op": "read", "path": path}, timeout=FILE_TIMEOUT_S)
        if not reply.get("ok"):
            _raise_reply_error(reply, path)
        return data

    async def open_session(
        self,
        argv: list[str],
        *,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
        interrupt_signal: int | None = None,
    ) -> ExecutorSession:
        header = {
            "op": "session_open",
            "argv": list(argv),
            "cwd": workdir,
            "env": env,
            "interrupt_signal": int(interrupt_signal or 0),
        }
        reply, _ = await self._request(header, timeout=FILE_TIMEOUT_S)
        if not reply.get("ok"):
            _raise_reply_error(reply)
        return ExecutorSession(self, reply["session"])

    def add_close_callback(self, callback: Callable[[], None]) -> None:
        """``callback`` runs once the sandbox is closed (a pool uses it to free capacity)."""
        self._close_callbacks.append(callback)

    async def aclose(self) -> None:
        """Kill everything the sandbox runs and remove it. Idempotent; shielded from
        cancellation, so a cancelled episode still leaves nothing behind."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            try:
                if self._channel is not None:
                    await self._channel.aclose()
                await self._teardown()
            finally:
                callbacks, self._close_callbacks = self._close_callbacks, []
                for callback in callbacks:
                    callback()

    async def _teardown(self) -> None:
        raise NotImplementedError

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def new_marker() -> str:
    return f"__TRAJECT_{secrets.token_hex(8)}__"
