"""Env listing and naming: a Toolset's tools are listed from its class, ``--schemas`` groups by
env, two plugins with one name warn naming both distributions, ``--env module:ENTRY`` works."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from typer.testing import CliRunner

from traject.environments import ToolEnv
from traject.environments.registry import EnvRegistry, make
from traject.tools import Toolset, tool

made = []


class Counter(Toolset):
    def __init__(self) -> None:
        made.append(self)

    @tool
    def bump(self) -> str:
        """Add one."""
        return "1"


def test_a_toolset_class_lists_its_tools_without_being_made():
    env = ToolEnv([Counter], name="c")
    assert [t.name for t in env.tools] == ["bump"]
    assert made == []


def test_envs_lists_toolset_tools_and_groups_schemas_by_env():
    from traject.cli import app

    table = CliRunner().invoke(app, ["envs"])
    assert table.exit_code == 0, table.output
    assert "execute_sql" in table.output  # the sql env's tools come from its toolset
    grouped = CliRunner().invoke(app, ["envs", "--schemas"])
    data = json.loads(grouped.output)
    assert [t["function"]["name"] for t in data["lookup"]] == ["lookup", "submit"]
    assert any(t["function"]["name"] == "execute_sql" for t in data["sql"])


def _dist(root, name, version, module, entry):
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[traject.envs]\ndupe = {module}:{entry}\n")
    (root / f"{module}.py").write_text(
        "from traject.environments import ToolEnv\n"
        f"def {entry}():\n    return ToolEnv([], name={module!r})\n")


def test_two_plugins_with_one_env_name_warn_naming_both(tmp_path, caplog, monkeypatch):
    _dist(tmp_path, "plugin_a", "1.0", "plug_a", "make")
    _dist(tmp_path, "plugin_b", "2.0", "plug_b", "make")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = EnvRegistry()
    with caplog.at_level(logging.WARNING, logger="traject.environments.registry"):
        reg.discover()
    text = caplog.text
    assert "two env plugins are named 'dupe'" in text
    assert "plugin_a 1.0" in text and "plugin_b 2.0" in text
    assert "dupe" in reg.entries()


def test_env_by_module_and_entry(tmp_path, monkeypatch):
    (tmp_path / "my_envs.py").write_text(
        "from traject.environments import ToolEnv\n"
        "from traject.environments.registry import EnvEntry\n"
        "def make_it(max_turns=3):\n    return ToolEnv([], name='mine', max_turns=max_turns)\n"
        "ENTRY = EnvEntry(name='mine', make=make_it)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_envs", None)
    assert make("my_envs:ENTRY").spec.name == "mine"
    assert make("my_envs:make_it", max_turns=5).max_turns == 5
    with pytest.raises(KeyError, match="cannot load it"):
        make("my_envs:NOPE")
