"""GuiTaskData: what a GUI task's ``Task.data`` holds, and the screen geometry it implies."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

BUILTIN_PAGES = Path(__file__).parent / "pages"


class GuiTaskData(BaseModel):
    """A page that follows MiniWoB++'s protocol (genProblem, core.startEpisodeReal,
    core.endEpisode setting WOB_* globals), and how to show it.

    ``root`` is the directory served (None: traject's built-in pages) and ``page`` the file in
    it; or ``url`` names a page directly. ``seed`` seeds the page's Math.random before the
    problem is generated, so a task is the same problem every time it is run.
    """

    model_config = ConfigDict(extra="forbid")

    page: str | None = None
    root: str | None = None
    url: str | None = None
    seed: int | str = 0
    data_mode: str | None = Field(None, description="MiniWoB's core.setDataMode (e.g. 'train', 'test')")
    viewport: tuple[int, int] | None = Field(None, description="(width, height) in CSS px")
    clip: tuple[int, int, int, int] | None = Field(
        None, description="(x, y, width, height) in CSS px: the part of the page that is the screen")
    device_scale_factor: float | None = Field(None, gt=0, le=4)
    grounding: bool = Field(
        False, description="one action, then the episode ends; its point is the final answer ('[x, y]')")
    image_size: tuple[int, int] | None = Field(
        None, description="the screenshot's (width, height) in pixels, for rewards that need it "
        "(region consistency); the env checks it against the real screen")

    @model_validator(mode="after")
    def _source(self) -> GuiTaskData:
        if (self.page is None) == (self.url is None):
            raise ValueError("a GUI task needs exactly one of `page` (a file under `root`) or `url`")
        return self

    @property
    def root_dir(self) -> Path:
        return Path(self.root) if self.root is not None else BUILTIN_PAGES


class Screen(BaseModel):
    """The geometry of one episode's screen. Actions and screenshots use screenshot pixels:
    ``css = clip origin + pixel / scale``."""

    model_config = ConfigDict(frozen=True)

    viewport: tuple[int, int]
    clip: tuple[int, int, int, int]
    scale: float

    @property
    def size(self) -> tuple[int, int]:
        """The screenshot's size in pixels."""
        return round(self.clip[2] * self.scale), round(self.clip[3] * self.scale)

    def to_css(self, x: float, y: float) -> tuple[float, float]:
        return self.clip[0] + x / self.scale, self.clip[1] + y / self.scale

    def contains(self, x: float, y: float) -> bool:
        w, h = self.size
        return 0 <= x < w and 0 <= y < h
