"""GuiConfig: the browser, the screen and the observation a GUI env is made with."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ObservationPart = Literal["screenshot", "dom", "axtree"]

# Chromium's background services try to reach the internet at start-up; on a closed network
# those connections are refused and some of them stall the browser. These flags turn them off.
LAUNCH_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class BrowserConfig(BaseModel):
    """How the worker's Chromium is launched. Two envs with equal BrowserConfigs share browsers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chromium: str | None = Field(
        None, description="path to the Chromium binary; None: $TRAJECT_CHROMIUM, else chromium on PATH")
    extra_args: tuple[str, ...] = ()
    browsers: int = Field(1, ge=1, le=64, description="browsers per worker; episodes spread over them")
    launch_timeout_s: float = Field(30.0, gt=0)
    prewarm: bool = Field(
        True, description="keep a blank context+page ready in the background for the next episode")
    idle_close_s: float = Field(
        5.0, ge=0, description="close a worker's browsers when no episode used them for this long")


class GuiConfig(BaseModel):
    """Everything a GUI env is made with. Task data may override the screen per task
    (``viewport``, ``clip``, ``device_scale_factor``)."""

    model_config = ConfigDict(extra="forbid")

    browser: BrowserConfig = Field(default_factory=BrowserConfig)
    viewport_width: int = Field(360, ge=16, le=4096)
    viewport_height: int = Field(360, ge=16, le=4096)
    device_scale_factor: float = Field(1.0, gt=0, le=4)
    locale: str = "en-US"
    observation: list[ObservationPart] = Field(default_factory=lambda: ["screenshot"])
    element_actions: bool | None = Field(
        None, description="offer click_element/type_element/select_element; default: when 'dom' is observed")
    max_turns: int = Field(10, ge=1)
    action_timeout_s: float = Field(10.0, gt=0)
    load_timeout_s: float = Field(15.0, gt=0)
    settle_ms: int = Field(30, ge=0, le=5000, description="pause after each action before observing")
    max_wait_s: float = Field(5.0, gt=0, description="the longest `wait` action allowed")
    page_time_limit_s: float | Literal["none"] | None = Field(
        None, description="the page's episode timer (MiniWoB's core.EPISODE_MAX_TIME): None keeps each page's "
        "own (MiniWoB's default 10 s, or what the page sets); a number of seconds overrides it; 'none': no timer")
    serve: Literal["http", "file"] = Field(
        "http", description="pages come from a 127.0.0.1 HTTP server, or as file:// URLs")
    system_prompt: str | None = None

    @model_validator(mode="after")
    def _check(self) -> GuiConfig:
        if isinstance(self.page_time_limit_s, float | int) and self.page_time_limit_s <= 0:
            raise ValueError(f"GuiConfig.page_time_limit_s must be positive, None (the page's own) or 'none' "
                             f"(no timer), got {self.page_time_limit_s}")
        if not self.observation:
            raise ValueError("GuiConfig.observation is empty: give at least one of screenshot, dom, axtree")
        if len(set(self.observation)) != len(self.observation):
            raise ValueError(f"GuiConfig.observation repeats a part: {self.observation}")
        return self

    @property
    def with_element_actions(self) -> bool:
        return ("dom" in self.observation) if self.element_actions is None else self.element_actions
