"""Isolated execution: the Sandbox contract and its backends.

``open_sandbox(SandboxConfig(...))`` gives a DockerSandbox when a daemon answers, else a
LocalSandbox (which does not isolate, and says so). ``SandboxPool`` keeps warm ones ready.
"""

from traject.sandboxes import admission
from traject.sandboxes.base import (
    ExecResult,
    InteractiveSandbox,
    Sandbox,
    SandboxError,
    SandboxSession,
    SessionResult,
)
from traject.sandboxes.config import SandboxConfig
from traject.sandboxes.factory import docker_available, open_sandbox, sandbox_factory
from traject.sandboxes.pool import SandboxPool

__all__ = [
    "ExecResult", "InteractiveSandbox", "Sandbox", "SandboxConfig", "SandboxError", "SandboxPool", "SandboxSession",
    "SessionResult", "docker_available", "open_sandbox", "sandbox_factory",
]
