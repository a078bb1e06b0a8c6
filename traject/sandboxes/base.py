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


class SandboxError(InfraError):
    """The sandbox itself failed (container gone, daemon down): an infrastructure error,
    never the agent's fault."""


@runtime_checkable
class Sandbox(Protocol):
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
