"""Exact tokens from an OpenAI-compatible server's answers.

vLLM (>= 0.10.2) answers ``return_token_ids: true`` with ``prompt_token_ids`` and
``token_ids`` (on the chat response and choice; on each completions choice) and ``logprobs``
in the OpenAI shapes; ``traject serve`` answers the same fields plus ``policy_version``.
SGLang's native ``/generate`` answers ``output_ids`` and ``meta_info.output_token_logprobs``
(``[logprob, token_id, text]`` per token). A server that ignores the fields gives a turn
without tokens: one warning per policy, and the trajectory is eval-only.
"""

from __future__ import annotations

import logging
from typing import Any

from traject.types import Generation

log = logging.getLogger(__name__)


def field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``, None when absent (SDK models, lean Attr, plain dicts)."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)



def _logprob_list(values: Any, n: int) -> list[float] | None:
    if values is None:
        return None
    out = [float(v) if v is not None else 0.0 for v in values]
    return out if len(out) == n else None


class MissingTokensWarning:
    """Warns once per policy that a server returned no token ids."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.warned = False

    def __call__(self, what: str) -> None:
        if not self.warned:
            self.warned = True
            log.warning("the server at %s returned no %s: its trajectories are eval-only (a trainer refuses "
                        "them). Serve the model with vLLM >= 0.10.2 or `traject serve` to train on them.",
                        self.server, what)


class ChatTokenCapture:
    """Generations from ``/v1/chat/completions`` answers (vLLM's ``return_token_ids``)."""

    def __init__(self, server: str) -> None:
        self.warn = MissingTokensWarning(server)

    def generation(self, resp: Any, choice: Any) -> Generation | None:
        prompt = field(resp, "prompt_token_ids") or field(choice, "prompt_token_ids")
        ids = field(choice, "token_ids")
        if not prompt or ids is None:
            self.warn("token ids (return_token_ids)")
            return None
        ids = [int(t) for t in ids]
        content = field(field(choice, "logprobs"), "content")
        logprobs = _logprob_list([field(c, "logprob") for c in content], len(ids)) if content else None
        version = field(resp, "policy_version")
        return Generation(prompt_ids=[int(t) for t in prompt], completion_ids=ids, logprobs=logprobs,
                          finish_reason=field(choice, "finish_reason"),
                          policy_version=int(version) if version is not None else None)
