"""`traject sandbox ...` commands (the sub-app in traject/sandboxes/cli.py)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from traject.sandboxes.cli import app

runner = CliRunner()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_check_on_the_local_backend():
    result = runner.invoke(app, ["check", "--backend", "local"])
    assert result.exit_code == 0, result.output
    assert "LocalSandbox" in result.output and "Python 3" in result.output


def test_bad_method_names_the_option():
    result = runner.invoke(app, ["build", "--method", "magic"])
    assert result.exit_code != 0 and "--method" in result.output


@pytest.mark.docker
def test_build_is_skipped_when_up_to_date_and_list_and_prune_run(docker_image):
    result = runner.invoke(app, ["build"])
    assert result.exit_code == 0 and "up to date" in result.output
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0 and "traject sandboxes" in result.output
    result = runner.invoke(app, ["prune"])
    assert result.exit_code == 0 and "removed" in result.output


@pytest.mark.docker
def test_check_on_docker(docker_image):
    result = runner.invoke(app, ["check", "--backend", "docker"])
    assert result.exit_code == 0, result.output
    assert "DockerSandbox" in result.output and "1000" in result.output


@pytest.mark.docker
def test_list_and_prune_cover_every_configured_host_and_name_the_one_that_did_not_answer(
        docker_image, second_daemon, monkeypatch):
    import socket
    import subprocess

    from sandbox_support import RUN_ID, RUN_LABEL

    from traject.sandboxes.docker_client import (
        LABEL,
        LABEL_OWNER_HOST,
        LABEL_OWNER_PID,
        LABEL_OWNER_START,
        docker_host,
        get_client,
    )

    second_daemon.ensure_running()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process that ran and is gone: the container's owner "crashed"
    labels = {LABEL: "1", LABEL_OWNER_PID: str(gone.pid), LABEL_OWNER_START: "0",
              LABEL_OWNER_HOST: socket.gethostname(), RUN_LABEL: RUN_ID}
    api = get_client(host=second_daemon.url).api
    orphan = api.create_container(docker_image, command=["sleep", "300"], labels=labels,
                                  host_config=api.create_host_config(network_mode="none"))["Id"]
    dead = "tcp://127.0.0.1:9"
    try:
        monkeypatch.setenv("TRAJECT_DOCKER_HOSTS", f"{docker_host()},{second_daemon.url},{dead}")
        result = runner.invoke(app, ["list"])
        assert result.exit_code == 0, result.output
        row = next(line for line in result.stdout.splitlines() if orphan[:12] in line)
        assert second_daemon.url in row and " no " in row
        assert result.stderr.count("did not answer") == 1 and dead in result.stderr

        result = runner.invoke(app, ["prune", "--host", second_daemon.url, "--host", dead])
        assert result.exit_code == 0, result.output
        assert f"1 on {second_daemon.url}" in result.stdout and "1 of 2 docker host(s) did not answer" in result.stderr
        assert api.containers(all=True, filters={"id": orphan}) == []

        result = runner.invoke(app, ["prune", "--host", dead])
        assert result.exit_code == 1 and "1 of 1 docker host(s) did not answer: tcp://127.0.0.1:9" in result.stderr
    finally:
        api.remove_container(orphan, force=True) if api.containers(all=True, filters={"id": orphan}) else None
