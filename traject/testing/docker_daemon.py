"""A second Docker daemon on this machine, reached over tcp://127.0.0.1:PORT as a remote host.

For tests and benchmarks of multi-host placement and the remote channel. It has its own
socket, data-root, exec-root (hence its own containerd) and pidfile, and runs with
``--bridge=none --iptables=false``; it needs root and ``dockerd`` on PATH. ``stop()`` removes
its containers, stops it and deletes its directories, except the data-root when that is the
machine's cache (``CACHE_DATA_ROOT``, used by one daemon at a time under a lock): images loaded
into it are kept for the next test session (``rm -rf`` it to reclaim the space). ``python -m traject.testing.docker_daemon`` starts one and
prints its URL until interrupted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from traject.sandboxes.docker_client import LABEL, ping_host
from traject.testing.processes import start_logged, wait_until_up


CACHE_DATA_ROOT = os.environ.get("TRAJECT_TEST_DOCKERD_DATA", "/var/tmp/traject-dockerd-data")


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def can_start() -> str | None:
    """None when a second daemon can be started here, else why not."""
    if shutil.which("dockerd") is None:
        return "dockerd is not installed"
    if os.geteuid() != 0:
        return "starting a Docker daemon needs root"
    return None


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (by parent pid, whatever their session)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        ppid = int(raw[raw.rfind(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class SecondDaemon:
    def __init__(self, root: str | None = None, port: int | None = None, *, cache: bool = True) -> None:
        # short paths: containerd's sockets live under exec-root (unix paths max 108 bytes)
        self.root = Path(root or tempfile.mkdtemp(prefix="tjd-", dir="/tmp"))
        self.data_root = self.root / "data"
        self._cache_lock: int | None = None
        if cache and CACHE_DATA_ROOT:
            os.makedirs(CACHE_DATA_ROOT, exist_ok=True)
            fd = os.open(CACHE_DATA_ROOT + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._cache_lock, self.data_root = fd, Path(CACHE_DATA_ROOT)
            except OSError:
                os.close(fd)  # another daemon uses the cache: a data-root of our own
        self.port = port or free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.socket = self.root / "docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "dockerd.log"

    def argv(self) -> list[str]:
        return [
            "dockerd",
            "--data-root", str(self.data_root),
            "--exec-root", str(self.root / "x"),
            "--pidfile", str(self.root / "dockerd.pid"),
            "--host", f"unix://{self.socket}",
            "--host", self.url,
            "--bridge=none", "--iptables=false", "--ip-masq=false",
            "--containerd-namespace", f"tjd{self.port}",
            "--containerd-plugins-namespace", f"tjd{self.port}p",
        ]

    def start(self, timeout: float = 60.0) -> SecondDaemon:
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = start_logged(self.argv(), self.log_path)
        wait_until_up(self.proc, lambda: ping_host(self.url, 1.0) is None, what="the second dockerd",
                      log_path=self.log_path, timeout=timeout, on_failure=self.kill)
        return self

    def kill(self) -> None:
        """SIGKILL the daemon, its containerd and its containers' shims and processes: a host
        that stops answering mid-run, as when its machine dies."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._kill_leftover_containerd()
        self._kill_shims()

    def _kill_shims(self) -> None:
        """The shims of this daemon's containers (named by its containerd namespace), and
        whatever runs under them."""
        marker = f"-namespace tjd{self.port} ".encode()
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker in f.read().replace(b"\0", b" ") + b" ":
                        pids.append(int(entry))
        for pid in pids:
            for victim in [*descendants(pid), pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)

    def _kill_leftover_containerd(self) -> None:
        # dockerd's managed containerd writes its pid under exec-root
        pidfile = self.root / "x" / "containerd" / "containerd.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self) -> None:
        """Start it again after ``kill()`` (same data: it cleans up what was left running)."""
        if not self.running:
            self.start()
            from traject.sandboxes.hosts import docker_hosts

            docker_hosts.recheck_sync(self.url)  # drained: answers again; orphans removed

    def traject_containers(self) -> list[str]:
        from traject.sandboxes.docker_client import get_client

        api = get_client(host=self.url).api
        return [c["Id"] for c in api.containers(all=True, filters={"label": LABEL})]

    def stop(self) -> None:
        """Remove traject's containers, stop the daemon, delete its directories."""
        if self.proc is not None and not self.running:
            with contextlib.suppress(Exception):
                self.start()  # a killed daemon: back up, so that its containers are removed
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                from traject.sandboxes.docker_client import get_client

                api = get_client(host=self.url).api
                for cid in self.traject_containers():
                    api.remove_container(cid, force=True)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._kill_leftover_containerd()
        self._kill_shims()
        # a daemon that died hard can leave overlay mounts under its directories
        with contextlib.suppress(OSError), open("/proc/mounts") as f:
            mounts = [line.split()[1] for line in f
                      if str(self.root) in line or str(self.data_root) + "/" in line]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        if self._cache_lock is not None:
            os.close(self._cache_lock)
            self._cache_lock = None

    def __enter__(self) -> SecondDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    why = can_start()
    if why:
        raise SystemExit(f"cannot start a second daemon: {why}")

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # a background job's SIGINT may be ignored: stop on SIGTERM as well
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    with SecondDaemon() as daemon:
        print(daemon.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
