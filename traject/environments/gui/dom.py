"""A compact text view of a page's DOM, for text-only models and element-id actions.

Each visible element that is interactive or holds text of its own becomes one line::

    [3] button "Submit" @(120,200,60,24)
    [4] input type=checkbox checked "apple" @(10,60,13,13)
    [7] select value="Bruno" options=["Alice","Bruno"] @(10,80,90,24)
    [9] button "garden" @(10,700,70,24) outside
    [12] button "Submit" @(40,60,60,24) covered

``[n]`` is the element id that ``click_element``/``type_element``/``select_element`` take; ids
stay the same for an element during an episode. The box is (x, y, width, height) in screenshot
pixels. Two marks say why an element cannot be clicked at its centre, because the fix differs:
``outside`` (its centre is off the screen: scroll to it) and ``covered`` (on the screen, but
another element, a dialog or an overlay, is on top of it there: deal with that element first).
"""

from __future__ import annotations

import json

from typing import Literal

from pydantic import BaseModel, ConfigDict

ID_ATTRIBUTE = "data-traject-id"

# (clipX, clipY, clipW, clipH, scale) -> [element, ...]
SNAPSHOT_JS = """
([clipX, clipY, clipW, clipH, scale]) => {
  const ATTR = '%s';
  const INTERACTIVE = new Set(['A', 'BUTTON', 'INPUT', 'SELECT', 'TEXTAREA', 'LABEL', 'SUMMARY']);
  const ROLES = new Set(['button', 'link', 'tab', 'checkbox', 'radio', 'menuitem', 'option', 'img',
                         'switch', 'textbox', 'combobox', 'slider']);
  const SKIP = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'HEAD', 'OPTION']);
  // MiniWoB's own heads-up display, which its getDOMInfo leaves out too.
  const SKIP_IDS = new Set(['reward-display', 'sync-task-cover', 'click-canvas', 'attention-canvas']);
  let next = window.__trajectNextId || 1;
  const out = [];
  const squash = (t) => (t || '').replace(/\\s+/g, ' ').trim();
  const ownText = (el) => squash(Array.from(el.childNodes)
      .filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.data).join(' '));
  const walk = (el) => {
    if (SKIP.has(el.tagName) || SKIP_IDS.has(el.id)) return;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') return;
    const r = el.getBoundingClientRect();
    const tag = el.tagName.toLowerCase();
    const role = el.getAttribute('role');
    const interactive = INTERACTIVE.has(el.tagName) || (role && ROLES.has(role)) ||
        typeof el.onclick === 'function' || typeof el.ondblclick === 'function' ||
        el.hasAttribute('tabindex') || style.cursor === 'pointer' || style.cursor === 'move';
    const text = ownText(el);
    if ((interactive || text) && r.width > 0 && r.height > 0 && parseFloat(style.opacity) > 0) {
      if (!el.hasAttribute(ATTR)) el.setAttribute(ATTR, String(next++));
      const cx = r.left + r.width / 2, cy = r.top + r.height / 2;
      const onScreen = cx >= clipX && cy >= clipY && cx < clipX + clipW && cy < clipY + clipH &&
          cx >= 0 && cy >= 0 && cx < window.innerWidth && cy < window.innerHeight;
      let placement = onScreen ? 'visible' : 'outside';
      if (onScreen) {
        const hit = document.elementFromPoint(cx, cy);
        const mine = !!hit && (hit === el || el.contains(hit) || (el.tagName === 'LABEL' && el.control === hit));
        if (!mine) placement = 'covered';
      }
      const item = {
        id: +el.getAttribute(ATTR), tag: tag, text: text.slice(0, 200),
        box: [Math.round((r.left - clipX) * scale), Math.round((r.top - clipY) * scale),
              Math.round(r.width * scale), Math.round(r.height * scale)],
        placement: placement, focused: document.activeElement === el,
      };
      if (role) item.role = role;
      const label = el.getAttribute('aria-label') || el.getAttribute('title');
      if (label) item.label = label;
      if (el.disabled) item.disabled = true;
      if (el.tagName === 'INPUT') {
        item.type = el.type;
        if (el.type === 'checkbox' || el.type === 'radio') item.checked = el.checked;
        else item.value = el.value;
      } else if (el.tagName === 'TEXTAREA') {
        item.value = el.value;
      } else if (el.tagName === 'SELECT') {
        item.value = el.value;
        item.options = Array.from(el.options).map((o) => squash(o.textContent));
      } else if (el.tagName === 'LABEL' && el.control && el.control.type &&
                 (el.control.type === 'checkbox' || el.control.type === 'radio')) {
        item.checked = el.control.checked;
      }
      out.push(item);
    }
    for (const child of el.children) walk(child);
  };
  walk(document.body);
  window.__trajectNextId = next;
  return out;
}
""" % ID_ATTRIBUTE


class DomElement(BaseModel):
    """One element of the compact DOM. ``box`` is (x, y, w, h) in screenshot pixels."""

    model_config = ConfigDict(extra="ignore")

    id: int
    tag: str
    text: str = ""
    box: tuple[int, int, int, int]
    placement: Literal["visible", "covered", "outside"] = "visible"
    focused: bool = False
    role: str | None = None
    label: str | None = None
    disabled: bool = False
    type: str | None = None
    value: str | None = None
    checked: bool | None = None
    options: list[str] | None = None

    @property
    def in_view(self) -> bool:
        """Visible at its centre: neither outside the screen nor covered."""
        return self.placement == "visible"

    @property
    def center(self) -> tuple[int, int]:
        x, y, w, h = self.box
        return x + w // 2, y + h // 2

    def line(self) -> str:
        parts = [f"[{self.id}]", self.tag]
        if self.type:
            parts.append(f"type={self.type}")
        if self.role:
            parts.append(f"role={self.role}")
        if self.checked is not None:
            parts.append("checked" if self.checked else "unchecked")
        if self.text:
            parts.append(json.dumps(self.text, ensure_ascii=False))
        if self.label and self.label != self.text:
            parts.append(f"label={json.dumps(self.label, ensure_ascii=False)}")
        if self.value is not None:
            parts.append(f"value={json.dumps(self.value, ensure_ascii=False)}")
        if self.options is not None:
            parts.append("options=" + json.dumps(self.options, ensure_ascii=False))
        parts.append("@({},{},{},{})".format(*self.box))
        if self.focused:
            parts.append("focused")
        if self.disabled:
            parts.append("disabled")
        if self.placement != "visible":
            parts.append(self.placement)
        return " ".join(parts)


def format_dom(elements: list[DomElement]) -> str:
    return "\n".join(e.line() for e in elements) if elements else "(no visible elements)"


def parse_dom(text: str) -> list[DomElement]:
    """Read back the lines :func:`format_dom` wrote (for scripted policies and tests)."""
    import re

    line_re = re.compile(r"^\[(\d+)\] (\S+)(.*?) @\((-?\d+),(-?\d+),(\d+),(\d+)\)(.*)$")
    out: list[DomElement] = []
    for line in text.splitlines():
        m = line_re.match(line.strip())
        if not m:
            continue
        rest, flags = m.group(3), m.group(8).split()
        fields: dict[str, object] = {
            "id": int(m.group(1)), "tag": m.group(2),
            "box": tuple(int(m.group(i)) for i in range(4, 8)),
            "placement": next((f for f in ("covered", "outside") if f in flags), "visible"),
            "focused": "focused" in flags,
            "disabled": "disabled" in flags,
        }
        decoder = json.JSONDecoder()
        i = 0
        while i < len(rest):
            if rest[i] == " ":
                i += 1
                continue
            key_m = re.match(r"(\w+)=", rest[i:])
            if key_m and key_m.group(1) in ("type", "role"):
                end = rest.find(" ", i)
                end = len(rest) if end < 0 else end
                fields[key_m.group(1)] = rest[i + len(key_m.group(0)):end]
                i = end
            elif key_m:
                value, n = decoder.raw_decode(rest[i + len(key_m.group(0)):])
                fields[key_m.group(1)] = value
                i += len(key_m.group(0)) + n
            elif rest[i] == '"':
                value, n = decoder.raw_decode(rest[i:])
                fields["text"] = value
                i += n
            else:
                end = rest.find(" ", i)
                end = len(rest) if end < 0 else end
                word = rest[i:end]
                if word in ("checked", "unchecked"):
                    fields["checked"] = word == "checked"
                i = end
        out.append(DomElement.model_validate(fields))
    return out
