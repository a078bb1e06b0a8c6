"""A multi-node Ray cluster on this machine, on loopback addresses only: ``ray start --head`` plus
``ray start --address`` for each further node, each in its own process group (``--block``) so
that one node can be killed mid-run and the whole cluster stopped without touching any other
Ray on the machine (no ``ray stop``, which would end every Ray process of the machine)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from traject.testing.docker_daemon import descendants, free_port


# Every node lives on a loopback address. Not 127.0.0.1 itself: Ray rewrites exactly
# "127.0.0.1"/"localhost" to the machine's outward address (services.resolve_ip_for_localhost),
# and its one switch against that (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) refuses a second node;
# another address of 127.0.0.0/8 is kept as given, so no node is ever reached off loopback.
NODE_IP = "127.0.0.2"
LOOPBACK_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
# a killed node is noticed in about two seconds (the default takes half a minute)
FAST_FAILURE_ENV = {"RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "500",
                    "RAY_health_check_failure_threshold": "3", "RAY_health_check_initial_delay_ms": "500"}


def _ray_cli() -> str:
    found = Path(sys.executable).with_name("ray")
    return str(found) if found.exists() else (shutil.which("ray") or "ray")


class LocalRayCluster:
    def __init__(self, nodes: int = 2, *, cpus_per_node: int = 1, object_store_mb: int = 100) -> None:
        self.n_nodes = nodes
        self.cpus = cpus_per_node
        self.object_store = object_store_mb * 1024 * 1024
        self.port = free_port()
        self.address = f"{NODE_IP}:{self.port}"
        # a short temp dir: Ray's session sockets live under it
        self.temp_dir = tempfile.mkdtemp(prefix="tjr-", dir="/tmp")
        self.procs: list[subprocess.Popen[bytes]] = []

    def _common(self) -> list[str]:
        return ["--node-ip-address", NODE_IP, "--num-cpus", str(self.cpus),
                "--object-store-memory", str(self.object_store), "--disable-usage-stats", "--block"]

    def _spawn(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(os.path.join(self.temp_dir, f"{name}.log"), "ab")
        # its own HOME: no ~/.ray state (auth tokens) of other Ray users on this machine
        env = {**os.environ, **LOOPBACK_ENV, **FAST_FAILURE_ENV, "HOME": self.temp_dir, "RAY_AUTH_MODE": "disabled"}
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        log.close()
        self.procs.append(proc)
        return proc

    def start(self, timeout: float = 120.0) -> LocalRayCluster:
        """Start the nodes (the head first)."""
        ray = _ray_cli()
        self._spawn([ray, "start", "--head", "--port", str(self.port), "--temp-dir", self.temp_dir,
                     "--include-dashboard=false", *self._common()], "head")
        self._wait_started("head", timeout)
        for i in range(1, self.n_nodes):
            self.add_node(timeout, name=f"node{i}")
        return self

    def add_node(self, timeout: float = 120.0, *, name: str = "node") -> subprocess.Popen[bytes]:
        proc = self._spawn([_ray_cli(), "start", "--address", self.address, *self._common()], name)
        self._wait_started(name, timeout)
        return proc

    def alive_nodes(self) -> int:
        code = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False);"
                "print(sum(1 for n in ray.nodes() if n['Alive']))")
        out = subprocess.run([sys.executable, "-c", code, self.address], capture_output=True, text=True,
                             timeout=60, env={**os.environ, **LOOPBACK_ENV})
        try:
            return int(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return 0

    def _wait_started(self, name: str, timeout: float) -> None:
        """Until ``ray start`` says its node runs (it prints that once the node registered)."""
        log = Path(self.temp_dir, f"{name}.log")
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in log.read_text(errors="replace"):
            dead = [p for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "".join(Path(self.temp_dir, f).read_text(errors="replace")[-1500:]
                               for f in os.listdir(self.temp_dir) if f.endswith(".log"))
                self.stop()
                raise RuntimeError(f"the local Ray cluster did not come up: {logs}")
            time.sleep(0.2)

    def kill_node(self, index: int) -> None:
        """SIGKILL node ``index`` (0 is the head) and every process it started (Ray's workers
        run in sessions of their own: they are found as descendants)."""
        proc = self.procs[index]
        pids = descendants(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        """Kill every process of every node (only what this cluster started)."""
        for index in reversed(range(len(self.procs))):
            self.kill_node(index)
        self.procs = []
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def slow_oracle(messages, tools):  # noqa: ANN001, ANN201 - a ScriptedPolicy function
    """The lookup oracle, 0.3 s per turn: episodes that stay in flight long enough to lose
    their node mid-run (``--policy scripted:traject.testing.ray_cluster:slow_oracle``)."""
    import anyio

    from traject.environments.builtin.lookup import solve

    await anyio.sleep(0.3)
    return solve(messages, tools)
