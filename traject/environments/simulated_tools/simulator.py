"""Simulated tools (CM2): any tool schema, backed by a simulator instead of an implementation.

A call is answered, in order, by:

1. replay: a recorded ``(tool, canonical JSON arguments) -> result`` pair of the task;
2. the schema: arguments that do not fit it get a structured schema error (JSON, with the path
   and the problem of each violation), which the model reads as an error observation;
3. a language model: given the schema, the call, and the tool's recorded calls as few-shot
   examples, it answers with a JSON result.

The simulator model's answers are cached by (conversation, seed) like every simulator's, so a
re-run replays. A simulator that keeps answering non-JSON is an infrastructure failure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from traject.environments.users.llm import ChatReply, SimulatorLLM, SimulatorLLMConfig
from traject.tools.base import Tool, ToolOutput
from traject.tools.context import ToolContext
from traject.types import ToolSchema


def canonical_json(value: Any) -> str:
    """The arguments' one spelling: sorted keys, no spaces.

    >>> canonical_json({"b": 1, "a": [1, 2]})
    '{"a":[1,2],"b":1}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class RecordedCall(BaseModel):
    """One recorded call of a tool and what it returned."""

    model_config = ConfigDict(extra="ignore")

    name: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    result: JsonValue

    @property
    def key(self) -> tuple[str, str]:
        return self.name, canonical_json(self.arguments)

    def result_text(self) -> str:
        return self.result if isinstance(self.result, str) else json.dumps(self.result, ensure_ascii=False)


SIMULATOR_SYSTEM = """\
You simulate a software tool. Given the tool's JSON schema, earlier calls with their real results,
and a new call, answer with the result the real tool would return for the new call: realistic,
consistent with the earlier results, and in the same format. Answer with JSON only (an object or
a list), no explanation. If the call could not succeed in reality (an unknown id, say), answer with
a JSON error object, as the real tool would."""


def schema_errors(schema: dict[str, Any], arguments: dict[str, Any]) -> list[dict[str, str]]:
    """Every violation of ``schema`` by ``arguments``, as ``{"path", "message"}`` (empty if valid)."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    return [{"path": "/".join(str(p) for p in e.absolute_path) or "(arguments)", "message": e.message}
            for e in errors]


class SimulatedTool(Tool):
    """A Tool answered by replay, schema checks, then a simulator model."""

    def __init__(self, schema: ToolSchema, *, records: Sequence[RecordedCall] = (),
                 llm: SimulatorLLM | SimulatorLLMConfig | None = None, max_examples: int = 8) -> None:
        self.name = schema.name
        self.description = schema.description
        self.parameters = dict(schema.parameters)
        self.records = [r for r in records if r.name == schema.name]
        self._replay = {r.key: r for r in self.records}
        self.llm = llm if isinstance(llm, SimulatorLLM) else SimulatorLLM(
            llm or SimulatorLLMConfig(env_prefix="TRAJECT_TOOLSIM"), name="tool simulator")
        self.max_examples = max_examples

    async def __call__(self, ctx: ToolContext, arguments: dict[str, Any]) -> ToolOutput:
        recorded = self._replay.get((self.name, canonical_json(arguments)))
        if recorded is not None:
            return ToolOutput(content=recorded.result_text(), metadata={"source": "replay"})
        problems = schema_errors(self.parameters, arguments)
        if problems:
            error = {"error": "arguments do not match the tool's schema", "tool": self.name, "problems": problems}
            return ToolOutput(content=json.dumps(error, ensure_ascii=False), is_error=True,
                              metadata={"source": "schema"})
        return ToolOutput(content=await self._simulate(arguments), metadata={"source": "simulator"})

    async def _simulate(self, arguments: dict[str, Any]) -> str:
        examples = self.records[-self.max_examples:]
        shots = "\n\n".join(f"Call: {canonical_json(r.arguments)}\nResult: {r.result_text()}" for r in examples)
        schema = json.dumps({"name": self.name, "description": self.description, "parameters": self.parameters},
                            ensure_ascii=False)
        prompt = (f"Tool schema:\n{schema}"
                  + (f"\n\nEarlier calls and their real results:\n{shots}" if shots else "")
                  + f"\n\nNew call: {canonical_json(arguments)}\nResult:")
        reply = await self.llm.generate([{"role": "system", "content": SIMULATOR_SYSTEM},
                                         {"role": "user", "content": prompt}],
                                        purpose=f"tool:{self.name}", validate=_json_result)
        return _extract_json(reply.content) or reply.content


def _extract_json(text: str) -> str | None:
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text[text.index("\n") + 1:] if "\n" in text else text
    for start_char, end_char in (("{", "}"), ("[", "]")):
        start, end = text.find(start_char), text.rfind(end_char)
        if start != -1 and end > start:
            candidate = text[start:end + 1]
            try:
                json.loads(candidate)
            except json.JSONDecodeError:
                continue
            return candidate
    return None


def _json_result(reply: ChatReply) -> str | None:
    if _extract_json(reply.content) is None:
        return "the tool simulator did not answer with a JSON result"
    return None
