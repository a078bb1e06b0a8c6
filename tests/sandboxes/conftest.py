from sandbox_support import (  # noqa: F401
    anyio_backend,
    docker_config,
    docker_image,
    isolated_admission,
    no_container_left_behind,
    second_daemon,
    ssh_host,
)
