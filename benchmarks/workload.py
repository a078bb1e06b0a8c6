"""The workload model shared by the simulator server, the benchmark and the ideal bound.

An inference engine with continuous batching: every decode step emits one token for each
running sequence and takes ``step_base_s + step_per_seq_s * batch`` plus the prefill of the
prompt tokens admitted at that step (prefix caching: only a turn's new tokens are prefilled).
At most ``max_batch`` sequences run; the rest wait. Episodes have ``turns`` turns, each one
model call followed by one tool call (the last tool is ``submit``); output lengths and tool
latencies are lognormal with long tails, drawn per (episode, turn) from a seed, so that every
runner sees exactly the same work.

``simulate`` runs the same engine in virtual time with runners that cost nothing: that is the
ideal bound (async, model busy whenever work is ready, tools overlapped) and a zero-overhead
turn-synchronous reference.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Workload:
    turns: int = 3
    # Engine: seconds per decode step = base + per_seq * batch (+ prefill of admitted tokens).
    step_base_s: float = 0.006
    step_per_seq_s: float = 0.00004
    prefill_per_token_s: float = 0.00001
    max_batch: int = 256
    # Output tokens per model call: lognormal (median, sigma), clipped.
    out_median: float = 60.0
    out_sigma: float = 0.5
    out_min: int = 8
    out_max: int = 400
    # Tool latency per call: lognormal (median, sigma), clipped: a long tail.
    tool_median_s: float = 0.25
    tool_sigma: float = 0.8
    tool_max_s: float = 6.0
    prompt_tokens: int = 200          # system + task
    observation_tokens: int = 50      # each tool result
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _rng(self, episode: int, turn: int) -> random.Random:
        h = hashlib.blake2b(f"{self.seed}/{episode}/{turn}".encode(), digest_size=8).digest()
        return random.Random(int.from_bytes(h, "big"))

    def out_tokens(self, episode: int, turn: int) -> int:
        rng = self._rng(episode, turn)
        x = self.out_median * math.exp(self.out_sigma * rng.gauss(0.0, 1.0))
        return max(self.out_min, min(self.out_max, round(x)))

    def tool_s(self, episode: int, turn: int) -> float:
        rng = self._rng(episode, turn)
        rng.random()  # decorrelate from the output length draw
        x = self.tool_median_s * math.exp(self.tool_sigma * rng.gauss(0.0, 1.0))
        return min(self.tool_max_s, x)

    def new_prompt_tokens(self, episode: int, turn: int) -> int:
        """Tokens to prefill for this turn's request (the rest is in the prefix cache)."""
        if turn == 0:
            return self.prompt_tokens
        return self.out_tokens(episode, turn - 1) + self.observation_tokens

    def prompt_tokens_at(self, episode: int, turn: int) -> int:
        return sum(self.new_prompt_tokens(episode, k) for k in range(turn + 1))

    def step_s(self, batch: int, prefill_tokens: int) -> float:
        return self.step_base_s + self.step_per_seq_s * batch + self.prefill_per_token_s * prefill_tokens


@dataclass
class Sequence:
    episode: int
    turn: int
    left: int
    prefill: int
    payload: Any = None
    submitted_at: float = 0.0


@dataclass
class Engine:
    """Continuous batching, as a state machine: ``begin_step`` admits waiting sequences and
    says how long the step takes; ``end_step`` emits one token per running sequence and
    returns those that finished. The real-time server and the virtual-time simulation drive
    this same object."""

    workload: Workload
    waiting: deque[Sequence] = field(default_factory=deque)
    running: list[Sequence] = field(default_factory=list)
    busy_s: float = 0.0
    steps: int = 0
    tokens: int = 0
    batch_sum: int = 0

    def submit(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def begin_step(self) -> float | None:
        prefill = 0
        while self.waiting and len(self.running) < self.workload.max_batch:
            seq = self.waiting.popleft()
            prefill += seq.prefill
            self.running.append(seq)
        if not self.running:
            return None
        return self.workload.step_s(len(self.running), prefill)

    def end_step(self, duration: float) -> list[Sequence]:
        self.busy_s += duration
        self.steps += 1
        self.batch_sum += len(self.running)
        self.tokens += len(self.running)
        done: list[Sequence] = []
        keep: list[Sequence] = []
        for seq in self.running:
            seq.left -= 1
            (done if seq.left <= 0 else keep).append(seq)
        self.running = keep
        return done

    @property
    def mean_batch(self) -> float:
        return self.batch_sum / self.steps if self.steps else 0.0


def new_sequence(w: Workload, episode: int, turn: int, payload: Any = None) -> Sequence:
    return Sequence(episode, turn, w.out_tokens(episode, turn), w.new_prompt_tokens(episode, turn), payload)


@dataclass
class SimResult:
    mode: str
    episodes: int
    wall_s: float
    busy_s: float
    mean_batch: float
    request_s: float = 0.0   # mean time from a request's arrival to its last token


    @property
    def episodes_per_s(self) -> float:
        return self.episodes / self.wall_s

    @property
    def busy_fraction(self) -> float:
        return self.busy_s / self.wall_s


def simulate(w: Workload, episodes: int, concurrency: int, mode: Literal["async", "sync"]) -> SimResult:
    """Run the workload in virtual time with zero-cost runners.

    ``async``: ``concurrency`` episodes in flight, each turn's request sent the moment the
    previous tool returns, a new episode started the moment one ends: the ideal bound.
    ``sync``: waves of ``concurrency`` episodes; turn k's generation waits for all of the
    wave's requests, then all tools run and the next turn waits for all of them.
    """
    engine = Engine(w)
    events: list[tuple[float, int, str, Any]] = []
    counter = 0
    now = 0.0
    step_end: float | None = None
    step_dur = 0.0

    def push(t: float, kind: str, data: Any = None) -> None:
        nonlocal counter
        counter += 1
        heapq.heappush(events, (t, counter, kind, data))

    def kick() -> None:
        nonlocal step_end, step_dur
        if step_end is None:
            dur = engine.begin_step()
            if dur is not None:
                step_dur = dur
                step_end = now + dur
                push(step_end, "step")

    done = 0
    next_episode = 0
    # sync bookkeeping
    wave: list[int] = []
    outstanding = 0
    tool_wait = 0

    latency = 0.0
    requests = 0

    def submit(ep: int, turn: int) -> None:
        seq = new_sequence(w, ep, turn)
        seq.submitted_at = now
        engine.submit(seq)

    def start_async(ep: int) -> None:
        submit(ep, 0)

    def start_wave() -> None:
        nonlocal wave, next_episode, outstanding
        wave = list(range(next_episode, min(episodes, next_episode + concurrency)))
        next_episode += len(wave)
        for ep in wave:
            submit(ep, 0)
        outstanding = len(wave)

    if mode == "async":
        for _ in range(min(concurrency, episodes)):
            start_async(next_episode)
            next_episode += 1
    else:
        start_wave()
    kick()
    finished_seqs: list[Sequence] = []
    while events:
        now, _, kind, data = heapq.heappop(events)
        if kind == "step":
            step_end = None
            for seq in engine.end_step(step_dur):
                latency += now - seq.submitted_at
                requests += 1
                if mode == "async":
                    push(now + w.tool_s(seq.episode, seq.turn), "tool", seq)
                else:
                    finished_seqs.append(seq)
                    outstanding -= 1
            if mode == "sync" and outstanding == 0 and finished_seqs:
                tool_wait = len(finished_seqs)
                for seq in finished_seqs:
                    push(now + w.tool_s(seq.episode, seq.turn), "tool", seq)
                finished_seqs = []
        elif kind == "tool":
            seq = data
            if mode == "async":
                if seq.turn + 1 < w.turns:
                    submit(seq.episode, seq.turn + 1)
                else:
                    done += 1
                    if next_episode < episodes:
                        start_async(next_episode)
                        next_episode += 1
            else:
                tool_wait -= 1
                if tool_wait == 0:
                    if seq.turn + 1 < w.turns:
                        for ep in wave:
                            submit(ep, seq.turn + 1)
                        outstanding = len(wave)
                    else:
                        done += len(wave)
                        if next_episode < episodes:
                            start_wave()
        kick()
    return SimResult(mode=f"simulated {mode}", episodes=done, wall_s=now, busy_s=engine.busy_s,
                     mean_batch=engine.mean_batch, request_s=latency / max(1, requests))
