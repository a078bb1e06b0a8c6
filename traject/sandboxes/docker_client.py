"""One docker SDK client per process, daemon reachability, and the labels that mark traject's
containers (so that `traject sandbox prune` can find what a crashed process left behind)."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

LABEL = "traject.sandbox"
LABEL_OWNER_PID = "traject.owner.pid"
LABEL_OWNER_START = "traject.owner.start"
LABEL_OWNER_HOST = "traject.owner.host"
LABEL_RUN_DIR = "traject.run_dir"

_lock = threading.Lock()
_clients: dict[str, Any] = {}


DEFAULT_HOST = "unix:///var/run/docker.sock"


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def is_remote_url(url: str) -> bool:
    """tcp and ssh endpoints share no filesystem with this process (even on 127.0.0.1)."""
    return not url.startswith(("unix://", "npipe://"))


def _new_client(url: str, timeout: float, pool: int = 64) -> Any:
    import docker

    if url.startswith("ssh://"):
        return _ssh_client(url, timeout, pool)
    # DOCKER_TLS_VERIFY / DOCKER_CERT_PATH apply to every tcp host
    return docker.from_env(environment={**os.environ, "DOCKER_HOST": url}, timeout=int(timeout), max_pool_size=pool)


def _ssh_client(url: str, timeout: float, pool: int) -> Any:
    try:
        from traject.sandboxes.ssh_transport import ssh_client
    except ImportError:  # the SDK's ssh module imports paramiko even when it shells out
        raise RuntimeError("ssh:// docker hosts need the ssh extra: pip install 'traject[ssh]'") from None
    return ssh_client(url, timeout, pool)


def get_client(timeout: float = 60.0, host: str | None = None) -> Any:
    """The shared blocking docker SDK client of ``host`` (default: DOCKER_HOST); call it from
    a worker thread."""
    key = host or docker_host()
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _new_client(key, timeout)
            _clients[key] = client
        return client


def ping_host(host: str | None = None, timeout: float = 3.0) -> str | None:
    """None when the daemon at ``host`` answers a ping within ``timeout`` s, else why not."""
    try:
        client = _new_client(host or docker_host(), max(1, timeout), pool=1)
        try:
            client.ping()
            return None
        finally:
            client.close()
    except Exception as exc:
        return _short_reason(exc)


def ping_hosts(hosts: list[str] | tuple[str, ...], timeout: float = 3.0) -> dict[str, str | None]:
    """``ping_host`` of every host at once (one thread each): url -> None, or why not."""
    results: dict[str, str | None] = {}

    def ping(url: str) -> None:
        results[url] = ping_host(url, timeout)

    threads = [threading.Thread(target=ping, args=(u,), daemon=True) for u in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {u: results.get(u, "no answer") for u in hosts}


def _short_reason(exc: BaseException) -> str:
    text = str(exc)
    for needle, reason in (("Connection refused", "connection refused"), ("timed out", "timed out"),
                           ("No such file or directory", "no such socket"),
                           ("Name or service not known", "unknown host"), ("Permission denied", "permission denied"),
                           # an ssh:// host whose ssh exited (its own message is on stderr)
                           ("I/O operation on closed file", "the connection closed"),
                           ("Broken pipe", "the connection closed")):
        if needle in text:
            return reason
    return f"{type(exc).__name__}: {text[:160]}"


def daemon_available(timeout: float = 3.0, host: str | None = None) -> bool:
    """True when a Docker daemon answers a ping within ``timeout`` seconds."""
    return ping_host(host, timeout) is None


def is_local_daemon(client: Any) -> bool:
    """The fast channel bind-mounts a host directory: only a daemon on this machine sees it."""
    return str(client.api.base_url).startswith("http+docker://localh")


def process_start_time(pid: int | None = None) -> str:
    """The kernel's start time of a process (clock ticks since boot); with the pid it
    identifies a process even after its pid is reused."""
    try:
        with open(f"/proc/{pid or os.getpid()}/stat", "rb") as f:
            raw = f.read()
        return raw[raw.rfind(b")") + 2 :].split()[19].decode()
    except OSError:
        return "0"


def owner_labels() -> dict[str, str]:
    return {
        LABEL: "1",
        LABEL_OWNER_PID: str(os.getpid()),
        LABEL_OWNER_START: process_start_time(os.getpid()),
        LABEL_OWNER_HOST: socket.gethostname(),
    }


def owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process that created a container still runs (on this host)."""
    if labels.get(LABEL_OWNER_HOST) != socket.gethostname():
        return True  # another host's process: not ours to judge
    try:
        pid = int(labels.get(LABEL_OWNER_PID, ""))
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return process_start_time(pid) == labels.get(LABEL_OWNER_START)
