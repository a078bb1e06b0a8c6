"""The ``customer_service`` env (tau-style): an agent follows a domain's policy, uses the
domain's tools on its database, and talks with a simulated customer who has hidden instructions.

Each step records the database state in ``info``: ``db_state_hash`` (now), ``gold_state_hash``
(after replaying the task's gold actions on a fresh copy) and ``db_match``; beside them tau2's
own hashes (``tau2_db_hash``, ``tau2_gold_db_hash``, and ``tau2_user_db_hash`` /
``tau2_gold_user_db_hash`` where the user has its own database), so results can be compared with
tau2's tooling; the last step also ``db_state`` itself when it is small; and, when the task has
them, whether its ``env_assertions`` hold. Rewards (``DBStateMatch``, G-RA gates) read these
after the episode.

Hashing is once per write, not once per step: the episode's state counts the calls that may
write (``DomainState.writes``) and the hashes are recomputed only when that count moved, so a
step of reads on a database of several MB costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from traject.environments.base import StepResult
from traject.environments.customer_service.domain import Domain, cached_domain
from traject.environments.customer_service.state import DomainState
from traject.environments.customer_service.tau2_format import Tau2Task
from traject.environments.customer_service.gold import GoldUser
from traject.environments.customer_service.tasks import BUILTIN_DOMAIN, gold_hashes, task_domain
from traject.environments.tool_env import ToolEnv
from traject.environments.users.base import UserSimulator
from traject.environments.users.llm_user import LLMUser
from traject.tools.base import Tool
from traject.tools.context import ToolContext
from traject.tools.toolset import Toolset
from traject.types import Message, Task

if TYPE_CHECKING:
    from traject.rewards.base import Reward

SYSTEM_TEMPLATE = """\
You are a customer service agent. Help the user according to the policy below.
In each turn, either send the user a message or call tools, not both. Use the tools to look
things up and to make changes; never make up information, and never act against the policy.
Before a change to the database (cancelling, returning, updating), tell the user exactly what
you will do and get their explicit confirmation (yes).

<policy>
{policy}
</policy>"""


class DomainToolset(Toolset):
    """The episode's copy of the domain: tools bound to its databases, built at set-up."""

    def __init__(self, env: CustomerServiceEnv) -> None:
        self.env = env
        self.state: DomainState | None = None
        self.task: Tau2Task | None = None

    async def setup(self, ctx: ToolContext) -> None:
        domain, task = self.env.resolve(ctx.task)
        state = DomainState(domain)
        state.apply_initial_state(task.initial_state)
        self.state, self.task = state, task
        ctx.state["domain_state"] = state
        user = self.env.user
        if isinstance(user, LLMUser):
            user.bind_tools(state.user_tools(include=task.user_tools), ctx)
        elif isinstance(user, GoldUser):
            user.bind(state, task)

    async def teardown(self, ctx: ToolContext) -> None:
        self.state = None

    def tools(self) -> list[Tool]:
        if self.state is not None:
            return self.state.agent_tools()
        return DomainState(self.env.default_domain).agent_tools()


class CustomerServiceEnv(ToolEnv):
    def __init__(self, domain: Domain | None = None, *, user: UserSimulator, reward: Reward | None = None,
                 max_turns: int = 30, tool_timeout_s: float = 30.0, system_template: str = SYSTEM_TEMPLATE,
                 record_state_chars: int = 100_000) -> None:
        self.record_state_chars = record_state_chars
        self.default_domain = domain or cached_domain(BUILTIN_DOMAIN)
        self.system_template = system_template
        self._toolset = DomainToolset(self)
        self._gold: dict[str, str] = {}
        self._hashed_at: tuple[int, int] | None = None
        self._hashes: dict[str, str] = {}
        self._canonical = ""
        super().__init__([self._toolset], name="customer_service", system_prompt=None, max_turns=max_turns,
                         tool_timeout_s=tool_timeout_s, parallel_tool_calls=False, user=user, reward=reward)

    def resolve(self, task: Task) -> tuple[Domain, Tau2Task]:
        """The domain a task belongs to (its ``domain_path``, else the env's) and its tau2 task."""
        return task_domain(task, self.default_domain)

    def system_message(self, task: Task) -> Message | None:
        domain, _ = self.resolve(task)
        return Message.system(self.system_template.format(policy=domain.policy.strip()))

    async def reset(self, task: Task) -> list[Message]:
        domain, t2 = self.resolve(task)
        self._gold = gold_hashes(domain, t2)
        self._hashed_at = None
        return await super().reset(task)

    def _state_hashes(self, state: DomainState) -> dict[str, str]:
        """traject's and tau2's hashes of the state, recomputed only after a write."""
        mark = (id(state), state.writes)
        if self._hashed_at != mark:
            from traject.rewards.verifiers.db_state import canonical_json

            self._canonical = canonical_json(state.snapshot())
            agent, user = state.hashes()
            self._hashes = {"db_state_hash": hashlib.sha256(self._canonical.encode()).hexdigest(),
                            "tau2_db_hash": agent}
            if user is not None:
                self._hashes["tau2_user_db_hash"] = user
            self._hashed_at = mark
        return self._hashes

    def _record(self, info: dict[str, Any], done: bool) -> None:
        state, task = self._toolset.state, self._toolset.task
        if state is None or task is None:
            return
        hashes = self._state_hashes(state)
        info.update(hashes)
        info.update(self._gold)
        info["db_match"] = hashes["db_state_hash"] == self._gold["gold_state_hash"]
        if done and len(self._canonical) <= self.record_state_chars:
            info["db_state"] = json.loads(self._canonical)
        assertions = task.criteria.env_assertions
        if assertions:
            info["env_assertions"] = [state.check_assertion(a) for a in assertions]

    async def step(self, action: Message) -> StepResult:
        result = await super().step(action)
        self._record(result.info, result.done)
        return result


def make_customer_service_env(*, domain: str | None = None, tools: str | None = None,
                              user_base_url: str | None = None, user_model: str | None = None,
                              user_api_key: str | None = None, user_temperature: float = 0.7,
                              judge_base_url: str | None = None, judge_model: str | None = None,
                              reward: Reward | str | None = None, max_turns: int = 30,
                              tool_timeout_s: float = 30.0, user: str = "llm") -> CustomerServiceEnv:
    """The env with an LLMUser as the customer (``user="llm"``), or with the model-free
    :class:`GoldUser` of a gold replay (``user="gold"``, with ``--policy gold``).

    ``domain``: a tau2 domain folder (default: the built-in ``shop``). The user model is served
    at ``user_base_url`` (default ``$TRAJECT_USER_BASE_URL``). ``reward``: a Reward, or
    ``"tau2"`` (default: the product of the task's reward basis), or ``"gated"`` (G-RA: valid
    tool calls count only when the database matches the gold). ``judge_base_url`` enables the
    NL_ASSERTION and CHECKLIST bases.
    """
    from traject.environments.customer_service.reward import CustomerServiceReward
    from traject.environments.users.llm import SimulatorLLM, SimulatorLLMConfig

    dom = cached_domain(domain, tools) if domain else None
    if user not in ("llm", "gold"):
        raise ValueError(f"unknown user {user!r} for customer_service; use 'llm' (a simulated customer "
                         "model) or 'gold' (no model: the gold replay's customer)")
    judge = None
    checklist = None
    if judge_base_url:
        from traject.rewards.checklist import ChecklistReward
        from traject.rewards.judge import JudgeConfig, LLMJudge

        judge = LLMJudge(JudgeConfig(base_url=judge_base_url, model=judge_model or "judge"))
        checklist = ChecklistReward(judge)
    if reward is None or reward == "tau2":
        chosen: Reward = CustomerServiceReward(judge=judge, checklist=checklist)
    elif reward == "gated":
        from traject.rewards.gated import GatedAccumulation
        from traject.rewards.step import ToolCallValidity

        chosen = GatedAccumulation([(CustomerServiceReward(judge=judge, checklist=checklist), 1.0),
                                    (ToolCallValidity(), None)])
    elif isinstance(reward, str):
        raise ValueError(f"unknown reward {reward!r} for customer_service; use 'tau2', 'gated' or a Reward")
    else:
        chosen = reward
    customer: UserSimulator
    if user == "gold":
        customer = GoldUser()
    else:
        customer = LLMUser(SimulatorLLM(SimulatorLLMConfig(base_url=user_base_url, model=user_model,
                                                           api_key=user_api_key, temperature=user_temperature),
                                        name="user simulator"))
    return CustomerServiceEnv(dom, user=customer, reward=chosen, max_turns=max_turns,
                              tool_timeout_s=tool_timeout_s)
