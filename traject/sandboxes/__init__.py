"""Isolated execution: the Sandbox contract and its backends."""

from traject.sandboxes.base import ExecResult, Sandbox, SandboxError

__all__ = ["ExecResult", "Sandbox", "SandboxError"]
