from __future__ import annotations

import shutil

import pytest

from traject.environments.gui.browser import close_browsers


@pytest.fixture(scope="package")
def anyio_backend() -> str:
    # One event loop for all GUI tests, so that they share one Chromium (one worker).
    return "asyncio"


@pytest.fixture(scope="package")
async def browsers(anyio_backend):
    """Chromium for the GUI tests; closed when they are done."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")):
        pytest.skip("no Chromium on this machine")
    yield
    await close_browsers()
