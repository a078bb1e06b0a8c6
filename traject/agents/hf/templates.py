"""Chat templates (Jinja, as Hugging Face tokenizers carry them) for the locally built tiny model.

``hermes`` is Qwen2.5/Hermes style: ChatML turns, tools listed in the system turn, assistant
tool calls as ``<tool_call>`` JSON, tool results as ``<tool_response>`` blocks inside one user
turn, reasoning (if any) kept in history as ``<think>...</think>``. It only ever appends, so
a conversation's token prefix never breaks.

``qwen3`` behaves like Qwen3's thinking templates: the generation prompt opens ``<think>``,
and reasoning is kept only for assistant turns after the last user message; earlier reasoning
is dropped from history, so a new user turn rewrites what came before (a prefix break).
"""

from __future__ import annotations

_SYSTEM_AND_TOOLS = r"""
{%- if messages and messages[0].role == 'system' %}{%- set system = messages[0].content %}{%- else %}{%- set system = none %}{%- endif %}
{%- if tools %}
{{- '<|im_start|>system\n' }}
{%- if system is not none %}{{- system + '\n\n' }}{%- endif %}
{{- '# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}
{%- for tool in tools %}{{- '\n' + (tool | tojson) }}{%- endfor %}
{{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' }}
{%- elif system is not none %}
{{- '<|im_start|>system\n' + system + '<|im_end|>\n' }}
{%- endif %}
"""

_TOOL_CALLS = r"""
{%- for tc in message.tool_calls or [] %}
{%- set fn = tc.function if tc.function is defined else tc %}
{%- if message.content or not loop.first %}{{- '\n' }}{%- endif %}
{{- '<tool_call>\n{"name": ' + (fn.name | tojson) + ', "arguments": ' }}
{%- if fn.arguments is string %}{{- fn.arguments }}{%- else %}{{- fn.arguments | tojson }}{%- endif %}
{{- '}\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\n' }}
"""

_OTHER_ROLES = r"""
{%- if message.role == 'system' %}
{%- if not loop.first %}{{- '<|im_start|>system\n' + message.content + '<|im_end|>\n' }}{%- endif %}
{%- elif message.role == 'user' %}
{{- '<|im_start|>user\n' + message.content + '<|im_end|>\n' }}
{%- elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}
"""

HERMES = (_SYSTEM_AND_TOOLS + r"""
{%- for message in messages %}""" + _OTHER_ROLES + r"""
{%- elif message.role == 'assistant' %}
{{- '<|im_start|>assistant\n' }}
{%- if message.reasoning_content %}{{- '<think>\n' + message.reasoning_content.strip('\n') + '\n</think>\n\n' }}{%- endif %}
{{- message.content or '' }}""" + _TOOL_CALLS + r"""
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
""").strip()

QWEN3 = (_SYSTEM_AND_TOOLS + r"""
{%- set ns = namespace(last_user=-1) %}
{%- for message in messages %}{%- if message.role == 'user' %}{%- set ns.last_user = loop.index0 %}{%- endif %}{%- endfor %}
{%- for message in messages %}""" + _OTHER_ROLES + r"""
{%- elif message.role == 'assistant' %}
{{- '<|im_start|>assistant\n' }}
{%- if loop.index0 > ns.last_user %}{{- '<think>\n' + (message.reasoning_content or '').strip('\n') + '\n</think>\n\n' }}{%- endif %}
{{- message.content or '' }}""" + _TOOL_CALLS + r"""
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n<think>\n' }}{%- endif %}
""").strip()

TEMPLATES: dict[str, str] = {"hermes": HERMES, "qwen3": QWEN3}


def get_template(name: str) -> str:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown chat template {name!r}; known: {', '.join(sorted(TEMPLATES))}") from None
