"""Chat templates the trainers add to the agents' set, and how a config names one.

``compact`` is the tiny model's ``hermes`` template with a one-line-per-tool signature listing
in the system turn (``lookup(item)``) instead of the JSON schemas and their boilerplate, and
each tool result as its own ChatML ``tool`` turn instead of ``<tool_response>`` blocks in a
user turn.
The quickstart uses it: the model is built here and trained from scratch, so it needs no
particular prompt format, and a prompt of ~70 tokens instead of ~300 makes every training and
sampling step on a CPU several times cheaper. Tool calls are written exactly as in ``hermes``.
"""

from __future__ import annotations

from pathlib import Path

from traject.agents.hf import templates as agent_templates

_COMPACT_SYSTEM = r"""
{%- if messages and messages[0].role == 'system' %}{%- set system = messages[0].content %}{%- else %}{%- set system = none %}{%- endif %}
{%- if tools %}
{{- '<|im_start|>system\n' }}
{%- if system is not none %}{{- system + '\n' }}{%- endif %}
{{- 'Tools:' }}
{%- for tool in tools %}{%- set fn = tool.function if tool.function is defined else tool %}
{{- '\n' + fn.name + '(' + ((fn.parameters.properties or {}) | list | join(', ')) + ')' }}
{%- endfor %}
{{- '<|im_end|>\n' }}
{%- elif system is not none %}
{{- '<|im_start|>system\n' + system + '<|im_end|>\n' }}
{%- endif %}
"""


_COMPACT_TOOL_RESULT = r"""
{%- elif message.role == 'tool' %}
{{- '<|im_start|>tool\n' + message.content + '<|im_end|>\n' }}
"""


def _compact() -> str:
    head = agent_templates._SYSTEM_AND_TOOLS.strip()
    tool = agent_templates._OTHER_ROLES[agent_templates._OTHER_ROLES.index("{%- elif message.role == 'tool' %}"):]
    if head not in agent_templates.HERMES or tool.strip() not in agent_templates.HERMES:
        raise RuntimeError("the hermes template changed: traject.trainers.templates.compact needs updating")
    return (agent_templates.HERMES.replace(head, _COMPACT_SYSTEM.strip())
            .replace(tool.strip(), _COMPACT_TOOL_RESULT.strip()))


TEMPLATES = {"compact": _compact()}


def resolve_chat_template(spec: str | None) -> str | None:
    """``None`` (the tokenizer's own), a template name (``compact``, or one of the agents'
    ``hermes``/``qwen3``), or the path of a Jinja file."""
    if spec is None:
        return None
    if spec in TEMPLATES:
        return TEMPLATES[spec]
    if spec in agent_templates.TEMPLATES:
        return agent_templates.TEMPLATES[spec]
    path = Path(spec)
    if path.suffix in (".jinja", ".j2", ".txt") and path.exists():
        return path.read_text()
    known = ", ".join(sorted({*TEMPLATES, *agent_templates.TEMPLATES}))
    raise ValueError(f"model.chat_template {spec!r}: not a known template ({known}) nor a .jinja file")
