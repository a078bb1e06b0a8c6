"""Docker over ssh: ``ssh://USER@HOST[:PORT]`` daemons reached through the ssh client on PATH
(``ssh ... -- HOST docker system dial-stdio``, as the docker CLI does), so the user's ssh
configuration applies: keys, known hosts, ProxyJump, ControlMaster.

The docker SDK's shell-out transport is built on, with these fixes: its socket handed the ssh
pipe to the HTTP response, which closed it after one reply, so it made a new pool, hence a new
ssh login (~0.3 s), per request and left the ssh processes unreaped; here a connection's ssh
lives as long as the pooled connection. Its ``recv(n)`` waited for all ``n`` bytes, which
stalls a hijacked stream (the stdio channel); here it returns what has arrived. Its close wrote
stray newlines into the stream; here it closes stdin and reaps the ssh. And ssh gets a connect
timeout and keep-alives: reads of its pipe ignore socket timeouts, so a host that stops
answering would otherwise hang the caller (a drained host is found by a ping that times out).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

import docker
from docker.transport.sshconn import SSHConnection, SSHConnectionPool, SSHHTTPAdapter, SSHSocket


class _Pipe:
    """The ssh's stdout as the HTTP response's file: the response may close it, the pipe stays."""

    def __init__(self, sock: SshSocket) -> None:
        self._file = sock.proc.stdout
        self.channel = sock  # where the SDK looks for a hijacked stream's socket

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def close(self) -> None:
        pass


class SshSocket(SSHSocket):
    def connect(self, **kwargs: Any) -> None:  # noqa: ARG002
        # as the SDK's, plus timeouts: reads of the pipe ignore socket timeouts, so a host that
        # never answers would hang the caller; ssh gives up instead
        args = ["ssh", "-o", f"ConnectTimeout={max(1, int(self.gettimeout() or 60))}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3"]
        if self.user:
            args += ["-l", self.user]
        if self.port:
            args += ["-p", self.port]
        args += ["--", self.host, "docker system dial-stdio"]
        env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "SSL_CERT_FILE")}
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))

    def makefile(self, mode: str) -> Any:  # noqa: ARG002 - always binary
        if not self.proc:
            self.connect()
        return _Pipe(self)

    def recv(self, n: int) -> bytes:
        if not self.proc:
            raise OSError("ssh connection not started")
        return self.proc.stdout.read1(n)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError, ValueError):
            proc.stdout.close()
        super().close()


class _Connection(SSHConnection):
    def connect(self) -> None:
        sock = SshSocket(self.ssh_host)
        sock.settimeout(self.timeout)
        sock.connect()
        self.sock = sock


class _Pool(SSHConnectionPool):
    def _new_conn(self) -> _Connection:
        return _Connection(None, self.timeout, self.ssh_host)

    def _get_conn(self, timeout: float | None) -> Any:
        conn = super()._get_conn(timeout)
        sock = getattr(conn, "sock", None)
        if isinstance(sock, SshSocket) and not sock.alive:  # its ssh exited: a fresh one
            conn.close()
            conn = self._new_conn()
        return conn


class _Adapter(SSHHTTPAdapter):
    def get_connection(self, url: str, proxies: Any = None) -> Any:  # noqa: ARG002
        # one pool for every request (the SDK's ``url`` here is the whole request URL)
        with self.pools.lock:
            pool = self.pools.get("ssh")
            if pool is None:
                pool = _Pool(timeout=self.timeout, maxsize=self.max_pool_size, host=self.ssh_host)
                self.pools["ssh"] = pool
            return pool


def ssh_client(url: str, timeout: float, pool: int) -> Any:
    """A docker SDK client of the daemon at ``url`` (ssh://...), its connections pooled."""
    # a fixed version first: "auto" would ask the server through the SDK's own adapter (no
    # connect timeout); then the server's version, asked through ours
    client = docker.DockerClient(base_url=url, timeout=int(timeout), use_ssh_client=True,
                                 max_pool_size=pool, version=docker.constants.MINIMUM_DOCKER_API_VERSION)
    client.api.mount("http+docker://ssh", _Adapter(url, int(timeout), max_pool_size=pool, shell_out=True))
    client.api._version = client.api.version(api_version=False)["ApiVersion"]  # what version="auto" sets
    return client
