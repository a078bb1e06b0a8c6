"""The whole of traject's data contract in one file.

Every layer speaks these types: environments produce Messages, policies produce assistant
Messages with their exact tokens, the agent loop records Steps into a Trajectory, rewards
return a RewardResult, and trainers read the Trajectory's TokenViews.

>>> from traject.types import Message, ToolCall
>>> m = Message.assistant("Let me look.", tool_calls=[ToolCall(name="lookup", arguments={"key": "a"})])
>>> m.text, m.tool_calls[0].name
('Let me look.', 'lookup')
>>> Message.model_validate_json(m.model_dump_json()) == m
True
"""

from __future__ import annotations

import os
import random
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

Role = Literal["system", "user", "assistant", "tool"]


# Ids need to be unique, not secret: a generator seeded once from the OS is enough, and spares
# a system call per id (uuid4 reads os.urandom) on the rollout hot path.
_ids = random.Random(int.from_bytes(os.urandom(16), "big"))
os.register_at_fork(after_in_child=lambda: _ids.seed(int.from_bytes(os.urandom(16), "big")))


def new_id(prefix: str = "") -> str:
    return f"{prefix}{_ids.getrandbits(64):016x}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- message content -------------------------------------------------------------------------


class TextPart(_Model):
    type: Literal["text"] = "text"
    text: str


class ImagePart(_Model):
    """An image, inline as base64 (``data``) or by URL. Screenshots of GUI envs use ``data``."""

    type: Literal["image"] = "image"
    data: str | None = None
    url: str | None = None
    mime_type: str = "image/png"
    width: int | None = None
    height: int | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImagePart:
        if (self.data is None) == (self.url is None):
            raise ValueError("ImagePart needs exactly one of `data` (base64) or `url`")
        return self


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ToolCall(_Model):
    """A call the model asked for. ``arguments`` is the decoded JSON object.

    A call the model botched (text that does not parse, arguments that are not a JSON object)
    is still a ToolCall, with ``error`` saying what is wrong and ``raw`` holding what the model
    wrote: the env answers it with an error observation instead of running anything.
    """

    id: str = Field(default_factory=lambda: new_id("call_"))
    name: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    error: str | None = None
    raw: str | None = None


class Generation(_Model):
    """The exact tokens a policy sampled for one assistant message.

    ``completion_ids`` include the stop token the policy emitted (if any); ``logprobs`` are the
    sampler's logprobs of exactly those tokens. ``prompt_ids`` is what the policy was conditioned
    on. These are kept as sampled: they are never rebuilt by re-tokenising the message text.
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float] | None = None
    finish_reason: str | None = None
    policy_version: int | None = None
    # Set when a server's text differs from what these ids decode to (the ids are kept).
    text_mismatch: str | None = None

    @model_validator(mode="after")
    def _lengths(self) -> Generation:
        if self.logprobs is not None and len(self.logprobs) != len(self.completion_ids):
            raise ValueError(
                f"logprobs has {len(self.logprobs)} entries for {len(self.completion_ids)} completion ids"
            )
        return self


class Message(_Model):
    role: Role
    content: str | list[ContentPart] = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    reasoning: str | None = None
    generation: Generation | None = None

    @property
    def text(self) -> str:
        """The text content, with image parts left out."""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> list[ImagePart]:
        if isinstance(self.content, str):
            return []
        return [p for p in self.content if isinstance(p, ImagePart)]

    @classmethod
    def system(cls, text: str) -> Message:
        return cls(role="system", content=text)

    @classmethod
    def user(cls, content: str | list[ContentPart]) -> Message:
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, text: str = "", *, tool_calls: list[ToolCall] | None = None,
                  reasoning: str | None = None, generation: Generation | None = None) -> Message:
        return cls(role="assistant", content=text, tool_calls=tool_calls or [],
                   reasoning=reasoning, generation=generation)

    @classmethod
    def tool(cls, content: str | list[ContentPart], *, tool_call_id: str, name: str) -> Message:
        return cls(role="tool", content=content, tool_call_id=tool_call_id, name=name)


# --- tools -----------------------------------------------------------------------------------


class ToolSchema(_Model):
    """A tool as a model sees it, in OpenAI function-calling terms."""

    name: str
    description: str = ""
    parameters: dict[str, JsonValue] = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description,
                         "parameters": self.parameters},
        }


class ToolResult(_Model):
    """What running one ToolCall gave. ``is_error`` results are shown to the model too."""

    call_id: str
    name: str
    content: str | list[ContentPart]
    is_error: bool = False
    error_kind: Literal["format", "unknown_tool", "arguments", "raised", "timeout", "infra"] | None = None
    reward: float | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    duration_s: float = 0.0


# --- tasks and episodes ----------------------------------------------------------------------


class Task(_Model):
    """One problem instance. ``data`` is the env's own payload; each env validates it
    into its own typed model when it resets."""

    id: str
    prompt: str | list[Message] = ""
    answer: JsonValue = None
    data: dict[str, JsonValue] = Field(default_factory=dict)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    def initial_messages(self) -> list[Message]:
        if isinstance(self.prompt, str):
            return [Message.user(self.prompt)] if self.prompt else []
        return list(self.prompt)


class InfraError(RuntimeError):
    """A failure of the machinery (policy endpoint, sandbox, database, user simulator), never
    the agent's fault. An episode that hits one is marked ``infra_error`` and kept out of
    training."""


class Timings(_Model):
    model_s: float = 0.0
    tools_s: float = 0.0
    user_s: float = 0.0
    reward_s: float = 0.0
    total_s: float = 0.0

    def __add__(self, other: Timings) -> Timings:
        return Timings(**{k: getattr(self, k) + getattr(other, k) for k in type(self).model_fields})


class Step(_Model):
    """One env step: the assistant's action and everything the env answered with."""

    index: int
    action: Message
    observations: list[Message] = Field(default_factory=list)
    tool_results: list[ToolResult] = Field(default_factory=list)
    reward: float = 0.0
    done: bool = False
    format_errors: int = 0
    info: dict[str, JsonValue] = Field(default_factory=dict)
    timings: Timings = Field(default_factory=Timings)


class TokenView(_Model):
    """A token-exact view of (part of) a conversation, ready for training.

    ``mask[i]`` is 1 exactly on tokens the policy sampled; ``logprobs[i]`` is the sampler's
    logprob there and 0.0 elsewhere. A trajectory whose chat template rewrites history is split
    into several TokenViews, each prefix-consistent: each is a sequence the model really saw.
    """

    ids: list[int]
    mask: list[int]
    logprobs: list[float]
    # Index in ``ids`` where the first prompt ends (the conditioning context).
    prompt_len: int = 0
    # Per token: which assistant turn produced it (-1 for prompt/observation tokens).
    turn: list[int] = Field(default_factory=list)
    policy_versions: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _aligned(self) -> TokenView:
        n = len(self.ids)
        if len(self.mask) != n or len(self.logprobs) != n:
            raise ValueError(f"TokenView lengths differ: ids={n} mask={len(self.mask)} "
                             f"logprobs={len(self.logprobs)}")
        if self.turn and len(self.turn) != n:
            raise ValueError(f"TokenView.turn has {len(self.turn)} entries for {n} ids")
        if any(m not in (0, 1) for m in self.mask):
            raise ValueError("TokenView.mask must hold only 0 and 1")
        return self

    @property
    def num_trained_tokens(self) -> int:
        return sum(self.mask)


class RewardResult(_Model):
    """A reward for one trajectory.

    ``failed`` means the reward could not be computed (a judge that answered garbage, say): the
    trajectory is then left out of its group, never scored 0.
    """

    total: float = 0.0
    components: dict[str, float] = Field(default_factory=dict)
    per_step: list[float] = Field(default_factory=list)
    per_turn: list[float] = Field(default_factory=list)
    success: bool | None = None
    failed: bool = False
    error: str | None = None
    info: dict[str, JsonValue] = Field(default_factory=dict)


class Status(str, Enum):
    """How an episode ended."""

    COMPLETED = "completed"        # the env said done
    MAX_TURNS = "max_turns"        # the turn budget ran out
    TIMEOUT = "timeout"            # the per-episode wall-clock limit
    INFRA_ERROR = "infra_error"    # the policy endpoint, a sandbox or a user simulator failed
    CANCELLED = "cancelled"


class Usage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    format_errors: int = 0


class Trajectory(_Model):
    id: str = Field(default_factory=lambda: new_id("traj_"))
    task_id: str
    sample_index: int = 0
    env: str = ""
    messages: list[Message] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    token_views: list[TokenView] = Field(default_factory=list)
    reward: RewardResult | None = None
    status: Status = Status.COMPLETED
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    timings: Timings = Field(default_factory=Timings)
    final_answer: str | None = None
    info: dict[str, JsonValue] = Field(default_factory=dict)
    seed: int | None = None
    # Why this trajectory can only be evaluated, never trained on (a turn without its exact
    # tokens: an API that returns none); trainers refuse it.
    eval_only: str | None = None

    @property
    def num_turns(self) -> int:
        return len(self.steps)

    # In JSON, each observation is written once: in ``messages``. A step's observations (and
    # its tool results' content, where it is the observation's) are read back from there.
    @model_serializer(mode="wrap")
    def _observations_once(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if info.mode_is_json() and isinstance(data, dict) and "messages" in data and "steps" in data:
            _fold_observations(data)
        return data

    @model_validator(mode="before")
    @classmethod
    def _unfold_observations(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get(_FOLDED):
            data = dict(data)
            data.pop(_FOLDED)
            data["steps"] = _unfold(data.get("messages") or [], data.get("steps") or [])
        return data

    @property
    def trainable(self) -> bool:
        """Whether this trajectory may be trained on: not an infra failure, reward computed."""
        return (self.status is not Status.INFRA_ERROR and self.status is not Status.CANCELLED
                and self.reward is not None and not self.reward.failed)

    @property
    def success(self) -> bool:
        return bool(self.reward is not None and self.reward.success)


_FOLDED = "observations_in_messages"


def _step_spans(messages: list[Any], steps: list[Any], key: str) -> list[int] | None:
    """Where each step's observations start in ``messages`` (after its action), or None when the
    messages are not the initial ones followed by each step's action and observations."""
    n_obs = [len(s.get(key) or []) if isinstance(s.get(key), list) else s.get(key, 0) for s in steps]
    pos = len(messages) - sum(1 + n for n in n_obs)
    if pos < 0:
        return None
    starts = []
    for n in n_obs:
        starts.append(pos + 1)
        pos += 1 + n
    return starts


def _fold_observations(data: dict[str, Any]) -> None:
    messages, steps = data["messages"], data["steps"]
    if not steps:
        return
    starts = _step_spans(messages, steps, "observations")
    if starts is None:
        return
    for start, step in zip(starts, steps, strict=True):
        obs = step.get("observations") or []
        if messages[start:start + len(obs)] != obs:
            return
    for step in steps:
        obs = step.pop("observations", None) or []
        step["observations"] = len(obs)
        by_id = {o.get("tool_call_id"): o.get("content") for o in obs if o.get("role") == "tool"}
        for r in step.get("tool_results") or []:
            if r.get("call_id") in by_id and by_id[r["call_id"]] == r.get("content"):
                del r["content"]
    data[_FOLDED] = True


def _unfold(messages: list[Any], steps: list[Any]) -> list[Any]:
    starts = _step_spans(messages, steps, "observations")
    if starts is None:
        raise ValueError("a trajectory's steps do not match its messages")
    out = []
    for start, step in zip(starts, steps, strict=True):
        step = dict(step)
        obs = messages[start:start + int(step.get("observations") or 0)]
        step["observations"] = obs
        by_id = {}
        for o in obs:
            role = o.get("role") if isinstance(o, dict) else getattr(o, "role", None)
            if role == "tool":
                call_id = o.get("tool_call_id") if isinstance(o, dict) else o.tool_call_id
                by_id[call_id] = o.get("content") if isinstance(o, dict) else o.content
        step["tool_results"] = [r if "content" in r else {**r, "content": by_id[r.get("call_id")]}
                                for r in step.get("tool_results") or []]
        out.append(step)
    return out
