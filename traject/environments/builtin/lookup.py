"""``lookup``: a multi-turn tool-use task generated from a seed.

A shop's prices are hidden behind a ``lookup`` tool. The task asks what an order costs; the
agent must look up each item's price, multiply by the quantity, add up, and ``submit`` the
total: several tool calls, arithmetic over their results, then a submit. ``combos`` splits
the (item, quantity) pairings into seen and unseen ones, for held-out tests of composition.

>>> tasks = lookup_tasks(n=2, seed=0)
>>> tasks[0].id, sorted(tasks[0].data)
('lookup-test-0-0', ['order', 'prices'])
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from typing import Any, Literal

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
Combos = Literal["all", "seen", "unseen"]


def held_out_pair(item: str, quantity: int) -> bool:
    """Whether ``quantity`` of ``item`` is reserved for held-out tasks (about a third of the
    (item, quantity) pairs: every item and every quantity occurs in training, but not every
    pairing of them)."""
    return (ITEMS.index(item) + quantity) % 3 == 0


def lookup_tasks(split: str = "test", n: int = 50, seed: int = 0, items_per_order: int = 2,
                 max_quantity: int = 3, catalogue_size: int = 6, max_price: int = 20,
                 quantity_words: bool = False, combos: Combos = "all") -> list[Task]:
    """Generate ``n`` tasks; the same arguments always give the same tasks, and different
    splits never share a random stream.

    ``quantity_words`` writes quantities as words ("two fig"), so that the only numbers in an
    episode are the prices the tool returns (and the total). ``combos`` makes a compositional
    split (see :func:`held_out_pair`): ``seen`` orders use no held-out (item, quantity) pair,
    ``unseen`` orders use at least one, so a model trained on ``seen`` tasks and tested on
    ``unseen`` ones has never been shown those pairings.
    """
    if quantity_words and max_quantity > 10:
        raise ValueError(f"quantity_words needs max_quantity <= 10, got {max_quantity}")
    if split not in SPLIT_OFFSET:
        raise ValueError(f"unknown split {split!r}; use one of {sorted(SPLIT_OFFSET)}")
    if combos not in ("all", "seen", "unseen"):
        raise ValueError(f"combos must be all, seen or unseen, got {combos!r}")
    if not 1 <= items_per_order <= catalogue_size <= len(ITEMS):
        raise ValueError(f"need 1 <= items_per_order ({items_per_order}) <= catalogue_size "
                         f"({catalogue_size}) <= {len(ITEMS)}")
    if combos != "all" and max_quantity < 2:
        raise ValueError("combos seen/unseen need max_quantity >= 2 (pairs are held out by quantity)")
    tasks = []
    for i in range(n):
        rng = random.Random(seed * 7919 + SPLIT_OFFSET[split] + i)
        while True:
            catalogue = rng.sample(ITEMS, catalogue_size)
            prices = {item: rng.randint(1, max_price) for item in catalogue}
            chosen = rng.sample(catalogue, items_per_order)
            order = [(item, rng.randint(1, max_quantity)) for item in chosen]
            unseen = any(held_out_pair(item, qty) for item, qty in order)
            if combos == "all" or unseen == (combos == "unseen"):
                break
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


# --- the solver -------------------------------------------------------------------------------
# One solver for the env, used as a ScriptedPolicy script (``solve``), as the imperfect
# demonstrator of the quickstart (``demonstrator``), as the brain of a scripted chat server
# (``chat_responder``) and of veRL's scripted rollout server (trainers/verl/testing.py).

_ORDER_LINE = re.compile(r"\b(\d+|" + "|".join(NUMBER_WORDS) + r") ([a-z]+)")


def parse_order(question: str) -> list[tuple[str, int]]:
    """The (item, quantity) pairs a task's question asks about.

    >>> parse_order("How much do two fig and 3 kiwi cost in total?")
    [('fig', 2), ('kiwi', 3)]
    """
    return [(item, int(qty) if qty.isdigit() else NUMBER_WORDS.index(qty)) for qty, item in _ORDER_LINE.findall(question)]


def next_call(question: str, results: list[str], *, wrong: bool = False) -> tuple[str, dict[str, Any]]:
    """The next tool call, given the task's question and the lookup results so far (in order
    of the order's items); ``wrong`` submits a total that is off by one.

    >>> next_call("How much do 2 apple and 1 pear cost in total?", ["3"])
    ('lookup', {'item': 'pear'})
    >>> next_call("How much do 2 apple and 1 pear cost in total?", ["3", "5"])
    ('submit', {'answer': 11})
    """
    order = parse_order(question)
    if len(results) < len(order):
        return "lookup", {"item": order[len(results)][0]}
    total = sum(qty * _price(r) for (_, qty), r in zip(order, results, strict=False))
    return "submit", {"answer": total + (1 if wrong else 0)}


def _price(result: str) -> int:
    result = result.strip()
    return int(result) if result.isdigit() else 0


def _question(messages: list[Message]) -> str:
    return next((m.text for m in messages if m.role == "user"), "")


def _call(name: str, args: dict[str, Any]) -> Message:
    return Message.assistant(tool_calls=[ToolCall(name=name, arguments=args)])


def solve(messages: list[Message], tools: list[ToolSchema]) -> Message:
    """A ScriptedPolicy script that solves ``lookup``: it looks each item of the order up in
    turn, then submits the total. It reads only the conversation, as a policy would."""
    name, args = next_call(_question(messages), [m.text for m in messages if m.role == "tool"])
    return _call(name, args)


def demonstrator(arithmetic_error_rate: float = 0.0, missed_lookup_rate: float = 0.0,
                 max_price: int = 20) -> Callable[[list[Message], list[ToolSchema]], Message]:
    """An imperfect demonstrator: :func:`solve`, with ordinary mistakes in a share of its
    episodes.

    * ``arithmetic_error_rate``: it looks everything up, then gets the sum wrong (one product
      or the final sum off by 1 to 3, or a quantity ignored);
    * ``missed_lookup_rate``: it skips the lookup of one item of the order and uses a price
      it guesses (1..``max_price``) for it.

    Which episodes go wrong is drawn from the episode's seed (``current_episode()``, set by the
    Rollouts engine), not from the question, as for a human demonstrator.

    >>> msgs = [Message.user("How much do two fig cost in total?")]
    >>> [demonstrator(missed_lookup_rate=r)(msgs, []).tool_calls[0].name for r in (0.0, 1.0)]
    ['lookup', 'submit']
    """
    for name, rate in (("arithmetic_error_rate", arithmetic_error_rate), ("missed_lookup_rate", missed_lookup_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")

    def act(messages: list[Message], tools: list[ToolSchema]) -> Message:
        episode = current_episode()
        question = _question(messages)
        key = f"{episode.seed}" if episode is not None else question
        rng = random.Random(int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big"))
        misses, miscounts = rng.random() < missed_lookup_rate, rng.random() < arithmetic_error_rate
        order = parse_order(question)
        skipped = rng.randrange(len(order)) if order else -1
        guessed = rng.randint(1, max_price)
        results = [m.text for m in messages if m.role == "tool"]
        # The lookups it makes: all items, or all but the skipped one.
        wanted = [item for j, (item, _q) in enumerate(order) if not (misses and j == skipped)]
        if len(results) < len(wanted):
            return _call("lookup", {"item": wanted[len(results)]})
        prices = iter(_price(r) for r in results)
        products = [qty * (guessed if misses and j == skipped else next(prices, 0)) for j, (_i, qty) in enumerate(order)]
        total = sum(products)
        if miscounts and order:
            kind = rng.randrange(3)
            j = rng.randrange(len(order))
            if kind == 0 and order[j][1] > 1:  # a quantity ignored
                total -= products[j] - products[j] // order[j][1]
            else:                              # a slip of 1 to 3
                total += rng.choice((-3, -2, -1, 1, 2, 3))
            total = max(total, 0)
        return _call("submit", {"answer": total})

    return act


def chat_responder(*, wrong_every: int = 0, delay_s: float = 0.0):  # noqa: ANN201 - a Responder
    """:func:`next_call` as the brain of a ``ScriptedChatServer`` (traject.testing.openai_server),
    so that a run goes through the whole HTTP path. With ``wrong_every`` = m, the tasks whose
    question bytes sum to 0 mod m get a wrong total (stably: the same tasks fail every run)."""
    from traject.testing.openai_server import ChatRequest, ScriptedReply

    def respond(req: ChatRequest) -> ScriptedReply:
        question = next((str(m.get("content") or "") for m in req.messages if m.get("role") == "user"), "")
        results = [str(m.get("content")) for m in req.messages if m.get("role") == "tool"]
        wrong = bool(wrong_every) and sum(question.encode()) % wrong_every == 0
        name, args = next_call(question, results, wrong=wrong)
        return ScriptedReply(content="", tool_calls=[(name, args)], delay_s=delay_s,
                             prompt_tokens=20 + 5 * len(results), completion_tokens=8)

    return respond
