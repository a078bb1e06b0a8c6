"""The hostile-code suite again, on a Docker host reached over ssh (the second daemon behind a
test sshd): every call over the stdio channel through an ssh stream."""

from __future__ import annotations

import pytest
from sandbox_support import test_config
from test_docker_hostile import (  # noqa: F401 - collected again here, on the ssh host
    test_a_container_killed_from_outside_is_a_clear_sandbox_error,
    test_a_huge_file_is_bounded_by_the_workspace_size,
    test_allocating_past_the_memory_limit_is_an_oom_observation,
    test_cancelling_an_exec_kills_the_command_and_closing_removes_the_container,
    test_fork_bomb_is_killed_with_its_call_and_the_sandbox_recovers,
    test_infinite_loop_times_out_and_the_next_call_works,
)

pytestmark = [pytest.mark.anyio, pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def docker_config(docker_image, ssh_host):
    def make(**overrides):
        return test_config(**{"backend": "docker", "image": docker_image, "hosts": (ssh_host.url,), **overrides})

    return make
