"""The Sandbox contract: an isolated place where an episode's code runs."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from traject.types import InfraError


class ExecResult(BaseModel):
    """What one command run in a sandbox gave back.

    ``truncated`` is true when stdout or stderr was cut at the sandbox's output cap;
    the cut text then ends with an explicit marker.
    """

    model_config = ConfigDict(frozen=True)

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    duration_s: float = 0.0
    truncated: bool = False
    oom_killed: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class SessionResult(BaseModel):
    """What one round trip to a long-lived session process gave back.

    The session is fed ``data`` and read until ``marker``; ``status`` is the rest of the
    marker's line (the caller's protocol, e.g. an exit code). On a timeout the session is
    interrupted (its children killed, optionally a signal to it); ``exited`` says the session
    process itself is gone, and with it the state it held.
    """

    model_config = ConfigDict(frozen=True)

    output: str = ""
    status: str | None = None
    timed_out: bool = False
    exited: bool = False
    exit_code: int | None = None
    duration_s: float = 0.0
    truncated: bool = False
    oom_killed: bool = False


class SandboxError(InfraError):
    """The sandbox itself failed (container gone, daemon down): an infrastructure error,
    never the agent's fault."""


@runtime_checkable
class SandboxSession(Protocol):
    """A long-lived process inside a sandbox (a shell, an interpreter) that keeps its state
    between calls. Output (stdout and stderr merged) is read up to a marker line."""

    @property
    def closed(self) -> bool: ...

    async def run(self, data: bytes, *, marker: str, timeout: float) -> SessionResult: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Sandbox(Protocol):
    """The minimal contract: run commands, move files, close. Anything that runs code for an
    episode (a verifier's test runner, a tool) can take this."""

    async def exec(
        self,
        cmd: str | list[str],
        *,
        timeout: float,
        stdin: bytes | None = None,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult: ...

    async def write_file(self, path: str, data: bytes) -> None: ...

    async def read_file(self, path: str) -> bytes: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class InteractiveSandbox(Sandbox, Protocol):
    """A Sandbox with a known workspace and long-lived sessions, which the persistent
    ``python`` and ``bash`` tools and the file editor need. Both traject backends
    (DockerSandbox, LocalSandbox) are interactive.

    Relative paths and the default working directory resolve against ``workspace``."""

    @property
    def workspace(self) -> str: ...

    async def open_session(
        self,
        argv: list[str],
        *,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
        interrupt_signal: int | None = None,
    ) -> SandboxSession: ...
