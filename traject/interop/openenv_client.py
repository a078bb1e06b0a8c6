"""``traject.make("openenv:URL")``: an OpenEnv environment server as a traject env.

Each episode is one WebSocket session (openenv-core's ``GenericEnvClient``). The action
schema (``GET /schema``) decides how an assistant message becomes an OpenEnv action:

* a traject server (``traject serve-env``; actions with ``content`` and ``tool_calls``): the
  message as it is, and the server's tools and messages as they are;
* ``text``: an action with one string field (``message``, ``code``, ``command`` ...) gets the
  assistant's text; the observation comes back as a user message;
* ``mcp``: an OpenEnv MCP environment (its action is ``CallToolAction``): the server's tools
  (``list_tools`` at reset) are the episode's tools, each tool call is a ``call_tool`` step,
  and a reply without tool calls ends the episode with that reply as the final answer;
* ``tool`` (opt-in, ``action_mode="tool"``): the action schema becomes one tool, ``act``,
  whose arguments are the action; the observation is that call's result.

An action schema that none of these can carry (no string field under ``auto``/``text``; a
field without a JSON type, such as an arbitrary Python object, under ``tool``) is refused at
reset with an error naming the fields. The reward is the sum of the step rewards the server
gave (a traject server's last step carries the outcome reward; if it could not be computed,
the RewardResult is ``failed``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from traject.environments.base import Env, EnvSpec, StepResult
from traject.environments.registry import EnvEntry
from traject.rewards.base import Reward
from traject.types import InfraError, Message, RewardResult, Task, ToolCall, ToolResult, ToolSchema, Trajectory

ActionMode = Literal["auto", "traject", "mcp", "text", "tool"]
_RESERVED = {"metadata"}
_OBS_RESERVED = {"done", "reward", "metadata"}
_JSON_TYPES = {"string", "integer", "number", "boolean", "array", "object", "null"}


class UnsupportedActionSpace(ValueError):
    """The OpenEnv env's action schema cannot be carried by an assistant message."""


def _fields(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in (schema.get("properties") or {}).items() if k not in _RESERVED}


def _type_of(prop: dict[str, Any]) -> str:
    if "type" in prop:
        return prop["type"] if isinstance(prop["type"], str) else "|".join(prop["type"])
    for key in ("anyOf", "oneOf"):
        if key in prop:
            return "|".join(_type_of(p) for p in prop[key])
    if "$ref" in prop or "enum" in prop or "const" in prop:
        return "object" if "$ref" in prop else "string"
    return "untyped"


def _describe(fields: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{k}: {_type_of(v)}" for k, v in fields.items()) or "(no fields)"


def choose_mode(url: str, schema: dict[str, Any], mode: ActionMode) -> tuple[str, str | None]:
    """(mode, text field) for an OpenEnv action schema, or UnsupportedActionSpace."""
    fields = _fields(schema)
    if mode in ("auto", "traject") and {"content", "tool_calls"} <= set(fields):
        return "traject", None
    if mode in ("auto", "mcp") and {"tool_name", "arguments"} <= set(fields) \
            and (fields.get("type") or {}).get("const") == "call_tool":
        return "mcp", None
    if mode in ("traject", "mcp"):
        raise UnsupportedActionSpace(f"OpenEnv env at {url}: action fields ({_describe(fields)}) are not a "
                                     + ("traject server's (content, tool_calls)" if mode == "traject"
                                        else "CallToolAction's (type, tool_name, arguments)"))
    if mode in ("auto", "text"):
        strings = [k for k, v in fields.items() if _type_of(v) == "string"]
        required = set(schema.get("required") or [])
        other_required = required - set(strings) - _RESERVED
        if len(strings) == 1 and not other_required:
            return "text", strings[0]
        if len(strings) > 1 and not other_required:
            req = [k for k in strings if k in required]
            if len(req) == 1:
                return "text", req[0]
        raise UnsupportedActionSpace(
            f"OpenEnv env at {url}: its action is not text (fields {_describe(fields)}): traject maps an "
            "assistant's text onto an action with exactly one string field. Pass action_mode='tool' to "
            "offer the action as a tool call instead")
    untyped = {k: v for k, v in fields.items() if not set(_type_of(v).split("|")) <= _JSON_TYPES}
    if untyped:
        raise UnsupportedActionSpace(
            f"OpenEnv env at {url}: action fields without a JSON type ({_describe(untyped)}) cannot be "
            "written by a language model; traject supports text and JSON-typed actions only")
    return "tool", None


def _call_tool_text(obs: dict[str, Any]) -> tuple[str, bool, str]:
    """A CallToolObservation as (text, is_error, error kind)."""
    error = obs.get("error")
    if error:
        kind = "unknown_tool" if error.get("error_type") == "tool_not_found" else "raised"
        return f"Error: {error.get('message', error)}", True, kind
    result = obs.get("result")
    if isinstance(result, dict) and isinstance(result.get("content"), list):
        texts = [c.get("text", f"[{c.get('type')} content]") for c in result["content"] if isinstance(c, dict)]
        return "\n".join(texts), bool(result.get("is_error")), "raised"
    return json.dumps(result, ensure_ascii=False, default=str), False, "raised"


def _observation_text(obs: dict[str, Any]) -> str:
    fields = {k: v for k, v in obs.items() if k not in _OBS_RESERVED}
    if len(fields) == 1 and isinstance(next(iter(fields.values())), str):
        return next(iter(fields.values()))
    return json.dumps(fields, ensure_ascii=False, default=str)


class OpenEnvEnv(Env):
    def __init__(self, url: str, *, action_mode: ActionMode = "auto", max_turns: int = 20,
                 system_prompt: str | None = None, message_timeout_s: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.action_mode = action_mode
        self.system_prompt = system_prompt
        self.message_timeout_s = message_timeout_s
        self.spec = EnvSpec(name=f"openenv:{self.url}", max_turns=max_turns, system_prompt=system_prompt)
        self.reward = OpenEnvReward()
        self._client: Any = None
        self._mode: str | None = None
        self._text_field: str | None = None
        self._schema: dict[str, Any] | None = None
        self._tools: list[ToolSchema] = []
        self._turns = 0

    @property
    def tools(self) -> list[ToolSchema]:
        return self._tools

    async def _action_schema(self) -> dict[str, Any]:
        if self._schema is None:
            import httpx

            try:
                async with httpx.AsyncClient(timeout=30) as http:
                    response = await http.get(f"{self.url}/schema")
                    response.raise_for_status()
            except httpx.HTTPError as exc:
                raise InfraError(f"OpenEnv server at {self.url} did not answer /schema: {exc}") from exc
            self._schema = response.json()["action"]
        return self._schema

    async def reset(self, task: Task) -> list[Message]:
        from openenv.core.generic_client import GenericEnvClient

        await self.aclose()
        schema = await self._action_schema()
        self._mode, self._text_field = choose_mode(self.url, schema, self.action_mode)
        self._turns = 0
        self._client = GenericEnvClient(base_url=self.url, message_timeout_s=self.message_timeout_s)
        try:
            await self._client.connect()
            result = await self._client.reset(**dict(task.data.get("reset") or {}))  # type: ignore[arg-type]
        except (ConnectionError, OSError, TimeoutError, RuntimeError) as exc:
            raise InfraError(f"OpenEnv reset at {self.url} failed: {exc}") from exc
        obs = result.observation
        messages: list[Message] = [Message.system(self.system_prompt)] if self.system_prompt else []
        messages += task.initial_messages()
        if self._mode == "traject":
            self._tools = [ToolSchema(name=t["function"]["name"], description=t["function"].get("description", ""),
                                      parameters=t["function"].get("parameters") or {}) for t in obs.get("tools", [])]
            messages += [Message.model_validate(m) for m in obs.get("messages", [])]
        elif self._mode == "mcp":
            listed = await self._send({"type": "list_tools"}, "list_tools")
            self._tools = [ToolSchema(name=t["name"], description=t.get("description") or "",
                                      parameters=t.get("input_schema") or {"type": "object", "properties": {}})
                           for t in listed.observation.get("tools", [])]
            text = _observation_text(obs) if obs else ""
            if text and text != "{}":
                messages.append(Message.user(text))
            elif not any(m.role == "user" for m in messages):
                messages.append(Message.user("Use the tools to complete the task."))
        else:
            if self._mode == "tool":
                params = {"type": "object", "properties": _fields(schema),
                          "required": [r for r in schema.get("required", []) if r not in _RESERVED]}
                if "$defs" in schema:
                    params["$defs"] = schema["$defs"]
                self._tools = [ToolSchema(name="act", description=schema.get("description") or
                                          "Take an action in the environment.", parameters=params)]
            messages.append(Message.user(_observation_text(obs)))
        return messages

    async def step(self, action: Message) -> StepResult:
        if self._client is None:
            raise RuntimeError("step() before reset()")
        self._turns += 1
        calls: list[ToolCall] = []
        if self._mode == "mcp":
            return await self._mcp_step(action)
        if self._mode == "traject":
            payload: dict[str, Any] = {"content": action.text,
                                       "tool_calls": [c.model_dump(mode="json") for c in action.tool_calls]}
        elif self._mode == "text":
            payload = {self._text_field: action.text}
        else:
            calls = [c for c in action.tool_calls if c.name == "act" and c.error is None]
            if not calls:
                return self._nudge(action)
            payload = dict(calls[0].arguments)
        try:
            result = await self._client.step(payload)
        except RuntimeError as exc:
            if self._mode == "tool" and "VALIDATION_ERROR" in str(exc):
                return self._tool_error(calls[0], f"the action was rejected: {exc}")
            raise InfraError(f"OpenEnv step at {self.url} failed: {exc}") from exc
        except (ConnectionError, OSError, TimeoutError) as exc:
            raise InfraError(f"OpenEnv step at {self.url} failed: {exc}") from exc
        obs = result.observation
        reward = float(result.reward or 0.0)
        info: dict[str, Any] = {"openenv": {"reward": result.reward}}
        if obs.get("reward_failed"):
            info["openenv"]["reward_failed"] = True
        if isinstance(obs.get("reward_info"), dict) and obs["reward_info"].get("success") is not None:
            info["openenv"]["success"] = bool(obs["reward_info"]["success"])
        tool_results: list[ToolResult] = []
        if self._mode == "traject":
            observations = [Message.model_validate(m) for m in obs.get("messages", [])]
            final_answer = obs.get("final_answer")
            truncated = bool(obs.get("truncated"))
        else:
            text = _observation_text(obs)
            final_answer, truncated = None, False
            if self._mode == "tool":
                call = calls[0]
                observations = [Message.tool(text, tool_call_id=call.id, name=call.name)]
                tool_results = [ToolResult(call_id=call.id, name=call.name, content=text)]
                observations += [Message.tool("Error: one action per turn; this call was not run.",
                                              tool_call_id=c.id, name=c.name) for c in action.tool_calls[1:]]
            else:
                observations = [Message.user(text)]
        terminated = bool(result.done) and not truncated
        if not result.done and self._turns >= self.spec.max_turns:
            truncated = True
        return StepResult(observations=observations, reward=reward, terminated=terminated, truncated=truncated,
                          final_answer=final_answer, tool_results=tool_results, info=info)

    async def _send(self, payload: dict[str, Any], what: str) -> Any:
        try:
            return await self._client.step(payload)
        except (ConnectionError, OSError, TimeoutError, RuntimeError) as exc:
            raise InfraError(f"OpenEnv {what} at {self.url} failed: {exc}") from exc

    async def _mcp_step(self, action: Message) -> StepResult:
        if not action.tool_calls:
            return StepResult(terminated=True, final_answer=action.text)
        observations: list[Message] = []
        results: list[ToolResult] = []
        reward, done = 0.0, False
        for call in action.tool_calls:
            if call.error is not None:
                text, is_error, kind = f"Error: your tool call could not be parsed: {call.error}", True, "format"
            elif done:
                text, is_error, kind = "Error: the episode ended before this call; it was not run.", True, "raised"
            else:
                result = await self._send({"type": "call_tool", "tool_name": call.name,
                                           "arguments": dict(call.arguments)}, f"call_tool {call.name!r}")
                reward += float(result.reward or 0.0)
                done = done or bool(result.done)
                text, is_error, kind = _call_tool_text(result.observation)
            results.append(ToolResult(call_id=call.id, name=call.name, content=text, is_error=is_error,
                                      error_kind=kind if is_error else None))  # type: ignore[arg-type]
            observations.append(Message.tool(text, tool_call_id=call.id, name=call.name))
        return StepResult(observations=observations, tool_results=results, reward=reward, terminated=done,
                          truncated=not done and self._turns >= self.spec.max_turns,
                          format_errors=sum(1 for c in action.tool_calls if c.error is not None),
                          info={"openenv": {"reward": reward}})

    def _nudge(self, action: Message) -> StepResult:
        observations = [Message.tool("Error: call the `act` tool to act in the environment.",
                                     tool_call_id=c.id, name=c.name) for c in action.tool_calls]
        if not observations:
            observations = [Message.user("Call the `act` tool to act in the environment.")]
        return StepResult(observations=observations, truncated=self._turns >= self.spec.max_turns,
                          format_errors=sum(1 for c in action.tool_calls if c.error is not None))

    def _tool_error(self, call: ToolCall, text: str) -> StepResult:
        result = ToolResult(call_id=call.id, name=call.name, content=f"Error: {text}", is_error=True,
                            error_kind="arguments")
        return StepResult(observations=[Message.tool(result.content, tool_call_id=call.id, name=call.name)],
                          tool_results=[result], truncated=self._turns >= self.spec.max_turns)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


class OpenEnvReward(Reward):
    """The sum of the rewards the OpenEnv server gave; failed when the server said its reward
    failed. Success: what a traject server said, else (OpenEnv has no notion of it) reward > 0."""

    name = "openenv"

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        per_step = [s.reward for s in traj.steps]
        if any((s.info.get("openenv") or {}).get("reward_failed") for s in traj.steps):
            return RewardResult(failed=True, per_step=per_step,
                                error="the OpenEnv server could not compute the episode's reward")
        total = sum(per_step)
        said = [s.info["openenv"]["success"] for s in traj.steps if "success" in (s.info.get("openenv") or {})]
        success = said[-1] if said else (total > 0 if traj.steps else None)
        return RewardResult(total=total, per_step=per_step, components={self.name: total}, success=success)


def openenv_tasks(*, n: int = 10, seed: int = 0, split: str | None = None, **_: Any) -> list[Task]:
    """OpenEnv has no task list: task i resets the server with ``seed + i``."""
    return [Task(id=f"openenv-{seed + i}", data={"reset": {"seed": seed + i}}) for i in range(n)]


def scheme_entry(url: str) -> EnvEntry:
    if not url.startswith(("http://", "https://", "ws://", "wss://")):
        raise ValueError(f"openenv:{url}: expected a server URL, e.g. openenv:http://127.0.0.1:8000")
    return EnvEntry(name=f"openenv:{url}", make=lambda **config: OpenEnvEnv(url, **config), tasks=openenv_tasks,
                    description=f"the OpenEnv server at {url}")
