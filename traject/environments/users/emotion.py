"""EmotionUser: the RLVER / SAGE simulated user, whose emotion the agent should lift.

The user has a profile (persona, a scene with a hidden theme, a character type and traits, a
hidden task, a first utterance: the RLVER / SAGE profile JSONL) and an emotion score in
[0, 100]. Each agent turn makes two model calls:

1. the analyser reads the conversation in character and returns how the emotion changes,
   with its reasons (the change clamped to ``±max_change`` when set, as SAGE does);
2. the reply call speaks in character, given the emotion's label and the analysis.

The rules of a dialogue are each benchmark's own (``EmotionRules``; RLVER's training set-up or
SAGE's evaluation set-up), picked from the profile's family unless the config names them:

======  =====  ==========  ==========  =================================  ==========
rules   start  max change  user turns  ends low                           ends high
======  =====  ==========  ==========  =================================  ==========
rlver   30     none        8           emotion <= 0                       (goodbye)
sage    40     ±10         9           emotion < 10                       >= 100
======  =====  ==========  ==========  =================================  ==========

Either also ends when the user says goodbye. A profile with SAGE's fields (``task``,
``first_talk`` or ``cha_group``) is SAGE's; one with only RLVER's (``id, player, scene,
main_cha, topic``) is RLVER's. The agent thinks, then says: its ``<think>…</think>`` is
stripped before the user reads it. The emotion after every turn is in the user's state
(``emotion``, ``emotion_trace``, ``reasons``, ``done_reason``: the contract of
``traject.rewards.emotion``), which the env records in each step's ``info["user_state"]``; the
reward is max(final / 100, 0).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from traject.environments.users.base import UserSimulator, UserTurn
from traject.environments.users.character import DEFAULT_BREAK_PATTERNS, CharacterCheck
from traject.environments.users.llm import ChatReply, SimulatorLLM, SimulatorLLMConfig
from traject.environments.users.view import new_agent_words
from traject.types import Message, Task

RLVER_START = 30.0
SAGE_START = 40.0

# RLVER's emotion bands: S at the top (says goodbye, satisfied), F at the bottom (says goodbye, done).
LABELS: tuple[tuple[str, float, str], ...] = (
    ("S", 100.0, "at its highest: you feel understood and better; thank the supporter and say goodbye"),
    ("A", 70.0, "high: the conversation feels good to you, and your replies are warm and open"),
    ("B", 40.0, "middling: you feel neither better nor worse; you stay guarded but keep talking"),
    ("C", 10.0, "low: the conversation frustrates you, and your replies are curt or negative"),
    ("F", float("-inf"), "at its lowest: you do not want to go on; say goodbye and leave"),
)


def emotion_label(value: float) -> str:
    """RLVER's band of an emotion score.

    >>> [emotion_label(v) for v in (100, 75, 40, 12, 3)]
    ['S', 'A', 'B', 'C', 'F']
    """
    for label, floor, _ in LABELS:
        if value >= floor:
            return label
    return "F"


def _label_text(label: str) -> str:
    return next(text for name, _, text in LABELS if name == label)


class EmotionProfile(BaseModel):
    """One simulated user, as a line of RLVER's or SAGE's profile JSONL.

    RLVER: ``id, player, scene, main_cha, topic``; SAGE adds ``cha_group, task, first_talk``.
    Unknown fields are kept out of the way (ignored), so files of either family load unchanged.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str
    player: str = Field(description="the persona: who the user is, how they speak")
    scene: str = Field(description="the background story, with the hidden theme the user wants to confide")
    main_cha: str | None = Field(default=None, alias="main_cha", description="character type (e.g. negative)")
    cha_group: list[str] = Field(default_factory=list, description="character traits")
    topic: str | None = None
    task: str | None = Field(default=None, description="the user's hidden task in this conversation")
    first_talk: str | None = Field(default=None, description="the user's first utterance")

    @field_validator("id", mode="before")
    @classmethod
    def _id_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @field_validator("cha_group", mode="before")
    @classmethod
    def _traits(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [t.strip() for t in re.split(r"[,，、]", v) if t.strip()]
        return v

    @property
    def family(self) -> Literal["rlver", "sage"]:
        """SAGE's profiles carry a hidden task, a first talk and traits; RLVER's do not."""
        return "sage" if (self.task or self.first_talk or self.cha_group) else "rlver"

    def render(self) -> str:
        parts = [f"# Who you are\n{self.player}", f"# The scene (its hidden theme is yours to reveal slowly)\n{self.scene}"]
        character = ", ".join(x for x in [self.main_cha or "", *self.cha_group] if x)
        if character:
            parts.append(f"# Your character\n{character}")
        if self.task:
            parts.append(f"# What you want from this conversation (never say it outright)\n{self.task}")
        return "\n\n".join(parts)


class EmotionRules(BaseModel):
    """When and how a dialogue's emotion moves and ends: one benchmark's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    start_emotion: float = Field(ge=0, le=100)
    max_change: float | None = Field(default=None, gt=0, description="clamp of one turn's change; None: no clamp")
    max_turns: int = Field(ge=1, description="user replies before the dialogue ends")
    end_emotion: float = Field(description="the low threshold that ends the dialogue")
    end_rule: Literal["below", "at_or_below"] = "at_or_below"
    end_high: float | None = Field(default=None, description="the emotion at or above which it ends; None: never")

    def ends_low(self, emotion: float) -> bool:
        return emotion < self.end_emotion if self.end_rule == "below" else emotion <= self.end_emotion

    def ends_high(self, emotion: float) -> bool:
        return self.end_high is not None and emotion >= self.end_high


# RLVER's training rollouts: start 30, changes unclamped, 8 user turns, end at 0 or below.
RLVER_RULES = EmotionRules(name="rlver", start_emotion=RLVER_START, max_change=None, max_turns=8,
                           end_emotion=0, end_rule="at_or_below", end_high=None)
# SAGE's evaluation: start 40, changes of at most ±10, 9 simulator replies after the first talk
# (10 rounds), end below 10 or at 100.
SAGE_RULES = EmotionRules(name="sage", start_emotion=SAGE_START, max_change=10, max_turns=9,
                          end_emotion=10, end_rule="below", end_high=100)
RULES: dict[str, EmotionRules] = {"rlver": RLVER_RULES, "sage": SAGE_RULES}
_RULE_FIELDS = ("start_emotion", "max_change", "max_turns", "end_emotion", "end_rule", "end_high")


class EmotionUserConfig(BaseModel):
    """``rules`` picks the benchmark's settings (``auto``: from the profile's family); any rule
    field set here overrides that benchmark's value (``max_change=None`` explicitly: no clamp)."""

    model_config = ConfigDict(extra="forbid")

    rules: Literal["auto", "rlver", "sage"] = "auto"
    start_emotion: float | None = Field(default=None, ge=0, le=100)
    max_change: float | None = Field(default=None, gt=0)
    max_turns: int | None = Field(default=None, ge=1)
    end_emotion: float | None = None
    end_rule: Literal["below", "at_or_below"] | None = None
    end_high: float | None = None
    goodbye_words: tuple[str, ...] = ("goodbye", "bye", "bye-bye", "再见", "拜拜")
    break_patterns: tuple[str, ...] = DEFAULT_BREAK_PATTERNS
    analyser_temperature: float | None = 0.5
    reply_temperature: float | None = 0.7

    def rules_for(self, profile: EmotionProfile | None) -> EmotionRules:
        family = self.rules if self.rules != "auto" else (profile.family if profile is not None else "rlver")
        base = RULES[family]
        overrides = {k: getattr(self, k) for k in _RULE_FIELDS if k in self.model_fields_set}
        return base.model_copy(update={**overrides, "name": family if not overrides else f"{family}+custom"})


ANALYSER_SYSTEM = """\
You analyse the feelings of a person in a conversation. You are given the person's profile, the
conversation so far, and their current emotion, a number from 0 (wants to leave) to 100 (feels
completely understood). Step into the person's character and judge how the supporter's latest
message changes the emotion. Messages that are not natural language (garbled, full of symbols)
feel very bad. Answer with one JSON object and nothing else:
{"content": "what the supporter is trying to say",
 "reason": "how well it fits the person's hidden theme, and what in it could upset them",
 "activity": "the person's inner thoughts right now",
 "analyse": "how the person feels about the supporter's message",
 "change": <an integer: how much the emotion goes up (positive) or down (negative)>}"""

REPLY_SYSTEM = """\
You are an actor playing the person described below, talking with a supporter. Stay in character
for the whole conversation: you are this person, never an assistant, never an AI. Speak briefly and
naturally, as in a real chat: one or two short sentences, no lists, no more than one question.
Show feelings through tone rather than naming them. Do not repeat yourself. Reveal the hidden theme
only gradually and never state it outright.

Your emotion decides how you talk. Right now it is {label}: {label_text}.

Answer with one JSON object and nothing else:
{{"thinking": "how you feel and what you want to say", "response": "what you say"}}"""


def _parse_json_object(text: str) -> dict[str, Any] | None:
    text = text.strip()
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.DOTALL)
    candidates = [fenced.group(1)] if fenced else []
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start:end + 1])
    for c in candidates:
        try:
            obj = json.loads(c)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


class EmotionAnalysis(BaseModel):
    model_config = ConfigDict(extra="ignore")

    content: str = ""
    reason: str = ""
    activity: str = ""
    analyse: str = ""
    change: float

    @field_validator("content", "reason", "activity", "analyse", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return "" if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


_NAMES = r"(?:content|reason|activity|analyse|change)"
_SECTION = re.compile(rf"(?ims)^\s*\**({_NAMES})\**\s*[:：]\s*(.*?)(?=^\s*\**{_NAMES}\**\s*[:：]|\Z)")


def parse_analysis(text: str) -> EmotionAnalysis | None:
    """The analyser's answer: a JSON object, or RLVER's ``Content: … Change: <n>`` sections.

    >>> parse_analysis('{"analyse": "feels heard", "change": 6}').change
    6.0
    >>> parse_analysis("Content:\\nx\\nAnalyse:\\nannoyed\\nChange:\\n-8").change
    -8.0
    >>> parse_analysis("no idea") is None
    True
    """
    obj = _parse_json_object(text)
    if obj is not None and "change" in obj:
        change = obj["change"]
        if isinstance(change, str):
            m = re.search(r"[-+]?\d+(?:\.\d+)?", change)
            if m is None:
                return None
            obj["change"] = float(m.group())
        try:
            return EmotionAnalysis.model_validate(obj)
        except ValidationError:
            return None
    sections: dict[str, str] = {}
    for m in _SECTION.finditer(text):
        sections[m.group(1).lower()] = m.group(2).strip().strip("[]")
    if "change" in sections:
        m = re.search(r"[-+]?\d+(?:\.\d+)?", sections["change"])
        if m is not None:
            return EmotionAnalysis(content=sections.get("content", ""), reason=sections.get("reason", ""),
                                   activity=sections.get("activity", ""), analyse=sections.get("analyse", ""),
                                   change=float(m.group()))
    return None


def _check_analysis(reply: ChatReply) -> str | None:
    if parse_analysis(reply.content) is None:
        return "the emotion analyser did not return a change (expected JSON with an integer 'change')"
    return None


def parse_reply(text: str) -> str:
    """The words of the reply call: the JSON ``response``, RLVER's ``Response:`` section, or the text."""
    obj = _parse_json_object(text)
    if obj is not None and isinstance(obj.get("response"), str):
        return obj["response"].strip()
    m = re.search(r"(?is)response\s*[:：]\s*(.*)$", text)
    if m:
        return m.group(1).strip().strip("[]").strip("\"“”")
    return text.strip()


class EmotionUser(UserSimulator):
    """The RLVER / SAGE sentient user. The profile comes from ``profile=`` or the task's
    ``data["profile"]`` (or the task's data itself, when it holds the profile's fields)."""

    def __init__(self, llm: SimulatorLLM | SimulatorLLMConfig | None = None, *,
                 profile: EmotionProfile | None = None, config: EmotionUserConfig | None = None,
                 **config_kwargs: Any) -> None:
        self.llm = llm if isinstance(llm, SimulatorLLM) else SimulatorLLM(llm, name="emotion user simulator")
        self.profile_override = profile
        self.config = config or EmotionUserConfig(**config_kwargs)
        self.profile: EmotionProfile | None = None
        self.rules = self.config.rules_for(profile)
        self.emotion = self.rules.start_emotion
        self.trace: list[float] = []
        self.dialogue: list[dict[str, str]] = []
        self.analyses: list[dict[str, JsonValue]] = []
        self.ended_by: str | None = None
        self._check = CharacterCheck(patterns=self.config.break_patterns)
        self._turns = 0

    # --- episode ------------------------------------------------------------------------------

    async def reset(self, task: Task) -> Message | None:
        self.profile = self.profile_override or profile_of(task)
        self.rules = self.config.rules_for(self.profile)
        self.emotion = self.rules.start_emotion
        self.trace = [self.emotion]
        self.dialogue = []
        self.analyses = []
        self.ended_by = None
        self._turns = 0
        self._check = CharacterCheck(secret=self.profile.task or "", patterns=self.config.break_patterns)
        if task.initial_messages():
            for m in task.initial_messages():
                if m.role == "user":
                    self.dialogue.append({"role": "me", "content": m.text})
            return None
        if self.profile.first_talk:
            opening = self.profile.first_talk.strip()
        else:
            opening = await self._reply(None, opening=True)
        self.dialogue.append({"role": "me", "content": opening})
        return Message.user(opening)

    async def respond(self, messages: list[Message]) -> UserTurn:
        if self.profile is None:
            raise RuntimeError("respond() before reset()")
        said = "\n\n".join(new_agent_words(messages)) or "(the supporter said nothing)"
        self.dialogue.append({"role": "supporter", "content": said})
        analysis = await self._analyse()
        change = analysis.change
        if self.rules.max_change is not None:
            change = max(-self.rules.max_change, min(self.rules.max_change, change))
        self.emotion = max(0.0, min(100.0, self.emotion + change))
        self.trace.append(self.emotion)
        self.analyses.append({**analysis.model_dump(), "change": change, "emotion": self.emotion})
        self._turns += 1
        text = await self._reply(analysis)
        self.dialogue.append({"role": "me", "content": text})
        if self.rules.ends_high(self.emotion):
            self.ended_by = "emotion_high"
        elif self.rules.ends_low(self.emotion):
            self.ended_by = "emotion_low"
        elif self._says_goodbye(text):
            self.ended_by = "goodbye"
        elif self._turns >= self.rules.max_turns:
            self.ended_by = "max_turns"
        return UserTurn(message=Message.user(text), done=self.ended_by is not None, state=self.state)

    def _says_goodbye(self, text: str) -> bool:
        low = text.lower()
        for word in self.config.goodbye_words:
            if word.isascii():
                if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", low):
                    return True
            elif word in text:
                return True
        return False

    # --- model calls -----------------------------------------------------------------------

    def _dialogue_json(self, items: list[dict[str, str]]) -> str:
        return json.dumps(items, ensure_ascii=False, indent=1)

    async def _analyse(self) -> EmotionAnalysis:
        assert self.profile is not None
        earlier, latest = self.dialogue[:-2], self.dialogue[-2:]
        prompt = (f"{self.profile.render()}\n\n# The person's current emotion\n{self.emotion:g}\n\n"
                  f"# The conversation so far\n{self._dialogue_json(earlier)}\n\n"
                  f"# The latest exchange (\"me\" is the person)\n{self._dialogue_json(latest)}")
        messages = [{"role": "system", "content": ANALYSER_SYSTEM}, {"role": "user", "content": prompt}]
        reply = await self.llm.generate(messages, purpose="emotion_analysis", validate=_check_analysis,
                                        temperature=self.config.analyser_temperature)
        result = parse_analysis(reply.content)
        assert result is not None  # validated when it was made (or when it was cached)
        return result

    async def _reply(self, analysis: EmotionAnalysis | None, *, opening: bool = False) -> str:
        assert self.profile is not None
        label = emotion_label(self.emotion)
        system = REPLY_SYSTEM.format(label=label, label_text=_label_text(label))
        if opening:
            situation = "The conversation has not started: open it with a short first message about what is on your mind."
        else:
            assert analysis is not None
            situation = (f"# The conversation so far (\"me\" is you)\n{self._dialogue_json(self.dialogue)}\n\n"
                         f"# How you read the supporter's latest message\n{analysis.reason}\n{analysis.analyse}")
        prompt = f"{self.profile.render()}\n\n{situation}"
        reply = await self.llm.generate([{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                                        purpose="emotion_reply", validate=lambda r: self._check(parse_reply(r.content)),
                                        temperature=self.config.reply_temperature)
        return parse_reply(reply.content)

    async def aclose(self) -> None:
        await self.llm.aclose()

    @property
    def state(self) -> dict[str, JsonValue]:
        """The contract of ``traject.rewards.emotion``: ``emotion``, ``emotion_trace`` (start first),
        ``reasons`` (one per change), ``done_reason``; plus the last analysis and the label."""
        out: dict[str, JsonValue] = {
            "emotion": self.emotion,
            "emotion_trace": list(self.trace),
            "reasons": [str(a.get("analyse") or a.get("reason") or "") for a in self.analyses],
            "emotion_label": emotion_label(self.emotion),
            "user_turns": self._turns,
            "rules": self.rules.name,
        }
        if self.analyses:
            last = self.analyses[-1]
            out["change"] = last["change"]
            out["analysis"] = {k: last[k] for k in ("content", "reason", "activity", "analyse")}
        if self.ended_by is not None:
            out["done_reason"] = self.ended_by
        return out


def profile_of(task: Task) -> EmotionProfile:
    raw = task.data.get("profile", task.data)
    try:
        return EmotionProfile.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"task {task.id!r} does not hold an emotion profile (data['profile'] with id, player, "
                         f"scene, ...): {exc}") from exc


def load_profiles(path: str, *, ids: Sequence[str] | None = None) -> list[EmotionProfile]:
    """Profiles from an RLVER / SAGE JSONL file; a bad line is reported with its number."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such profile file (expected RLVER/SAGE profile JSONL: one JSON "
                                "object per line with id, player, scene, main_cha, ...)")
    out: list[EmotionProfile] = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(EmotionProfile.model_validate(json.loads(line)))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise ValueError(f"{p}, line {n}: not an emotion profile (expected a JSON object with id, player, "
                                 f"scene, and optionally main_cha, cha_group, topic, task, first_talk): {exc}") from exc
    if ids is not None:
        wanted = set(ids)
        out = [pr for pr in out if pr.id in wanted]
    return out
