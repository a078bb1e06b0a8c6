"""LocalSandbox: a temporary directory and the executor as a local subprocess.

It does NOT isolate: the code it runs can read whatever the executor's user can read on this
host. It exists for machines without a Docker daemon. What it does do: run as an unprivileged
user when started by root, apply rlimits (address space, processes, file size, open files),
enter a fresh network namespace when the OS allows (``unshare``), strip the host environment,
and kill every process it started when closed.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings

import anyio

from traject.sandboxes.base import SandboxError
from traject.sandboxes.channel import SocketChannel, executor_source
from traject.sandboxes.config import SandboxConfig, parse_size
from traject.sandboxes.docker_sandbox import run_root
from traject.sandboxes.executor_client import ExecutorSandbox

log = logging.getLogger(__name__)

NOBODY = 65534
SOCKET_NAME = "exec.sock"


class LocalSandboxWarning(UserWarning):
    """Emitted whenever a LocalSandbox is created: it does not isolate."""


@functools.cache
def _host_python() -> str:
    # the executor needs only the standard library; a system python is readable by any user
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


@functools.cache
def _works(*argv: str) -> bool:
    try:
        return subprocess.run([*argv, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _launcher(config: SandboxConfig) -> tuple[list[str], bool, int | None]:
    """(command prefix, network isolated?, uid the executor runs as when it is dropped)."""
    root = os.geteuid() == 0
    prefix: list[str] = []
    net_isolated = False
    if config.local_unshare_net and shutil.which("unshare"):
        if root and _works("unshare", "--net", "--"):
            prefix, net_isolated = ["unshare", "--net", "--"], True
        elif not root and _works("unshare", "--user", "--map-current-user", "--net", "--"):
            prefix, net_isolated = ["unshare", "--user", "--map-current-user", "--net", "--"], True
    drop_uid = None
    if root and shutil.which("setpriv"):
        drop_uid = NOBODY
        prefix += ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    return prefix, net_isolated, drop_uid


class LocalSandbox(ExecutorSandbox):
    backend = "local"
    isolated = False

    def __init__(self, config: SandboxConfig, workspace: str) -> None:
        super().__init__(workspace=workspace, output_limit=config.output_limit, shell=config.shell)
        self.config = config
        self.run_dir: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.network_isolated = False

    @classmethod
    async def create(cls, config: SandboxConfig | None = None) -> LocalSandbox:
        config = config or SandboxConfig(backend="local")
        workspace = tempfile.mkdtemp(prefix="traject-local-")
        sandbox = cls(config, workspace)
        try:
            await sandbox._start()
        except BaseException:
            await sandbox.aclose()
            raise
        return sandbox

    def _spawn_sync(self) -> None:
        cfg = self.config
        prefix, self.network_isolated, drop_uid = _launcher(cfg)
        self.run_dir = tempfile.mkdtemp(prefix="l", dir=run_root())
        if drop_uid is not None:
            os.chown(self.workspace, drop_uid, drop_uid)
            os.chown(self.run_dir, drop_uid, drop_uid)
        socket_path = os.path.join(self.run_dir, SOCKET_NAME)
        limits = [
            f"as={parse_size(cfg.memory)}",
            f"nproc={cfg.pids_limit}",
            f"fsize={parse_size(cfg.workspace_size)}",
            "nofile=1024",
        ]
        argv = [*prefix, _host_python(), "-I", "-u", "-c", executor_source(), "--socket", socket_path,
                "--workspace", self.workspace, "--rlimits", ",".join(limits),
                "--exit-with-parent", "--cleanup", self.workspace, "--cleanup", self.run_dir]
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": self.workspace,
            "TMPDIR": self.workspace,
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            **cfg.env,
        }
        self.proc = subprocess.Popen(
            argv, cwd=self.workspace, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )

    async def _start(self) -> None:
        warnings.warn(
            "LocalSandbox does not isolate: agent code runs on this host as a local process "
            "(use Docker for isolation)", LocalSandboxWarning, stacklevel=3,
        )
        log.warning("LocalSandbox in %s does NOT isolate agent code from this host", self.workspace)
        await anyio.to_thread.run_sync(self._spawn_sync)
        assert self.proc is not None and self.run_dir is not None
        path = os.path.join(self.run_dir, SOCKET_NAME)
        deadline = time.monotonic() + self.config.startup_timeout
        while not os.path.exists(path):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode("utf-8", "replace") if self.proc.stderr else ""
                raise SandboxError(f"local sandbox executor exited ({self.proc.returncode}): {err[-2000:]}")
            if time.monotonic() > deadline:
                raise SandboxError("local sandbox executor did not start in time")
            await anyio.sleep(0.002)
        self._channel = SocketChannel(path, self._describe_state)
        await self.ping(timeout=self.config.startup_timeout)

    async def _describe_state(self) -> str:
        if self.proc is None:
            return "no executor process"
        code = self.proc.poll()
        return "executor is running" if code is None else f"executor exited with {code}"

    async def _teardown(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                channel = SocketChannel(os.path.join(self.run_dir or "", SOCKET_NAME))
                await channel.request({"op": "shutdown"}, timeout=10)
                await channel.aclose()
            except SandboxError:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        if proc is not None:
            await anyio.to_thread.run_sync(proc.wait)
            if proc.stderr:
                proc.stderr.close()
        if self.run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.rmtree(self.workspace, ignore_errors=True)

    def __repr__(self) -> str:
        return f"LocalSandbox({self.workspace}, isolated=False, network_isolated={self.network_isolated})"
