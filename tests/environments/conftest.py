from __future__ import annotations

import threading

import pytest


@pytest.fixture
def chat_server():
    """The root ``chat_server`` fixture, with a server loop that polls for shutdown every 20 ms
    instead of every 0.5 s: conversational tests start a server or two each, and the default
    poll made every teardown wait half a second."""
    from traject.testing import ScriptedChatServer

    servers: list[ScriptedChatServer] = []

    def start(script, **kwargs):
        server = ScriptedChatServer(script, **kwargs)
        thread = threading.Thread(target=server._server.serve_forever, kwargs={"poll_interval": 0.02},
                                  name="scripted-openai", daemon=True)
        thread.start()
        server._thread = thread
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()
