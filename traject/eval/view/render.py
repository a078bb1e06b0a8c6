"""HTML for the report: the task list, and one page per trajectory."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from traject.eval.markdown import summary_rows
from traject.eval.run_dir import EvalResults
from traject.eval.view.assets import CSS, FILTER_JS
from traject.eval.view.overlay import action_marks, image_size, overlay_svg
from traject.types import ImagePart, Message, RewardResult, Status, Step, Task, TextPart, Trajectory


def page(title: str, body: str, *, home: str | None = None, script: str = "") -> str:
    nav = f' &middot; <a href="{home}">all trajectories</a>' if home else ""
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'><style>{CSS}</style></head>"
            f"<body><header><h1>{escape(title)}</h1><div class=muted>traject eval report{nav}</div></header>"
            f"<main>{body}</main>{f'<script>{script}</script>' if script else ''}</body></html>")


def outcome(t: Trajectory) -> str:
    if t.status in (Status.INFRA_ERROR, Status.CANCELLED) or t.reward is None or t.reward.failed:
        return "unscored"
    return "success" if t.success else "failure"


def _json(v: Any) -> str:
    return escape(json.dumps(v, indent=2, ensure_ascii=False, default=str))


def index_page(results: EvalResults | None, trajs: list[tuple[str, Trajectory]], title: str) -> str:
    parts = []
    if results is not None:
        rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in summary_rows(results.summary))
        parts.append(f"<h2>Summary</h2><table class=summary>{rows}</table>")
    statuses = sorted({t.status.value for _, t in trajs})
    options = "".join(f"<option value='{s}'>{s}</option>" for s in statuses)
    parts.append(
        "<h2>Trajectories</h2><div class=filters>"
        "<label>search <input id=q type=search placeholder='task id or text'></label>"
        f"<label>status <select id=status><option value=''>all</option>{options}</select></label>"
        "<label>outcome <select id=outcome><option value=''>all</option><option value=success>success</option>"
        "<option value=failure>failure</option><option value=unscored>unscored</option></select></label>"
        f"<span><span id=shown>{len(trajs)}</span> of {len(trajs)} shown</span></div>")
    head = "<tr><th>task</th><th>sample</th><th>status</th><th>outcome</th><th>reward</th><th>turns</th>" \
           "<th>tool calls</th><th>tokens in/out</th><th>latency s</th></tr>"
    body = []
    for href, t in trajs:
        oc = outcome(t)
        reward = f"{t.reward.total:.3f}" if t.reward is not None and not t.reward.failed else "-"
        text = " ".join([t.task_id, t.status.value, oc, t.final_answer or "", t.error or ""]).lower()
        body.append(
            f"<tr data-status='{t.status.value}' data-outcome='{oc}' data-text='{escape(text, quote=True)}'>"
            f"<td><a href='{href}'>{escape(t.task_id)}</a></td><td>{t.sample_index}</td>"
            f"<td><span class='badge {t.status.value}'>{t.status.value}</span></td>"
            f"<td class='{'ok' if oc == 'success' else 'fail' if oc == 'failure' else 'muted'}'>{oc}</td>"
            f"<td>{reward}</td><td>{t.num_turns}</td><td>{t.usage.tool_calls}</td>"
            f"<td>{t.usage.prompt_tokens}/{t.usage.completion_tokens}</td><td>{t.timings.total_s:.2f}</td></tr>")
    parts.append(f"<table id=trajectories><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>")
    return page(title, "".join(parts), script=FILTER_JS)


def _content(content: str | list[Any]) -> str:
    if isinstance(content, str):
        return f"<pre>{escape(content)}</pre>" if content else ""
    out = []
    for p in content:
        if isinstance(p, TextPart):
            out.append(f"<pre>{escape(p.text)}</pre>")
        elif isinstance(p, ImagePart):
            out.append(f"<div class=shot>{_img(p)}</div>")
    return "".join(out)


def _img(p: ImagePart) -> str:
    src = p.url or f"data:{p.mime_type};base64,{p.data}"
    return f"<img src='{escape(src, quote=True)}' alt='screenshot'>"


def message_html(m: Message) -> str:
    extra = ""
    if m.role == "assistant":
        if m.reasoning:
            extra += f"<details><summary>reasoning</summary><pre>{escape(m.reasoning)}</pre></details>"
        for c in m.tool_calls:
            args = _json(c.arguments) if c.error is None else escape(c.raw or "")
            err = f" <span class='badge error'>malformed: {escape(c.error)}</span>" if c.error else ""
            extra += f"<div class=call>&rarr; <b class=tool-name>{escape(c.name or '?')}</b>{err}<pre>{args}</pre></div>"
    name = f" &middot; {escape(m.name)}" if m.name else ""
    return f"<div class='msg {m.role}'><div class=role>{m.role}{name}</div>{_content(m.content)}{extra}</div>"


def _last_screenshot(messages: list[Message]) -> ImagePart | None:
    for m in reversed(messages):
        if m.images:
            return m.images[-1]
    return None


def action_overlay(step: Step, seen: list[Message]) -> str:
    """The screenshot the model acted on, with the step's GUI actions marked on it."""
    shot = _last_screenshot(seen)
    if shot is None:
        return ""
    blocks = []
    for call in step.action.tool_calls:
        marks = action_marks(call.arguments)
        if not marks:
            continue
        size = (shot.width, shot.height) if shot.width and shot.height else (image_size(shot.data) if shot.data else None)
        if size is None:
            blocks.append(f"<div class=muted>action {escape(call.name)} at {escape(json.dumps(call.arguments))} "
                          "(the screenshot's size is unknown, so it is not drawn)</div>")
            continue
        blocks.append(f"<div class='action-shot'><div class=muted>action <b>{escape(call.name)}</b> on the "
                      f"screenshot it saw</div><div class=shot>{_img(shot)}{overlay_svg(marks, *size, call.name)}"
                      "</div></div>")
    return "".join(blocks)


def _spark(values: list[float], lo: float = 0.0, hi: float = 100.0) -> str:
    if not values:
        return ""
    w, h = 240, 48
    n = max(1, len(values) - 1)
    pts = " ".join(f"{i * w / n:.1f},{h - (min(max(v, lo), hi) - lo) / (hi - lo) * h:.1f}" for i, v in enumerate(values))
    return (f"<svg class=spark width={w} height={h} viewBox='0 0 {w} {h}'><polyline points='{pts}' fill=none "
            f"stroke='#3b82f6' stroke-width=2 /></svg>")


def find_key(obj: Any, key: str, depth: int = 3) -> list[Any]:
    """Every value under ``key`` in nested dicts (a WeightedSum nests each term's info under
    its name), shallowest first."""
    found: list[Any] = []
    frontier = [obj]
    for _ in range(depth + 1):
        nxt = []
        for d in frontier:
            if isinstance(d, dict):
                if key in d:
                    found.append(d[key])
                nxt.extend(v for k, v in d.items() if k != key and isinstance(v, dict))
        frontier = nxt
    return found


def _emotion_trace(reward: RewardResult | None, traj: Trajectory) -> list[tuple[str, float, str]]:
    """(label, emotion, reason): the emotion reward's ``emotion_trace`` and ``reasons`` (the
    start, then one value per user reaction), else the steps' ``user_state``."""
    out: list[tuple[str, float, str]] = []
    info = reward.info if reward else {}
    traces = [t for t in find_key(info, "emotion_trace") if isinstance(t, list)]
    if traces:
        trace = traces[0]
        reasons = next((r for r in find_key(info, "reasons") if isinstance(r, list)), [])
        for i, item in enumerate(trace):
            if isinstance(item, (int, float)):
                reason = str(reasons[i - 1]) if 0 < i <= len(reasons) else ""
                out.append(("start" if i == 0 else str(i), float(item), reason))
            elif isinstance(item, dict) and isinstance(item.get("emotion"), (int, float)):
                out.append((str(item.get("turn", i)), float(item["emotion"]),
                            str(item.get("reason") or item.get("rationale") or "")))
    if not out:
        for s in traj.steps:
            state = s.info.get("user_state")
            if isinstance(state, dict) and isinstance(state.get("emotion"), (int, float)):
                reasons = state.get("reasons")
                reason = str(reasons[-1]) if isinstance(reasons, list) and reasons else str(state.get("reason", ""))
                out.append((f"after turn {s.index + 1}", float(state["emotion"]), reason))
    return out


def judgements(reward: RewardResult | None) -> list[dict[str, Any]]:
    """Checklist decisions: the checklist reward's ``judgements`` (turn = user turn, step = the
    assistant step within it), or a plain ``checklist`` list of items."""
    if reward is None:
        return []
    items: list[dict[str, Any]] = []
    for found in [*find_key(reward.info, "judgements"), *find_key(reward.info, "checklist")]:
        if isinstance(found, list):
            items.extend(i for i in found if isinstance(i, dict))
    return items


def user_turns(traj: Trajectory) -> dict[int, tuple[int, int]]:
    """For each trajectory step: (user turn, step within that turn), as the checklist reward
    counts them (a turn opens with each user message; the k-th assistant message is step k)."""
    out: dict[int, tuple[int, int]] = {}
    turn, within, k = -1, 0, 0
    for m in traj.messages:
        if m.role == "user":
            turn, within = turn + 1, 0
        elif m.role == "assistant" and k < len(traj.steps):
            out[traj.steps[k].index] = (max(turn, 0), within)
            within += 1
            k += 1
    return out


def _checklist_table(items: list[dict[str, Any]]) -> str:
    rows = []
    for it in items:
        passed = it.get("satisfied", it.get("passed", it.get("score")))
        mark = "<span class=ok>&#10003;</span>" if passed in (True, 1, 1.0) else (
            "<span class=fail>&#10007;</span>" if passed in (False, 0, 0.0) else escape(str(passed)))
        name = it.get("item") or it.get("description") or it.get("name") or it.get("id") or ""
        rationale = it.get("rationale") or it.get("reason") or it.get("explanation") or ""
        source = it.get("source")
        weight = it.get("weight")
        extra = f" <span class=badge>{escape(str(source))}</span>" if source else ""
        rows.append(f"<tr class=checklist-item><td>{mark}</td><td>{escape(str(name))}{extra}</td>"
                    f"<td>{'' if weight is None else escape(str(weight))}</td>"
                    f"<td class=rationale>{escape(str(rationale))}</td></tr>")
    return ("<table class=checklist><tr><th></th><th>item</th><th>weight</th><th>judge's rationale</th></tr>"
            + "".join(rows) + "</table>") if rows else ""


def _gating(reward: RewardResult) -> tuple[Any, Any]:
    def pick(key: str) -> Any:
        for k, v in reward.components.items():
            if k == key or k.endswith("." + key) or k.endswith("/" + key):
                return v
        found = find_key(reward.info, key)
        return found[0] if found else None

    return pick("gated_total"), pick("ungated_total")


def reward_html(reward: RewardResult | None) -> str:
    if reward is None:
        return "<p class=muted>no reward</p>"
    if reward.failed:
        return f"<p class=fail>the reward could not be computed: {escape(reward.error or '')}</p>"
    parts = [f"<p class=reward-line>total <b class=reward-total>{reward.total:.4f}</b>; success: "
             f"<b>{'-' if reward.success is None else reward.success}</b></p>"]
    gated, ungated = _gating(reward)
    if gated is not None or ungated is not None:
        parts.append(f"<p class='reward-line gating'>gated total <b>{escape(str(gated))}</b> &middot; ungated total "
                     f"<b>{escape(str(ungated))}</b></p>")
    if reward.components:
        rows = "".join(f"<tr><td>{escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in reward.components.items())
        parts.append(f"<table class=components><tr><th>component</th><th>value</th></tr>{rows}</table>")
    if reward.per_turn:
        parts.append("<p class=reward-line>per user turn: " + ", ".join(f"{v:.3f}" for v in reward.per_turn) + "</p>")
    if reward.info:
        parts.append(f"<details><summary>reward info (JSON)</summary><pre>{_json(reward.info)}</pre></details>")
    return "".join(parts)


def trajectory_page(t: Trajectory, task: Task | None, home: str) -> str:
    reward = t.reward
    parts = [f"<p><span class='badge {t.status.value}'>{t.status.value}</span> sample {t.sample_index} &middot; "
             f"{t.num_turns} turns &middot; {t.usage.tool_calls} tool calls &middot; tokens "
             f"{t.usage.prompt_tokens} in / {t.usage.completion_tokens} out &middot; {t.timings.total_s:.2f} s "
             f"(model {t.timings.model_s:.2f}, tools {t.timings.tools_s:.2f}, user {t.timings.user_s:.2f}, "
             f"reward {t.timings.reward_s:.2f})</p>"]
    if t.error:
        parts.append(f"<p class=fail>error: {escape(t.error)}</p>")
    if task is not None and task.answer is not None:
        parts.append(f"<p>expected answer: <code>{escape(json.dumps(task.answer))}</code>; final answer: "
                     f"<code>{escape(str(t.final_answer))}</code></p>")
    parts.append(f"<h2>Reward</h2><section id=reward>{reward_html(reward)}</section>")
    emotions = _emotion_trace(reward, t)
    if emotions:
        rows = "".join(f"<tr><td>{escape(k)}</td><td>{v:g}</td><td>{escape(r)}</td></tr>" for k, v, r in emotions)
        parts.append(f"<h2>Emotion trace</h2><section id=emotion>{_spark([v for _, v, _ in emotions])}"
                     f"<table><tr><th>turn</th><th>emotion</th><th>why</th></tr>{rows}</table></section>")
    positions = user_turns(t)
    by_step: dict[int, list[dict[str, Any]]] = {}
    loose: list[dict[str, Any]] = []
    where = {v: k for k, v in positions.items()}
    for it in judgements(reward):
        turn, step = it.get("turn"), it.get("step")
        if isinstance(turn, int) and isinstance(step, int) and (turn, step) in where:
            by_step.setdefault(where[(turn, step)], []).append(it)
        elif isinstance(turn, int) and not isinstance(step, int) and (turn, 0) in where:
            last = max(i for (tt, _), i in where.items() if tt == turn)
            by_step.setdefault(last, []).append(it)
        else:
            loose.append(it)
    if loose:
        parts.append(f"<h2>Checklist</h2>{_checklist_table(loose)}")
    last_of_turn = {}
    for index, (turn, _) in positions.items():
        last_of_turn[turn] = max(index, last_of_turn.get(turn, -1))

    parts.append("<h2>Conversation</h2>")
    n_initial = len(t.messages) - sum(1 + len(s.observations) for s in t.steps)
    initial = t.messages[:max(0, n_initial)]
    parts.extend(message_html(m) for m in initial)
    seen = list(initial)
    for s in t.steps:
        block = [f"<h3>Turn {s.index + 1}</h3>", message_html(s.action)]
        block.append(action_overlay(s, seen))
        for r, obs in zip(s.tool_results, s.observations, strict=False):
            cls = "msg tool is-error" if r.is_error else "msg tool"
            badge = f" <span class='badge error'>{escape(r.error_kind or 'error')}</span>" if r.is_error else ""
            rew = f" &middot; reward {r.reward:g}" if r.reward is not None else ""
            block.append(f"<div class='{cls}'><div class=role>tool &middot; {escape(r.name)}{badge} &middot; "
                         f"{r.duration_s * 1000:.0f} ms{rew}</div>{_content(obs.content)}</div>")
        for obs in s.observations[len(s.tool_results):]:
            block.append(message_html(obs))
        line = [f"env step reward {s.reward:g}"]
        if reward and s.index < len(reward.per_step):
            line.append(f"reward at this step {reward.per_step[s.index]:g}")
        turn, _ = positions.get(s.index, (None, None))
        if reward and turn is not None and last_of_turn.get(turn) == s.index and turn < len(reward.per_turn):
            line.append(f"user turn {turn + 1} reward {reward.per_turn[turn]:g}")
        if s.format_errors:
            line.append(f"format errors {s.format_errors}")
        block.append(f"<p class=reward-line>{' &middot; '.join(line)}</p>")
        if s.index in by_step:
            block.append(_checklist_table(by_step[s.index]))
        if s.info:
            block.append(f"<details><summary>step info</summary><pre>{_json(s.info)}</pre></details>")
        parts.append(f"<section class=turn id='turn-{s.index + 1}'>{''.join(block)}</section>")
        seen.append(s.action)
        seen.extend(s.observations)
    title = f"{t.task_id} #{t.sample_index}"
    return page(title, "".join(parts), home=home)
