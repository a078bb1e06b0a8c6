"""The training config: a YAML file validated by pydantic, with ``--set key=value`` overrides.

Sections: ``model``, ``algorithm``, ``rollout``, ``env``, ``optim``, ``trainer``, ``sft``,
``eval``; ``backend`` picks the learner (``local``, the built-in one, by default). A backend
adds its own section by calling :func:`register_backend_section` (the veRL backend adds
``verl``), so this module never has to know every backend.

A bad config raises :class:`ConfigError`, whose message names the file, the field and the
fix::

    train.yaml: algorithm.clip_high: Input should be a valid number (got 'wide').
      Fix: set algorithm.clip_high to a number, e.g. 0.28.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from collections.abc import Callable
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator, model_validator

from traject.trainers.algorithms.losses import AggMode, KLKind

__all__ = [
    "AlgorithmConfig",
    "ConfigError",
    "EnvConfig",
    "EvalConfig",
    "ModelConfig",
    "OptimConfig",
    "RolloutConfig",
    "SFTConfig",
    "TrainConfig",
    "TrainerConfig",
    "apply_overrides",
    "load_config",
    "register_backend_section",
]


class ConfigError(ValueError):
    """A config that cannot be used; the message says where and how to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TinyModelConfig(_Section):
    """A tiny causal LM and tokenizer built locally (no download), by
    :func:`traject.agents.hf.build_tiny_model`; unset fields keep its defaults."""

    seed: int | None = None
    template: str | None = None
    vocab_size: int | None = Field(None, ge=64)
    hidden_size: int | None = Field(None, ge=8)
    intermediate_size: int | None = Field(None, ge=8)
    num_layers: int | None = Field(None, ge=1)
    num_heads: int | None = Field(None, ge=1)
    num_kv_heads: int | None = Field(None, ge=1)
    max_position_embeddings: int | None = Field(None, ge=16)
    corpus_tasks: int | None = Field(None, ge=1)

    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class ModelConfig(_Section):
    path: str | None = Field(None, description="A local HF model directory (weights + tokenizer).")
    tiny: TinyModelConfig | None = Field(None, description="Build a tiny model locally instead of loading one.")
    tokenizer: str | None = Field(None, description="Tokenizer directory if it differs from `path`.")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1 ...")
    max_seq_len: int = Field(2048, ge=16, description="Longer training sequences are cut (and counted).")
    tool_format: str = "hermes"
    chat_template: str | None = Field(None, description="Override the tokenizer's chat template: a name "
                                      "(compact, hermes, qwen3) or a .jinja file.")
    gradient_checkpointing: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if self.path is None and self.tiny is None:
            raise ValueError("give either model.path (a local HF model directory) or model.tiny "
                             "(build a tiny model locally)")
        return self


AdvantageName = Literal["grpo", "dr_grpo", "rloo", "reinforce_pp", "turn", "gae"]
PolicyLossName = Literal["ppo_clip"]
TrainerMode = Literal["sync", "one_step_off", "fully_async"]


class AlgorithmConfig(_Section):
    advantage: AdvantageName = Field("grpo", description="gae needs a value model (critic): veRL engine only.")
    policy_loss: PolicyLossName = "ppo_clip"
    norm_by_std: bool | None = Field(None, description="Divide by the group std (default: yes for grpo, no for dr_grpo and turn).")
    turn_min_count: int = Field(2, ge=1, description="turn mode: fewer members reaching a turn -> advantage 0.")
    turn_reward_to_go: bool = False
    turn_rewards: Literal["per_turn", "per_step"] = "per_turn"
    clip_low: float = Field(0.2, ge=0.0, lt=1.0)
    clip_high: float = Field(0.28, ge=0.0)
    dual_clip: float | None = Field(None, gt=1.0)
    loss_agg: AggMode = "token-mean"
    loss_norm_length: int | None = Field(None, gt=0, description="For seq-mean-token-sum-norm.")
    kl_coef: float = Field(0.0, ge=0.0)
    kl_kind: KLKind = "k3"
    track_ref_kl: bool = Field(False, description="Measure the KL to the reference (the policy RL started from) "
                               "as a metric even when kl_coef is 0 (costs a no-grad forward per step).")
    entropy_coef: float = 0.0
    tis_cap: float | None = Field(None, gt=0.0, description="Truncated importance sampling against the sampler's logprobs.")
    old_logprobs: Literal["auto", "recompute", "sampler"] = Field(
        "auto", description="PPO's pi_old: recomputed by the trainer, or the sampler's. auto: the trainer's own "
        "current logprobs (no extra pass) when each batch makes one update, else recompute.")
    ppo_epochs: int = Field(1, ge=1)
    mini_batches: int = Field(1, ge=1, description="Optimizer steps per epoch over the step's batch.")
    skip_zero_advantage: bool = Field(True, description="Leave out sequences whose advantages are all 0.")

    @model_validator(mode="after")
    def _consistent(self) -> AlgorithmConfig:
        if self.loss_agg == "seq-mean-token-sum-norm" and self.loss_norm_length is None:
            raise ValueError("loss_agg seq-mean-token-sum-norm needs algorithm.loss_norm_length "
                             "(e.g. the longest response you expect, in tokens)")
        return self

    @property
    def divide_by_std(self) -> bool:
        if self.norm_by_std is not None:
            return self.norm_by_std
        return self.advantage == "grpo"


class RolloutConfig(_Section):
    group_size: int = Field(8, ge=1)
    tasks_per_step: int = Field(8, ge=1)
    concurrency: int = Field(64, ge=1)
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(128, ge=1)
    episode_timeout_s: float | None = Field(None, gt=0)
    mode: Literal["sync", "async"] = Field("sync", description="sync: generate a batch, then train on it. async: "
                                           "keep generating while training (off-policy, see max_off_policy_steps).")
    max_off_policy_steps: int = Field(1, ge=0, description="async: train on a group only if its oldest turn was "
                                      "sampled at most this many updates ago.")
    on_stale: Literal["requeue", "drop"] = Field("requeue", description="async: what happens to a group beyond "
                                                 "max_off_policy_steps (counted either way).")
    server_url: str | None = Field(None, description="Sample through this server's OpenAI API (traject serve, "
                                   "SGLang; e.g. http://127.0.0.1:8000/v1), token in/token out; the weights go to "
                                   "its /update_weights_from_disk after every step.")
    ray: str | None = Field(None, description="Run the training episodes in Ray actors across a cluster's nodes: "
                            "'auto' (RAY_ADDRESS or this machine's `ray start` cluster), 'local' (a Ray of this "
                            "process), or the cluster's address (HOST:PORT, ray://...). The actors sample through "
                            "server_url, or else through a server the trainer starts on serve_host.")
    serve_host: str = Field("127.0.0.1", description="rollout.ray without server_url: the address the trainer "
                            "serves its sampling policy on. Actors on other machines need one they can reach "
                            "(this machine's address on the cluster's network).")

    @field_validator("ray")
    @classmethod
    def _ray_address(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("give 'auto', 'local' or the cluster's address (HOST:PORT or ray://HOST:PORT), "
                             "or leave rollout.ray unset")
        return v


class EnvConfig(_Section):
    name: str = "lookup"
    config: dict[str, JsonValue] = Field(default_factory=dict, description="Arguments of the env's factory.")
    tasks: dict[str, JsonValue] = Field(default_factory=lambda: {"split": "train", "n": 1000},
                                        description="Arguments of the env's task source (split, n, seed, ...).")
    tasks_path: str | None = Field(None, description="A JSONL of tasks instead of the env's task source.")
    group_reward: str | None = Field(None, description="A GroupReward scoring each task's G samples together: "
                                     "'package.module:attribute' (a class or factory, called with group_reward_args).")
    group_reward_args: dict[str, JsonValue] = Field(default_factory=dict)


class EvalConfig(_Section):
    tasks: dict[str, JsonValue] = Field(default_factory=lambda: {"split": "test", "n": 50})
    tasks_path: str | None = None
    every: int = Field(0, ge=0, description="Evaluate every N steps (0: only before and after).")
    temperature: float = Field(0.0, ge=0.0, description="0 is greedy.")
    samples: int = Field(1, ge=1)


class OptimConfig(_Section):
    lr: float = Field(1e-5, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    grad_clip: float | None = Field(1.0, gt=0.0)
    micro_batch_tokens: int = Field(16384, ge=16, description="Padded tokens per forward/backward.")
    micro_batch_seqs: int | None = Field(None, ge=1)
    packing: Literal["auto", "on", "off"] = "auto"


class SFTConfig(_Section):
    """Supervised warm start before RL (loss on assistant tokens only)."""

    enabled: bool = False
    source: Literal["scripted", "jsonl"] = "scripted"
    script: str | None = Field(None, description="module:function giving a ScriptedPolicy script, for source=scripted.")
    script_args: dict[str, JsonValue] = Field(default_factory=dict, description="If set, `script` is a factory "
                                              "called with these arguments to make the script.")
    only_successful: bool = Field(False, description="Keep only demonstrations whose reward says success.")
    tasks_path: str | None = None
    path: str | None = Field(None, description="JSONL of OpenAI-format conversations, for source=jsonl.")
    tasks: dict[str, JsonValue] = Field(default_factory=lambda: {"split": "train", "n": 200})
    epochs: float = Field(1.0, gt=0.0)
    steps: int | None = Field(None, ge=1, description="Optimizer steps; when set, used instead of `epochs` "
                              "(equal compute for SFT runs on data sets of different sizes).")
    lr: float = Field(1e-3, gt=0.0)
    batch_size: int = Field(16, ge=1)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "linear", "cosine"] = Field("constant", description="LR decay after warmup.")
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0, description="linear/cosine: the LR decays to lr x this.")

    @model_validator(mode="after")
    def _source(self) -> SFTConfig:
        if self.enabled and self.source == "jsonl" and not self.path:
            raise ValueError("sft.source is jsonl: set sft.path to a JSONL of chat conversations")
        if self.enabled and self.source == "scripted" and not self.script:
            raise ValueError("sft.source is scripted: set sft.script to 'module:function', a script for "
                             "ScriptedPolicy (e.g. traject.environments.builtin.lookup:solve)")
        return self


class TrainerConfig(_Section):
    steps: int = Field(50, ge=0)
    mode: TrainerMode = Field("sync", description="sync: rollout then update. one_step_off / fully_async: "
                              "veRL's asynchronous trainers (verl engine only).")
    seed: int = 0
    out_dir: str = "runs/train"
    checkpoint_every: int = Field(0, ge=0, description="0: only at the end.")
    keep_checkpoints: int = Field(2, ge=1)
    resume: bool = Field(True, description="Resume from the latest checkpoint in out_dir if there is one.")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (default: the cores available).")
    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "traject"
    save_trajectories: bool = True


_BACKEND_SECTIONS: dict[str, type[BaseModel]] = {}
#: Per engine: a function listing what of a validated config that engine cannot honour, as
#: (field, reason, fix) triples. The config is refused with one line per problem.
EngineCheck = Callable[["TrainConfig"], list[tuple[str, str, str]]]
_ENGINE_CHECKS: dict[str, EngineCheck] = {}


def register_backend_section(name: str, model: type[BaseModel], check: EngineCheck | None = None) -> None:
    """Let a backend own a top-level config section, validated by ``model``; ``check`` lists
    the settings of the shared sections that this engine cannot honour."""
    _BACKEND_SECTIONS[name] = model
    if check is not None:
        _ENGINE_CHECKS[name] = check


def explicitly_set(section: BaseModel, name: str) -> bool:
    """Whether the user wrote ``name`` in this section (defaults an engine does not use are
    not refused; values the user asked for are)."""
    return name in section.model_fields_set


def _local_check(cfg: TrainConfig) -> list[tuple[str, str, str]]:
    out = []
    if cfg.trainer.mode != "sync":
        out.append(("trainer.mode", f"{cfg.trainer.mode} is one of veRL's asynchronous trainers; the local "
                    "engine trains synchronously", "set backend: verl, or trainer.mode: sync"))
    if cfg.algorithm.advantage == "gae":
        out.append(("algorithm.advantage", "gae needs a value model (critic), which the verl engine trains and "
                    "the local engine does not have", "set backend: verl, or advantage: grpo (or rloo, ...)"))
    return out


_ENGINE_CHECKS["local"] = _local_check


def _shared_check(cfg: TrainConfig) -> list[tuple[str, str, str]]:
    out = []
    if cfg.env.group_reward and cfg.rollout.group_size < 2:
        out.append(("rollout.group_size", f"env.group_reward ({cfg.env.group_reward}) scores the G samples of "
                    "a task against each other, and a group of 1 has nothing to compare",
                    "set rollout.group_size to 2 or more, or remove env.group_reward"))
    if cfg.env.group_reward and cfg.algorithm.advantage == "turn":
        out.append(("env.group_reward", "the turn estimator trains on per-turn rewards, and a group reward "
                    "scores whole trajectories, so it would count for nothing",
                    "use a sequence-level estimator (algorithm.advantage: grpo, rloo, ...), or remove env.group_reward"))
    return out


def engine_problems(cfg: TrainConfig) -> list[tuple[str, str, str]]:
    """What of ``cfg`` its engine (``cfg.backend``) cannot honour."""
    check = _ENGINE_CHECKS.get(cfg.backend)
    return _shared_check(cfg) + (check(cfg) if check is not None else [])


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    backend: str = "local"
    model: ModelConfig
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        known = {"local", *_BACKEND_SECTIONS}
        if v not in known:
            raise ValueError(f"unknown backend {v!r}; use one of {', '.join(sorted(known))}")
        return v

    @model_validator(mode="after")
    def _backend_sections(self) -> TrainConfig:
        for key, value in list((self.model_extra or {}).items()):
            section = _BACKEND_SECTIONS.get(key)
            if section is None:
                raise ValueError(f"unknown section {key!r}")
            if not isinstance(value, section):
                raise ValueError(f"section {key!r} must be validated by config_from_dict")
        return self

    def section(self, name: str) -> BaseModel | None:
        """A backend's own section (e.g. ``verl``), or None if the config has none."""
        return (self.model_extra or {}).get(name)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# --- loading, overrides, errors ---------------------------------------------------------------


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML: numbers, booleans, lists)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set optim.lr=1e-4")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set {item!r}: the key is empty")
        node = data
        for p in parts[:-1]:
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[:parts.index(p) + 1])} is not a section")
            node = child
        node[parts[-1]] = _parse_value(raw)
    return data


def _fields_of(loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at the parent of ``loc``."""
    model: Any = TrainConfig
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            return []
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            model = _BACKEND_SECTIONS.get(part) if model is TrainConfig else None
            continue
        ann = field.annotation
        model = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    if model is None:
        return []
    names = list(getattr(model, "model_fields", {}))
    if model is TrainConfig:
        names += list(_BACKEND_SECTIONS)
    return names


def _fix_for(err: dict[str, Any], where: str) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    loc = tuple(err.get("loc", ()))
    if kind == "extra_forbidden" or (kind == "value_error" and "unknown section" in err.get("msg", "")):
        name = str(loc[-1]) if loc and kind == "extra_forbidden" else str(err.get("input", ""))
        options = _fields_of(loc) if kind == "extra_forbidden" else list(TrainConfig.model_fields) + list(_BACKEND_SECTIONS)
        close = difflib.get_close_matches(name, options, n=1)
        if close:
            return f"did you mean {close[0]!r}? Rename it (valid names here: {', '.join(options)})"
        return f"remove it; the valid names here are: {', '.join(options)}"
    if kind == "literal_error":
        return f"set {where} to one of {ctx.get('expected', '')}"
    if kind == "missing" and loc == ("model",):
        return ("add a model section with model.path (a local HF model directory) or model.tiny "
                "(a tiny model built locally)")
    if kind == "missing":
        return f"add {where} to the config"
    if kind in ("float_parsing", "float_type"):
        return f"set {where} to a number"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"set {where} to a whole number"
    if kind in ("bool_parsing", "bool_type"):
        return f"set {where} to true or false"
    if kind.startswith(("greater_than", "less_than")):
        ops = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
        return f"set {where} to a value {' and '.join(f'{ops.get(k, k)} {v}' for k, v in ctx.items())}"
    if kind in ("model_type", "dict_type"):
        return f"{where} must be a mapping of fields (a YAML section)"
    return f"correct {where}"


def format_validation_error(exc: ValidationError, source: str, prefix: tuple[str, ...] = ()) -> str:
    lines = []
    for err in exc.errors():
        loc = prefix + tuple(err.get("loc", ()))
        err = {**err, "loc": loc}
        where = ".".join(str(p) for p in loc) or "(top level)"
        msg = err.get("msg", "invalid")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        got = err.get("input")
        got_txt = f" (got {got!r})" if err.get("type") != "missing" and not isinstance(got, dict) and got is not None else ""
        lines.append(f"{source}: {where}: {msg}{got_txt}.\n  Fix: {_fix_for(err, where)}.")
    return "\n".join(lines)


def off_policy_problem(cfg: TrainConfig) -> str | None:
    """Why an async config cannot train as it stands (no off-policy correction), or None."""
    if cfg.rollout.mode == "async" and cfg.algorithm.tis_cap is None and cfg.algorithm.old_logprobs != "sampler":
        return ("algorithm.tis_cap: rollout.mode async trains on samples from older weights, and nothing corrects "
                "for them.\n  Fix: set algorithm.tis_cap to a number, e.g. 2.0 (truncated importance sampling "
                "against the sampler's logprobs).")
    return None


def config_from_dict(data: dict[str, Any], *, source: str = "<config>") -> TrainConfig:
    if "backend" in data and data["backend"] not in ("local", *_BACKEND_SECTIONS):
        # A backend registers its section on import: give it the chance before validating.
        _import_backend(str(data["backend"]))
    data = dict(data)
    errors: list[str] = []
    for key in [k for k in data if k not in TrainConfig.model_fields]:
        if key not in _BACKEND_SECTIONS:
            _import_backend(key)  # a backend's own section (e.g. verl:) registers on import
        section = _BACKEND_SECTIONS.get(key)
        if section is None:
            options = list(TrainConfig.model_fields) + list(_BACKEND_SECTIONS)
            close = difflib.get_close_matches(key, options, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            errors.append(f"{source}: {key}: unknown section.\n  Fix: {hint}remove it; the sections are: "
                          f"{', '.join(options)}.")
            continue
        try:
            data[key] = section.model_validate(data[key] if data[key] is not None else {})
        except ValidationError as exc:
            errors.append(format_validation_error(exc, source, prefix=(key,)))
    if errors:
        raise ConfigError("\n".join(errors))
    try:
        cfg = TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    problems = engine_problems(cfg)
    if problems:
        raise ConfigError("\n".join(f"{source}: {field}: {why} (backend: {cfg.backend}).\n  Fix: {fix}."
                                    for field, why, fix in problems))
    problem = off_policy_problem(cfg)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    return cfg


def _import_backend(name: str) -> None:
    import importlib

    try:
        importlib.import_module(f"traject.trainers.{name}")
    except ImportError:
        pass


def load_config(path: str | Path, overrides: list[str] | None = None, *, backend: str | None = None) -> TrainConfig:
    """Read, override and validate a YAML config. Errors name the file, the field and the fix."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file. Fix: pass the path of a YAML training config "
                          "(see configs/ for examples).")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where}: not valid YAML: {getattr(exc, 'problem', exc)}. "
                          "Fix: correct the YAML syntax there.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (model:, algorithm:, ...), "
                          f"not {type(data).__name__}. Fix: write the config as YAML sections.")
    if overrides:
        data = apply_overrides(data, overrides)
    if backend is not None:
        data["backend"] = backend
    source = str(path) + (" (with --set overrides)" if overrides else "")
    return config_from_dict(data, source=source)
