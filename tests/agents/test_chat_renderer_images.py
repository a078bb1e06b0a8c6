"""ChatRenderer with a multimodal processor (a real LlavaProcessor built here around the tiny
tokenizer, no download): each image placeholder expands to the processor's image tokens, in the
first prompt and in the delta after sampled tokens, and the veRL policy sends the same ids with
the conversation's images."""

from __future__ import annotations

import base64
import io

import anyio
import pytest

from traject.agents.chat_renderer import ChatRenderer
from traject.types import Generation, ImagePart, Message, TextPart

PIL = pytest.importorskip("PIL.Image")

TEMPLATE = (
    "{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' }}"
    "{%- if m.content is string %}{{- m.content }}{%- else %}{%- for p in m.content %}"
    "{%- if p.type == 'image' %}{{- '<image>' }}{%- else %}{{- p.text }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


@pytest.fixture(scope="module")
def processor():
    from transformers import LlavaProcessor

    try:
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor as ImageProcessor
    from traject.agents.hf import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tok.chat_template = TEMPLATE
    images = ImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    return LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=14, chat_template=TEMPLATE,
                          vision_feature_select_strategy="default", image_token="<image>",
                          num_additional_image_tokens=1)


def _png(color: tuple[int, int, int]) -> ImagePart:
    buf = io.BytesIO()
    PIL.new("RGB", (40, 40), color).save(buf, format="PNG")
    return ImagePart(data=base64.b64encode(buf.getvalue()).decode())


def _conversation(r: ChatRenderer, tok, images):
    msgs = [Message.system("Describe."), Message.user([TextPart(text="What is it?"), _png((255, 0, 0))])]
    first = r.render_prompt(msgs, [], images=images[:1])
    sampled = [i for ch in "A red square." for i in tok.encode(ch, add_special_tokens=False)]
    sampled.append(tok.convert_tokens_to_ids("<|im_end|>"))
    reply = Message.assistant("A red square.", generation=Generation(prompt_ids=first.ids, completion_ids=sampled))
    return [*msgs, reply, Message.user([_png((0, 0, 255)), TextPart(text="And this?")])], first, sampled


def test_image_placeholders_expand_in_the_prompt_and_the_delta(processor) -> None:
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    r = ChatRenderer(tok, processor=processor)
    from traject.trainers.verl.chat import decode_image

    msgs, first, sampled = _conversation(r, tok, [decode_image(_png((255, 0, 0))), decode_image(_png((0, 0, 255)))])
    images = [decode_image(p) for m in msgs for p in m.images]
    per_image = first.ids.count(image_id)
    assert per_image == 4  # (28 / 14)^2 patches: the placeholder expanded
    assert first.ids == processor(text=[first.text], images=images[:1], return_tensors=None)["input_ids"][0]
    p = r.render_prompt(msgs, [], images=images)
    assert p.fresh_reason is None and p.ids[: p.reused] == first.ids + sampled
    assert p.ids.count(image_id) == 2 * per_image
    assert tok.decode(p.ids[p.reused:]) == ("\n<|im_start|>user\n" + "<image>" * per_image
                                            + "And this?<|im_end|>\n<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="1 images given for 2 image parts"):
        r.render_prompt(msgs, [], images=images[:1])
    with pytest.raises(ValueError, match="no processor="):
        ChatRenderer(tok).render_prompt(msgs, [], images=images)


def test_verl_policy_sends_the_same_ids_and_the_images(processor) -> None:
    pytest.importorskip("verl", reason="the veRL extra is not installed")
    from verl.workers.rollout.replica import TokenOutput

    from traject.trainers.verl.policy import VerlServerPolicy

    tok = processor.tokenizer
    calls = []

    class Server:
        async def generate(self, *, request_id, prompt_ids, sampling_params, image_data=None, **kw):
            calls.append((list(prompt_ids), list(image_data or [])))
            ids = tok.encode("Blue.", add_special_tokens=False) + [tok.convert_tokens_to_ids("<|im_end|>")]
            return TokenOutput(token_ids=ids, log_probs=[-0.1] * len(ids), stop_reason="completed")

    policy = VerlServerPolicy(server_manager=Server(), tokenizer=tok, processor=processor, request_id="r",
                              sampling_params={}, prompt_length=4096, response_length=4096)
    r = ChatRenderer(tok, processor=processor)
    from traject.trainers.verl.chat import decode_image

    msgs = [Message.system("Describe."), Message.user([TextPart(text="What is it?"), _png((255, 0, 0))])]
    out = anyio.run(policy.act, msgs, [])
    msgs = [*msgs, out.message, Message.user([_png((0, 0, 255)), TextPart(text="And this?")])]
    anyio.run(policy.act, msgs, [])
    images = [decode_image(p) for m in msgs for p in m.images]
    assert calls[1][0] == r.render_prompt(msgs, [], images=images).ids
    assert len(calls[0][1]) == 1 and len(calls[1][1]) == 2
    assert calls[1][0][: len(calls[0][0]) + len(out.message.generation.completion_ids)] == \
        calls[0][0] + out.message.generation.completion_ids
