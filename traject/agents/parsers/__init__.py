"""Tool-call formats of open models, each a renderer and parser pair that round-trips."""

from traject.agents.parsers.base import ParsedOutput, ToolCallFormat, call_from_json
from traject.agents.parsers.hermes import HermesFormat
from traject.agents.parsers.llama3 import Llama3JsonFormat
from traject.agents.parsers.mistral import MistralFormat
from traject.agents.parsers.openai import OpenAIFormat
from traject.agents.parsers.pythonic import PythonicFormat

FORMATS: dict[str, type[ToolCallFormat]] = {
    f.name: f for f in (HermesFormat, Llama3JsonFormat, MistralFormat, PythonicFormat, OpenAIFormat)
}


def get_format(name: str) -> ToolCallFormat:
    try:
        return FORMATS[name]()
    except KeyError:
        raise ValueError(f"unknown tool-call format {name!r}; known: {', '.join(sorted(FORMATS))}") from None


__all__ = ["FORMATS", "HermesFormat", "Llama3JsonFormat", "MistralFormat", "OpenAIFormat", "ParsedOutput",
           "PythonicFormat", "ToolCallFormat", "call_from_json", "get_format"]
