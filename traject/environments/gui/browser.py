"""Chromium through Playwright: one set of browsers per worker, one context per episode.

A worker is an event loop: Playwright objects belong to the loop that made them. The first
episode of a worker launches the machine's Chromium (never a downloaded one); later episodes
open a fresh context (cookies, storage and cache of their own) in an open browser. When the
worker's last context closes, the browsers close after ``idle_close_s``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from traject.environments.gui.config import LAUNCH_FLAGS, BrowserConfig
from traject.types import InfraError

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Playwright

log = logging.getLogger(__name__)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


class BrowserError(InfraError):
    """The browser could not be launched, or died under an episode."""


def import_playwright() -> Any:
    try:
        from playwright import async_api
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("the GUI env needs Playwright: install traject with the `gui` extra "
                          "(pip install 'traject[gui]'); no browser download is needed, it drives "
                          "the machine's Chromium") from exc
    return async_api


def find_chromium(path: str | None = None) -> str:
    """The Chromium binary to drive: ``path``, else $TRAJECT_CHROMIUM, else the first of
    chromium/chromium-browser/google-chrome on PATH."""
    candidate = path or os.environ.get("TRAJECT_CHROMIUM")
    if candidate:
        resolved = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if resolved is None:
            raise BrowserError(f"Chromium not found at {candidate!r} (from "
                               f"{'the config' if path else '$TRAJECT_CHROMIUM'}): give the path of an "
                               "installed Chromium, e.g. /usr/bin/chromium")
        return resolved
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError("no Chromium on PATH (looked for " + ", ".join(CHROMIUM_NAMES) + "): install "
                       "one (Debian: apt-get install chromium) or set GuiConfig.browser.chromium")


class BrowserPool:
    """The browsers of one worker (event loop) for one BrowserConfig."""

    def __init__(self, config: BrowserConfig) -> None:
        self.config = config
        self._lock = anyio.Lock()
        self._playwright: Playwright | None = None
        self._load: dict[Browser, int] = {}
        self._owner: dict[BrowserContext, Browser] = {}
        self._idle_handle: asyncio.TimerHandle | None = None
        self.launches = 0

    @property
    def open_contexts(self) -> int:
        return len(self._owner)

    async def _launch(self) -> Browser:
        api = import_playwright()
        executable = find_chromium(self.config.chromium)
        if self._playwright is None:
            self._playwright = await api.async_playwright().start()
        args = list(LAUNCH_FLAGS) + list(self.config.extra_args)
        try:
            browser = await self._playwright.chromium.launch(
                executable_path=executable, args=args, headless=True,
                timeout=self.config.launch_timeout_s * 1000)
        except api.Error as exc:
            raise BrowserError(f"launching {executable} failed: {exc}") from exc
        self.launches += 1
        log.debug("launched %s (%s) for worker %s", executable, browser.version, id(self))
        return browser

    async def new_context(self, **options: Any) -> BrowserContext:
        """A fresh context in the least-loaded browser, launching one while fewer than
        ``config.browsers`` are open and all of them are busy."""
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        async with self._lock:
            for browser in [b for b in self._load if not b.is_connected()]:
                log.warning("a browser of this worker died; dropping it")
                del self._load[browser]
            idle = [b for b, n in self._load.items() if n == 0]
            if idle:
                browser = idle[0]
            elif len(self._load) < self.config.browsers:
                browser = await self._launch()
                self._load[browser] = 0
            else:
                browser = min(self._load, key=self._load.__getitem__)
            self._load[browser] += 1
        api = import_playwright()
        try:
            context = await browser.new_context(**options)
        except api.Error as exc:
            self._load[browser] -= 1
            raise BrowserError(f"opening a browser context failed: {exc}") from exc
        self._owner[context] = browser
        return context

    async def close_context(self, context: BrowserContext) -> None:
        browser = self._owner.pop(context, None)
        try:
            await context.close()
        except Exception as exc:  # noqa: BLE001 - a dead browser's context is closed anyway
            log.debug("closing a context failed: %s", exc)
        if browser is not None and browser in self._load:
            self._load[browser] -= 1
        if not self._owner:
            if self.config.idle_close_s == 0:
                await self.aclose()
            else:
                loop = asyncio.get_running_loop()
                self._idle_handle = loop.call_later(
                    self.config.idle_close_s, lambda: loop.create_task(self._close_if_idle()))

    async def _close_if_idle(self) -> None:
        if not self._owner:
            await self.aclose()

    async def aclose(self) -> None:
        """Close every browser of this pool (open contexts die with them)."""
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        with anyio.CancelScope(shield=True):
            async with self._lock:
                browsers, self._load, self._owner = list(self._load), {}, {}
                for browser in browsers:
                    try:
                        await browser.close()
                    except Exception as exc:  # noqa: BLE001
                        log.debug("closing a browser failed: %s", exc)
                if self._playwright is not None:
                    playwright, self._playwright = self._playwright, None
                    try:
                        await playwright.stop()
                    except Exception as exc:  # noqa: BLE001
                        log.debug("stopping playwright failed: %s", exc)


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[BrowserConfig, BrowserPool]] = (
    weakref.WeakKeyDictionary())


def browser_pool(config: BrowserConfig) -> BrowserPool:
    """This worker's pool for ``config`` (made on first use)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("the GUI env runs under asyncio (Playwright's async API); "
                           "run it with anyio's asyncio backend") from None
    pools = _pools.setdefault(loop, {})
    pool = pools.get(config)
    if pool is None:
        pool = pools[config] = BrowserPool(config)
    return pool


async def close_browsers() -> None:
    """Close every browser this worker opened. Call it when a worker is done (tests, CLIs)."""
    pools = _pools.pop(asyncio.get_running_loop(), {})
    for pool in pools.values():
        await pool.aclose()
