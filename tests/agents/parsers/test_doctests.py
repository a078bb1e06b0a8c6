"""The examples in the formats' docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["base", "hermes", "llama3", "mistral", "pythonic", "openai"])
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(f"traject.agents.parsers.{module}")
    result = doctest.testmod(mod)
    assert result.failed == 0


def test_renderer_and_tokens_docstrings() -> None:
    for name in ("traject.agents.tokens", "traject.agents.chat_renderer"):
        assert doctest.testmod(importlib.import_module(name)).failed == 0
