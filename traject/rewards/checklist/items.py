"""The checklist of CM2 ("RL with Checklist Rewards for Multi-Turn and Multi-Step Agentic Tool
Use", Zhang et al., 2026): per user turn, binary items with evidence and weights summing to 1.

A task carries its checklist in ``task.data["checklist"]`` (the key is configurable), either in
this module's shape::

    [{"turn": 0, "items": [{"id": "C0", "question": ..., "focus_on": "assistant.tool_calls",
                            "pass_condition": ..., "failure_examples": [...],
                            "evidence": [{"turn": 0, "step": 1, "from": "tool.content", "snippet": ...}],
                            "required_for_next_turn": true, "dependence": [], "weight": 0.5}, ...]},
     ...]

or in the CM2 annotation files' shape, where a turn is ``{"turn", "checklist": [items],
"dependence": {id: [ids]}, "weight": {id: w}}``; both load into the same models.

Validated: ids unique within a turn; every dependence names an item of the same turn, never
itself, without cycles; weights non-negative and summing to 1 (within 1e-6) in each turn.

>>> t = TurnChecklist.model_validate({"turn": 0, "checklist": [
...     {"id": "C0", "question": "Called search?", "focus_on": "assistant.tool_calls",
...      "pass_condition": "a search call"},
...     {"id": "C1", "question": "Reported it?", "focus_on": "assistant.content.user_visible_reply",
...      "pass_condition": "mentions the result"}],
...     "dependence": {"C1": ["C0"]}, "weight": {"C0": 0.4, "C1": 0.6}})
>>> [(i.id, i.weight, i.dependence) for i in t.items]
[('C0', 0.4, []), ('C1', 0.6, ['C0'])]
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

WEIGHT_TOLERANCE = 1e-6


class FocusOn(str, Enum):
    """Which part of the conversation an item is about (CM2's ``focus_on`` values)."""

    USER_CONTENT = "user.content"
    TOOL_CALLS = "assistant.tool_calls"
    THINKING = "assistant.content.thinking"
    VISIBLE_REPLY = "assistant.content.user_visible_reply"
    TOOL_CONTENT = "tool.content"

    @property
    def about_tools(self) -> bool:
        """Items a tool-call error decides without a judge call."""
        return self in (FocusOn.TOOL_CALLS, FocusOn.TOOL_CONTENT)


class Evidence(BaseModel):
    """Where the reference conversation shows the item satisfied."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    turn: int = Field(ge=0)
    step: int = Field(ge=0)
    source: FocusOn | None = Field(default=None, alias="from")
    snippet: str = ""


class ChecklistItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    question: str
    focus_on: FocusOn
    pass_condition: str
    evidence: list[Evidence] = Field(default_factory=list)
    failure_examples: list[str] = Field(default_factory=list)
    required_for_next_turn: bool = False
    dependence: list[str] = Field(default_factory=list)
    weight: float = Field(ge=0.0)


class TurnChecklist(BaseModel):
    """The items of one user turn."""

    model_config = ConfigDict(extra="forbid")

    turn: int | None = None
    items: list[ChecklistItem]

    @model_validator(mode="before")
    @classmethod
    def _cm2_shape(cls, data: Any) -> Any:
        """Accept CM2's ``{"checklist": [...], "dependence": {...}, "weight": {...}}``."""
        if not isinstance(data, dict) or "checklist" not in data:
            return data
        data = dict(data)
        deps = data.pop("dependence", None) or {}
        weights = data.pop("weight", None) or {}
        items = []
        for raw in data.pop("checklist"):
            item = dict(raw)
            if "must_pass_to_continue" in item:  # the labelling prompt's older name
                item.setdefault("required_for_next_turn", item.pop("must_pass_to_continue"))
            iid = item.get("id")
            if "dependence" not in item and iid in deps:
                item["dependence"] = deps[iid]
            if "weight" not in item and iid in weights:
                item["weight"] = weights[iid]
            items.append(item)
        data["items"] = items
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TurnChecklist:
        where = f"turn {self.turn}" if self.turn is not None else "a turn"
        if not self.items:
            raise ValueError(f"{where} has no checklist items")
        ids = [i.id for i in self.items]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"{where}: item ids must be unique, repeated: {dupes}")
        known = set(ids)
        for item in self.items:
            for dep in item.dependence:
                if dep == item.id:
                    raise ValueError(f"{where}: item {item.id} depends on itself")
                if dep not in known:
                    raise ValueError(f"{where}: item {item.id} depends on {dep!r}, which is not an item "
                                     f"of this turn (items: {ids})")
        self._check_acyclic(where)
        total = sum(i.weight for i in self.items)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise ValueError(f"{where}: item weights must sum to 1, they sum to {total:.6g} "
                             f"({', '.join(f'{i.id}={i.weight:g}' for i in self.items)}); "
                             "fix the weights, or load with Checklist.normalized()")
        return self

    def _check_acyclic(self, where: str) -> None:
        deps = {i.id: i.dependence for i in self.items}
        state: dict[str, int] = {}

        def visit(node: str, path: list[str]) -> None:
            if state.get(node) == 2:
                return
            if state.get(node) == 1:
                raise ValueError(f"{where}: items depend on each other in a cycle: {' -> '.join(path + [node])}")
            state[node] = 1
            for d in deps[node]:
                visit(d, path + [node])
            state[node] = 2

        for node in deps:
            visit(node, [])

    def item(self, item_id: str) -> ChecklistItem:
        for i in self.items:
            if i.id == item_id:
                return i
        raise KeyError(item_id)

    def with_dependencies(self, ids: set[str]) -> set[str]:
        """``ids`` and everything they depend on, transitively."""
        out: set[str] = set()
        todo = list(ids)
        while todo:
            i = todo.pop()
            if i in out:
                continue
            out.add(i)
            todo.extend(self.item(i).dependence)
        return out


class Checklist(BaseModel):
    """The whole reference checklist: one TurnChecklist per user turn, in order."""

    model_config = ConfigDict(extra="forbid")

    turns: list[TurnChecklist]

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"turns": data}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> Checklist:
        for k, t in enumerate(self.turns):
            if t.turn is not None and t.turn != k:
                raise ValueError(f"checklist turn {k} is labelled turn {t.turn}: turns must be listed "
                                 "in order, one per user turn, starting at 0")
        return self

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    @classmethod
    def normalized(cls, data: Any) -> Checklist:
        """Load ``data`` rescaling each turn's weights to sum to 1 (all-zero turns: equal weights)."""
        raw = cls._from_list(data)
        turns = raw["turns"] if isinstance(raw, dict) else raw
        fixed = []
        for t in turns:
            t = TurnChecklist._cm2_shape(t)
            items = [dict(i) for i in t["items"]]
            total = sum(float(i.get("weight", 0.0)) for i in items)
            for i in items:
                i["weight"] = float(i.get("weight", 0.0)) / total if total > 0 else 1.0 / len(items)
            fixed.append({**t, "items": items})
        return cls.model_validate({"turns": fixed})

    @classmethod
    def from_task_data(cls, data: dict[str, Any], key: str = "checklist", *, source: str = "task") -> Checklist:
        """The checklist under ``data[key]`` (a list, a dict, or a path to a JSON file); a clear
        error naming the task, the field and the fix otherwise."""
        if key not in data:
            raise ValueError(f"{source} has no checklist: task.data[{key!r}] is missing (add the "
                             "per-turn checklist there, or set ChecklistConfig.checklist_key)")
        value = data[key]
        if isinstance(value, str):
            path = Path(value)
            try:
                value = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"{source}: task.data[{key!r}] names {path}, which is not a readable "
                                 f"JSON checklist: {exc}") from exc
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{source}: task.data[{key!r}] is not a valid checklist at {loc or '(root)'}: "
                             f"{first['msg']}") from exc
