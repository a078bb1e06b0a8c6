"""TokenViews from the tokens the policy really saw and sampled.

Each assistant message that a token-exact policy produced carries a Generation: the prompt ids
the policy was conditioned on and the completion ids it sampled (with logprobs). The view is
built from those alone, never by re-tokenising text:

* the first prompt opens the sequence (mask 0);
* each completion is appended as sampled (mask 1, its logprobs);
* the next turn's prompt must extend the sequence so far; the extension is the observation
  tokens (tool results, user turns; mask 0);
* where it does not (a chat template that rewrites history, e.g. drops earlier reasoning),
  the sequence so far is closed and a new segment starts from that prompt, so that every
  TokenView is a sequence the model really saw.
"""

from __future__ import annotations

from traject.types import Message, TokenView


def build_token_views(messages: list[Message]) -> list[TokenView]:
    """Return the prefix-consistent segments of ``messages``; ``[]`` if any assistant message
    lacks its Generation (an API policy that gives no tokens)."""
    assistant = [m for m in messages if m.role == "assistant"]
    if not assistant or any(m.generation is None for m in assistant):
        return []
    views: list[TokenView] = []
    ids: list[int] = []
    mask: list[int] = []
    logprobs: list[float] = []
    turn: list[int] = []
    versions: list[int] = []
    prompt_len = 0

    def close() -> None:
        if ids:
            views.append(TokenView(ids=list(ids), mask=list(mask), logprobs=list(logprobs),
                                   prompt_len=prompt_len, turn=list(turn), policy_versions=list(versions)))

    for k, msg in enumerate(assistant):
        g = msg.generation
        assert g is not None
        prompt = g.prompt_ids
        if ids and len(prompt) >= len(ids) and prompt[: len(ids)] == ids:
            extra = prompt[len(ids):]
        else:
            close()
            ids, mask, logprobs, turn, versions = [], [], [], [], []
            prompt_len = len(prompt)
            extra = prompt
        version = g.policy_version if g.policy_version is not None else -1
        ids.extend(extra)
        mask.extend([0] * len(extra))
        logprobs.extend([0.0] * len(extra))
        turn.extend([-1] * len(extra))
        versions.extend([version] * len(extra))
        ids.extend(g.completion_ids)
        mask.extend([1] * len(g.completion_ids))
        logprobs.extend(g.logprobs if g.logprobs is not None else [0.0] * len(g.completion_ids))
        turn.extend([k] * len(g.completion_ids))
        versions.extend([version] * len(g.completion_ids))
    close()
    return views
