"""Images: content tags, the skipped rebuild, derived per-task images with a repo checkout."""

from __future__ import annotations

import subprocess
import textwrap

import pytest
from sandbox_support import test_config

from traject.sandboxes.config import parse_size
from traject.sandboxes.images import (
    BaseImageSpec,
    DeriveSpec,
    base_tag,
    build_base_image,
    derive_image,
    host_apt_sources,
)


def test_parse_size():
    assert parse_size("512m") == 512 << 20
    assert parse_size("1g") == 1 << 30
    assert parse_size("64KiB") == 64 << 10
    assert parse_size(1234) == 1234
    with pytest.raises(ValueError, match="512m"):
        parse_size("lots")


def test_config_errors_name_the_field_and_the_fix():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="memory"):
        test_config(memory="a lot")
    with pytest.raises(ValidationError, match="non-root"):
        test_config(user="0:0")


def test_host_apt_sources_picks_enabled_sources_of_the_suite(tmp_path):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(textwrap.dedent("""\
        Types: deb
        URIs: http://mirror.invalid/debian
        Suites: bookworm bookworm-updates
        Components: main
    """))
    (d / "off.sources").write_text("Types: deb\nURIs: http://x.invalid\nSuites: bookworm\nEnabled: no\n")
    (d / "vendor.sources").write_text("Types: deb\nURIs: http://vendor.invalid\nSuites: nodistro\n")
    (d / "extra.list").write_text("# deb http://old.invalid bookworm main\ndeb http://y.invalid bookworm main\n")
    (d / "other.list").write_text("deb http://z.invalid cloud-sdk main\n")
    (d / "notes.txt").write_text("deb http://w.invalid bookworm main\n")
    found = sorted(p.name for p in host_apt_sources("bookworm", tmp_path))
    assert found == ["debian.sources", "extra.list"]


def test_content_tags_follow_the_recipe():
    assert base_tag() == base_tag(BaseImageSpec())
    assert base_tag(BaseImageSpec(packages=("python3", "git", "bash", "coreutils", "procps", "jq"))) != base_tag()
    assert base_tag().startswith("traject/base:")


@pytest.mark.docker
def test_rebuilding_with_nothing_changed_is_skipped(docker_image):
    ref = build_base_image()
    assert not ref.built and ref.method == "cached"
    assert ref.tag == base_tag()


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.mark.docker
@pytest.mark.anyio
async def test_derived_image_with_a_repo_at_a_commit_is_cached_and_seeds_the_workspace(docker_image, tmp_path):
    from traject.sandboxes.docker_client import get_client
    from traject.sandboxes.docker_sandbox import DockerSandbox

    repo = tmp_path / "proj"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.invalid")
    _git(repo, "config", "user.name", "t")
    (repo / "app.py").write_text("VERSION = 1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    first = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (repo / "app.py").write_text("VERSION = 2\n")
    _git(repo, "commit", "-qam", "two")

    spec = DeriveSpec(repo=str(repo), commit=first, run=("echo built > /opt/marker",), network=False)
    ref = derive_image(docker_image, spec)
    other = None
    try:
        again = derive_image(docker_image, spec)
        assert again.tag == ref.tag and not again.built
        assert ref.tag.startswith("traject/derived:")
        other = derive_image(docker_image, spec.model_copy(update={"commit": None}))
        assert other.tag != ref.tag

        async with await DockerSandbox.create(test_config(backend="docker", image=ref.tag)) as sb:
            r = await sb.exec("cat repo/app.py; git -C repo rev-parse HEAD; cat /opt/marker; "
                              "echo edit >> repo/app.py && echo writable", timeout=20)
            assert r.stdout.splitlines() == ["VERSION = 1", first, "built", "writable"], r.stderr
    finally:
        for made in (ref, other):
            if made is not None:
                get_client().api.remove_image(made.tag, force=True)
