"""TrajectAgentLoop: veRL's agent-loop extension point, running any traject Env.

Registered through the YAML at ``actor_rollout_ref.rollout.agent.agent_loop_config_path``
(see ``registration.py``); dataset rows exported by traject select it with
``agent_name: traject``. For each row veRL makes one instance and awaits ``run``, which:

1. rebuilds the traject Task from the row's ``extra_info``;
2. takes an Env from this worker process's pool (``traject.make(env, **config)`` once);
3. runs traject's AgentLoop with a VerlServerPolicy over ``server_manager.generate``: tools,
   sandboxes, simulated users and GUI observations all run inside the episode;
4. returns the trajectory's TokenView(s) as AgentLoopOutput(s) with the traject reward: the
   total on the last token, or (``turn_scores``, the turn estimator) each assistant turn's
   reward on that turn's last token, or (``defer_reward``, a GroupReward) no score, for the
   ``traject_group`` reward manager to give once the task's G samples are in.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from traject.trainers.verl._require import require_verl

require_verl("verl.experimental.agent_loop")

from omegaconf import DictConfig, ListConfig, OmegaConf  # noqa: E402
from verl.experimental.agent_loop.agent_loop import (  # noqa: E402
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
)

from traject.agents.loop import AgentLoop  # noqa: E402
from traject.episode import EpisodeInfo, episode_seed, reset_episode, set_episode  # noqa: E402
from traject.trainers.verl.dataset import task_from_row  # noqa: E402
from traject.trainers.verl.output import (  # noqa: E402
    TOKEN_SCORES,
    Conversion,
    Segment,
    convert,
    num_chat_turns,
    turn_token_scores,
)
from traject.trainers.verl.policy import VerlServerPolicy  # noqa: E402
from traject.trainers.verl.registration import AgentLoopSettings  # noqa: E402
from traject.trainers.verl.worker import worker_state  # noqa: E402
from traject.types import Status, Trajectory  # noqa: E402

log = logging.getLogger(__name__)


class ModelCannotSeeImages(ValueError):
    """An env sends images to a model without a multimodal processor: a config error."""


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


class TrajectAgentLoopOutput(AgentLoopOutput):
    """veRL's AgentLoopOutput whose ``rm_scores`` (veRL's token-level scores) carry the
    per-turn scores of ``extra_fields[TOKEN_SCORES]`` when there are any. veRL's V1 worker
    builds each row from ``as_dict``; the legacy worker from TrajectAgentLoopWorker."""

    def as_dict(self) -> dict[str, Any]:
        out = super().as_dict()
        scores = self.extra_fields.get(TOKEN_SCORES)
        if scores is not None and "rm_scores" in out:
            out["rm_scores"] = token_scores_row(scores, len(self.response_ids))
        return out


def token_scores_row(scores: list[list[float]], width: int) -> Any:
    """``[[position, value], ...]`` as a row of ``width`` token-level scores."""
    import torch

    row = torch.zeros(width, dtype=torch.float32)
    for pos, value in scores:
        if 0 <= int(pos) < width:
            row[int(pos)] += float(value)
    return row


class TrajectAgentLoop(AgentLoopBase):
    """Constructor arguments beyond veRL's come from the agent-loop YAML
    (:class:`~traject.trainers.verl.registration.AgentLoopSettings`)."""

    def __init__(self, *args: Any, env: str, env_configs: Any = None, tool_format: str = "hermes",
                 episode_timeout_s: float | None = None, max_steps: int = 1000, seed: int = 0,
                 store_dir: str | None = None, reward_components: Any = None, max_new_tokens: int | None = None,
                 turn_scores: bool = False, turn_rewards: str = "per_turn", defer_reward: bool = False,
                 name: str | None = None, tools: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # ``name`` and ``tools`` are veRL's registration name and its own (unused) tool list.
        self.settings = AgentLoopSettings(
            env=env, env_configs=_plain(env_configs) or {}, tool_format=tool_format,
            episode_timeout_s=episode_timeout_s, max_steps=max_steps, seed=seed, store_dir=store_dir,
            reward_components=_plain(reward_components), max_new_tokens=max_new_tokens,
            turn_scores=turn_scores, turn_rewards=turn_rewards, defer_reward=defer_reward)
        self.prompt_length = int(self.rollout_config.prompt_length)
        self.response_length = int(self.rollout_config.response_length)
        self.with_logprobs = bool(self.rollout_config.calculate_log_probs)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput | list[AgentLoopOutput]:
        extra_info = _plain(kwargs.get("extra_info")) or {}
        task = task_from_row(extra_info)
        env_name = extra_info.get("env") or self.settings.env
        env_config = dict(self.settings.env_configs.get(env_name, {}))
        self._env_name = env_name
        # veRL's V1 (TransferQueue) worker passes each of a prompt's n sessions its session_id
        # and accepts any number of outputs per session; the legacy worker needs exactly one.
        session_id = kwargs.get("session_id")
        sample_index = int(session_id) if session_id is not None else 0
        request_id = uuid.uuid4().hex
        generate_kwargs = {"priority": int(kwargs["priority"])} if "priority" in kwargs else {}
        server = self.server_manager
        if self.settings.max_new_tokens is not None:
            server = _TurnCap(server, self.settings.max_new_tokens)
        policy = VerlServerPolicy(
            server_manager=server, tokenizer=self.tokenizer, processor=self.processor,
            template_kwargs=_plain(self.apply_chat_template_kwargs) or {}, request_id=request_id,
            sampling_params=sampling_params, prompt_length=self.prompt_length,
            response_length=self.response_length, tool_format=self.settings.tool_format,
            prepare_images=self._prepare_images,
            generate_kwargs=generate_kwargs)
        state = worker_state()
        env = state.acquire(env_name, env_config)
        # Without a session id (legacy worker) the G samples of a task are told apart by chance.
        seed = (episode_seed(self.settings.seed, task.id, sample_index) if session_id is not None
                else int(uuid.UUID(request_id)) >> 65)
        token = set_episode(EpisodeInfo(request_id, task.id, sample_index, seed))
        traj: Trajectory | None = None
        try:
            loop = AgentLoop(policy, episode_timeout_s=self.settings.episode_timeout_s,
                             max_steps=self.settings.max_steps)
            traj = await loop.run(env, task, sample_index=sample_index, seed=seed)
        finally:
            reset_episode(token)
            state.release(env_name, env_config, env,
                          healthy=traj is not None and traj.status is not Status.INFRA_ERROR)
        if traj.error and traj.error.startswith(ModelCannotSeeImages.__name__):
            raise ModelCannotSeeImages(traj.error.split(": ", 1)[1])  # a config error: stop the run
        traj.info["verl_segments"] = policy.segments
        if self.settings.store_dir:
            await state.store(self.settings.store_dir).append(traj)
        conv = convert(traj, prompt_length=self.prompt_length, response_length=self.response_length,
                       components=self.settings.reward_components, uniform_keys=session_id is None)
        if not conv.trainable:
            log.warning("task %s: trajectory kept out of training (%s)", task.id, "; ".join(conv.reasons))
        outputs = self._outputs(traj, conv, policy)
        if session_id is not None and (outputs or not self.settings.defer_reward):
            return outputs  # V1: zero outputs drop the session; several carry several segments
        if not outputs:  # legacy, or a group reward that must hear of every sample
            return self._untrainable_output(traj, conv, policy)
        if len(outputs) > 1:
            log.warning("task %s: %d prefix-consistent segments; the legacy worker takes one output "
                        "per row, so only the last is trained", task.id, len(outputs))
            outputs[-1].extra_fields["traject_dropped_segments"] = len(outputs) - 1
        return outputs[-1]

    async def _prepare_images(self, images: list[Any]) -> list[Any]:
        try:
            self._assert_mm_supported(True)
        except ValueError as exc:
            raise ModelCannotSeeImages(
                f"env {self._env_name!r} shows the model images, but {self.config.actor_rollout_ref.model.path} "
                f"has no multimodal processor: train a vision-language model on it ({exc})") from exc
        info = await self.process_multi_modal_info(
            [{"role": "user", "content": [{"type": "image", "image": img} for img in images]}])
        return list(info.get("images") or images)

    def _extra(self, traj: Trajectory, conv: Conversion, policy: VerlServerPolicy) -> dict[str, Any]:
        extra = {
            "reward_extra_info": dict(conv.reward_info),
            "turn_scores": [s.reward for s in traj.steps],
            "tool_rewards": [r.reward for s in traj.steps for r in s.tool_results if r.reward is not None],
            "traject_status": traj.status.value,
            "traject_error": traj.error or "",
            "traject_task_id": traj.task_id,
            "traject_trajectory_id": traj.id,
            "traject_request_id": policy.request_id,
        }
        if self.settings.defer_reward:  # what the traject_group reward manager scores
            extra["traject_trajectory"] = traj.model_dump_json()
            extra["traject_trainable"] = conv.trainable
        return extra

    def _metrics(self, traj: Trajectory) -> AgentLoopMetrics:
        t = traj.timings
        return AgentLoopMetrics(generate_sequences=t.model_s, tool_calls=t.tools_s + t.user_s,
                                compute_score=t.reward_s)

    def _output(self, seg: Segment, traj: Trajectory, conv: Conversion, policy: VerlServerPolicy) -> AgentLoopOutput:
        extra = self._extra(traj, conv, policy)
        if self.settings.turn_scores:
            extra[TOKEN_SCORES] = turn_token_scores(traj, seg, self.settings.turn_rewards)
        return TrajectAgentLoopOutput(
            prompt_ids=seg.prompt_ids,
            response_ids=seg.response_ids,
            response_mask=seg.response_mask,
            response_logprobs=seg.response_logprobs if self.with_logprobs else None,
            multi_modal_data={"images": list(policy.images)} if policy.images else {},
            reward_score=None if self.settings.defer_reward else conv.reward,
            num_turns=num_chat_turns(traj),
            metrics=self._metrics(traj),
            extra_fields=extra,
        )

    def _outputs(self, traj: Trajectory, conv: Conversion, policy: VerlServerPolicy) -> list[AgentLoopOutput]:
        return [self._output(seg, traj, conv, policy) for seg in conv.segments]

    def _untrainable_output(self, traj: Trajectory, conv: Conversion, policy: VerlServerPolicy) -> AgentLoopOutput:
        """One row that trains nothing: every response token masked out."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        view = traj.token_views[0] if traj.token_views else None
        prompt = view.ids[: view.prompt_len][-self.prompt_length:] if view else [pad]
        return TrajectAgentLoopOutput(
            prompt_ids=prompt or [pad],
            response_ids=[pad],
            response_mask=[0],
            response_logprobs=[0.0] if self.with_logprobs else None,
            reward_score=None if self.settings.defer_reward else 0.0,
            num_turns=num_chat_turns(traj),
            metrics=self._metrics(traj),
            extra_fields=self._extra(traj, conv, policy),
        )


class _TurnCap:
    """The rollout server with each turn's ``max_tokens`` capped at ``rollout.max_new_tokens``."""

    def __init__(self, server: Any, cap: int) -> None:
        self._server = server
        self._cap = cap

    async def generate(self, *, sampling_params: dict[str, Any], **kwargs: Any) -> Any:
        params = dict(sampling_params)
        params["max_tokens"] = min(int(params.get("max_tokens") or self._cap), self._cap)
        return await self._server.generate(sampling_params=params, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)
