"""TokenTurns: what every token-exact policy does around its sampler, in one place.

A token-exact policy (HF transformers in-process, vLLM in-process, veRL's rollout servers, an
OpenAI-compatible server spoken to in token ids) needs the same two things each turn:

* the prompt ids, from :class:`~traject.agents.chat_renderer.ChatRenderer` (the one token
  builder: earlier turns' sampled ids reused as sampled, new messages as template deltas, a
  fresh render where the template rewrites history);
* the assistant Message for the ids it sampled: decoded (never re-tokenised), the stop token
  left out of the text, reasoning split off, tool calls parsed in the configured format, and
  the Generation (prompt ids, completion ids, logprobs) attached.

Only the sampler differs between policies, so the backends hold a TokenTurns and differ in
nothing else; the same conversation gives the same ids, masks and segments on every path.
"""

from __future__ import annotations

from typing import Any

from traject.agents.chat_renderer import ChatRenderer, RenderedPrompt
from traject.agents.parsers import get_format
from traject.types import Generation, Message, ToolSchema


class TokenTurns:
    """The chat renderer and the completion parser of one tokenizer.

    tool_format: how tool calls are written by the model and parsed back ("hermes", ...).
    tools_in: "template" passes tools, calls and results to the chat template natively;
        "format" writes them as text in ``tool_format`` (templates without tool support).
    stop_ids: tokens that end a completion (default: the end-of-turn token and the eos).
    The other arguments go to :class:`ChatRenderer`.
    """

    def __init__(self, tokenizer: Any, *, tool_format: str = "hermes", tools_in: str = "template",
                 end_of_turn: str | None = None, template_kwargs: dict[str, Any] | None = None,
                 chat_template: str | None = None, stop_ids: set[int] | None = None,
                 reasoning_tags: tuple[str, str] = ("<think>", "</think>"), processor: Any = None) -> None:
        if tools_in not in ("template", "format"):
            raise ValueError(f"tools_in must be 'template' or 'format', got {tools_in!r}")
        self.tokenizer = tokenizer
        self.format = get_format(tool_format)
        self.renderer = ChatRenderer(tokenizer, tool_format=self.format if tools_in == "format" else None,
                                     end_of_turn=end_of_turn, template_kwargs=template_kwargs,
                                     chat_template=chat_template, processor=processor)
        if stop_ids is None:
            stop_ids = {self.renderer.end_of_turn_id}
            if isinstance(tokenizer.eos_token_id, int):
                stop_ids.add(tokenizer.eos_token_id)
        self.stop_ids = set(stop_ids)
        self.reasoning_tags = reasoning_tags

    def prompt(self, messages: list[Message], tools: list[ToolSchema], *,
               images: list[Any] | None = None) -> RenderedPrompt:
        return self.renderer.render_prompt(messages, tools, images=images)

    def completion_text(self, completion_ids: list[int]) -> str:
        """The sampled text, without the stop token that ended it."""
        ids = completion_ids[:-1] if completion_ids and completion_ids[-1] in self.stop_ids else completion_ids
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def parse(self, prompt_text: str, completion_ids: list[int]) -> Message:
        """The assistant Message for ``completion_ids``: reasoning (when the generation prompt
        opens a think block, or the completion does), content and tool calls; no Generation."""
        return self.parse_text(prompt_text, self.completion_text(completion_ids))

    def parse_text(self, prompt_text: str, text: str) -> Message:
        """As :meth:`parse`, from text alone (a server that returned no token ids)."""
        open_tag, close_tag = self.reasoning_tags
        reasoning: str | None = None
        if prompt_text.rstrip().endswith(open_tag) or text.lstrip().startswith(open_tag):
            body = text.lstrip()[len(open_tag):] if text.lstrip().startswith(open_tag) else text
            reasoning, _, text = body.partition(close_tag)
            reasoning = reasoning.strip() or None
        parsed = self.format.parse(text)
        return Message.assistant(parsed.content, tool_calls=parsed.tool_calls, reasoning=reasoning)

    def message(self, prompt: RenderedPrompt, completion_ids: list[int], *, logprobs: list[float] | None,
                finish_reason: str | None, policy_version: int | None = None) -> Message:
        """The parsed assistant Message carrying its Generation, exactly as sampled."""
        message = self.parse(prompt.text, completion_ids)
        message.generation = Generation(prompt_ids=list(prompt.ids), completion_ids=list(completion_ids),
                                        logprobs=logprobs, finish_reason=finish_reason,
                                        policy_version=policy_version)
        return message
