"""``traject serve`` on a tiny model built here (no download), in a background thread."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("uvicorn")


@pytest.fixture(scope="session")
def qwen3_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from traject.agents.hf import build_tiny_model

    torch.set_num_threads(1)
    return build_tiny_model(tmp_path_factory.mktemp("serve") / "qwen3", template="qwen3")


@pytest.fixture
def served():
    """``served(path, **HFPolicyConfig fields)`` starts a server; all are stopped at the end."""
    from traject.serve import ServeEngine, ServerThread

    servers = []

    def start(path, **config):
        server = ServerThread(ServeEngine.load(path, model_name="tiny", **config)).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()
