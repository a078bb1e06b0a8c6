"""The tiny model and tokenizer, built locally once per test session (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def one_torch_thread():
    # Tiny ops gain nothing from a thread pool, and on a shared 2-core box they lose a lot.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Path:
    from traject.agents.hf import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "hermes")


@pytest.fixture(scope="session")
def tiny_qwen3_path(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Path:
    from traject.agents.hf import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen3", template="qwen3")


