"""Registers ``gui`` (built-in pages, or a MiniWoB++ directory with ``tasks(path=...)``) and
``miniwob`` (a MiniWoB++ directory; ``path`` is required)."""

from __future__ import annotations

from typing import Any

from traject.environments.gui.env import GuiEnv
from traject.environments.gui.btl import gui_reward
from traject.environments.gui.tasks import gui_tasks, miniwob_tasks
from traject.environments.registry import register_env


def make_gui_env(*, btl_weight: float = 0.0, page_reward: str = "raw", **config: Any) -> GuiEnv:
    """``btl_weight`` > 0 adds BTL-UI (against the page's target) to the page's reward;
    ``page_reward`` is raw, scaled or binary; the rest is GuiConfig."""
    return GuiEnv(reward=gui_reward(btl_weight=btl_weight, page_kind=page_reward), **config)  # type: ignore[arg-type]


def make_miniwob_env(**config: Any) -> GuiEnv:
    config.setdefault("name", "miniwob")
    return make_gui_env(**config)


def _miniwob_tasks(path: str | None = None, **options: Any):
    if path is None:
        raise ValueError("the miniwob env loads a MiniWoB++ directory: pass path=.../miniwob/html/miniwob")
    return miniwob_tasks(path, **options)


register_env("gui", make_gui_env, tasks=gui_tasks, task_data="traject.environments.gui.task:GuiTaskData",
             description="Web pages in headless Chromium: screenshots/DOM in, mouse and keyboard actions out.")
register_env("miniwob", make_miniwob_env, tasks=_miniwob_tasks,
             description="MiniWoB++ task pages (give tasks(path=...)) in headless Chromium.")
