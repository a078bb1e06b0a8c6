"""The customer-service reward: tau2's rule, the product of the task's reward-basis components.

Basis components (``task.data["reward_basis"]``, from tau2's ``evaluation_criteria.reward_basis``):

* ``DB``: the database matches the gold database (the rewards library's ``DBStateMatch``, on the
  ``db_state_hash`` the env records and the state replayed from the task's gold actions);
* ``COMMUNICATE``: every ``communicate_info`` string appears in some agent message (tau2's check:
  lower case, commas removed, substring);
* ``ACTION``: every gold action of the agent is matched by one of its tool calls (tau2's
  ``compare_args`` rule);
* ``ENV_ASSERTION``: the task's env assertions held at the end (the env records them);
* ``NL_ASSERTION``: an LLM judge (the rewards library's ``LLMJudge``) finds each assertion met;
* ``CHECKLIST`` (traject's addition): the rewards library's CM2 ``ChecklistReward`` over the
  task's ``checklist``; its score enters the product as is.

Each component lands in ``components``; a component that cannot be computed (no judge given for
NL assertions, say) makes the reward ``failed``, never 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from traject.environments.customer_service.tau2_format import Action
from traject.rewards.base import Reward
from traject.types import RewardResult, Task, Trajectory

if TYPE_CHECKING:
    from traject.rewards.checklist import ChecklistReward
    from traject.rewards.judge import JudgeConfig, LLMJudge
    from traject.rewards.verifiers.db_state import DBStateMatch


class NLResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    assertion: str
    reasoning: str = ""
    met: bool


class NLVerdicts(BaseModel):
    model_config = ConfigDict(extra="ignore")

    results: list[NLResult]


NL_PROMPT = """\
You judge a customer-service conversation between an agent and a customer. For each expected outcome
below, decide from the conversation whether it was met. Answer with JSON:
{{"results": [{{"assertion": "<the outcome, verbatim>", "reasoning": "<short>", "met": true or false}}, ...]}}
with one entry per outcome, in the same order.

<conversation>
{conversation}
</conversation>

<expected_outcomes>
{assertions}
</expected_outcomes>"""


def agent_texts(traj: Trajectory) -> list[str]:
    return [m.text for m in traj.messages if m.role == "assistant" and m.text]


def communicate_met(traj: Trajectory, infos: list[str]) -> list[bool]:
    texts = [t.lower().replace(",", "") for t in agent_texts(traj)]
    return [any(info.lower() in t for t in texts) for info in infos]


def actions_met(traj: Trajectory, gold: list[Action]) -> list[bool]:
    calls = [(c.name, dict(c.arguments)) for s in traj.steps for c in s.action.tool_calls if c.error is None]
    return [any(a.matches(name, args) for name, args in calls) for a in gold if a.requestor == "assistant"]


def render_conversation(traj: Trajectory) -> str:
    lines = []
    for m in traj.messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            lines.append(f"tool ({m.name}): {m.text}")
            continue
        text = m.text
        if m.tool_calls:
            text += " " + " ".join(f"[calls {c.name}({c.arguments})]" for c in m.tool_calls)
        lines.append(f"{'agent' if m.role == 'assistant' else 'customer'}: {text.strip()}")
    return "\n".join(lines)


class CustomerServiceReward(Reward):
    name = "customer_service"

    def __init__(self, *, db: DBStateMatch | None = None, judge: LLMJudge | JudgeConfig | None = None,
                 checklist: ChecklistReward | None = None) -> None:
        from traject.rewards.judge import JudgeConfig, LLMJudge

        if db is None:
            from traject.environments.customer_service.tasks import replay_gold_state
            from traject.rewards.verifiers.db_state import DBStateMatch

            db = DBStateMatch(replay_gold=replay_gold_state)
        self.db = db
        self.judge = LLMJudge(judge) if isinstance(judge, JudgeConfig) else judge
        self.checklist = checklist

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        basis = task.data.get("reward_basis")
        if not isinstance(basis, list):
            return RewardResult(failed=True, error=f"task {task.id!r} has no data['reward_basis']")
        components: dict[str, float] = {}
        info: dict[str, Any] = {}
        for part in basis:
            result = await self._component(str(part), traj, task)
            if result.failed:
                return RewardResult(failed=True, error=f"{part}: {result.error}", info={"failed_term": str(part)})
            components[str(part)] = result.total
            if result.info:
                info[str(part)] = result.info
        total = 1.0
        for v in components.values():
            total *= v
        return RewardResult(total=total, components={self.name: total, **components}, success=total >= 1.0,
                            info=info)

    async def _component(self, part: str, traj: Trajectory, task: Task) -> RewardResult:
        data = task.data
        if part == "DB":
            return await self.db.score(traj, task)
        if part == "COMMUNICATE":
            infos = [str(x) for x in data.get("communicate_info") or []]
            met = communicate_met(traj, infos)
            return RewardResult(total=float(all(met)), info={"communicated": dict(zip(infos, met, strict=True))})
        if part == "ACTION":
            gold = [Action.model_validate(a) for a in data.get("gold_actions") or []]
            met = actions_met(traj, gold)
            return RewardResult(total=float(all(met)), info={"actions_matched": met})
        if part == "ENV_ASSERTION":
            for step in reversed(traj.steps):
                if "env_assertions" in step.info:
                    held = step.info["env_assertions"]
                    ok = isinstance(held, list) and all(bool(x) for x in held)
                    return RewardResult(total=float(ok), info={"env_assertions": held})
            return RewardResult(failed=True, error="no step recorded info['env_assertions']")
        if part == "NL_ASSERTION":
            return await self._nl(traj, [str(x) for x in data.get("nl_assertions") or []])
        if part == "CHECKLIST":
            if self.checklist is None:
                return RewardResult(failed=True, error="the task's basis has CHECKLIST but the reward has no "
                                    "checklist= (a traject.rewards.checklist.ChecklistReward)")
            return await self.checklist.score(traj, task)
        return RewardResult(failed=True, error=f"unknown reward basis {part!r}")

    async def _nl(self, traj: Trajectory, assertions: list[str]) -> RewardResult:
        if not assertions:
            return RewardResult(total=1.0)
        if self.judge is None:
            return RewardResult(failed=True, error="the task's basis has NL_ASSERTION but the reward has no judge= "
                                "(pass judge_base_url= to the env, or a JudgeConfig)")
        from traject.rewards.judge import JudgeError

        prompt = NL_PROMPT.format(conversation=render_conversation(traj),
                                  assertions="\n".join(f"- {a}" for a in assertions))
        try:
            answer = await self.judge.ask(prompt, NLVerdicts)
        except JudgeError as exc:
            return RewardResult(failed=True, error=f"the judge failed: {exc}")
        results = answer.value.results
        if len(results) != len(assertions):
            return RewardResult(failed=True, error=f"the judge answered {len(results)} verdicts for "
                                f"{len(assertions)} assertions")
        ok = all(r.met for r in results)
        return RewardResult(total=float(ok), info={"nl_assertions": [r.model_dump() for r in results]})
