"""Tool-call formats of open models, each a renderer and parser pair that round-trips."""

from traject.agents.parsers.base import ParsedOutput, ToolCallFormat, call_from_json
from traject.agents.parsers.hermes import HermesFormat

FORMATS: dict[str, type[ToolCallFormat]] = {HermesFormat.name: HermesFormat}


def get_format(name: str) -> ToolCallFormat:
    try:
        return FORMATS[name]()
    except KeyError:
        raise ValueError(f"unknown tool-call format {name!r}; known: {', '.join(sorted(FORMATS))}") from None


__all__ = ["FORMATS", "HermesFormat", "ParsedOutput", "ToolCallFormat", "call_from_json", "get_format"]
