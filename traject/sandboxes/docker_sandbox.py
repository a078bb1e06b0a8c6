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

from traject.sandboxes.base import SandboxError
from traject.sandboxes.channel import DockerExecChannel, SocketChannel, executor_source
from traject.sandboxes.config import SandboxConfig
from traject.sandboxes.docker_client import LABEL_RUN_DIR, get_client, is_local_daemon, owner_labels
from traject.sandboxes.executor_client import ExecutorSandbox

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

# Containers this process still owns: removed at interpreter exit if nobody closed them.
_live: dict[str, str] = {}
_live_lock = threading.Lock()
_image_seeds: dict[str, str | None] = {}


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
    if not leftovers:
        return
    try:
        api = get_client().api
    except Exception:
        return
    for container_id, run_dir in leftovers.items():
        try:
            api.remove_container(container_id, force=True)
        except Exception:
            pass
        if run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)


def _image_seed(api: Any, image: str) -> str | None:
    if image not in _image_seeds:
        import docker.errors

        try:
            info = api.inspect_image(image)
        except docker.errors.ImageNotFound:
            raise SandboxError(
                f"sandbox image {image!r} not found: build it with `traject sandbox build`"
            ) from None
        labels = (info.get("Config") or {}).get("Labels") or {}
        _image_seeds[image] = labels.get(SEED_LABEL)
    return _image_seeds[image]


class DockerSandbox(ExecutorSandbox):
    backend = "docker"

    def __init__(self, config: SandboxConfig, client: Any) -> None:
        super().__init__(workspace=config.workspace, output_limit=config.output_limit, shell=config.shell)
        self.config = config
        self.client = client
        self.api = client.api
        self.container_id: str | None = None
        self.run_dir: str | None = None
        self.channel_kind = "socket"

    @classmethod
    async def create(cls, config: SandboxConfig | None = None, *, client: Any = None) -> DockerSandbox:
        config = config or SandboxConfig()
        if client is None:
            client = await anyio.to_thread.run_sync(get_client)
        sandbox = cls(config, client)
        try:
            await sandbox._start()
        except BaseException:
            await sandbox.aclose()
            raise
        return sandbox

    # ------------------------------------------------------------------ start

    def _use_socket(self) -> bool:
        if self.config.channel == "auto":
            return is_local_daemon(self.client)
        return self.config.channel == "socket"

    def _create_sync(self) -> str:
        import docker.errors

        cfg = self.config
        seed = _image_seed(self.api, cfg.image)
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
            _live[container_id] = self.run_dir or ""
        self.container_id = container_id
        self.api.start(container_id)
        return container_id

    async def _start(self) -> None:
        use_socket = self._use_socket()
        self.channel_kind = "socket" if use_socket else "docker_exec"
        if use_socket:
            self.run_dir = tempfile.mkdtemp(prefix="s", dir=run_root())
            os.chmod(self.run_dir, 0o777)  # the container's non-root user creates the socket
        try:
            await anyio.to_thread.run_sync(self._create_sync)
        except SandboxError:
            raise
        except Exception as exc:
            raise SandboxError(f"could not start a sandbox container: {exc}") from exc
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
                    "process run in a container of its own?); using the docker exec channel",
                    self.container_id[:12], self.run_dir,
                )
                use_socket = False
                self.channel_kind = "docker_exec"
        if not use_socket:
            self._channel = DockerExecChannel(
                self.api, self.container_id, f"{RUN_MOUNT}/{SOCKET_NAME}", self._describe_state
            )
        await self.ping(timeout=self.config.startup_timeout)

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
            # the atexit hook and `traject sandbox prune` retry; say what is left behind
            raise SandboxError(f"could not remove sandbox container {self.container_id}: {exc}") from exc

    def __repr__(self) -> str:
        cid = self.container_id[:12] if self.container_id else "-"
        return f"DockerSandbox({cid}, image={self.config.image!r}, channel={self.channel_kind})"
