"""A scripted rollout server for running veRL's agent-loop machinery without a GPU.

``ScriptedServerClient`` is a real ``LLMServerClient`` subclass (veRL's documented way to
customise the client) whose ``generate`` answers from a script instead of a vLLM server: the
script reads the decoded prompt and returns the text to "sample"; the client encodes it, adds
the EOS token and invents logprobs, so token ids and logprobs flow through veRL exactly as a
server's would. It lives in an importable module so that Ray workers can unpickle it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from traject.environments.builtin.lookup import next_call
from traject.trainers.verl._require import require_verl

require_verl("verl.workers.rollout.llm_server")

from verl.workers.rollout.llm_server import LLMServerClient  # noqa: E402
from verl.workers.rollout.replica import TokenOutput  # noqa: E402


class ScriptedFailure(RuntimeError):
    """Raised by a script to make ``generate`` fail like a dead server."""


@dataclass
class Call:
    request_id: str
    prompt_ids: list[int]
    token_ids: list[int]
    log_probs: list[float]
    max_tokens: int | None


def fake_logprobs(request_id: str, turn: int, n: int) -> list[float]:
    """Deterministic, distinct, negative 'logprobs' for n sampled tokens."""
    h = int(hashlib.blake2b(f"{request_id}:{turn}".encode(), digest_size=4).hexdigest(), 16)
    return [-((h + i) % 997 + 1) / 1000.0 for i in range(n)]


class ScriptedServerClient(LLMServerClient):
    """``script(prompt_text, turn, request_id) -> str`` gives each reply; it may raise
    ScriptedFailure. ``tokenizer_path`` names the tokenizer that encodes the replies."""

    def __init__(self, config: Any, script: Callable[[str, int, str], str], tokenizer_path: str) -> None:
        super().__init__(config, load_balancer_handle=None)
        self.script = script
        self.tokenizer_path = tokenizer_path
        self._tok = None
        self.calls: list[Call] = []

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tok"] = None
        return state

    def _tokenizer(self) -> Any:
        if self._tok is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self.tokenizer_path)
        return self._tok

    async def generate(self, request_id, *, prompt_ids: list[int], sampling_params: dict[str, Any],
                       **kwargs: Any) -> TokenOutput:
        tok = self._tokenizer()
        turn = sum(1 for c in self.calls if c.request_id == request_id)
        text = self.script(tok.decode(prompt_ids, skip_special_tokens=False), turn, request_id)
        ids = tok.encode(text, add_special_tokens=False) + [tok.eos_token_id]
        max_tokens = sampling_params.get("max_tokens")
        stop = "completed"
        if max_tokens is not None and len(ids) > max_tokens:
            ids, stop = ids[:max_tokens], "length"
        lp = fake_logprobs(request_id, turn, len(ids))
        self.calls.append(Call(request_id, list(prompt_ids), ids, lp, max_tokens))
        return TokenOutput(token_ids=ids, log_probs=lp if sampling_params.get("logprobs") else None,
                           stop_reason=stop)


_QUESTION = re.compile(r"How much do (.+?) cost in total\?")
_RESPONSE = re.compile(r"<tool_response>\n(.*?)\n</tool_response>", re.DOTALL)


@dataclass
class LookupSolver:
    """Plays the built-in ``lookup`` env with its one solver
    (:func:`traject.environments.builtin.lookup.next_call`) over the decoded prompt text.

    ``modes`` assigns each new trajectory (request id) a behaviour in turn: ``correct``,
    ``wrong`` (submits total+1), ``malformed`` (first writes a broken tool call, reads the
    error, then solves), ``fail`` (the server dies on the second turn), ``ramble`` (looks up
    the same item with long musings, until the response budget runs out).
    """

    modes: tuple[str, ...] = ("correct", "wrong")
    assigned: dict[str, str] = field(default_factory=dict)
    _questions: dict[str, int] = field(default_factory=dict)
    _seen: dict[str, int] = field(default_factory=dict)

    def mode_of(self, request_id: str, question: str) -> str:
        """The k-th trajectory of the q-th question gets ``modes[(q + k) % len(modes)]``, so
        the samples of one task get different modes whatever order they start in."""
        if request_id not in self.assigned:
            q = self._questions.setdefault(question, len(self._questions))
            k = self._seen.get(question, 0)
            self._seen[question] = k + 1
            self.assigned[request_id] = self.modes[(q + k) % len(self.modes)]
        return self.assigned[request_id]

    def __call__(self, prompt: str, turn: int, request_id: str) -> str:
        m = _QUESTION.search(prompt)
        if m is None:
            return "I do not know."
        mode = self.mode_of(request_id, m.group(1))
        if mode == "fail" and turn == 1:
            raise ScriptedFailure("scripted server failure")
        if mode == "ramble":  # never gets to the point
            return "Let me think about the prices in the shop. " * 2 + _call("lookup", {"item": "apple"})
        if mode == "malformed" and turn == 0:
            return '<tool_call>\n{"name": "lookup", "arguments": {"item": \n</tool_call>'
        answers = [a for a in _RESPONSE.findall(prompt) if not a.startswith("Error")]
        name, args = next_call(m.group(0), answers, wrong=mode == "wrong")
        if name == "lookup":
            return _call(name, args)
        return f"The total is {args['answer']}.\n" + _call(name, args)


def _call(name: str, args: dict[str, Any]) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"
