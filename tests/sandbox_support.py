"""Fixtures for sandbox and sandbox-tool tests against a real Docker daemon (and the local backend).

Docker tests are skipped only when no daemon answers. A missing base image is built once
(cached by content tag; scripts/setup_docker.sh normally does this before the tests run).
Every container made by these tests carries a per-run label, and the session ends by
checking that the daemon holds none of them.
"""

from __future__ import annotations

import uuid

import pytest

from traject.sandboxes.config import SandboxConfig
from traject.sandboxes.docker_client import daemon_available

RUN_LABEL = "traject.test_run"
RUN_ID = uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The base image, built if missing; skips the test when no Docker daemon answers."""
    if not daemon_available():
        pytest.skip("no Docker daemon answers (start one: scripts/setup_docker.sh)")
    from traject.sandboxes.config import DEFAULT_IMAGE
    from traject.sandboxes.images import build_base_image

    build_base_image()
    return DEFAULT_IMAGE


def test_config(**overrides) -> SandboxConfig:
    labels = {RUN_LABEL: RUN_ID, **overrides.pop("labels", {})}
    return SandboxConfig(labels=labels, **overrides)


test_config.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
def docker_config(docker_image):
    def make(**overrides) -> SandboxConfig:
        return test_config(**{"backend": "docker", "image": docker_image, **overrides})

    return make


def our_containers() -> list[dict]:
    from traject.sandboxes.docker_client import get_client

    return get_client().api.containers(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"})


@pytest.fixture(scope="session", autouse=True)
def no_container_left_behind():
    yield
    if not daemon_available():
        return
    left = our_containers()
    for info in left:
        from traject.sandboxes.docker_client import get_client

        get_client().api.remove_container(info["Id"], force=True)
    assert not left, f"tests left {len(left)} sandbox container(s) behind"


@pytest.fixture(scope="session")
def second_daemon(docker_image):
    """A second Docker daemon started for this test session, reached over tcp://127.0.0.1:PORT
    (a remote host: no shared filesystem path). Stopped, with its directories, at the end;
    before that, the session checks that no container of this run is left on it."""
    from traject.testing.docker_daemon import SecondDaemon, can_start

    why = can_start()
    if why:
        pytest.skip(f"no second Docker daemon: {why}")
    daemon = SecondDaemon().start()
    try:
        yield daemon
        daemon.ensure_running()
        from traject.sandboxes.docker_client import get_client

        api = get_client(host=daemon.url).api
        left = api.containers(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"})
        assert not left, f"tests left {len(left)} sandbox container(s) on the second daemon"
    finally:
        daemon.stop()


@pytest.fixture
def isolated_admission(tmp_path, monkeypatch):
    """Admission slots of this test only (other processes on a shared machine hold theirs)."""
    monkeypatch.setenv("TRAJECT_ADMISSION_DIR", str(tmp_path / "admission"))
    return tmp_path / "admission"


@pytest.fixture(scope="session")
def ssh_host(second_daemon):
    """The second daemon reached as ``ssh://USER@127.0.0.1:PORT``: a test sshd (its own port,
    host key and key-only config) whose sessions have DOCKER_HOST set to the second daemon's
    unix socket, and this process's PATH led by an ``ssh`` that uses the test's client config
    (restored at the end; ~/.ssh is not touched)."""
    import os

    from traject.testing.ssh_server import TestSshd, can_start

    why = can_start()
    if why:
        pytest.skip(f"no ssh docker host: {why}")
    sshd = TestSshd(f"unix://{second_daemon.socket}").start()
    saved = os.environ["PATH"]
    os.environ["PATH"] = sshd.client_env()["PATH"]
    try:
        yield sshd
    finally:
        os.environ["PATH"] = saved
        sshd.stop()
