"""veRL function tools equivalent to traject's ``lookup`` env, for the agent-loop benchmark's
baseline (veRL's own ToolAgentLoop). Stateless, as veRL function tools are: prices come from
a hash of the item's name, which is all the timing comparison needs."""

import hashlib

from verl.tools.function_tool import function_tool


@function_tool
def lookup(item: str) -> str:
    """Look up the price of one item in the shop.

    Args:
        item: The item's name, e.g. "apple".
    """
    return str(int(hashlib.blake2b(item.encode(), digest_size=2).hexdigest(), 16) % 20 + 1)


@function_tool
def submit(answer: int) -> str:
    """Submit the total cost of the order. This ends the task.

    Args:
        answer: The total cost, a whole number.
    """
    return "Submitted."
