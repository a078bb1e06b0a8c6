"""Environment images for SWE tasks, built with the sandbox layer's ``derive_image``.

Two layers on a base image, each tagged by its content and built once:

0. the base: the sandbox base image, or, for a task that names its Python (``python``, from
   SWE-bench's specs), the base of the Debian suite that ships that Python (3.9 bullseye, 3.11
   bookworm, 3.13 trixie), built from the host's mirror on first use;
1. a toolchain image: the sandbox base image plus the task's apt/pip packages (shared by every
   repository that needs the same packages);
2. the environment image of one repository and version: the toolchain plus the repository
   (from its local clone or mirror, with its history), checked out at
   ``environment_setup_commit``, with the task's ``install`` commands run in it.

Editable installs made in the image point at the image's copy of the repository; they are
re-pointed at the copy each sandbox starts with in its workspace, which is where the agent
edits. Building needs no network unless the packages or install commands do; behind an
intercepting proxy, ``build=BuildSettings.from_host()`` lends the builds the host's CA bundle and
pip settings. A failed step is named by its spec entry (``install: pip install -e .``).

With a reachable registry, SWE-bench's own prebuilt images exist per instance:
:func:`official_image` gives their names (``swebench/sweb.eval.x86_64.<id>:latest``, ``__`` in
the id written ``_1776_``), through the ``swebench`` package's ``ImageSpec`` when it is installed.
``images="official"`` runs the agent in one: a thin layer adds the sandbox user and workspace,
copies ``/testbed`` (the repository, installed in the conda env ``testbed``) into the workspace
seed, re-points editable installs at the workspace copy and puts the env's ``bin`` first on
``PATH``. ``images="auto"`` uses it when the image can be pulled, else builds as above.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import anyio

from traject.environments.swe.task import SweTaskData
from traject.sandboxes.config import DEFAULT_IMAGE
from traject.sandboxes.images import (
    IMAGE_PATH,
    SEED_DIR,
    BaseImageSpec,
    BuildSettings,
    DeriveSpec,
    ImageRef,
    build_base_image,
    derive_image,
    registry_reachable,
    suite_for_python,
    user_setup_script,
)

OFFICIAL_REPO_DIR = "/testbed"
OFFICIAL_CONDA_ENV = "/opt/miniconda3/envs/testbed"

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
    steps = [("git safe.directory", "git config --system --add safe.directory '*'")]
    commit: str | None = data.setup_commit
    if is_bare(data.repo_path):
        # A bare mirror arrives as the repository's .git directory: make it a work tree.
        steps.append((f"checkout of environment_setup_commit {data.setup_commit}",
                      f"cd {seed_repo} && mkdir .git && find . -mindepth 1 -maxdepth 1 ! -name .git "
                      "-exec mv {} .git/ \\; && git config core.bare false && "
                      f"git checkout -q -f --detach {data.setup_commit}"))
        commit = None
    steps += [(f"pre_install: {cmd}", f"cd {seed_repo} && {cmd}") for cmd in data.pre_install]
    steps += [(f"install: {cmd}", f"cd {seed_repo} && {cmd}") for cmd in data.install]
    if data.install or data.pre_install:
        # Editable installs point at the image's copy; point them at the workspace's.
        steps.append(("re-pointing editable installs at the workspace",
                      f"grep -rlF '{seed_repo}' /usr/lib/python3* /usr/local/lib/python3* 2>/dev/null | "
                      f"xargs -r sed -i 's#{seed_repo}#{workspace}/{REPO_DIR}#g'"))
    steps.append(("chown of the seed", f"chown -R 1000:1000 {SEED_DIR}"))
    return DeriveSpec(repo=data.repo_path, commit=commit, repo_dir=REPO_DIR, run=tuple(c for _, c in steps),
                      run_names=tuple(n for n, _ in steps), network=install_network)


def base_for(data: SweTaskData, base: str) -> str:
    """The base image of ``data``'s environment: ``base``, unless the task names a Python and
    ``base`` is the default image, in which case the suite shipping that Python (built if missing)."""
    if data.python is None or base != DEFAULT_IMAGE:
        return base
    return build_base_image(BaseImageSpec(suite=suite_for_python(data.python))).tag


def official_image(instance_id: str, *, namespace: str = "swebench", tag: str = "latest", arch: str = "x86_64") -> str:
    """The name of SWE-bench's prebuilt evaluation image for an instance.

    >>> official_image("astropy__astropy-12907")
    'swebench/sweb.eval.x86_64.astropy_1776_astropy-12907:latest'
    """
    try:
        from swebench.image_builder.image_spec import ImageSpec
    except ImportError:
        key = f"{namespace}/sweb.eval.{arch}.{instance_id}:{tag}".replace("__", "_1776_")
        return key.lower()
    return ImageSpec(instance_id=instance_id, dockerfile="(not built here)", namespace=namespace, tag=tag,
                     arch="amd64" if arch == "x86_64" else arch).name


def _build(base: str, data: SweTaskData, workspace: str, install_network: bool, force: bool,
           force_toolchain: bool, build: BuildSettings | None = None) -> ImageRef:
    tool = toolchain_spec(data)
    spec = env_spec(data, workspace=workspace, install_network=install_network)
    key = json.dumps([base, data.python, tool.model_dump(mode="json") if tool else None,
                      spec.model_dump(mode="json")], sort_keys=True)
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
        suite_lock = _locks.setdefault(f"python {data.python}", threading.Lock())
    with lock:
        if key in _built and not (force or force_toolchain):
            return _built[key]
        with suite_lock:  # one build of a suite's base at a time
            base = base_for(data, base)
        parent = derive_image(base, tool, force=force_toolchain, build=build).tag if tool is not None else base
        ref = derive_image(parent, spec, force=force, build=build)
        _built[key] = ref
        return ref


def official_layer(*, workspace: str = "/workspace") -> DeriveSpec:
    """The layer that makes SWE-bench's prebuilt image a traject sandbox image."""
    seed_repo = f"{SEED_DIR}/{REPO_DIR}"
    steps = [
        ("sandbox user and workspace", user_setup_script()),
        (f"copy of {OFFICIAL_REPO_DIR}", f"mkdir -p {SEED_DIR} && cp -a {OFFICIAL_REPO_DIR} {seed_repo} && "
                                         "git config --system --add safe.directory '*'"),
        ("re-pointing editable installs at the workspace",
         f"grep -rlF '{OFFICIAL_REPO_DIR}' {OFFICIAL_CONDA_ENV}/lib/python3*/site-packages 2>/dev/null | "
         f"xargs -r sed -i 's#{OFFICIAL_REPO_DIR}#{workspace}/{REPO_DIR}#g'"),
        ("chown of the seed", f"chown -R 1000:1000 {SEED_DIR}"),
    ]
    return DeriveSpec(run=tuple(c for _, c in steps), run_names=tuple(n for n, _ in steps), network=False,
                      env={"PATH": f"{OFFICIAL_CONDA_ENV}/bin:{IMAGE_PATH}"}, seeds_workspace=True)


def _official(data: SweTaskData, workspace: str, must: bool) -> ImageRef | None:
    """The traject layer on SWE-bench's prebuilt image for ``data``, or None when it cannot be
    pulled (and ``must`` is False)."""
    from traject.sandboxes.docker_client import get_client
    from traject.sandboxes.images import ImageBuildError

    client = get_client(timeout=600)
    name = official_image(data.instance_id)
    if not registry_reachable(client, name):
        if must:
            raise ImageBuildError(f"SWE-bench's image {name} cannot be pulled (no registry answers, or it does not "
                                  "exist): use images='build' (or 'auto', which falls back to it)")
        return None
    return derive_image(name, official_layer(workspace=workspace), client=client)


async def ensure_env_image(data: SweTaskData, *, base: str, workspace: str = "/workspace",
                           install_network: bool = True, force: bool = False,
                           force_toolchain: bool = False, build: BuildSettings | None = None,
                           images: str = "build") -> ImageRef:
    """The environment image for ``data``'s repository and version (built if missing).
    ``force`` rebuilds the repository layer; ``force_toolchain`` the shared toolchain too (which
    changes its id, so every environment image on it is rebuilt when next needed). ``images``:
    ``build`` (here), ``official`` (SWE-bench's prebuilt image) or ``auto`` (official when it can
    be pulled)."""
    if images not in ("build", "official", "auto"):
        raise ValueError(f"images={images!r}: use build, official or auto")
    if images != "build":
        ref = await anyio.to_thread.run_sync(_official, data, workspace, images == "official")
        if ref is not None:
            return ref
    return await anyio.to_thread.run_sync(_build, base, data, workspace, install_network, force, force_toolchain,
                                          build)
