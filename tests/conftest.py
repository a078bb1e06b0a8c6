from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def chat_server():
    """Start a ScriptedChatServer on 127.0.0.1: ``server = chat_server(script)``."""
    from traject.testing import ScriptedChatServer

    servers: list[ScriptedChatServer] = []

    def start(script, **kwargs):
        server = ScriptedChatServer(script, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()
