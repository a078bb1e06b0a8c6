from sandbox_support import anyio_backend, docker_config, docker_image, no_container_left_behind  # noqa: F401
