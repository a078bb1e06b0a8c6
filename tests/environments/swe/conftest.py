from __future__ import annotations

import pytest
from sandbox_support import RUN_ID, RUN_LABEL, docker_image, no_container_left_behind  # noqa: F401


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def swe_config(docker_image):
    """A SweConfig whose containers carry this test run's label (checked at session end)."""
    from traject.environments.swe import SweConfig
    from traject.sandboxes.config import SandboxConfig

    def make(**overrides):
        sandbox = SandboxConfig(backend="docker", image=docker_image, memory="1g", workspace_size="256m",
                                labels={RUN_LABEL: RUN_ID})
        return SweConfig(base_image=docker_image, sandbox=sandbox, **overrides)

    return make
