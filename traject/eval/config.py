"""What an eval run is: env, tasks, policy, sampling and limits. Recorded in the run directory
(``config.json``) so that a run can be resumed and reproduced.

A config may come from a JSON or YAML file (``traject eval --config FILE``); an error names the
file, the field and, for syntax errors, the line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator


class ConfigError(ValueError):
    """A malformed config or task file; the message names the file, the line or field, and the fix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyConfig(_Model):
    """Which policy answers. ``kind`` picks a factory (see ``traject.eval.policies``):

    * ``openai``: an OpenAI-compatible endpoint (``base_url``, ``model``, ``tool_format``);
    * ``scripted``: ``target`` is ``module:attribute``, a Policy, a Policy factory, a list of
      Messages or a function (messages, tools) -> Message;
    * ``hf``: ``target`` is a local model path (needs the HF policy);
    * any kind registered under the ``traject.policies`` entry-point group.
    """

    kind: str = "openai"
    target: str | None = None
    model: str | None = None
    base_url: str | None = None
    tool_format: str | None = None
    temperature: float = 1.0
    max_tokens: int | None = 1024
    # The name of the environment variable holding the API key: the key itself is never recorded.
    api_key_env: str = "OPENAI_API_KEY"
    max_retries: int = 4
    request_timeout_s: float = 120.0
    options: dict[str, JsonValue] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """A short name for tables and plots."""
        if self.kind == "openai":
            return self.model or "openai"
        return f"{self.kind}:{self.target}" if self.target else self.kind

    @classmethod
    def parse_spec(cls, spec: str, **fields: Any) -> PolicyConfig:
        """``openai``, ``scripted:pkg.mod:fn``, ``hf:/path/to/model`` or ``KIND:TARGET``."""
        kind, _, target = spec.partition(":")
        if not kind:
            raise ConfigError(f"--policy {spec!r}: expected KIND or KIND:TARGET, e.g. 'openai', "
                              "'scripted:my_pkg.agents:solve', 'hf:/models/tiny'")
        return cls(kind=kind, target=target or None, **fields)


class TaskSource(_Model):
    """Tasks from a JSONL file of Task records (``file``), or from the env's own source
    (``split`` None: the env's own default split)."""

    file: str | None = None
    split: str | None = None
    n: int | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _positive(self) -> TaskSource:
        if self.n is not None and self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}")
        return self


class Pricing(_Model):
    """Prices in US dollars per million tokens, for the cost estimate."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1e6


class EvalConfig(_Model):
    env: str
    env_config: dict[str, JsonValue] = Field(default_factory=dict)
    tasks: TaskSource = Field(default_factory=TaskSource)
    policy: PolicyConfig
    samples: int = 1
    concurrency: int = 16
    seed: int = 0
    episode_timeout_s: float | None = None
    retry_infra: bool = False
    pricing: Pricing | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _limits(self) -> EvalConfig:
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.env}/{self.policy.label}"

    def identity(self) -> dict[str, Any]:
        """The fields that define which trajectories a run holds; a resumed run must keep them.
        Where the model is served (URL, key, timeouts) is not one of them; the model name and
        the sampling settings are."""
        data = self.model_dump(mode="json", include={"env", "env_config", "tasks", "policy", "samples", "seed"})
        for key in POLICY_RUNTIME_FIELDS:
            data["policy"].pop(key, None)
        return data

    def with_runtime_of(self, other: EvalConfig) -> EvalConfig:
        """This config with ``other``'s runtime fields (a resumed run's new endpoint, concurrency...)."""
        policy = self.policy.model_copy(update={k: getattr(other.policy, k) for k in POLICY_RUNTIME_FIELDS})
        return self.model_copy(update={**{k: getattr(other, k) for k in RUNTIME_FIELDS}, "policy": policy})


#: Fields a resumed run may change: how fast it runs, not what it measures.
RUNTIME_FIELDS = frozenset({"concurrency", "retry_infra", "episode_timeout_s", "pricing", "name"})
#: The policy's fields a resumed run may change: where the model is served, not which model.
POLICY_RUNTIME_FIELDS = frozenset({"base_url", "api_key_env", "max_retries", "request_timeout_s"})


_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none", "tuple"})


def field_path(loc: tuple[object, ...]) -> str:
    """A pydantic error location as a field path, without the tags pydantic adds for the
    members of a union (``prompt.str``, ``prompt.list[...]``)."""
    parts = []
    for x in loc:
        s = str(x)
        if s in _TAGS or "[" in s or s.startswith("function-"):
            break
        parts.append(s)
    return ".".join(parts)


def format_validation_error(err: ValidationError, where: str) -> str:
    lines: list[str] = []
    for e in err.errors():
        loc = field_path(e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown field '{loc}' (check its spelling)")
        elif e["type"] == "missing":
            lines.append(f"{where}: missing required field '{loc}'")
        else:
            lines.append(f"{where}: field '{loc}': {e['msg']} (got {e.get('input')!r})")
    return "\n".join(dict.fromkeys(lines))


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML config file into a dict (validated later, once flags are merged)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of fields, got {type(data).__name__}")
    return data


def validate_config(data: dict[str, Any], where: str) -> EvalConfig:
    try:
        return EvalConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, where)) from None
