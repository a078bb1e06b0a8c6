"""Per-turn scores on veRL's legacy agent-loop worker.

veRL's V1 worker builds each row from ``AgentLoopOutput.as_dict``, which
TrajectAgentLoopOutput extends; the legacy ``AgentLoopWorker`` (and the one-step-off trainer,
which uses it) assembles the batch in ``_postprocess`` and puts one score per row on its last
token. TrajectAgentLoopWorker lets that happen, then writes each row's per-turn scores
(``extra_fields["traject_token_scores"]``) into ``rm_scores`` instead. veRL selects it through
its documented ``actor_rollout_ref.rollout.agent.agent_loop_manager_class`` setting, which
names TrajectAgentLoopManager.
"""

from __future__ import annotations

from typing import Any

from traject.trainers.verl._require import require_verl

require_verl("verl.experimental.agent_loop")

import ray  # noqa: E402
from verl.experimental.agent_loop.agent_loop import AgentLoopManager, AgentLoopWorker  # noqa: E402

from traject.trainers.verl.agent_loop import token_scores_row  # noqa: E402
from traject.trainers.verl.output import TOKEN_SCORES  # noqa: E402


class TrajectAgentLoopWorker(AgentLoopWorker):
    def _postprocess(self, inputs: list[Any], *args: Any, **kwargs: Any) -> Any:
        out = super()._postprocess(inputs, *args, **kwargs)
        if "rm_scores" not in out.batch.keys():
            return out
        rm = out.batch["rm_scores"]
        for i, item in enumerate(inputs):
            scores = item.extra_fields.get(TOKEN_SCORES)
            if scores is not None:
                rm[i] = token_scores_row(scores, rm.shape[1]).to(rm.dtype)
        return out


class TrajectAgentLoopManager(AgentLoopManager):
    agent_loop_workers_class = ray.remote(TrajectAgentLoopWorker)
