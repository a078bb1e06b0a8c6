"""Token-exact prompts from a chat template: "tokens in, tokens out".

A policy that samples tokens itself (HF transformers, vLLM inside veRL) needs, for each turn,
the prompt ids of the whole conversation. Re-rendering the conversation with the chat template
and tokenising it again would re-tokenise what the model generated, which can give different
ids than it sampled (BPE is not unique, and the template re-serialises tool calls). So:

* the last assistant message that carries a Generation is reused exactly: its ``prompt_ids``
  and ``completion_ids``, as sampled;
* the tokens after it (the rest of its turn's closing markup, tool results, user turns, the
  generation prompt) are the *text delta* of the chat template rendered with and without the
  new messages, tokenised on its own. The delta always starts right after the end-of-turn
  token, so tokenising it alone gives the same ids as tokenising it in place.

When the template rewrites history (Qwen3 drops earlier reasoning once a new user turn
arrives; some templates never show reasoning again) the delta does not exist: the template's
rendering now no longer extends what the model saw. The prompt is then rendered fresh from
the whole conversation, and :func:`traject.agents.tokens.build_token_views` starts a new
segment there, so that no training sequence is one the model never saw.

``ChatRenderer`` needs only a Hugging Face tokenizer with a chat template (any
``PreTrainedTokenizerBase``). It is the only code in traject that turns messages into prompt
ids: HFPolicy, VLLMPolicy, the veRL agent loop, CompletionsPolicy and ``traject serve`` all
reach it through :class:`traject.agents.turns.TokenTurns`.

>>> r = ChatRenderer(tokenizer)                          # doctest: +SKIP
>>> prompt = r.render_prompt(messages, tools)            # doctest: +SKIP
>>> prompt.ids, prompt.reused, prompt.fresh_reason      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from traject.agents.parsers.base import ToolCallFormat
from traject.types import ImagePart, Message, TextPart, TokenView, ToolSchema


@dataclass(frozen=True)
class RenderedPrompt:
    """The prompt ids for the next assistant turn.

    ``text`` is the chat template's own rendering of the conversation (with the generation
    prompt); ``ids`` equal its tokenisation only where nothing was reused. ``reused`` counts the
    leading ids taken as they were sampled (0 for a fresh render). ``fresh_reason`` says why an
    earlier turn's tokens could not be extended (a prefix break), else None.
    """

    ids: list[int]
    text: str
    reused: int = 0
    fresh_reason: str | None = None


class ChatRenderer:
    """Render conversations with a tokenizer's chat template, token-exactly.

    tokenizer: a Hugging Face tokenizer with a chat template.
    tool_format: None (default) passes tools, tool calls and tool results to the template
        natively (``tools=``, ``tool_calls``, role ``tool``). A ToolCallFormat instead writes
        them as text, for templates without tool support: the tool list is appended to the
        system message, calls to the assistant text, results become user turns.
    end_of_turn: the token that closes an assistant turn (default: the tokenizer's eos).
    template_kwargs: extra variables for the template (``enable_thinking=False``, ...).
    chat_template: a template to use instead of the tokenizer's own.
    processor: a multimodal processor (vision-language models): text with images is tokenised
        by it, so that each image's placeholder expands to the model's image tokens. The images
        themselves are passed to :meth:`render_prompt`, one per ImagePart, in order.
    """

    def __init__(self, tokenizer: Any, *, tool_format: ToolCallFormat | None = None,
                 end_of_turn: str | None = None, template_kwargs: dict[str, Any] | None = None,
                 chat_template: str | None = None, processor: Any = None) -> None:
        self.tokenizer = tokenizer
        self.processor = processor
        self.tool_format = tool_format
        self.template_kwargs = dict(template_kwargs or {})
        self.chat_template = chat_template
        eot = end_of_turn or tokenizer.eos_token
        if not eot:
            raise ValueError("the tokenizer has no eos token: pass end_of_turn= (the token that ends an assistant turn)")
        self.end_of_turn = eot
        eot_id = tokenizer.convert_tokens_to_ids(eot)
        if not isinstance(eot_id, int) or eot_id == getattr(tokenizer, "unk_token_id", None):
            raise ValueError(f"end_of_turn {eot!r} is not a single token of this tokenizer")
        self.end_of_turn_id: int = eot_id
        if chat_template is None and not getattr(tokenizer, "chat_template", None):
            raise ValueError("the tokenizer has no chat template: pass chat_template=")
        # The template text of prompts handed out, by their ids: next turn, the prompt the model
        # saw need not be rendered again (rendering dominates the cost of a turn's prompt).
        self._openings: OrderedDict[bytes, str] = OrderedDict()
        self._openings_lock = threading.Lock()
        self.cache_size = 4096

    # --- text ----------------------------------------------------------------------------

    def template_messages(self, messages: list[Message], tools: list[ToolSchema]) -> list[dict[str, Any]]:
        """The conversation as the dicts chat templates read."""
        fmt = self.tool_format
        out: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "assistant":
                d: dict[str, Any] = {"role": "assistant"}
                if fmt is not None:
                    d["content"] = fmt.render_calls(m.text, m.tool_calls)
                else:
                    good = [c for c in m.tool_calls if c.error is None]
                    # A botched call goes back as the text the model wrote.
                    d["content"] = "\n".join([m.text] * bool(m.text)
                                             + [c.raw for c in m.tool_calls if c.error is not None and c.raw])
                    if good:
                        d["tool_calls"] = [{"id": c.id, "type": "function",
                                            "function": {"name": c.name, "arguments": c.arguments}} for c in good]
                if m.reasoning is not None:
                    d["reasoning_content"] = m.reasoning
                out.append(d)
            elif m.role == "tool":
                if fmt is not None:
                    out.append({"role": "user", "content": fmt.render_result(m.name or "", m.text)})
                else:
                    out.append({"role": "tool", "content": _content(m), "tool_call_id": m.tool_call_id,
                                "name": m.name})
            else:
                out.append({"role": m.role, "content": _content(m)})
        if fmt is not None and tools:
            listing = fmt.render_tools(tools)
            if out and out[0]["role"] == "system" and isinstance(out[0]["content"], str):
                out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{listing}"}
            else:
                out.insert(0, {"role": "system", "content": listing})
        return out

    def render_text(self, messages: list[Message], tools: list[ToolSchema], *, add_generation_prompt: bool) -> str:
        conversation = self.template_messages(messages, tools)
        schemas = [t.to_openai() for t in tools] if tools and self.tool_format is None else None
        templater = self.processor if self.processor is not None else self.tokenizer
        text = templater.apply_chat_template(
            conversation, tools=schemas, add_generation_prompt=add_generation_prompt, tokenize=False,
            chat_template=self.chat_template, **self.template_kwargs)
        if not isinstance(text, str):
            raise TypeError(f"apply_chat_template(tokenize=False) returned {type(text).__name__}, not text")
        return text

    def encode(self, text: str, images: list[Any] | None = None) -> list[int]:
        """Tokenise template text: special tokens written in it are parsed, none are added.
        With ``images`` (those whose placeholders ``text`` holds), the processor expands them."""
        if images:
            if self.processor is None:
                raise ValueError("the conversation holds images, but this ChatRenderer has no processor= "
                                 "(a vision-language model's processor) to tokenise them")
            out = self.processor(text=[text], images=list(images), return_tensors=None)
            return [int(i) for i in out["input_ids"][0]]
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    # --- prompts -------------------------------------------------------------------------

    def render_prompt(self, messages: list[Message], tools: list[ToolSchema], *,
                      images: list[Any] | None = None) -> RenderedPrompt:
        """The prompt ids for the assistant turn that follows ``messages``. ``images``: the
        conversation's images as the processor takes them, one per ImagePart, in order."""
        full = self.render_text(messages, tools, add_generation_prompt=True)
        last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "assistant"), None)
        gen = messages[last].generation if last is not None else None
        if images is not None and len(images) != sum(len(m.images) for m in messages):
            raise ValueError(f"{len(images)} images given for {sum(len(m.images) for m in messages)} image parts")
        if last is None or gen is None or not gen.prompt_ids:
            return self._remember(RenderedPrompt(ids=self.encode(full, images), text=full))
        before = self.render_text(messages[: last + 1], tools, add_generation_prompt=False)
        reason, tail = self._turn_tail(messages, tools, last, before)
        if reason is None:
            if not full.startswith(before):
                reason = "the chat template rewrote earlier turns when new messages were added"
            else:
                closing = tail if gen.completion_ids[-1:] != [self.end_of_turn_id] else tail[len(self.end_of_turn):]
                seen = sum(len(m.images) for m in messages[: last + 1])
                delta = self.encode(closing + full[len(before):], images[seen:] if images else None)
                reused = len(gen.prompt_ids) + len(gen.completion_ids)
                return self._remember(RenderedPrompt(ids=[*gen.prompt_ids, *gen.completion_ids, *delta], text=full,
                                                     reused=reused))
        return self._remember(RenderedPrompt(ids=self.encode(full, images), text=full, fresh_reason=reason))

    def _remember(self, prompt: RenderedPrompt) -> RenderedPrompt:
        key = _key(prompt.ids)
        with self._openings_lock:
            self._openings[key] = prompt.text
            self._openings.move_to_end(key)
            while len(self._openings) > self.cache_size:
                self._openings.popitem(last=False)
        return prompt

    def _turn_tail(self, messages: list[Message], tools: list[ToolSchema], index: int,
                   closed: str) -> tuple[str | None, str]:
        """How the template closes assistant turn ``index`` (its end-of-turn token and what
        follows it), or why the turn's sampled tokens cannot stand for the template's turn.
        ``closed`` is the conversation rendered up to and including that turn."""
        gen = messages[index].generation
        with self._openings_lock:
            opening = self._openings.get(_key(gen.prompt_ids)) if gen is not None else None
        if opening is None:
            opening = self.render_text(messages[:index], tools, add_generation_prompt=True)
        if not closed.startswith(opening):
            return "the chat template renders the assistant turn differently from its generation prompt", ""
        turn = closed[len(opening):]
        end = turn.rfind(self.end_of_turn)
        if end == -1:
            return f"the chat template does not close the assistant turn with {self.end_of_turn!r}", ""
        reasoning = (messages[index].reasoning or "").strip()
        if reasoning and reasoning not in turn:
            return "the chat template drops the assistant's reasoning from history", ""
        return None, turn[end:]

    # --- supervised sequences --------------------------------------------------------------

    def render_supervised(self, messages: list[Message], tools: list[ToolSchema]) -> list[TokenView]:
        """Token views of a whole conversation for supervised fine-tuning, mask 1 on each
        assistant turn (its text and end-of-turn token, as the template renders it).

        The targets are the template's rendering of each assistant message, tokenised on its
        own, and the context between turns is built like :meth:`render_prompt` builds it, so
        a model trained on these sees the same prompts when it samples. Where the template
        rewrites history the conversation splits into several views, as for sampled ones.
        """
        views: list[TokenView] = []
        ids: list[int] = []
        mask: list[int] = []
        turn: list[int] = []
        text_so_far: str | None = None
        prompt_len = 0
        k = 0
        for index, m in enumerate(messages):
            if m.role != "assistant":
                continue
            opening = self.render_text(messages[:index], tools, add_generation_prompt=True)
            closed = self.render_text(messages[: index + 1], tools, add_generation_prompt=False)
            if not closed.startswith(opening):
                raise ValueError(f"assistant message {index}: the chat template's generation prompt is not a "
                                 "prefix of its rendering of the assistant turn, so there is no target text")
            target = closed[len(opening):]
            end = target.rfind(self.end_of_turn)
            if end == -1:
                raise ValueError(f"assistant message {index}: the chat template does not close the turn with "
                                 f"{self.end_of_turn!r}")
            target = target[: end + len(self.end_of_turn)]
            if text_so_far is not None and opening.startswith(text_so_far):
                context = self.encode(opening[len(text_so_far):])
            else:
                if ids:
                    views.append(_view(ids, mask, turn, prompt_len))
                ids, mask, turn = [], [], []
                context = self.encode(opening)
                prompt_len = len(context)
            target_ids = self.encode(target)
            ids += context + target_ids
            mask += [0] * len(context) + [1] * len(target_ids)
            turn += [-1] * len(context) + [k] * len(target_ids)
            text_so_far = opening + target
            k += 1
        if ids:
            views.append(_view(ids, mask, turn, prompt_len))
        return views


def _key(ids: list[int]) -> bytes:
    return hashlib.blake2b(array("q", ids).tobytes(), digest_size=16).digest()


def _view(ids: list[int], mask: list[int], turn: list[int], prompt_len: int) -> TokenView:
    return TokenView(ids=list(ids), mask=list(mask), logprobs=[0.0] * len(ids), prompt_len=prompt_len,
                     turn=list(turn))


def _content(m: Message) -> str | list[dict[str, Any]]:
    if isinstance(m.content, str):
        return m.content
    if not m.images:
        return m.text
    parts: list[dict[str, Any]] = []
    for p in m.content:
        if isinstance(p, TextPart):
            parts.append({"type": "text", "text": p.text})
        elif isinstance(p, ImagePart):
            parts.append({"type": "image", **({"url": p.url} if p.url else {})})
    return parts
