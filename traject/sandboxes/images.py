"""Sandbox images, built locally and tagged by content.

The base image (python3, git, bash, coreutils, procps) is built from a Dockerfile when a
registry answers, otherwise from a Debian root filesystem made by ``mmdebstrap`` with this
host's apt sources and turned into an image by ``docker import``. Per-task images derive from
it without a registry: run a container from the base, apply the steps, ``commit``.

Tags are content hashes (of the recipe; for derived images, of the base image id and the
steps), so building again with nothing changed is skipped. Run as
``python -m traject.sandboxes.images build`` (the ``traject sandbox build`` command does the same).

Everything here is blocking (docker SDK, subprocesses): call it from a worker thread.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from traject.sandboxes.config import DEFAULT_IMAGE

log = logging.getLogger(__name__)

RECIPE_VERSION = 1
BASE_REPOSITORY, _, BASE_DEFAULT_TAG = DEFAULT_IMAGE.partition(":")
DERIVED_REPOSITORY = "traject/derived"
SEED_DIR = "/opt/traject/workspace"
SEED_LABEL = "traject.workspace_seed"
RECIPE_LABEL = "traject.recipe"
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageBuildError(RuntimeError):
    """An image could not be built; the message says which step and why."""


class BaseImageSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    suite: str | None = Field(None, description="Debian suite; None: the host's own release")
    packages: tuple[str, ...] = ("python3", "git", "bash", "coreutils", "procps", "ca-certificates")
    variant: Literal["apt", "minbase"] = "apt"
    uid: int = 1000
    gid: int = 1000
    user_name: str = "agent"


class DeriveSpec(BaseModel):
    """Steps that turn the base image into a per-task image. Steps run as root, in order:
    apt packages, pip packages, the repository checkout, then the ``run`` commands."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    apt_packages: tuple[str, ...] = ()
    pip_packages: tuple[str, ...] = ()
    repo: str | None = Field(None, description="a git URL, or the path of a git repository on this host")
    commit: str | None = None
    repo_dir: str = Field("repo", description="where the checkout lands, relative to the workspace")
    run: tuple[str, ...] = ()
    network: bool = Field(True, description="steps may reach the network (apt, pip, git clone)")


class ImageRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    tag: str
    image_id: str
    built: bool = Field(description="False when an image with this content tag already existed")
    method: str
    seconds: float = 0.0


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = root / "traject"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- host apt sources


def host_codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        text = ""
    match = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", text, re.MULTILINE)
    if not match:
        raise ImageBuildError(
            "cannot tell this host's Debian release from /etc/os-release: pass a suite "
            "(BaseImageSpec(suite=...)) or build from a Dockerfile with a reachable registry"
        )
    return match.group(1)


def host_apt_sources(suite: str, etc_apt: Path = Path("/etc/apt")) -> list[Path]:
    """Enabled apt source files of this host that serve ``suite`` (deb822 or one-line)."""
    found = []
    candidates = [etc_apt / "sources.list"]
    sources_d = etc_apt / "sources.list.d"
    if sources_d.is_dir():
        candidates += sorted(p for p in sources_d.iterdir() if p.suffix in (".list", ".sources"))
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if path.suffix == ".sources":
            if any(ln.startswith("Suites:") and suite in ln.split() for ln in lines) and not any(
                ln.strip() == "Enabled: no" for ln in lines
            ):
                found.append(path)
        elif any(ln.startswith("deb ") and f" {suite} " in f" {ln} " for ln in lines):
            found.append(path)
    return found


def _sources_fingerprint(paths: list[Path]) -> list[str]:
    out = []
    for path in paths:
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        out.append("\n".join(ln for ln in lines if ln and not ln.startswith("#")))
    return out


# ---------------------------------------------------------------- base image


def base_recipe(spec: BaseImageSpec) -> dict[str, Any]:
    return {"version": RECIPE_VERSION, "spec": spec.model_dump(mode="json"), "suite": spec.suite or host_codename()}


def base_tag(spec: BaseImageSpec | None = None) -> str:
    return f"{BASE_REPOSITORY}:{_digest(base_recipe(spec or BaseImageSpec()))}"


def _find_image(api: Any, ref: str) -> dict[str, Any] | None:
    import docker.errors

    try:
        return api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        return None


def _user_setup_script(spec: BaseImageSpec, root: str = "") -> str:
    u, g, name = spec.uid, spec.gid, spec.user_name
    return (
        f"grep -q '^{name}:' {root}/etc/group || echo '{name}:x:{g}:' >> {root}/etc/group; "
        f"grep -q '^{name}:' {root}/etc/passwd || "
        f"echo '{name}:x:{u}:{g}:{name}:/workspace:/bin/bash' >> {root}/etc/passwd; "
        f"mkdir -p {root}/workspace {root}/run/traject {root}{SEED_DIR}; "
        f"chown {u}:{g} {root}/workspace"
    )


def _dockerfile(spec: BaseImageSpec, suite: str, recipe_hash: str) -> str:
    pkgs = " ".join(spec.packages)
    return (
        f"FROM debian:{suite}-slim\n"
        f"RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        f"--no-install-recommends {pkgs} && rm -rf /var/lib/apt/lists/*\n"
        f"RUN {_user_setup_script(spec)}\n"
        f"ENV LANG=C.UTF-8 PATH={IMAGE_PATH}\n"
        f"LABEL {RECIPE_LABEL}={recipe_hash}\n"
    )


def _build_with_dockerfile(client: Any, spec: BaseImageSpec, suite: str, tag: str, recipe_hash: str) -> str:
    repo, _, version = tag.partition(":")
    dockerfile = _dockerfile(spec, suite, recipe_hash)
    image, _logs = client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True, network_mode="host"
    )
    return image.id


def rootfs_tarball(spec: BaseImageSpec, suite: str, recipe_hash: str, *, force: bool = False) -> Path:
    """The mmdebstrap root filesystem for ``spec``, cached under ~/.cache/traject/rootfs."""
    out_dir = cache_dir() / "rootfs"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{recipe_hash}.tar"
    if target.exists() and not force:
        return target
    if shutil.which("mmdebstrap") is None:
        raise ImageBuildError(
            "no registry answered and mmdebstrap is not installed: install it (apt-get install "
            "mmdebstrap) or make a registry reachable"
        )
    sources = host_apt_sources(suite)
    if not sources:
        raise ImageBuildError(
            f"this host has no apt source for {suite!r} under /etc/apt: mmdebstrap reads the "
            "host's sources; add one, or pass BaseImageSpec(suite=...) matching a source"
        )
    partial = target.with_suffix(".tar.partial")
    hook = _user_setup_script(spec, root='"$1"')
    cmd = [
        "mmdebstrap",
        f"--variant={spec.variant}",
        f"--include={','.join(spec.packages)}",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        f"--customize-hook={hook}",
        "--format=tar",
        suite,
        str(partial),
        *[str(p) for p in sources],
    ]
    log.info("building root filesystem: %s", " ".join(cmd[:3]))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ImageBuildError(f"mmdebstrap failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    partial.rename(target)
    return target


def _build_from_rootfs(client: Any, spec: BaseImageSpec, suite: str, tag: str, recipe_hash: str,
                       force: bool) -> str:
    tarball = rootfs_tarball(spec, suite, recipe_hash, force=force)
    repo, _, version = tag.partition(":")
    changes = [
        f"ENV PATH={IMAGE_PATH}",
        "ENV LANG=C.UTF-8",
        "WORKDIR /workspace",
        f"LABEL {RECIPE_LABEL}={recipe_hash}",
        'CMD ["/bin/bash"]',
    ]
    client.api.import_image_from_file(str(tarball), repository=repo, tag=version, changes=changes)
    info = _find_image(client.api, tag)
    if info is None:
        raise ImageBuildError(f"docker import of {tarball} did not produce {tag}")
    return info["Id"]


def registry_reachable(client: Any, image: str) -> bool:
    """Whether the daemon can pull ``image`` (the pull is kept: the Dockerfile build uses it)."""
    repo, _, tag = image.partition(":")
    try:
        client.images.pull(repo, tag=tag or "latest")
        return True
    except Exception as exc:
        log.info("no registry answered (%s); building from a local root filesystem", str(exc)[:200])
        return False


def build_base_image(
    spec: BaseImageSpec | None = None,
    *,
    method: Literal["auto", "dockerfile", "rootfs"] = "auto",
    force: bool = False,
    client: Any = None,
) -> ImageRef:
    """Build the base image unless an image with the same content tag exists; tag it
    ``traject/base:latest`` too (the default sandbox image)."""
    from traject.sandboxes.docker_client import get_client

    spec = spec or BaseImageSpec()
    client = client or get_client(timeout=600)
    recipe = base_recipe(spec)
    recipe_hash = _digest(recipe)
    suite = recipe["suite"]
    tag = f"{BASE_REPOSITORY}:{recipe_hash}"
    started = time.monotonic()
    existing = _find_image(client.api, tag)
    if existing is not None and not force:
        client.api.tag(existing["Id"], BASE_REPOSITORY, BASE_DEFAULT_TAG)
        return ImageRef(tag=tag, image_id=existing["Id"], built=False, method="cached")
    if method == "auto":
        method = "dockerfile" if registry_reachable(client, f"debian:{suite}-slim") else "rootfs"
    if method == "dockerfile":
        image_id = _build_with_dockerfile(client, spec, suite, tag, recipe_hash)
    else:
        image_id = _build_from_rootfs(client, spec, suite, tag, recipe_hash, force)
    client.api.tag(image_id, BASE_REPOSITORY, BASE_DEFAULT_TAG)
    return ImageRef(tag=tag, image_id=image_id, built=True, method=method,
                    seconds=time.monotonic() - started)


# ---------------------------------------------------------------- derived images


def build_labels() -> dict[str, str]:
    from traject.sandboxes.docker_client import LABEL, owner_labels

    return {k: v for k, v in owner_labels().items() if k != LABEL}


def _local_repo_head(path: str, commit: str | None) -> str:
    ref = commit or "HEAD"
    proc = subprocess.run(["git", "-C", path, "rev-parse", ref], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImageBuildError(f"cannot resolve {ref!r} in the git repository {path}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def derive_recipe(base_id: str, spec: DeriveSpec) -> dict[str, Any]:
    recipe: dict[str, Any] = {"version": RECIPE_VERSION, "base": base_id, "spec": spec.model_dump(mode="json")}
    if spec.repo and os.path.isdir(spec.repo):
        recipe["repo_commit"] = _local_repo_head(spec.repo, spec.commit)
    return recipe


def _tar_directory(path: str, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname=arcname)
    return buf.getvalue()


def _run_step(container: Any, what: str, script: str) -> None:
    result = container.exec_run(["bash", "-lc", script], user="0:0", demux=False)
    if result.exit_code != 0:
        out = (result.output or b"").decode("utf-8", "replace")[-4000:]
        raise ImageBuildError(f"deriving an image: step {what!r} failed (exit {result.exit_code}):\n{out}")


def derive_image(base: str, spec: DeriveSpec, *, force: bool = False, client: Any = None) -> ImageRef:
    """A per-task image: ``base`` plus ``spec``'s steps, tagged by content and cached.

    A repository lands under the image's workspace seed directory; each sandbox made from the
    image starts with a copy of it in its (writable) workspace."""
    from traject.sandboxes.docker_client import get_client

    client = client or get_client(timeout=600)
    base_info = _find_image(client.api, base)
    if base_info is None:
        raise ImageBuildError(f"base image {base!r} not found: build it with `traject sandbox build`")
    recipe = derive_recipe(base_info["Id"], spec)
    tag = f"{DERIVED_REPOSITORY}:{_digest(recipe)}"
    existing = _find_image(client.api, tag)
    if existing is not None and not force:
        return ImageRef(tag=tag, image_id=existing["Id"], built=False, method="cached")
    started = time.monotonic()
    container = client.containers.create(
        base_info["Id"],
        command=["sleep", "infinity"],
        user="0:0",
        network_mode="host" if spec.network else "none",
        labels={**build_labels(), "traject.build": "1"},
    )
    try:
        container.start()
        apt = list(spec.apt_packages)
        if spec.pip_packages and "python3-pip" not in apt:
            apt.append("python3-pip")
        if apt:
            _run_step(container, "apt", "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get "
                      f"install -y -q --no-install-recommends {' '.join(apt)} && rm -rf /var/lib/apt/lists/*")
        if spec.pip_packages:
            _run_step(container, "pip", "python3 -m pip install -q --no-cache-dir --break-system-packages "
                      + " ".join(spec.pip_packages))
        if spec.repo:
            dest = f"{SEED_DIR}/{spec.repo_dir}"
            if os.path.isdir(spec.repo):
                _run_step(container, "mkdir", f"mkdir -p {SEED_DIR}")
                container.put_archive(SEED_DIR, _tar_directory(spec.repo, spec.repo_dir))
            else:
                _run_step(container, "git clone", f"git clone -q {spec.repo} {dest}")
            if spec.commit:
                _run_step(container, "git checkout", f"git -C {dest} checkout -q --detach {spec.commit}")
            _run_step(container, "chown", f"chown -R 1000:1000 {SEED_DIR}")
        for i, command in enumerate(spec.run):
            _run_step(container, f"run[{i}]", command)
        container.stop(timeout=0)
        changes = [f"LABEL {RECIPE_LABEL}={tag.partition(':')[2]}"]
        if spec.repo:
            changes.append(f"LABEL {SEED_LABEL}={SEED_DIR}")
        repo, _, version = tag.partition(":")
        image = container.commit(repository=repo, tag=version, changes=changes,
                                 conf={"Cmd": ["/bin/bash"], "User": ""})
    finally:
        try:
            container.remove(force=True)
        except Exception:
            pass
    return ImageRef(tag=tag, image_id=image.id, built=True, method="derive",
                    seconds=time.monotonic() - started)


# ---------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m traject.sandboxes.images")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the base sandbox image (skipped when up to date)")
    build.add_argument("--method", choices=["auto", "dockerfile", "rootfs"], default="auto")
    build.add_argument("--force", action="store_true")
    sub.add_parser("tag", help="print the content tag the base image would have")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "tag":
        print(base_tag())
        return 0
    try:
        ref = build_base_image(method=args.method, force=args.force)
    except ImageBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = f"built via {ref.method} in {ref.seconds:.1f}s" if ref.built else "up to date"
    print(f"{ref.tag} ({state}); also tagged {DEFAULT_IMAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
