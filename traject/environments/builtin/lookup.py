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

import random

from pydantic import BaseModel, ConfigDict

from traject.environments.registry import register_env
from traject.environments.tool_env import ToolEnv
from traject.rewards.answer_match import AnswerMatch
from traject.tools.base import ToolOutput
from traject.tools.context import ToolContext
from traject.tools.decorator import tool
from traject.types import Task

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


def lookup_tasks(split: str = "test", n: int = 50, seed: int = 0, items_per_order: int = 2,
                 max_quantity: int = 3, catalogue_size: int = 6, max_price: int = 20) -> list[Task]:
    """Generate ``n`` tasks; the same arguments always give the same tasks, and different
    splits never share a random stream."""
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
        phrase = " and ".join(f"{qty} {item}" for item, qty in order)
        tasks.append(Task(
            id=f"lookup-{split}-{seed}-{i}",
            prompt=f"How much do {phrase} cost in total?",
            answer=total,
            data={"prices": prices, "order": [[item, qty] for item, qty in order]},
        ))
    return tasks


def make_lookup_env(max_turns: int = 6, tool_timeout_s: float = 10.0) -> ToolEnv:
    return ToolEnv([lookup, submit], name="lookup", system_prompt=SYSTEM_PROMPT, max_turns=max_turns,
                   tool_timeout_s=tool_timeout_s, reward=AnswerMatch())


register_env("lookup", make_lookup_env, tasks=lookup_tasks,
             description="Look up item prices with a tool and submit an order's total (multi-turn).")
