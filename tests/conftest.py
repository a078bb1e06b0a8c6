from __future__ import annotations

import signal

import pytest

# A suite started as a background job (`make test &`, nohup) inherits SIGINT ignored, and so
# would every process the Ctrl-C tests start: they would never see their SIGINT. With a
# handler here, exec resets it to the default in those children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
