"""The GUI action space, as tools on a Toolset that holds the episode's page.

Coordinates are screenshot pixels (0,0 = top-left of the screenshot); the page is driven in CSS
pixels (``Screen.to_css``). Actions the page cannot do as asked (a point off the screen, an
element id that does not exist, an unknown key) raise ``ActionError``: the model reads it as an
error observation. A browser that died raises ``BrowserError`` (an infrastructure failure).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from traject.environments.gui.browser import BrowserError, import_playwright
from traject.environments.gui.dom import ID_ATTRIBUTE
from traject.environments.gui.page import is_closed_error
from traject.tools.base import Tool, ToolOutput
from traject.tools.decorator import tool
from traject.tools.toolset import Toolset

if TYPE_CHECKING:
    from traject.environments.gui.config import GuiConfig
    from traject.environments.gui.page import TaskPage

ELEMENT_ACTIONS = ("click_element", "type_element", "select_element")
POINT_ACTIONS = ("click", "double_click")


class ActionError(ValueError):
    """The action cannot be done as asked; the message tells the model why."""


class GuiActions(Toolset):
    """click, double_click, type, key, scroll, drag, wait, done, and the element-id variants."""

    def __init__(self, page: TaskPage | None = None, config: GuiConfig | None = None,
                 *, element_actions: bool = True) -> None:
        self.page = page
        self.config = config
        self.element_actions = element_actions

    def tools(self) -> list[Tool]:
        found = super().tools()
        if not self.element_actions:
            found = [t for t in found if t.name not in ELEMENT_ACTIONS]
        return found

    # --- helpers -----------------------------------------------------------------------------

    def _page(self) -> TaskPage:
        if self.page is None:
            raise RuntimeError("GuiActions has no page: the GUI env sets it at reset")
        return self.page

    def _point(self, x: int, y: int) -> tuple[float, float]:
        screen = self._page().screen
        if not screen.contains(x, y):
            w, h = screen.size
            raise ActionError(f"({x}, {y}) is outside the screen: x must be in 0..{w - 1} and y in 0..{h - 1}")
        return screen.to_css(x, y)

    @asynccontextmanager
    async def _driving(self, what: str) -> AsyncIterator[None]:
        api = import_playwright()
        try:
            yield
        except api.TimeoutError as exc:
            raise ActionError(f"{what} timed out: {str(exc).splitlines()[0]}") from None
        except api.Error as exc:
            if is_closed_error(exc):
                raise BrowserError(f"the browser died during {what}: {exc}") from exc
            raise ActionError(f"{what} failed: {str(exc).splitlines()[0]}") from None

    async def _element(self, element_id: int) -> tuple[Any, dict[str, float] | None]:
        page = self._page()
        locator = page.page.locator(f'[{ID_ATTRIBUTE}="{element_id}"]')
        async with self._driving(f"finding element [{element_id}]"):
            count = await locator.count()
        if count == 0:
            raise ActionError(f"there is no element [{element_id}] on the page: use an id from the latest "
                              "DOM listing")
        box = await locator.first.bounding_box()
        return locator.first, box

    def _element_meta(self, box: dict[str, float] | None) -> dict[str, Any]:
        if box is None:
            return {}
        screen = self._page().screen
        s = screen.scale
        x, y = (box["x"] - screen.clip[0]) * s, (box["y"] - screen.clip[1]) * s
        w, h = box["width"] * s, box["height"] * s
        return {"box": [round(x), round(y), round(w), round(h)], "point": [round(x + w / 2), round(y + h / 2)]}

    @property
    def _timeout_ms(self) -> float:
        return (self.config.action_timeout_s if self.config else 5.0) * 1000

    # --- coordinate actions ------------------------------------------------------------------

    @tool
    async def click(self, x: int, y: int) -> ToolOutput:
        """Click at a point of the screen.

        Args:
            x: Pixels from the left edge of the screenshot.
            y: Pixels from the top edge of the screenshot.
        """
        cx, cy = self._point(x, y)
        async with self._driving("click"):
            await self._page().page.mouse.click(cx, cy)
        return ToolOutput(content=f"clicked at ({x}, {y})", metadata={"point": [x, y]})

    @tool
    async def double_click(self, x: int, y: int) -> ToolOutput:
        """Double-click at a point of the screen.

        Args:
            x: Pixels from the left edge of the screenshot.
            y: Pixels from the top edge of the screenshot.
        """
        cx, cy = self._point(x, y)
        async with self._driving("double_click"):
            await self._page().page.mouse.dblclick(cx, cy)
        return ToolOutput(content=f"double-clicked at ({x}, {y})", metadata={"point": [x, y]})

    @tool
    async def type(self, text: str) -> ToolOutput:
        """Type text into the focused element (click a field first to focus it).

        Args:
            text: The characters to type.
        """
        if not text:
            raise ActionError("type needs a non-empty text")
        async with self._driving("type"):
            await self._page().page.keyboard.type(text)
        return ToolOutput(content=f"typed {text!r}")

    @tool
    async def key(self, name: str) -> ToolOutput:
        """Press a key or a key combination.

        Args:
            name: A key name such as "Enter", "Tab", "Escape", "Backspace", "ArrowDown", or a
                combination such as "Control+a".
        """
        async with self._driving(f"key {name!r}"):
            await self._page().page.keyboard.press(name)
        return ToolOutput(content=f"pressed {name}")

    @tool
    async def scroll(self, dx: int = 0, dy: int = 0, x: int | None = None, y: int | None = None) -> ToolOutput:
        """Scroll with the mouse wheel.

        Args:
            dx: Pixels to scroll right (negative: left).
            dy: Pixels to scroll down (negative: up).
            x: Where the pointer is while scrolling (default: the centre of the screen).
            y: Where the pointer is while scrolling (default: the centre of the screen).
        """
        if dx == 0 and dy == 0:
            raise ActionError("scroll needs a non-zero dx or dy")
        page = self._page()
        w, h = page.screen.size
        px, py = (w // 2 if x is None else x), (h // 2 if y is None else y)
        cx, cy = self._point(px, py)
        async with self._driving("scroll"):
            await page.page.mouse.move(cx, cy)
            await page.page.mouse.wheel(dx / page.screen.scale, dy / page.screen.scale)
            # The wheel scrolls asynchronously; let the page apply it before the screenshot.
            await anyio.sleep(0.05)
        return ToolOutput(content=f"scrolled by ({dx}, {dy}) at ({px}, {py})", metadata={"point": [px, py]})

    @tool
    async def drag(self, x1: int, y1: int, x2: int, y2: int) -> ToolOutput:
        """Press the mouse at one point, move it to another and release it there.

        Args:
            x1: Start, pixels from the left.
            y1: Start, pixels from the top.
            x2: End, pixels from the left.
            y2: End, pixels from the top.
        """
        sx, sy = self._point(x1, y1)
        ex, ey = self._point(x2, y2)
        mouse = self._page().page.mouse
        async with self._driving("drag"):
            await mouse.move(sx, sy)
            await mouse.down()
            await mouse.move(ex, ey, steps=8)
            await mouse.up()
        return ToolOutput(content=f"dragged from ({x1}, {y1}) to ({x2}, {y2})",
                          metadata={"point": [x1, y1], "to": [x2, y2]})

    @tool
    async def wait(self, seconds: float = 1.0) -> ToolOutput:
        """Wait, doing nothing, so that the page can change.

        Args:
            seconds: How long to wait.
        """
        limit = self.config.max_wait_s if self.config else 5.0
        if not 0 <= seconds <= limit:
            raise ActionError(f"wait takes 0 to {limit:g} seconds, got {seconds:g}")
        await anyio.sleep(seconds)
        return ToolOutput(content=f"waited {seconds:g} s")

    @tool
    async def done(self, answer: str = "") -> ToolOutput:
        """Finish the task. Give the answer here when the task asks a question.

        Args:
            answer: The answer, if the task asks for one.
        """
        async with self._driving("done"):
            await self._page().submit_answer(answer)
        return ToolOutput(content="done", done=True, final_answer=answer)

    # --- element-id actions (DOM observation) ------------------------------------------------

    @tool
    async def click_element(self, element_id: int) -> ToolOutput:
        """Click the element with this id in the DOM listing.

        Args:
            element_id: The number in brackets before the element, e.g. 3 for "[3] button".
        """
        locator, box = await self._element(element_id)
        async with self._driving(f"click_element [{element_id}]"):
            await locator.click(timeout=self._timeout_ms)
        return ToolOutput(content=f"clicked element [{element_id}]", metadata=self._element_meta(box))

    @tool
    async def type_element(self, element_id: int, text: str) -> ToolOutput:
        """Replace the content of a text field with the given text.

        Args:
            element_id: The number in brackets before the field.
            text: The text the field should hold.
        """
        locator, box = await self._element(element_id)
        async with self._driving(f"type_element [{element_id}]"):
            await locator.fill(text, timeout=self._timeout_ms)
        return ToolOutput(content=f"filled element [{element_id}] with {text!r}", metadata=self._element_meta(box))

    @tool
    async def select_element(self, element_id: int, option: str) -> ToolOutput:
        """Choose an option of a drop-down list.

        Args:
            element_id: The number in brackets before the select element.
            option: The text (or value) of the option to choose.
        """
        locator, box = await self._element(element_id)
        async with self._driving(f"select_element [{element_id}]"):
            tag = await locator.evaluate("e => e.tagName")
            if tag != "SELECT":
                raise ActionError(f"element [{element_id}] is a {tag.lower()}, not a select")
            options = await locator.evaluate("e => Array.from(e.options).map(o => [o.textContent.trim(), o.value])")
            match = next((value for label, value in options if option in (label, value)), None)
            if match is None:
                raise ActionError(f"element [{element_id}] has no option {option!r}; its options: "
                                  + ", ".join(label for label, _ in options))
            await locator.select_option(value=match, timeout=self._timeout_ms)
        return ToolOutput(content=f"selected {option!r} in element [{element_id}]", metadata=self._element_meta(box))
