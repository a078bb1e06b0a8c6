"""Environment images for SWE tasks, built with the sandbox layer's ``derive_image``.

Two layers, each tagged by its content and built once:

1. a toolchain image: the sandbox base image plus the task's apt/pip packages (shared by every
   repository that needs the same packages);
2. the environment image of one repository and version: the toolchain plus the repository
   (from its local clone or mirror, with its history), checked out at
   ``environment_setup_commit``, with the task's ``install`` commands run in it.

Editable installs made in the image point at the image's copy of the repository; they are
re-pointed at the copy each sandbox starts with in its workspace, which is where the agent
edits. Building needs no network unless the packages or install commands do.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import anyio

from traject.environments.swe.task import SweTaskData
from traject.sandboxes.images import SEED_DIR, DeriveSpec, ImageRef, derive_image

REPO_DIR = "repo"
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_built: dict[str, ImageRef] = {}


def is_bare(path: str | Path) -> bool:
    p = Path(path)
    return not (p / ".git").exists() and (p / "HEAD").is_file() and (p / "objects").is_dir()


def toolchain_spec(data: SweTaskData) -> DeriveSpec | None:
    if not data.apt_packages and not data.pip_packages:
        return None
    return DeriveSpec(apt_packages=tuple(data.apt_packages), pip_packages=tuple(data.pip_packages), network=True)


def env_spec(data: SweTaskData, *, workspace: str = "/workspace", install_network: bool = True) -> DeriveSpec:
    if data.repo_path is None:
        raise ValueError(f"task {data.instance_id}: no repo_path: the repository must be on this machine")
    seed_repo = f"{SEED_DIR}/{REPO_DIR}"
    steps = ["git config --system --add safe.directory '*'"]
    commit: str | None = data.setup_commit
    if is_bare(data.repo_path):
        # A bare mirror arrives as the repository's .git directory: make it a work tree.
        steps.append(f"cd {seed_repo} && mkdir .git && find . -mindepth 1 -maxdepth 1 ! -name .git "
                     "-exec mv {} .git/ \\; && git config core.bare false && "
                     f"git checkout -q -f --detach {data.setup_commit}")
        commit = None
    steps += [f"cd {seed_repo} && {cmd}" for cmd in data.install]
    if data.install:
        # Editable installs point at the image's copy; point them at the workspace's.
        steps.append(f"grep -rlF '{seed_repo}' /usr/lib/python3* /usr/local/lib/python3* 2>/dev/null | "
                     f"xargs -r sed -i 's#{seed_repo}#{workspace}/{REPO_DIR}#g'")
    steps.append(f"chown -R 1000:1000 {SEED_DIR}")
    return DeriveSpec(repo=data.repo_path, commit=commit, repo_dir=REPO_DIR, run=tuple(steps),
                      network=install_network)


def _build(base: str, data: SweTaskData, workspace: str, install_network: bool, force: bool,
           force_toolchain: bool) -> ImageRef:
    tool = toolchain_spec(data)
    spec = env_spec(data, workspace=workspace, install_network=install_network)
    key = json.dumps([base, tool.model_dump(mode="json") if tool else None, spec.model_dump(mode="json")],
                     sort_keys=True)
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        if key in _built and not (force or force_toolchain):
            return _built[key]
        parent = derive_image(base, tool, force=force_toolchain).tag if tool is not None else base
        ref = derive_image(parent, spec, force=force)
        _built[key] = ref
        return ref


async def ensure_env_image(data: SweTaskData, *, base: str, workspace: str = "/workspace",
                           install_network: bool = True, force: bool = False,
                           force_toolchain: bool = False) -> ImageRef:
    """The environment image for ``data``'s repository and version (built if missing).
    ``force`` rebuilds the repository layer; ``force_toolchain`` the shared toolchain too (which
    changes its id, so every environment image on it is rebuilt when next needed)."""
    return await anyio.to_thread.run_sync(_build, base, data, workspace, install_network, force, force_toolchain)
