"""``traject serve`` parses tool calls in its configured format: the briefly fine-tuned tiny
model (which writes tool calls, some right, most botched) answers lookup prompts over
/v1/chat/completions with native tools, and each answer's tool calls and content are what
traject's own parser reads from the ids the server returns."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")

from traject.agents.hf import HFPolicy  # noqa: E402
from traject.agents.openai_policy import messages_to_openai  # noqa: E402
from traject.environments.builtin.lookup import SYSTEM_PROMPT, lookup, lookup_tasks, submit  # noqa: E402
from traject.serve import ServeEngine, ServerThread  # noqa: E402
from traject.types import Message  # noqa: E402

TOOLS = [lookup.schema, submit.schema]


def test_served_tool_calls_are_parsed_in_the_configured_format(sft_path: Path) -> None:
    turns = HFPolicy.from_pretrained(sft_path).turns
    tasks = lookup_tasks("test", n=6, seed=5, items_per_order=1)
    valid = botched = 0
    with ServerThread(ServeEngine.load(sft_path, model_name="tiny", tool_format="hermes")) as server:
        for seed, task in enumerate(tasks):
            msgs = [Message.system(SYSTEM_PROMPT), Message.user(str(task.prompt))]
            body = {"model": "tiny", "messages": messages_to_openai(msgs), "tools": [t.to_openai() for t in TOOLS],
                    "max_tokens": 40, "seed": seed, "return_token_ids": True}
            req = urllib.request.Request(server.base_url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            answer = json.loads(urllib.request.urlopen(req, timeout=60).read())
            choice = answer["choices"][0]
            prompt = turns.prompt(msgs, TOOLS)
            assert answer["prompt_token_ids"] == prompt.ids
            want = turns.parse(prompt.text, choice["token_ids"])
            good = [c for c in want.tool_calls if c.error is None]
            got = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in choice["message"]["tool_calls"]]
            assert got == [(c.name, c.arguments) for c in good]
            stopped = choice["token_ids"][-1] in turns.stop_ids
            assert choice["finish_reason"] == ("tool_calls" if good and stopped else "stop" if stopped else "length")
            for c in want.tool_calls:
                if c.error is not None and c.raw:  # a botched call stays in the content, as written
                    assert c.raw in (choice["message"]["content"] or "")
                    botched += 1
            valid += len(good)
    assert valid > 0 and botched > 0, (valid, botched)
