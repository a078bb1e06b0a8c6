"""Sandbox images, built locally and tagged by content.

The base image (python3, git, bash, coreutils, procps) is built from a Dockerfile when a
registry answers, otherwise from a Debian root filesystem made by ``mmdebstrap`` with this
host's apt mirror and turned into an image by ``docker import``. Its Debian suite is a public
option (``BaseImageSpec(suite=...)``: ``bullseye`` has Python 3.9, ``bookworm`` 3.11, ``trixie``
3.13); a suite the host's apt sources do not name is built from the same mirror, its sources
rewritten for that suite. Per-task images derive from it without a registry: run a container
from the base, apply the steps, ``commit``.

Tags are content hashes (of the recipe; for derived images, of the base image id and the
steps, with a local repository counted by its commit, never by its path), so building again
with nothing changed is skipped. ``traject/base:latest`` (the default sandbox image) follows
the default suite only; every suite is also tagged ``traject/base:<suite>``.

Builds behind an intercepting proxy: ``BuildSettings`` lends the build containers the host's CA
bundle, pip configuration (every ``pip.conf`` pip reads, merged; ``PIP_INDEX_URL``, ``PIP_CERT``,
...), proxy variables, and the local directories these name (a ``file://`` index, wheel
directories, a constraints file; mounted read-only at the same paths), for the build only
(removed before the commit, never part of a tag). Release differences are absorbed: where the base's Python is marked
externally managed (PEP 668, bookworm on), build steps run with ``PIP_BREAK_SYSTEM_PACKAGES=1``.
A failed step is named by what it was (``pip``, ``run 'make'``, or the name its caller gave). Run as
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


# Debian suites a base image can be built from, and the Python each ships as python3.
SUITE_PYTHON: dict[str, str] = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}
DEFAULT_SUITE_ENV = "TRAJECT_BASE_SUITE"


class ImageBuildError(RuntimeError):
    """An image could not be built; the message says which step and why."""


def suite_for_python(version: str) -> str:
    """The Debian suite whose python3 is ``version`` (``"3.9"``, ``"3.11"``, ``"3.13"``)."""
    short = ".".join(str(version).split(".")[:2])
    for suite, py in SUITE_PYTHON.items():
        if py == short:
            return suite
    raise ImageBuildError(
        f"no Debian suite ships Python {version}: the base images have "
        + ", ".join(f"{py} ({suite})" for suite, py in SUITE_PYTHON.items())
        + "; where a package index can be reached, install another interpreter in the image with "
        "uv (`pip install uv && uv python install X.Y`) as an install step")


class BaseImageSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    suite: str | None = Field(None, description="Debian suite (bullseye, bookworm, trixie, ...); None: the "
                              f"default suite (${DEFAULT_SUITE_ENV}, else the host's own release)")
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
    run_names: tuple[str, ...] = Field((), description="what each ``run`` command is, for error messages "
                                       "(e.g. the spec entry it came from); not part of the content tag")
    env: dict[str, str] = Field(default_factory=dict, description="environment variables the image sets (ENV)")
    seeds_workspace: bool = Field(False, description="the run steps fill the workspace seed directory "
                                  "themselves (without ``repo``)")
    network: bool = Field(True, description="steps may reach the network (apt, pip, git clone)")

    def step_name(self, i: int) -> str:
        if i < len(self.run_names) and self.run_names[i]:
            return self.run_names[i]
        command = self.run[i]
        return f"run {command if len(command) <= 80 else command[:77] + '...'!r}"


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
BUILD_DIR = "/tmp/traject-build"
# pip's configuration files, in the order pip reads them (a later one overrides).
PIP_CONFIG_FILES = ("/etc/xdg/pip/pip.conf", "/etc/pip.conf", "~/.pip/pip.conf", "~/.config/pip/pip.conf")


def _local_path(value: str) -> str | None:
    path = value[len("file://"):] if value.startswith("file://") else value
    return path if path.startswith("/") and os.path.exists(path) else None


class BuildSettings(BaseModel):
    """Host settings lent to build containers so that installs work behind an intercepting
    proxy or from local indexes: a CA bundle, pip's configuration (merged from every file pip
    reads) and ``PIP_*``/``UV_*``/proxy variables, and the local directories they name (a
    ``file://`` index, ``find-links`` wheel directories, a constraints file), mounted read-only
    at the same paths. Copied or mounted for the build only: never part of the image or its
    tag. ``BuildSettings.from_host()`` reads them from this host."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ca_bundle: str | None = Field(None, description="a PEM bundle on this host (trusted by pip, git, curl)")
    pip_config: dict[str, dict[str, str]] = Field(default_factory=dict, description="merged pip.conf sections")
    env: dict[str, str] = Field(default_factory=dict, description="PIP_INDEX_URL, HTTPS_PROXY, ...")
    mounts: tuple[str, ...] = Field((), description="host paths mounted read-only at the same path")

    @classmethod
    def from_host(cls, environ: dict[str, str] | None = None,
                  config_files: list[str] | None = None) -> BuildSettings:
        import configparser

        env = dict(os.environ if environ is None else environ)
        ca = next((env[k] for k in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE") if env.get(k)), None)
        if ca is None and Path("/etc/ssl/certs/ca-certificates.crt").is_file():
            ca = "/etc/ssl/certs/ca-certificates.crt"
        files = [*(config_files if config_files is not None else PIP_CONFIG_FILES), env.get("PIP_CONFIG_FILE")]
        parser = configparser.RawConfigParser()
        parser.read([os.path.expanduser(f) for f in files if f])
        config = {section: dict(parser.items(section)) for section in parser.sections()}
        passed = {k: v for k, v in env.items()
                  if (k.startswith(("PIP_", "UV_")) and k not in ("PIP_CONFIG_FILE", "PIP_CERT"))
                  or k in PROXY_VARIABLES}
        mounts: list[str] = []
        values = [(k, v) for section in config.values() for k, v in section.items()] + \
            [(k.lower().removeprefix("pip_").replace("_", "-"), v) for k, v in passed.items()]
        for key, value in values:
            if key in ("cert", "client-cert"):  # the CA travels as BUILD_DIR/ca.pem (PIP_CERT overrides)
                continue
            for word in value.split():
                path = _local_path(word)
                if path is None:
                    continue
                if "index-url" in key:  # a simple index links to its files beside it (../../files)
                    path = str(Path(path).parent)
                if path not in mounts:
                    mounts.append(path)
        return cls(ca_bundle=ca, pip_config=config, env=passed, mounts=tuple(mounts))

    def container_env(self) -> dict[str, str]:
        env = dict(self.env)
        if self.ca_bundle:
            ca = f"{BUILD_DIR}/ca.pem"
            env.update(PIP_CERT=ca, REQUESTS_CA_BUNDLE=ca, SSL_CERT_FILE=ca, CURL_CA_BUNDLE=ca, GIT_SSL_CAINFO=ca,
                       UV_NATIVE_TLS="1")
        if self.pip_config:
            env["PIP_CONFIG_FILE"] = f"{BUILD_DIR}/pip.conf"
        return env

    def docker_mounts(self) -> list[Any]:
        """Bind mounts (host config only: unlike ``volumes=``, nothing of them enters the
        committed image's config)."""
        from docker.types import Mount

        return [Mount(target=path, source=path, type="bind", read_only=True) for path in self.mounts]

    def archive(self) -> bytes:
        """The files to copy in, as a tar rooted at ``BUILD_DIR``'s parent."""
        buf = io.BytesIO()
        name = Path(BUILD_DIR).name

        def add(arcname: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"{name}/{arcname}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))

        with tarfile.open(fileobj=buf, mode="w") as tar:
            if self.ca_bundle:
                add("ca.pem", Path(self.ca_bundle).read_bytes())
            if self.pip_config:
                lines = []
                for section, items in self.pip_config.items():
                    lines.append(f"[{section}]")
                    lines += [f"{k} = {v}" for k, v in items.items()]
                add("pip.conf", ("\n".join(lines) + "\n").encode())
        return buf.getvalue()


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


def default_suite() -> str:
    return os.environ.get(DEFAULT_SUITE_ENV) or host_codename()


def _rewrite_suite(token: str, host: str, suite: str) -> str:
    if token == host:
        return suite
    if token.startswith(host + "-"):  # bookworm-updates, bookworm-security, bookworm-backports
        return suite + token[len(host):]
    return token


def suite_sources(suite: str, out_dir: Path, etc_apt: Path = Path("/etc/apt"),
                  host: str | None = None) -> list[Path]:
    """Apt source files for ``suite``: the host's own where they name it, else the host's sources
    of its own release rewritten for ``suite`` (same mirror, same keyrings), written to ``out_dir``."""
    found = host_apt_sources(suite, etc_apt)
    if found:
        return found
    host = host or host_codename()
    originals = host_apt_sources(host, etc_apt)
    if not originals:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)

    def ours(token: str) -> bool:
        return token == host or token.startswith(host + "-")

    written = []
    for i, path in enumerate(originals):
        text = path.read_text()
        if path.suffix == ".sources":
            stanzas = []
            for stanza in re.split(r"\n\s*\n", text):
                lines = stanza.splitlines()
                suites = next((ln.split()[1:] for ln in lines if ln.strip().startswith("Suites:")), [])
                if not any(ours(t) for t in suites):
                    continue  # another vendor's stanza: not carried over
                stanzas.append("\n".join(
                    "Suites: " + " ".join(_rewrite_suite(t, host, suite) for t in ln.split()[1:])
                    if ln.strip().startswith("Suites:") else ln for ln in lines))
            body = "\n\n".join(stanzas)
        else:
            kept = []
            for line in text.splitlines():
                parts = line.split()
                if not parts or parts[0] not in ("deb", "deb-src"):
                    continue
                j = 1  # deb [options] URI SUITE COMPONENTS...
                if parts[j].startswith("["):
                    while j < len(parts) and not parts[j].endswith("]"):
                        j += 1
                    j += 1
                if j + 1 < len(parts) and ours(parts[j + 1]):
                    parts[j + 1] = _rewrite_suite(parts[j + 1], host, suite)
                    kept.append(" ".join(parts))
            body = "\n".join(kept)
        target = out_dir / f"{suite}-{i}-{path.name}"
        target.write_text(body + "\n")
        written.append(target)
    return written


def _sources_fingerprint(paths: list[Path]) -> list[str]:
    out = []
    for path in paths:
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        out.append("\n".join(ln for ln in lines if ln and not ln.startswith("#")))
    return out


# ---------------------------------------------------------------- base image


def base_recipe(spec: BaseImageSpec) -> dict[str, Any]:
    # The suite is counted once, resolved: suite=None and the default suite named are one image.
    return {"version": RECIPE_VERSION, "spec": {**spec.model_dump(mode="json"), "suite": None},
            "suite": spec.suite or default_suite()}


def base_tag(spec: BaseImageSpec | None = None) -> str:
    return f"{BASE_REPOSITORY}:{_digest(base_recipe(spec or BaseImageSpec()))}"


def _find_image(api: Any, ref: str) -> dict[str, Any] | None:
    import docker.errors

    try:
        return api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        return None


def user_setup_script(spec: BaseImageSpec | None = None, root: str = "") -> str:
    """Shell that adds the sandbox user, ``/workspace`` and the seed directory to an image."""
    return _user_setup_script(spec or BaseImageSpec(), root)


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
    sources = suite_sources(suite, out_dir / f"{recipe_hash}.sources.d")
    if not sources:
        raise ImageBuildError(
            f"this host has no apt source under /etc/apt for {suite!r} nor for its own release to "
            "rewrite: mmdebstrap reads the host's mirror; add a source, or build with a reachable registry"
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


def _alias(client: Any, image_id: str, spec: BaseImageSpec, suite: str) -> None:
    """``traject/base:<suite>`` and ``:latest`` name the standard image (default packages) only."""
    if spec.model_copy(update={"suite": None}) != BaseImageSpec():
        return
    client.api.tag(image_id, BASE_REPOSITORY, suite)
    if suite == default_suite():
        client.api.tag(image_id, BASE_REPOSITORY, BASE_DEFAULT_TAG)


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
    """Build the base image unless an image with the same content tag exists. It is also tagged
    ``traject/base:<suite>``, and ``traject/base:latest`` (the default sandbox image) when its
    suite is the default one: building another suite never moves ``latest``."""
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
        _alias(client, existing["Id"], spec, suite)
        return ImageRef(tag=tag, image_id=existing["Id"], built=False, method="cached")
    if method == "auto":
        method = "dockerfile" if registry_reachable(client, f"debian:{suite}-slim") else "rootfs"
    if method == "dockerfile":
        image_id = _build_with_dockerfile(client, spec, suite, tag, recipe_hash)
    else:
        image_id = _build_from_rootfs(client, spec, suite, tag, recipe_hash, force)
    _alias(client, image_id, spec, suite)
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
    """What a derived image is made of. A local repository counts by its commit, not by where it
    lies on this host, so the same repository mirrored elsewhere gives the same tag."""
    dumped = spec.model_dump(mode="json", exclude={"run_names"})
    for key, default in (("env", {}), ("seeds_workspace", False)):  # newer fields: at their default,
        if dumped.get(key) == default:                              # recipes (and tags) stay as they were
            dumped.pop(key)
    recipe: dict[str, Any] = {"version": RECIPE_VERSION, "base": base_id, "spec": dumped}
    if spec.repo and os.path.isdir(spec.repo):
        recipe["repo_commit"] = _local_repo_head(spec.repo, spec.commit)
        dumped["repo"] = "local"
    return recipe


def _tar_directory(path: str, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname=arcname)
    return buf.getvalue()


def _run_step(container: Any, what: str, script: str, env: dict[str, str] | None = None) -> None:
    result = container.exec_run(["bash", "-lc", script], user="0:0", demux=False, environment=env or None)
    if result.exit_code != 0:
        out = (result.output or b"").decode("utf-8", "replace")[-4000:]
        raise ImageBuildError(f"deriving an image: step {what} failed (exit {result.exit_code}):\n{out}")


def _release_env(container: Any) -> dict[str, str]:
    """What the base's release needs for installs: PEP 668's marker (bookworm on) makes pip
    refuse system-wide installs unless told to break the system packages."""
    probe = container.exec_run(["bash", "-c", "ls /usr/lib/python3*/EXTERNALLY-MANAGED"], user="0:0")
    return {"PIP_BREAK_SYSTEM_PACKAGES": "1"} if probe.exit_code == 0 else {}


def derive_image(base: str, spec: DeriveSpec, *, force: bool = False, client: Any = None,
                 build: BuildSettings | None = None) -> ImageRef:
    """A per-task image: ``base`` plus ``spec``'s steps, tagged by content and cached.

    A repository lands under the image's workspace seed directory; each sandbox made from the
    image starts with a copy of it in its (writable) workspace. ``build`` lends the build the
    host's CA bundle, pip settings and proxies (see :class:`BuildSettings`)."""
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
        mounts=build.docker_mounts() if build is not None else None,
    )
    try:
        container.start()
        env = _release_env(container)
        if build is not None:
            _run_step(container, "build settings", f"mkdir -p {BUILD_DIR}")
            container.put_archive(str(Path(BUILD_DIR).parent), build.archive())
            env.update(build.container_env())
        apt = list(spec.apt_packages)
        if spec.pip_packages and "python3-pip" not in apt:
            apt.append("python3-pip")
        if apt:
            _run_step(container, "apt", "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get "
                      f"install -y -q --no-install-recommends {' '.join(apt)} && rm -rf /var/lib/apt/lists/*", env)
        if spec.pip_packages:
            _run_step(container, "pip", "python3 -m pip install -q --no-cache-dir " + " ".join(spec.pip_packages), env)
        if spec.repo:
            dest = f"{SEED_DIR}/{spec.repo_dir}"
            if os.path.isdir(spec.repo):
                _run_step(container, "mkdir", f"mkdir -p {SEED_DIR}")
                container.put_archive(SEED_DIR, _tar_directory(spec.repo, spec.repo_dir))
            else:
                _run_step(container, "git clone", f"git clone -q {spec.repo} {dest}", env)
            if spec.commit:
                _run_step(container, "git checkout", f"git -C {dest} checkout -q --detach {spec.commit}")
            _run_step(container, "chown", f"chown -R 1000:1000 {SEED_DIR}")
        for i, command in enumerate(spec.run):
            _run_step(container, spec.step_name(i), command, env)
        if build is not None:
            _run_step(container, "build settings", f"rm -rf {BUILD_DIR}")
        container.stop(timeout=0)
        changes = [f"LABEL {RECIPE_LABEL}={tag.partition(':')[2]}"]
        changes += [f"ENV {k}={v}" for k, v in spec.env.items()]
        if spec.repo or spec.seeds_workspace:
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
    build.add_argument("--suite", default=None, help="bullseye, bookworm, trixie (default: the default suite)")
    tag = sub.add_parser("tag", help="print the content tag the base image would have")
    tag.add_argument("--suite", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = BaseImageSpec(suite=args.suite)
    if args.command == "tag":
        print(base_tag(spec))
        return 0
    try:
        ref = build_base_image(spec, method=args.method, force=args.force)
    except ImageBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = f"built via {ref.method} in {ref.seconds:.1f}s" if ref.built else "up to date"
    suite = args.suite or default_suite()
    also = f"{BASE_REPOSITORY}:{suite}" + (f" and {DEFAULT_IMAGE}" if suite == default_suite() else "")
    print(f"{ref.tag} ({state}); also tagged {also}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
