from __future__ import annotations

from pathlib import Path

import pytest

import traject
from traject.environments.gui import GuiTaskData, builtin_task_names, gui_tasks, miniwob_tasks


def test_at_least_twelve_builtin_tasks_with_pages():
    names = builtin_task_names()
    assert len(names) >= 12
    for required in ("click-button", "enter-text", "select-option", "check-boxes", "date-field",
                     "navigate-tabs", "scroll-to-find", "two-step-form"):
        assert required in names


def test_tasks_are_deterministic_and_splits_differ():
    a = gui_tasks(n=20, seed=3)
    assert [t.model_dump() for t in a] == [t.model_dump() for t in gui_tasks(n=20, seed=3)]
    assert len({t.id for t in a}) == 20
    train = gui_tasks(split="train", n=20, seed=3)
    assert {t.data["seed"] for t in train}.isdisjoint({t.data["seed"] for t in a})
    for t in a:
        GuiTaskData.model_validate(t.data)


def test_registry_and_errors():
    assert [t.metadata["gui_task"] for t in traject.load_tasks("gui", names=["drag-box"], n=2)] == ["drag-box"] * 2
    with pytest.raises(ValueError, match="no GUI task named nope"):
        gui_tasks(names=["nope"])
    with pytest.raises(ValueError, match="unknown split"):
        gui_tasks(split="dev")
    with pytest.raises(ValueError, match="path"):
        traject.load_tasks("miniwob")
    with pytest.raises(ValueError, match="exactly one of `page`"):
        GuiTaskData(seed=1)


def test_miniwob_layout_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        miniwob_tasks(str(tmp_path / "missing"))
    (tmp_path / "miniwob").mkdir()
    (tmp_path / "miniwob" / "a.html").write_text("<html></html>")
    with pytest.raises(FileNotFoundError, match="core/core.js"):
        miniwob_tasks(str(tmp_path / "miniwob"))
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "core.js").write_text("var core = {};")
    for path in (tmp_path, tmp_path / "miniwob"):
        tasks = miniwob_tasks(str(path), n=3)
        assert [t.id.split("/")[1] for t in tasks] == ["a", "a", "a"]
        assert tasks[0].data["page"] == "miniwob/a.html" and tasks[0].data["root"] == str(tmp_path)
        assert tasks[0].data["clip"] == [0, 0, 160, 210]
