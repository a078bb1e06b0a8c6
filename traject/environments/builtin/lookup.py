"""``lookup``: a multi-turn tool-use task generated from a seed.

A shop's prices are hidden behind a ``lookup`` tool. The task asks what an order costs; the
agent must look up each item's price, do the sum, and ``submit`` the total. With
``items_per_order=1`` and ``max_quantity=1`` it is a copy task a tiny model can learn; larger
values make it harder.

>>> tasks = lookup_tasks(n=2, seed=0)
>>> tasks[0].id, sorted(tasks[0].data)
('lookup-test-0-0', ['order', 'prices'])
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from traject.environments.registry import register_env
from traject.episode import current_episode
from traject.environments.tool_env import ToolEnv
from traject.rewards.answer_match import AnswerMatch
from traject.tools.base import ToolOutput
from traject.tools.context import ToolContext
from traject.tools.decorator import tool
from traject.types import Message, Task, ToolCall, ToolSchema

ITEMS = ("apple", "pear", "plum", "kiwi", "lime", "fig", "date", "melon", "grape", "peach",
         "mango", "lemon", "cherry", "berry", "olive", "nut")
SPLIT_OFFSET = {"train": 0, "test": 1_000_003, "validation": 2_000_003}

SYSTEM_PROMPT = (
    "You answer questions about a shop's prices. You do not know any price: use the `lookup` "
    "tool for each item, then call `submit` with the total cost as a whole number."
)


class LookupTaskData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prices: dict[str, int]
    order: list[tuple[str, int]]


def _data(ctx: ToolContext) -> LookupTaskData:
    data = ctx.state.get("lookup_data")
    if data is None:
        data = ctx.state["lookup_data"] = LookupTaskData.model_validate(ctx.task.data)
    return data


@tool
async def lookup(ctx: ToolContext, item: str) -> ToolOutput:
    """Look up the price of one item in the shop.

    Args:
        item: The item's name, e.g. "apple".
    """
    prices = _data(ctx).prices
    key = item.strip().lower().rstrip("s") if item.strip().lower() not in prices else item.strip().lower()
    if key not in prices:
        return ToolOutput(content=f"No item named {item!r}. Items: {', '.join(sorted(prices))}", is_error=True)
    return ToolOutput(content=str(prices[key]))


@tool
async def submit(ctx: ToolContext, answer: int) -> ToolOutput:
    """Submit the total cost of the order. This ends the task.

    Args:
        answer: The total cost, a whole number.
    """
    return ToolOutput(content="Submitted.", done=True, final_answer=str(answer))


NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def lookup_tasks(split: str = "test", n: int = 50, seed: int = 0, items_per_order: int = 2,
                 max_quantity: int = 3, catalogue_size: int = 6, max_price: int = 20,
                 quantity_words: bool = False) -> list[Task]:
    """Generate ``n`` tasks; the same arguments always give the same tasks, and different
    splits never share a random stream.

    ``quantity_words`` writes quantities as words ("two fig"), so that the only numbers in an
    episode are the prices the tool returns (and the total): easier for a tiny model to copy.
    """
    if quantity_words and max_quantity > 10:
        raise ValueError(f"quantity_words needs max_quantity <= 10, got {max_quantity}")
    if split not in SPLIT_OFFSET:
        raise ValueError(f"unknown split {split!r}; use one of {sorted(SPLIT_OFFSET)}")
    if not 1 <= items_per_order <= catalogue_size <= len(ITEMS):
        raise ValueError(f"need 1 <= items_per_order ({items_per_order}) <= catalogue_size "
                         f"({catalogue_size}) <= {len(ITEMS)}")
    tasks = []
    for i in range(n):
        rng = random.Random(seed * 7919 + SPLIT_OFFSET[split] + i)
        catalogue = rng.sample(ITEMS, catalogue_size)
        prices = {item: rng.randint(1, max_price) for item in catalogue}
        chosen = rng.sample(catalogue, items_per_order)
        order = [(item, rng.randint(1, max_quantity)) for item in chosen]
        total = sum(prices[item] * qty for item, qty in order)
        phrase = " and ".join(f"{NUMBER_WORDS[qty] if quantity_words else qty} {item}" for item, qty in order)
        tasks.append(Task(
            id=f"lookup-{split}-{seed}-{i}",
            prompt=f"How much do {phrase} cost in total?",
            answer=total,
            data={"prices": prices, "order": [[item, qty] for item, qty in order]},
        ))
    return tasks


def make_lookup_env(max_turns: int = 6, tool_timeout_s: float = 10.0, system_prompt: str | None = None) -> ToolEnv:
    """The env; ``system_prompt`` replaces the default one ("" for none: a tiny model trained
    from scratch learns faster from shorter prompts)."""
    return ToolEnv([lookup, submit], name="lookup", system_prompt=SYSTEM_PROMPT if system_prompt is None else system_prompt,
                   max_turns=max_turns, tool_timeout_s=tool_timeout_s, reward=AnswerMatch())


register_env("lookup", make_lookup_env, tasks=lookup_tasks, task_data=LookupTaskData,
             description="Look up item prices with a tool and submit an order's total (multi-turn).")


# --- demonstrations ---------------------------------------------------------------------------

_ORDER_LINE = re.compile(r"\b(\d+|" + "|".join(NUMBER_WORDS) + r") ([a-z]+)")


def _order_from(messages: list[Message]) -> list[tuple[str, int]]:
    """The (item, quantity) pairs asked about in the conversation's first user message."""
    question = next((m.text for m in messages if m.role == "user"), "")
    return [(item, int(qty) if qty.isdigit() else NUMBER_WORDS.index(qty))
            for qty, item in _ORDER_LINE.findall(question)]


def expert_action(messages: list[Message], tools: list[ToolSchema]) -> Message:
    """A ScriptedPolicy script that solves ``lookup``: look up each item of the order in turn,
    then submit the total. It reads only the conversation (the question and the tool results),
    as a policy would."""
    order = _order_from(messages)
    calls = [c for m in messages if m.role == "assistant" for c in m.tool_calls]
    results = {m.tool_call_id: m.text for m in messages if m.role == "tool"}
    looked_up: dict[str, str] = {}
    for c in calls:
        if c.name == "lookup":
            looked_up[str(c.arguments.get("item"))] = results.get(c.id, "")
    for item, _qty in order:
        if item not in looked_up:
            return Message.assistant(tool_calls=[ToolCall(name="lookup", arguments={"item": item})])
    total = 0
    for item, qty in order:
        price = looked_up[item].strip()
        total += qty * (int(price) if price.isdigit() else 0)
    return Message.assistant(tool_calls=[ToolCall(name="submit", arguments={"answer": total})])


def sloppy_expert(guess_rate: float = 0.0, prose_rate: float = 0.0, max_price: int = 20,
                  guess: int | None = None) -> Callable[[list[Message], list[ToolSchema]], Message]:
    """A demonstrator with bad habits, each in a share of its episodes:

    * ``guess_rate``: it submits a guess without looking anything up (``guess`` per unit when
      given, a habitual "about ten"; else each price drawn from 1..``max_price``);
    * ``prose_rate``: it looks the prices up like :func:`expert_action`, then states the total
      in a sentence ("The total is 7.") instead of calling ``submit``. The env then ends the
      episode with that sentence as the answer, which is not the number asked for: reward 0.

    Otherwise it acts like :func:`expert_action`. Which episodes get a habit is drawn from the
    episode's seed (``current_episode()``, set by the Rollouts engine), not from the question,
    so the same question is answered one way or the other, as by a human demonstrator.
    Imitating it gives a policy with the same habits; an outcome reward then teaches it to
    look prices up and to submit the answer through the tool.

    >>> msgs = [Message.user("How much do 1 fig cost in total?")]
    >>> [sloppy_expert(guess_rate=g)(msgs, []).tool_calls[0].name for g in (0.0, 1.0)]
    ['lookup', 'submit']
    """
    for name, rate in (("guess_rate", guess_rate), ("prose_rate", prose_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")

    def act(messages: list[Message], tools: list[ToolSchema]) -> Message:
        episode = current_episode()
        question = next((m.text for m in messages if m.role == "user"), "")
        key = f"{episode.seed}" if episode is not None else question
        rng = random.Random(int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big"))
        guesses, prose = rng.random() < guess_rate, rng.random() < prose_rate
        first_turn = not any(m.role == "assistant" for m in messages)
        if guesses and first_turn:
            total = sum(qty * (guess if guess is not None else rng.randint(1, max_price))
                        for _item, qty in _order_from(messages))
            return Message.assistant(tool_calls=[ToolCall(name="submit", arguments={"answer": total})])
        action = expert_action(messages, tools)
        if prose and action.tool_calls and action.tool_calls[0].name == "submit":
            return Message.assistant(f"The total is {action.tool_calls[0].arguments['answer']}.")
        return action

    return act
