"""The one place that imports veRL, so that a missing extra gives one clear error."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

VERL_VERSION = "0.9.1"
INSTALL_HINT = (f"the veRL backend needs the `verl` extra (verl=={VERL_VERSION}): "
                "pip install 'traject[verl]'")


class VerlMissing(ImportError):
    """veRL (or one of the packages its agent loop needs) is not installed."""


def require_verl(module: str = "verl") -> ModuleType:
    """Import ``module`` from veRL, or raise VerlMissing naming the extra to install."""
    try:
        mod = import_module(module)
    except ImportError as exc:
        raise VerlMissing(f"{INSTALL_HINT} ({exc})") from exc
    version = getattr(import_module("verl"), "__version__", "?")
    if version != VERL_VERSION:
        raise VerlMissing(f"traject's veRL backend is built against verl=={VERL_VERSION}, "
                          f"but verl {version} is installed: pip install 'verl=={VERL_VERSION}'")
    return mod
