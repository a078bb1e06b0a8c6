"""TaskPage: one episode's page, driven the way MiniWoB++ drives its tasks.

Open: a fresh context (fixed viewport, device scale, locale), load the page, wait for its
``core``, leave the page's own episode timer (``core.EPISODE_MAX_TIME``) unless the config
overrides it, ``Math.seedrandom(seed)``, ``core.setDataMode(mode)``, ``core.startEpisodeReal()``,
wait for ``WOB_TASK_READY``. Read: ``WOB_DONE_GLOBAL``,
``WOB_REWARD_GLOBAL``, ``WOB_RAW_REWARD_GLOBAL``, ``WOB_REWARD_REASON`` and
``core.getUtterance()``.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel, ConfigDict

from traject.environments.gui.browser import BrowserError, BrowserPool, import_playwright
from traject.environments.gui.config import GuiConfig
from traject.environments.gui.dom import SNAPSHOT_JS, DomElement
from traject.environments.gui.server import page_server
from traject.environments.gui.task import GuiTaskData, Screen
from traject.types import ImagePart

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

# 'none': MiniWoB's core always arms a timer; this one never fires within an episode.
NO_TIME_LIMIT_MS = 10**9

STATE_JS = """() => ({
  done: typeof WOB_DONE_GLOBAL !== 'undefined' && !!WOB_DONE_GLOBAL,
  reward: typeof WOB_REWARD_GLOBAL !== 'undefined' ? +WOB_REWARD_GLOBAL : 0,
  raw_reward: typeof WOB_RAW_REWARD_GLOBAL !== 'undefined' ? +WOB_RAW_REWARD_GLOBAL : 0,
  reason: typeof WOB_REWARD_REASON !== 'undefined' && WOB_REWARD_REASON !== null
          ? String(WOB_REWARD_REASON) : null,
})"""

UTTERANCE_JS = """() => {
  const u = core.getUtterance();
  return typeof u === 'string' ? u : (u && u.utterance) || '';
}"""


TARGET_JS = """() => {
  if (typeof core === 'undefined' || !core.target || !core.target.isConnected) return null;
  const r = core.target.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return null;
  return {box: [r.left, r.top, r.right, r.bottom], action: core.targetAction || 'click'};
}"""


class PageTarget(BaseModel):
    """The element the next correct action acts on, as the page says (``core.setTarget``):
    ``bbox`` is (x1, y1, x2, y2) in screenshot pixels, ``action`` the action it expects."""

    model_config = ConfigDict(extra="forbid")

    bbox: tuple[float, float, float, float]
    action: str = "click"

    @property
    def point(self) -> tuple[float, float]:
        return (self.bbox[0] + self.bbox[2]) / 2, (self.bbox[1] + self.bbox[3]) / 2


class PageState(BaseModel):
    """The page's own verdict: ``done`` once it called ``core.endEpisode``; ``raw_reward`` is
    the reward it gave (MiniWoB: 1 success, -1 failure, partial in between), ``reward`` the same
    scaled by time where the page asked for it."""

    model_config = ConfigDict(extra="forbid")

    done: bool = False
    reward: float = 0.0
    raw_reward: float = 0.0
    reason: str | None = None


def is_closed_error(exc: BaseException) -> bool:
    text = str(exc)
    return any(s in text for s in ("has been closed", "Target closed", "crashed", "Browser closed",
                                   "Connection closed"))


class TaskPage:
    def __init__(self, pool: BrowserPool, context: BrowserContext, page: Page, screen: Screen,
                 task: GuiTaskData) -> None:
        self.pool = pool
        self.context = context
        self.page = page
        self.screen = screen
        self.task = task
        self._closed = False

    @classmethod
    async def open(cls, pool: BrowserPool, config: GuiConfig, task: GuiTaskData) -> TaskPage:
        api = import_playwright()
        vw, vh = task.viewport or (config.viewport_width, config.viewport_height)
        clip = task.clip or (0, 0, vw, vh)
        if clip[0] < 0 or clip[1] < 0 or clip[0] + clip[2] > vw or clip[1] + clip[3] > vh:
            raise ValueError(f"task clip {clip} does not fit in the viewport {vw}x{vh}")
        scale = task.device_scale_factor or config.device_scale_factor
        screen = Screen(viewport=(vw, vh), clip=clip, scale=scale)
        url = page_url(task, config)
        context, page = await pool.open_page(viewport={"width": vw, "height": vh}, device_scale_factor=scale,
                                             locale=config.locale, timezone_id="UTC", service_workers="block")
        try:
            page.set_default_timeout(config.action_timeout_s * 1000)
            self = cls(pool, context, page, screen, task)
            await self._start(url, config)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await pool.close_context(context)
            if isinstance(exc, api.Error):
                if is_closed_error(exc):
                    raise BrowserError(f"the browser failed while opening {url}: {exc}") from exc
                raise ValueError(f"the task page {url} did not start: {exc}") from exc
            raise
        return self

    async def _start(self, url: str, config: GuiConfig) -> None:
        timeout = config.load_timeout_s * 1000
        response = await self.page.goto(url, wait_until="load", timeout=timeout)
        if response is not None and not response.ok:
            raise ValueError(f"the task page {url} answered HTTP {response.status}")
        await self.page.wait_for_function(
            "() => typeof core !== 'undefined' && typeof core.startEpisodeReal === 'function'",
            timeout=timeout)
        limit = config.page_time_limit_s
        limit_ms = None if limit is None else NO_TIME_LIMIT_MS if limit == "none" else int(limit * 1000)
        await self.page.evaluate(
            """([seed, limit, mode]) => {
                 if (limit !== null) core.EPISODE_MAX_TIME = limit;
                 Math.seedrandom(seed);
                 if (mode !== null && typeof core.setDataMode === 'function') core.setDataMode(mode);
                 core.startEpisodeReal();
               }""",
            [self.task.seed, limit_ms, self.task.data_mode])
        await self.page.wait_for_function("() => typeof WOB_TASK_READY === 'undefined' || WOB_TASK_READY",
                                          timeout=timeout)

    async def state(self) -> PageState:
        return PageState.model_validate(await self.page.evaluate(STATE_JS))

    async def target(self) -> PageTarget | None:
        found = await self.page.evaluate(TARGET_JS)
        if found is None:
            return None
        cx, cy, _, _ = self.screen.clip
        s = self.screen.scale
        x1, y1, x2, y2 = found["box"]
        bbox = ((x1 - cx) * s, (y1 - cy) * s, (x2 - cx) * s, (y2 - cy) * s)
        return PageTarget(bbox=tuple(round(v, 1) for v in bbox), action=str(found["action"]))

    async def utterance(self) -> str:
        return str(await self.page.evaluate(UTTERANCE_JS))

    async def screenshot(self) -> bytes:
        x, y, w, h = self.screen.clip
        return await self.page.screenshot(type="png", clip={"x": x, "y": y, "width": w, "height": h},
                                          timeout=30_000)

    async def screenshot_part(self) -> ImagePart:
        png = await self.screenshot()
        w, h = self.screen.size
        return ImagePart(data=base64.b64encode(png).decode("ascii"), mime_type="image/png", width=w, height=h)

    async def dom(self) -> list[DomElement]:
        x, y, w, h = self.screen.clip
        items = await self.page.evaluate(SNAPSHOT_JS, [x, y, w, h, self.screen.scale])
        return [DomElement.model_validate(item) for item in items]

    async def axtree(self) -> str:
        return await self.page.locator("body").aria_snapshot(timeout=10_000)

    async def submit_answer(self, answer: str) -> None:
        await self.page.evaluate(
            "(a) => { if (typeof core !== 'undefined' && typeof core.submitAnswer === 'function') "
            "core.submitAnswer(a); }", answer)

    async def settle(self, ms: int) -> None:
        if ms > 0:
            await anyio.sleep(ms / 1000)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.pool.close_context(self.context)


def page_url(task: GuiTaskData, config: GuiConfig) -> str:
    if task.url is not None:
        return task.url
    assert task.page is not None
    root = task.root_dir
    target = (root / task.page).resolve()
    if not target.is_file():
        raise FileNotFoundError(f"GUI task page {target} does not exist (root={root}, page={task.page!r})")
    if config.serve == "file":
        return target.as_uri()
    return page_server().mount(root) + task.page

