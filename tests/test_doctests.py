"""Every runnable example in a docstring stays true."""

import doctest
import importlib
import pkgutil

import pytest

import traject

# Modules behind optional extras that may be absent here are skipped, not failed.
OPTIONAL = ("traject.trainers.verl", "traject.agents.vllm")


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(traject.__path__, prefix="traject."):
        if not info.name.startswith(OPTIONAL):
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
