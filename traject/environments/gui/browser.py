"""Chromium through Playwright: one set of browsers per worker, one context per episode.

A worker is an event loop: Playwright objects belong to the loop that made them. The first
episode of a worker launches the machine's Chromium (never a downloaded one); later episodes
open a fresh context (cookies, storage and cache of their own) in an open browser. When the
worker's last context closes, the browsers close after ``idle_close_s``.
"""

from __future__ import annotations

import asyncio
import json
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
    from playwright.async_api import Browser, BrowserContext, Page, Playwright

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
        # A warm (context, page) per set of context options, made in the background so that the
        # next episode does not wait for Chromium to start a renderer.
        self._spares: dict[str, tuple[Browser, BrowserContext, Page]] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        # Episodes between entering open_page and owning their context: an idle close must
        # not pull the browser from under them.
        self._opening = 0
        self.launches = 0
        self.spares_used = 0

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

    async def _pick_browser(self) -> Browser:
        """The least-loaded browser, launching one while fewer than ``config.browsers`` are open
        and all of them are busy. Call under the lock."""
        for browser in [b for b in self._load if not b.is_connected()]:
            log.warning("a browser of this worker died; dropping it")
            del self._load[browser]
        idle = [b for b, n in self._load.items() if n == 0]
        if idle:
            return idle[0]
        if len(self._load) < self.config.browsers:
            browser = await self._launch()
            self._load[browser] = 0
            return browser
        return min(self._load, key=self._load.__getitem__)

    def _cancel_idle_close(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    async def new_context(self, **options: Any) -> BrowserContext:
        """A fresh context in the least-loaded browser."""
        self._cancel_idle_close()
        async with self._lock:
            browser = await self._pick_browser()
            self._load[browser] += 1
        api = import_playwright()
        try:
            context = await browser.new_context(**options)
        except api.Error as exc:
            self._load[browser] -= 1
            raise BrowserError(f"opening a browser context failed: {exc}") from exc
        self._owner[context] = browser
        return context

    async def open_page(self, **options: Any) -> tuple[BrowserContext, Page]:
        """A fresh context with one blank page: the warm spare when there is one (made in the
        background after the previous call), else made now."""
        self._cancel_idle_close()
        self._opening += 1
        try:
            return await self._open_page(options)
        finally:
            self._opening -= 1

    async def _open_page(self, options: dict[str, Any]) -> tuple[BrowserContext, Page]:
        key = json.dumps(options, sort_keys=True, default=str)
        spare = self._spares.pop(key, None)
        if spare is not None:
            browser, context, page = spare
            if browser.is_connected() and browser in self._load and not page.is_closed():
                self._load[browser] += 1
                self._owner[context] = browser
                self.spares_used += 1
                self._schedule_spare(key, options)
                return context, page
            await _quietly_close(context)
        api = import_playwright()
        for attempt in (1, 2):
            context = await self.new_context(**options)
            browser = self._owner.get(context)
            try:
                page = await context.new_page()
                break
            except api.Error as exc:
                await self.close_context(context)
                # A browser that just died may still say it is connected; drop it, and try
                # once more on a live (or newly launched) one.
                if attempt == 2 or browser is None or "closed" not in str(exc):
                    raise BrowserError(f"opening a page failed: {exc}") from exc
                log.warning("a browser of this worker died under a new page; relaunching")
                async with self._lock:
                    self._load.pop(browser, None)
                await _quietly_close_browser(browser)
        self._schedule_spare(key, options)
        return context, page

    def _schedule_spare(self, key: str, options: dict[str, Any]) -> None:
        if not self.config.prewarm or key in self._spares or key in self._pending:
            return
        self._pending[key] = asyncio.get_running_loop().create_task(self._make_spare(key, options))

    async def _make_spare(self, key: str, options: dict[str, Any]) -> None:
        try:
            async with self._lock:
                if not self._load:
                    return
                browser = await self._pick_browser()
            context = await browser.new_context(**options)
            try:
                page = await context.new_page()
            except BaseException:
                await _quietly_close(context)
                raise
            self._spares[key] = (browser, context, page)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed spare only means no head start
            log.debug("preparing a spare page failed: %s", exc)
        finally:
            self._pending.pop(key, None)

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
        if not self._owner and not self._opening:
            await self.aclose()

    async def aclose(self) -> None:
        """Close every browser of this pool (open contexts die with them)."""
        self._cancel_idle_close()
        pending, self._pending = list(self._pending.values()), {}
        for task in pending:
            task.cancel()
        spares, self._spares = list(self._spares.values()), {}
        with anyio.CancelScope(shield=True):
            for task in pending:
                try:
                    await task
                except BaseException:  # noqa: BLE001 - cancelled on purpose
                    pass
            for _, context, _ in spares:
                await _quietly_close(context)
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


async def _quietly_close_browser(browser: Browser) -> None:
    try:
        await browser.close()
    except Exception as exc:  # noqa: BLE001 - it is dead or dying anyway
        log.debug("closing a browser failed: %s", exc)


async def _quietly_close(context: BrowserContext) -> None:
    try:
        await context.close()
    except Exception as exc:  # noqa: BLE001 - a dead browser's context is closed anyway
        log.debug("closing a context failed: %s", exc)


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
