"""Base images per Debian suite, path-free derived tags, build settings lent to builds, PEP 668,
and failed steps named by what they were."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from traject.sandboxes.images import (
    BaseImageSpec,
    BuildSettings,
    DeriveSpec,
    ImageBuildError,
    base_tag,
    default_suite,
    derive_recipe,
    suite_for_python,
    suite_sources,
)

HOST_SOURCES = """\
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_a_suite_the_host_does_not_name_is_built_from_the_hosts_mirror(tmp_path):
    etc = tmp_path / "etc"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d" / "debian.sources").write_text(HOST_SOURCES)
    (etc / "sources.list").write_text("deb [signed-by=/k.gpg arch=amd64] http://old.example/debian bookworm main\n"
                                      "deb http://old.example/debian bookworm-backports main\n"
                                      "deb http://vendor.example/apt cloud-sdk-bookworm main\n")
    (etc / "sources.list.d" / "vendor.sources").write_text("Types: deb\nURIs: http://v.example\nSuites: nodistro\n")
    written = suite_sources("trixie", tmp_path / "out", etc, host="bookworm")
    texts = {p.name: p.read_text() for p in written}
    deb822 = next(t for n, t in texts.items() if n.endswith("debian.sources"))
    assert "Suites: trixie trixie-updates" in deb822 and "Suites: trixie-security" in deb822
    assert "URIs: http://mirror.example/debian" in deb822 and "bookworm" not in deb822
    one_line = next(t for n, t in texts.items() if n.endswith("sources.list"))
    assert "deb [signed-by=/k.gpg arch=amd64] http://old.example/debian trixie main" in one_line
    assert "deb http://old.example/debian trixie-backports main" in one_line
    assert "vendor.example" not in one_line  # another vendor's repository is not carried over
    assert not any("vendor" in n for n in texts)  # sources of other suites are not carried over
    # a suite the host does name is read from the host's own file
    assert suite_sources("bookworm", tmp_path / "out2", etc, host="bookworm") == \
        [etc / "sources.list", etc / "sources.list.d" / "debian.sources"]


def test_python_versions_pick_suites_and_tags_follow_content():
    assert [suite_for_python(v) for v in ("3.9", "3.11.4", 3.13)] == ["bullseye", "bookworm", "trixie"]
    with pytest.raises(ImageBuildError, match=r"no Debian suite ships Python 3.7.*uv"):
        suite_for_python("3.7")
    # naming the default suite is the default image; other suites are other images
    assert base_tag(BaseImageSpec(suite=default_suite())) == base_tag()
    tags = {base_tag(BaseImageSpec(suite=s)) for s in ("bullseye", "bookworm", "trixie")}
    assert len(tags) == 3


def _repo(path: Path) -> str:
    path.mkdir(parents=True)
    for args in (["init", "-q"], ["config", "user.email", "t@t"], ["config", "user.name", "t"]):
        subprocess.run(["git", "-C", str(path), *args], check=True)
    (path / "a.py").write_text("x = 1\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "one"], check=True,
                   env={**os.environ, "GIT_AUTHOR_DATE": "2020-01-01T00:00:00", "GIT_COMMITTER_DATE": "2020-01-01T00:00:00"})
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_derived_tags_do_not_depend_on_where_the_repository_lies(tmp_path):
    one = _repo(tmp_path / "here" / "proj")
    two = _repo(tmp_path / "elsewhere" / "deeper" / "proj")
    assert one == two
    a = derive_recipe("sha256:base", DeriveSpec(repo=str(tmp_path / "here" / "proj"), commit=one, run=("make",)))
    b = derive_recipe("sha256:base", DeriveSpec(repo=str(tmp_path / "elsewhere" / "deeper" / "proj"), commit=two,
                                                run=("make",), run_names=("install: make",)))
    assert a == b and str(tmp_path) not in repr(a)
    c = derive_recipe("sha256:base", DeriveSpec(repo=str(tmp_path / "here" / "proj"), commit=one, run=("make all",)))
    assert c != a
    assert DeriveSpec(run=("pip install -e .",)).step_name(0) == "run 'pip install -e .'"
    assert DeriveSpec(run=("x",), run_names=("install: x",)).step_name(0) == "install: x"


def test_build_settings_from_the_host(tmp_path):
    ca = tmp_path / "corp-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n")
    index = tmp_path / "pypi" / "simple"
    index.mkdir(parents=True)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch<=2.14\n")
    system, user = tmp_path / "system.conf", tmp_path / "user.conf"
    system.write_text(f"[global]\nconstraint = {constraints}\ntimeout = 10\n")
    user.write_text(f"[global]\nextra-index-url = file://{index}\ntimeout = 60\n[install]\nno-compile = yes\n")
    settings = BuildSettings.from_host(
        {"PIP_CERT": str(ca), "PIP_INDEX_URL": "https://pypi.corp.example/simple", "PIP_FIND_LINKS": str(wheels),
         "HTTPS_PROXY": "http://proxy.corp.example:3128", "HOME_ONLY": "x"}, config_files=[str(system), str(user)])
    assert settings.ca_bundle == str(ca)
    # pip's files merged in pip's order: the user's file overrides the system's
    assert settings.pip_config == {"global": {"constraint": str(constraints), "timeout": "60",
                                              "extra-index-url": f"file://{index}"}, "install": {"no-compile": "yes"}}
    # local paths they name are mounted at the same place; a simple index with the files beside it
    assert set(settings.mounts) == {str(constraints), str(index.parent), str(wheels)}
    env = settings.container_env()
    assert env["PIP_INDEX_URL"] == "https://pypi.corp.example/simple" and env["HTTPS_PROXY"].endswith(":3128")
    assert env["PIP_CERT"] == env["SSL_CERT_FILE"] == env["GIT_SSL_CAINFO"] == "/tmp/traject-build/ca.pem"
    assert env["PIP_CONFIG_FILE"] == "/tmp/traject-build/pip.conf" and "HOME_ONLY" not in env


@pytest.mark.docker
def test_builds_get_the_settings_only_while_building_and_steps_are_named(docker_image, tmp_path):
    from traject.sandboxes.docker_client import get_client
    from traject.sandboxes.images import derive_image

    ca = tmp_path / "ca.pem"
    ca.write_text("CORP CA\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "probe-1.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    settings = BuildSettings(ca_bundle=str(ca), pip_config={"global": {"index-url": "https://pypi.corp.example/simple"}},
                             env={"PIP_INDEX_URL": "https://pypi.corp.example/simple", "PIP_FIND_LINKS": str(wheels)},
                             mounts=(str(wheels),))
    probe = textwrap.dedent("""\
        { cat "$PIP_CERT"; grep index-url "$PIP_CONFIG_FILE"; echo "index=$PIP_INDEX_URL";
          ls $PIP_FIND_LINKS; echo "pep668=${PIP_BREAK_SYSTEM_PACKAGES:-unset}"; } > /opt/probe""")
    spec = DeriveSpec(run=(probe,), network=False)
    ref = derive_image(docker_image, spec, build=settings, force=True)
    again = derive_image(docker_image, spec)  # the settings are not content: same tag, not rebuilt
    assert again.tag == ref.tag and not again.built
    client = get_client()
    out = client.containers.run(ref.tag, ["bash", "-c", f"cat /opt/probe; ls /tmp/traject-build {wheels} 2>&1 || true"],
                                remove=True, network_mode="none").decode()
    assert "CORP CA" in out and "index-url = https://pypi.corp.example/simple" in out
    assert "index=https://pypi.corp.example/simple" in out and "probe-1.0-py3-none-any.whl" in out
    assert "pep668=1" in out  # bookworm marks its Python externally managed: absorbed
    assert "/tmp/traject-build': No such file or directory" in out  # nothing of the settings stays
    assert out.count("probe-1.0-py3-none-any.whl") == 1  # the wheel directory was mounted, not copied


@pytest.mark.docker
@pytest.mark.slow
def test_pip_installs_from_this_hosts_local_index_through_the_lent_settings(docker_image):
    """This host installs from a local PyPI mirror (pip.conf: a file:// index, a constraints
    file): a build container given BuildSettings.from_host() installs from it too; on bookworm
    pip needs no --break-system-packages flag from the caller."""
    from traject.sandboxes.docker_client import get_client
    from traject.sandboxes.images import derive_image

    settings = BuildSettings.from_host()
    index = next((v for section in settings.pip_config.values() for k, v in section.items() if "index-url" in k
                  and "file://" in v), None)
    if index is None:
        pytest.skip("this host's pip reads no local file:// index")
    local = index.split()[0]
    package = next(p.name for p in sorted(Path(local[len("file://"):]).iterdir()) if p.is_dir())
    only_local = settings.model_copy(update={"env": {**settings.env, "PIP_INDEX_URL": local,
                                                      "PIP_EXTRA_INDEX_URL": ""}})
    spec = DeriveSpec(apt_packages=("python3-pip",), pip_packages=(package,), network=True)
    ref = derive_image(docker_image, spec, build=only_local, force=True)
    out = get_client().containers.run(ref.tag, ["python3", "-m", "pip", "show", package], remove=True,
                                      network_mode="none").decode()
    assert f"Name: " in out and "Location:" in out
    with pytest.raises(ImageBuildError, match=r"step install: make world failed \(exit 3\)"):
        derive_image(docker_image, DeriveSpec(run=("true", "exit 3"), run_names=("setup", "install: make world"),
                                              network=False), force=True)
