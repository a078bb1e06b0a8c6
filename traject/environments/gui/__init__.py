"""GUI env: real web pages in headless Chromium (Playwright, the machine's browser).

Playwright is imported only when an episode starts (the ``gui`` extra).
"""

from traject.environments.gui.actions import ActionError, GuiActions
from traject.environments.gui.browser import BrowserError, BrowserPool, browser_pool, close_browsers, find_chromium
from traject.environments.gui.config import LAUNCH_FLAGS, BrowserConfig, GuiConfig
from traject.environments.gui.dom import DomElement, format_dom, parse_dom
from traject.environments.gui.env import GuiEnv
from traject.environments.gui.page import PageState, TaskPage
from traject.environments.gui.replay import ReplayFrame, frame_png, frame_svg, gui_frames, render_trajectory
from traject.environments.gui.page_reward import PageReward
from traject.environments.gui.btl import PageTargetBTL, gui_reward
from traject.environments.gui.task import GuiTaskData, Screen
from traject.environments.gui.tasks import GROUNDING_TASKS, builtin_task_names, gui_tasks, miniwob_tasks
from traject.environments.gui.text_actions import TextActionError, parse_text_actions

__all__ = [
    "GROUNDING_TASKS", "PageTargetBTL", "ReplayFrame", "frame_png", "frame_svg", "gui_frames", "gui_reward",
    "render_trajectory", "LAUNCH_FLAGS", "ActionError", "BrowserConfig", "BrowserError", "BrowserPool", "DomElement", "GuiActions",
    "GuiConfig", "GuiEnv", "GuiTaskData", "PageReward", "PageState", "Screen", "TaskPage", "TextActionError",
    "browser_pool", "builtin_task_names", "close_browsers", "find_chromium", "format_dom", "gui_tasks",
    "miniwob_tasks", "parse_dom", "parse_text_actions",
]
