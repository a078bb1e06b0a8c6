"""DockerSandbox: one container per sandbox, with the executor as its main process."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
import time
from typing import Any

import anyio

from traject.sandboxes import admission
from traject.sandboxes.base import SandboxError
from traject.sandboxes.channel import DockerExecChannel, SocketChannel, StdioChannel, executor_source
from traject.sandboxes.config import SandboxConfig
from traject.sandboxes.docker_client import (
    LABEL_RUN_DIR,
    docker_host,
    get_client,
    is_local_daemon,
    is_remote_url,
    owner_labels,
)
from traject.sandboxes.executor_client import ExecutorSandbox
from traject.sandboxes.hosts import configured_hosts, docker_hosts

log = logging.getLogger(__name__)

RUN_MOUNT = "/run/traject"
# channel "auto": how long to wait for the socket before concluding that the daemon's
# filesystem is not ours (docker-in-docker via a mounted socket) and using docker exec
SOCKET_FALLBACK_S = 10.0
SOCKET_NAME = "exec.sock"
SEED_LABEL = "traject.workspace_seed"
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}

# Containers this process still owns (id -> docker host, run dir): removed at interpreter exit
# if nobody closed them.
_live: dict[str, tuple[str, str]] = {}
_live_lock = threading.Lock()
_image_seeds: dict[tuple[str, str], str | None] = {}


def run_root() -> str:
    """Host directory that holds one socket directory per sandbox (traversable, not listable)."""
    root = os.path.join(tempfile.gettempdir(), f"traject-run-{os.getuid()}")
    os.makedirs(root, mode=0o711, exist_ok=True)
    if os.stat(root).st_mode & 0o777 != 0o711:
        os.chmod(root, 0o711)
    return root


@atexit.register
def _remove_leftovers() -> None:
    with _live_lock:
        leftovers = dict(_live)
        _live.clear()
    for container_id, (host, run_dir) in leftovers.items():
        try:
            get_client(host=host).api.remove_container(container_id, force=True)
        except Exception:
            pass
        if run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)


def _image_seed(api: Any, image: str, host: str) -> str | None:
    if (host, image) not in _image_seeds:
        import docker.errors

        try:
            info = api.inspect_image(image)
        except docker.errors.ImageNotFound:
            raise SandboxError(
                f"sandbox image {image!r} not found: build it with `traject sandbox build`"
            ) from None
        labels = (info.get("Config") or {}).get("Labels") or {}
        _image_seeds[host, image] = labels.get(SEED_LABEL)
    return _image_seeds[host, image]


def _is_connection_error(exc: BaseException) -> bool:
    """The daemon itself did not answer (as opposed to refusing a request)."""
    import requests

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (requests.ConnectionError, requests.Timeout, ConnectionError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class DockerSandbox(ExecutorSandbox):
    backend = "docker"

    def __init__(self, config: SandboxConfig, client: Any, host: str | None = None) -> None:
        super().__init__(workspace=config.workspace, output_limit=config.output_limit, shell=config.shell)
        self.config = config
        self.client = client
        self.api = client.api
        self.host = host or docker_host()
        self.container_id: str | None = None
        self.run_dir: str | None = None
        self.channel_kind = "socket"
        self._run_slot: admission.Slot | None = None
        # seconds the daemon took to create and start the container, and the executor to answer
        self.start_timings: dict[str, float] = {}

    @classmethod
    async def create(cls, config: SandboxConfig | None = None, *, client: Any = None) -> DockerSandbox:
        """A sandbox on the configured host with the most free capacity (``client``: on that
        client's daemon, outside placement). Waits for a run slot and a create slot of the
        host (admission.py); a host that does not answer is drained and the next one tried."""
        config = config or SandboxConfig()
        if client is not None:
            return await cls._create_on(config, client, None, None)
        tries = len(configured_hosts(config))
        while True:
            host, slot = await docker_hosts.place(config)
            try:
                client = await anyio.to_thread.run_sync(lambda: get_client(host=host))
                await anyio.to_thread.run_sync(docker_hosts.ensure_image_sync, host, config.image)
            except BaseException as exc:
                slot.release()
                if isinstance(exc, Exception) and _is_connection_error(exc) and await anyio.to_thread.run_sync(
                        docker_hosts.drain_if_silent, host, f"{type(exc).__name__}: {str(exc)[:200]}"):
                    tries -= 1
                    if tries > 0:
                        continue
                    raise SandboxError(f"docker host {host} stopped answering: {exc}") from exc
                if isinstance(exc, Exception) and not isinstance(exc, SandboxError):
                    raise SandboxError(f"docker host {host}: {exc}") from exc
                raise
            try:
                return await cls._create_on(config, client, host, slot)
            except SandboxError as exc:
                if not _is_connection_error(exc) or not await anyio.to_thread.run_sync(
                        docker_hosts.drain_if_silent, host, str(exc)[:200]):
                    raise
                tries -= 1
                if tries <= 0:
                    raise

    @classmethod
    async def _create_on(cls, config: SandboxConfig, client: Any, host: str | None,
                         slot: admission.Slot | None) -> DockerSandbox:
        sandbox = cls(config, client, host)
        sandbox._run_slot = slot
        try:
            creating = await admission.take(sandbox.host, "create", config.create_cap)
            try:
                await sandbox._start()
            finally:
                creating.release()
        except BaseException:
            await sandbox.aclose()
            raise
        return sandbox

    # ------------------------------------------------------------------ start

    @property
    def remote(self) -> bool:
        return is_remote_url(self.host) or not is_local_daemon(self.client)

    def _use_socket(self) -> bool:
        if self.config.channel == "auto":
            return not self.remote
        return self.config.channel == "socket"

    def _create_sync(self) -> str:
        import docker.errors

        cfg = self.config
        seed = _image_seed(self.api, cfg.image, self.host)
        socket_path = f"{RUN_MOUNT}/{SOCKET_NAME}"
        command = ["python3", "-I", "-u", "-c", executor_source(), "--socket", socket_path,
                   "--workspace", cfg.workspace, "--oom-detect"]
        if seed:
            command += ["--seed", seed]
        ids = cfg.uid_gid
        owner = f",uid={ids[0]},gid={ids[1]}" if ids else ""
        ws_mode = "0755" if ids else "1777"
        tmpfs = {
            cfg.workspace: f"rw,exec,size={cfg.workspace_size},nr_inodes={cfg.workspace_inodes},mode={ws_mode}{owner}",
            "/tmp": f"rw,exec,nosuid,nodev,size={cfg.tmp_size},mode=1777",
        }
        binds = {}
        if self.channel_kind == "socket":
            binds[self.run_dir] = {"bind": RUN_MOUNT, "mode": "rw"}
        else:
            tmpfs[RUN_MOUNT] = "rw,noexec,nosuid,nodev,size=1m,mode=1777"
        memory = cfg.memory_bytes
        host_config = self.api.create_host_config(
            network_mode=None if cfg.network else "none",
            read_only=cfg.read_only,
            tmpfs=tmpfs,
            binds=binds or None,
            mem_limit=memory,
            memswap_limit=memory,  # no swap: the limit is the limit
            nano_cpus=int(cfg.cpus * 1e9),
            pids_limit=cfg.pids_limit,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            init=False,
        )
        labels = {**owner_labels(), **cfg.labels}
        if self.run_dir:
            labels[LABEL_RUN_DIR] = self.run_dir
        env = {**BASE_ENV, "HOME": cfg.workspace, **cfg.env}
        try:
            created = self.api.create_container(
                cfg.image,
                command=command,
                user=cfg.user,
                working_dir="/",
                environment=env,
                labels=labels,
                host_config=host_config,
                hostname="sandbox",
                network_disabled=not cfg.network,
                stop_signal="SIGKILL",
            )
        except docker.errors.ImageNotFound:
            raise SandboxError(
                f"sandbox image {cfg.image!r} not found: build it with `traject sandbox build`"
            ) from None
        container_id = created["Id"]
        with _live_lock:
            _live[container_id] = (self.host, self.run_dir or "")
        self.container_id = container_id
        self.api.start(container_id)
        return container_id

    async def _start(self) -> None:
        use_socket = self._use_socket()
        self.channel_kind = "socket" if use_socket else ("docker_exec" if self.config.channel == "docker_exec" else "stdio")
        if use_socket:
            self.run_dir = tempfile.mkdtemp(prefix="s", dir=run_root())
            os.chmod(self.run_dir, 0o777)  # the container's non-root user creates the socket
        t0 = time.monotonic()
        try:
            await anyio.to_thread.run_sync(self._create_sync)
        except SandboxError:
            raise
        except Exception as exc:
            raise SandboxError(f"could not start a sandbox container: {exc}") from exc
        t1 = time.monotonic()
        assert self.container_id is not None
        if use_socket:
            assert self.run_dir is not None
            path = os.path.join(self.run_dir, SOCKET_NAME)
            auto = self.config.channel == "auto"
            if await self._wait_for_socket(path, give_up_after=SOCKET_FALLBACK_S if auto else None):
                self._channel = SocketChannel(path, self._describe_state)
            else:
                log.warning(
                    "sandbox %s: the executor's socket did not appear in %s on this host (does this "
                    "process run in a container of its own?); using the stdio channel",
                    self.container_id[:12], self.run_dir,
                )
                use_socket = False
                self.channel_kind = "stdio"
        if not use_socket:
            kind = DockerExecChannel if self.channel_kind == "docker_exec" else StdioChannel
            self._channel = kind(self.api, self.container_id, f"{RUN_MOUNT}/{SOCKET_NAME}", self._describe_state)
        await self.ping(timeout=self.config.startup_timeout)
        self.start_timings = {"daemon_s": t1 - t0, "executor_s": time.monotonic() - t1}

    async def _wait_for_socket(self, path: str, give_up_after: float | None = None) -> bool:
        """True once the socket exists; False when ``give_up_after`` passed while the container
        runs (its bind mount is not this host's directory); SandboxError when it died."""
        started = time.monotonic()
        deadline = started + self.config.startup_timeout
        next_check = time.monotonic() + 0.5
        while not self._socket_visible(path):
            now = time.monotonic()
            if give_up_after is not None and now - started > give_up_after:
                info = await anyio.to_thread.run_sync(self._inspect)
                if info is not None and info["State"].get("Running"):
                    return False
            if now > deadline:
                state = await self._describe_state()
                raise SandboxError(
                    f"sandbox executor did not start within {self.config.startup_timeout:.0f}s; {state}"
                )
            if now > next_check:
                next_check = now + 0.5
                info = await anyio.to_thread.run_sync(self._inspect)
                if info is None or not info["State"].get("Running"):
                    raise SandboxError(f"sandbox container stopped during start; {await self._describe_state()}")
            await anyio.sleep(0.003)
        return True

    @staticmethod
    def _socket_visible(path: str) -> bool:
        return os.path.exists(path)

    def _inspect(self) -> dict[str, Any] | None:
        import docker.errors

        try:
            return self.api.inspect_container(self.container_id)
        except docker.errors.NotFound:
            return None

    async def _describe_state(self) -> str:
        if self.container_id is None:
            return "no container"
        try:
            info = await anyio.to_thread.run_sync(self._inspect)
        except Exception as exc:
            return f"the docker daemon does not answer ({exc})"
        short = self.container_id[:12]
        if info is None:
            return f"container {short} no longer exists"
        state = info["State"]
        if state.get("OOMKilled"):
            return f"container {short} was killed: out of memory"
        if state.get("Running"):
            return f"container {short} is still running"
        text = f"container {short} is {state.get('Status')} (exit code {state.get('ExitCode')})"
        try:
            logs = await anyio.to_thread.run_sync(
                lambda: self.api.logs(self.container_id, tail=20).decode("utf-8", "replace")
            )
            if logs.strip():
                text += f"; its last output: {logs.strip()[-1500:]}"
        except Exception:
            pass
        return text

    # ------------------------------------------------------------------ stop

    def _remove_sync(self) -> None:
        import docker.errors

        if self.container_id is not None:
            try:
                self.api.remove_container(self.container_id, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "already in progress" not in str(exc):
                    raise
            with _live_lock:
                _live.pop(self.container_id, None)
        if self.run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    async def _teardown(self) -> None:
        try:
            await anyio.to_thread.run_sync(self._remove_sync)
        except Exception as exc:
            if self.container_id is not None and _is_connection_error(exc) and await anyio.to_thread.run_sync(
                    docker_hosts.drain_if_silent, self.host, f"{type(exc).__name__}: {str(exc)[:200]}"):
                # the host stopped answering: drained; the container is removed when it answers again
                docker_hosts.add_orphan(self.host, self.container_id)
                with _live_lock:
                    _live.pop(self.container_id, None)
                return
            # the atexit hook and `traject sandbox prune` retry; say what is left behind
            raise SandboxError(f"could not remove sandbox container {self.container_id}: {exc}") from exc
        finally:
            if self._run_slot is not None:
                self._run_slot.release()

    def __repr__(self) -> str:
        cid = self.container_id[:12] if self.container_id else "-"
        return f"DockerSandbox({cid}, host={self.host}, image={self.config.image!r}, channel={self.channel_kind})"
