from __future__ import annotations

import shutil

import pytest

from traject.environments.gui.browser import close_browsers


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # One event loop per module, so that its browser tests share one Chromium (one worker).
    return "asyncio"


@pytest.fixture(scope="module")
async def browsers(anyio_backend):
    """Chromium for the module's tests; closed when the module is done."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")):
        pytest.skip("no Chromium on this machine")
    yield
    await close_browsers()
