"""SandboxConfig: every limit and choice a sandbox is created with, configurable per env."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from traject.sandboxes.admission import DEFAULT_CREATE_CAP, DEFAULT_HOST_CAP

DEFAULT_IMAGE = "traject/base:latest"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value: str | int) -> int:
    """``"512m"`` -> bytes. Accepts docker-style sizes (b, k, m, g, t; optional ``i``/``b``)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"not a size: {value!r} (write e.g. 512m, 1g, 65536)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


HOST_SCHEMES = ("unix://", "tcp://", "ssh://", "npipe://")


def check_host_url(url: str) -> str:
    if not url.startswith(HOST_SCHEMES):
        raise ValueError(f"docker host {url!r}: write unix:///path, tcp://HOST:PORT or ssh://USER@HOST")
    return url


class SandboxConfig(BaseModel):
    """How a sandbox is made. Defaults isolate: no network, bounded memory, CPU, processes,
    disk and output, a non-root user, a read-only root filesystem."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["auto", "docker", "local"] = Field(
        "auto",
        description="auto: docker, and an error at start when no daemon answers; local (which does "
        "not isolate) only when named, or with TRAJECT_ALLOW_LOCAL_SANDBOX=1",
    )
    image: str = DEFAULT_IMAGE
    hosts: tuple[str, ...] = Field(
        (),
        description="Docker endpoints (unix://, tcp://, ssh://) to place sandboxes on; empty: "
        "TRAJECT_DOCKER_HOSTS (comma-separated), else DOCKER_HOST",
    )
    host_cap: int = Field(DEFAULT_HOST_CAP, ge=1, description="running sandboxes per Docker host, "
                          "counted across every process of this machine")
    create_cap: int = Field(DEFAULT_CREATE_CAP, ge=1, description="concurrent creations per Docker host, "
                            "across every process of this machine")
    channel: Literal["auto", "socket", "stdio", "docker_exec"] = Field(
        "auto",
        description="socket: the fast unix-socket channel (local daemon); stdio: the fast channel "
        "over one long-lived `docker exec` stream (any daemon, remote included); docker_exec: one "
        "`docker exec` per call; auto: socket for a local daemon, stdio for a remote one",
    )
    network: bool = False
    memory: str = "1g"
    cpus: float = Field(1.0, gt=0)
    pids_limit: int = Field(256, ge=8)
    workspace: str = "/workspace"
    workspace_size: str = "512m"
    workspace_inodes: int = Field(200_000, ge=100)
    tmp_size: str = "128m"
    read_only: bool = True
    user: str = "1000:1000"
    output_limit: int = Field(64 * 1024, ge=256, description="bytes kept per stream (head + tail)")
    env: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    startup_timeout: float = Field(30.0, gt=0)
    shell: str = "/bin/bash"
    # local backend only: run the executor in a fresh network namespace when the OS allows
    local_unshare_net: bool = True

    @field_validator("memory", "workspace_size", "tmp_size")
    @classmethod
    def _size(cls, value: str) -> str:
        parse_size(value)
        return value

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            check_host_url(url)
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if value in ("0", "root") or value.startswith(("0:", "root:")):
            raise ValueError("sandboxes run as a non-root user: give a uid:gid such as 1000:1000")
        return value

    @property
    def memory_bytes(self) -> int:
        return parse_size(self.memory)

    @property
    def uid_gid(self) -> tuple[int, int] | None:
        parts = self.user.split(":")
        if all(p.isdigit() for p in parts):
            uid = int(parts[0])
            return uid, int(parts[1]) if len(parts) > 1 else uid
        return None
