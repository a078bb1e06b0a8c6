"""Where a synchronous tool runs so that it can be timed out and abandoned.

A sync tool that blocks (``time.sleep(10_000)``, a hung socket, an endless loop) must not hold
an episode, an eval or Ctrl-C hostage:

* ``run_in_thread``: a *daemon* thread. When the caller is cancelled (tool timeout, episode
  timeout, Ctrl-C) the wait ends at once and the thread is abandoned: its result is dropped,
  and being a daemon it cannot keep the process alive at exit. anyio's own worker threads are
  neither abandoned by default nor daemons, so a blocked one hangs interpreter shutdown.
* ``run_isolated``: a worker process (``anyio.to_process``), killed when the caller is
  cancelled. For tools that may block in C code, eat memory, or must really stop.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import anyio.to_process

_abandoned = 0


def abandoned_threads() -> int:
    """How many tool threads were abandoned while still running (in this process)."""
    return _abandoned


async def run_in_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a daemon thread; cancelling the caller abandons the thread."""
    global _abandoned
    done = anyio.Event()
    box: list[Any] = []
    token = anyio.lowlevel.current_token()

    def target() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            box.append((False, exc))
        try:
            anyio.from_thread.run_sync(done.set, token=token)
        except Exception:  # noqa: BLE001 - the event loop is gone: nobody waits any more
            pass

    async with anyio.to_thread.current_default_thread_limiter():
        thread = threading.Thread(target=target, name="traject-tool", daemon=True)
        thread.start()
        try:
            await done.wait()
        except BaseException:
            if not box:
                _abandoned += 1
            raise
    ok, value = box[0]
    if ok:
        return value
    raise value


def _resolve(module: str, qualname: str) -> Callable[..., Any]:
    if module == "__main__" and "__mp_main__" in sys.modules:
        module = "__mp_main__"
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return getattr(obj, "fn", obj)  # the @tool object found under the function's name


def _call_by_name(module: str, qualname: str, kwargs: dict[str, Any]) -> Any:
    return _resolve(module, qualname)(**kwargs)


async def run_isolated(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """``fn(**kwargs)`` in a worker process, found there by module and name; the process is
    killed when the caller is cancelled."""
    return await anyio.to_process.run_sync(_call_by_name, fn.__module__, fn.__qualname__, kwargs,
                                           cancellable=True)
