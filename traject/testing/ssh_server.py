"""An sshd on 127.0.0.1 whose logins reach a Docker daemon, for ssh:// docker hosts in tests.

The docker SDK (and the docker CLI) reach an ``ssh://USER@HOST:PORT`` daemon by running
``ssh ... -- HOST docker system dial-stdio``: the ``ssh`` found on PATH, with the user's ssh
configuration. ``TestSshd`` starts ``/usr/sbin/sshd`` on its own port with its own host key and
config (key-only auth, a key generated for it, 127.0.0.1 only; ``SetEnv DOCKER_HOST`` points
its sessions at the daemon given), and writes a client config (identity, known host, strict
host key checking) plus an ``ssh`` wrapper that uses it. ``client_env()`` is the PATH that puts
that wrapper first: nothing under ~/.ssh is touched. ``stop()`` ends sshd and deletes it all.
Needs root (sshd logs in as this user) and Debian's openssh-server.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from traject.testing.docker_daemon import descendants, free_port
from traject.testing.processes import start_logged, wait_until_up

SSHD = "/usr/sbin/sshd"


def can_start() -> str | None:
    """None when a test sshd can be started here, else why not."""
    if not os.path.exists(SSHD):
        return "openssh-server is not installed (scripts/setup_docker.sh installs it)"
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "the ssh client is not installed"
    if os.geteuid() != 0:
        return "a test sshd needs root"
    return None


class TestSshd:
    __test__ = False  # not a pytest class

    def __init__(self, docker_host: str, port: int | None = None) -> None:
        self.docker_host = docker_host
        self.root = Path(tempfile.mkdtemp(prefix="tjssh-", dir="/tmp"))
        os.chmod(self.root, 0o700)
        self.port = port or free_port()
        self.user = getpass.getuser()
        self.url = f"ssh://{self.user}@127.0.0.1:{self.port}"
        self.log_path = self.root / "sshd.log"
        self.bin_dir = self.root / "bin"
        self.proc: subprocess.Popen[bytes] | None = None

    def _keygen(self, path: Path) -> str:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "traject-test", "-f", str(path)],
                       check=True, capture_output=True)
        return (path.with_suffix(".pub")).read_text().strip()

    def _write_configs(self) -> None:
        r = self.root
        host_pub = self._keygen(r / "host_key")
        client_pub = self._keygen(r / "client_key")
        (r / "authorized_keys").write_text(client_pub + "\n")
        (r / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {r / 'host_key'}\n"
            f"PidFile {r / 'sshd.pid'}\nAuthorizedKeysFile {r / 'authorized_keys'}\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
            f"AllowUsers {self.user}\nX11Forwarding no\nAllowTcpForwarding no\n"
            "MaxStartups 500:30:1000\nMaxSessions 1000\n"
            f"SetEnv DOCKER_HOST={self.docker_host}\n"
        )
        (r / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub}\n")
        (r / "ssh_config").write_text(
            f"Host 127.0.0.1\n  IdentityFile {r / 'client_key'}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {r / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
            "  BatchMode yes\n  LogLevel ERROR\n"
        )
        self.bin_dir.mkdir()
        wrapper = self.bin_dir / "ssh"
        wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {r / "ssh_config"} "$@"\n')
        wrapper.chmod(0o755)

    def start(self, timeout: float = 20.0) -> TestSshd:
        self._write_configs()
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        self.proc = start_logged([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")], self.log_path)
        wait_until_up(self.proc, self._answers, what="the test sshd", log_path=self.log_path, timeout=timeout,
                      on_failure=self.stop, interval=0.05)
        return self

    def _answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def client_env(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """``env`` (default: this process's) with the test's ``ssh`` wrapper first on PATH."""
        base = dict(os.environ if env is None else env)
        base["PATH"] = f"{self.bin_dir}{os.pathsep}{base.get('PATH', '')}"
        return base

    def accepted_logins(self) -> int:
        """How many public-key logins sshd accepted so far (from its log)."""
        return self.log_path.read_text(errors="replace").count("Accepted publickey")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for pid in descendants(self.proc.pid):  # its sessions run in sessions of their own
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TestSshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
