"""The hostile-code suite again, on remote Docker hosts: the second daemon reached over tcp, and
the same daemon behind a test sshd reached over ssh. No shared filesystem, so every call goes
over the stdio channel (over ssh: through an ssh stream)."""

from __future__ import annotations

import pytest
from sandbox_support import test_config
from test_docker_hostile import (  # noqa: F401 - collected again here, on each remote host
    test_a_container_killed_from_outside_is_a_clear_sandbox_error,
    test_a_huge_file_is_bounded_by_the_workspace_size,
    test_allocating_past_the_memory_limit_is_an_oom_observation,
    test_cancelling_an_exec_kills_the_command_and_closing_removes_the_container,
    test_defaults_isolate,
    test_fork_bomb_is_killed_with_its_call_and_the_sandbox_recovers,
    test_infinite_loop_times_out_and_the_next_call_works,
    test_sockets_to_any_address_fail,
)

pytestmark = [pytest.mark.anyio, pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(params=["tcp", "ssh"])
def docker_config(request, docker_image):
    host = request.getfixturevalue("second_daemon" if request.param == "tcp" else "ssh_host")

    def make(**overrides):
        return test_config(**{"backend": "docker", "image": docker_image, "hosts": (host.url,), **overrides})

    return make


async def test_a_remote_host_gets_the_stdio_channel(docker_config):
    from traject.sandboxes.docker_sandbox import DockerSandbox

    async with await DockerSandbox.create(docker_config()) as sb:
        assert sb.remote and sb.channel_kind == "stdio" and sb.run_dir is None
        assert (await sb.exec("echo remote", timeout=10)).stdout == "remote\n"
