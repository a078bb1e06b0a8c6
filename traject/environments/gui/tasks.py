"""Task sources for the GUI env: traject's built-in pages, and a MiniWoB++ directory.

>>> [t.id for t in gui_tasks(n=2, names=["click-button"])]
['gui/click-button/test-0-0', 'gui/click-button/test-0-1']
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from traject.environments.gui.task import BUILTIN_PAGES, GuiTaskData
from traject.types import Task

SPLITS = ("train", "test", "validation")
# Built-in tasks whose first correct action is one click on the page's target.
GROUNDING_TASKS = ("click-button", "click-link", "double-click", "navigate-tabs", "radio-choice")
BUILTIN_SCREEN = (360, 360)
MINIWOB_VIEWPORT = (500, 320)
MINIWOB_CLIP = (0, 0, 160, 210)
MINIWOB_DATA_MODE = "train"  # MiniWoB++'s harness: MiniWoBEnvironment(data_mode="train")


def builtin_task_names() -> list[str]:
    """The built-in tasks: one HTML page each under ``traject/environments/gui/pages``."""
    return sorted(p.stem for p in BUILTIN_PAGES.glob("*.html"))


def _seed(split: str, seed: int, name: str, i: int) -> int:
    digest = hashlib.blake2b(f"{split}\0{seed}\0{name}\0{i}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def _check(split: str, names: list[str], known: list[str], where: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"no GUI task named {', '.join(unknown)} in {where}; tasks there: {', '.join(known)}")


def _tasks(names: list[str], split: str, n: int | None, seed: int, prefix: str, make_data) -> list[Task]:
    count = len(names) if n is None else n
    tasks = []
    for i in range(count):
        name = names[i % len(names)]
        k = i // len(names)
        page_seed = _seed(split, seed, name, k)
        tasks.append(Task(id=f"{prefix}/{name}/{split}-{seed}-{k}", data=make_data(name, page_seed),
                          metadata={"gui_task": name}))
    return tasks


def gui_tasks(split: str = "test", n: int | None = None, seed: int = 0, names: list[str] | None = None,
              path: str | None = None, grounding: bool = False, device_scale_factor: float = 1.0) -> list[Task]:
    """Built-in GUI tasks (or, with ``path``, a MiniWoB++ directory's tasks). ``n`` tasks go
    round-robin over ``names`` (default: all), each with its own page seed; ``n=None`` gives
    one of each. The same arguments always give the same tasks.

    ``grounding=True``: single-action grounding tasks (default names: GROUNDING_TASKS): the
    episode ends after one action, whose point is the final answer, and the task carries
    ``image_size`` (screen size x ``device_scale_factor``) for region-consistency rewards."""
    if path is not None:
        return miniwob_tasks(path, split=split, n=n, seed=seed, names=names)
    known = builtin_task_names()
    chosen = list(names) if names else (list(GROUNDING_TASKS) if grounding else known)
    _check(split, chosen, known, "the built-in pages")
    size = [round(BUILTIN_SCREEN[0] * device_scale_factor), round(BUILTIN_SCREEN[1] * device_scale_factor)]

    def data(name: str, s: int) -> dict:
        extra = {"grounding": True, "image_size": size} if grounding else {}
        scale = {"device_scale_factor": device_scale_factor} if device_scale_factor != 1.0 else {}
        return GuiTaskData(page=f"{name}.html", seed=s, **extra, **scale).model_dump(mode="json", exclude_none=True)

    return _tasks(chosen, split, n, seed, "gui-grounding" if grounding else "gui", data)


def _miniwob_layout(path: Path) -> tuple[Path, Path]:
    """(root to serve, directory of the task pages). MiniWoB++ keeps its pages in
    ``html/miniwob/*.html`` and the shared scripts in ``html/core/``, so the parent is served."""
    if not path.is_dir():
        raise FileNotFoundError(f"MiniWoB++ path {path} is not a directory: give the folder of the task "
                                "pages (miniwob-plusplus/miniwob/html/miniwob) or its parent (.../html)")
    if (path / "miniwob").is_dir() and any((path / "miniwob").glob("*.html")):
        path = path / "miniwob"
    if (path.parent / "core" / "core.js").is_file():
        return path.parent, path
    if (path / "core" / "core.js").is_file():
        return path, path
    raise FileNotFoundError(f"{path} does not look like MiniWoB++'s layout: no core/core.js next to it "
                            "or above it (pages load ../core/core.js)")


def miniwob_tasks(path: str, split: str = "test", n: int | None = None, seed: int = 0,
                  names: list[str] | None = None, viewport: tuple[int, int] = MINIWOB_VIEWPORT,
                  clip: tuple[int, int, int, int] | None = MINIWOB_CLIP,
                  device_scale_factor: float | None = None, data_mode: str | None = MINIWOB_DATA_MODE) -> list[Task]:
    """Tasks from a MiniWoB++ HTML directory: pages that call ``core.endEpisode(reward)``.

    MiniWoB's task area is 160x210 CSS px at the page's top-left; the screenshot is clipped to
    it (``clip``), and ``device_scale_factor`` can enlarge it for vision models. The page's
    ``Math.seedrandom`` is seeded per task (``split`` and ``seed`` pick the seeds), and
    ``core.setDataMode(data_mode)`` is called: ``"train"`` by default, as MiniWoB++'s own harness
    does (its ``data_mode`` default), whatever the split; ``None`` leaves the page's ``'default'``.
    """
    root, pages = _miniwob_layout(Path(path).expanduser().resolve())
    known = sorted(p.stem for p in pages.glob("*.html") if p.stem != "index")
    if not known:
        raise FileNotFoundError(f"no task pages (*.html) in {pages}")
    chosen = list(names) if names else known
    _check(split, chosen, known, str(pages))
    rel = pages.relative_to(root)

    def data(name: str, s: int) -> dict:
        page = (rel / f"{name}.html").as_posix()
        return GuiTaskData(page=page, root=str(root), seed=s, data_mode=data_mode, viewport=viewport, clip=clip,
                           device_scale_factor=device_scale_factor).model_dump(mode="json", exclude_none=True)

    return _tasks(chosen, split, n, seed, "miniwob", data)
