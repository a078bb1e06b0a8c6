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
