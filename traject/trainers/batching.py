"""Trajectories into padded (or packed) tensors with loss masks.

The path is: trajectories -> :func:`select_trainable` (infra errors, failed rewards and
token-less trajectories are dropped and counted) -> :class:`TrainSequence` per TokenView
segment, each token carrying its advantage -> :func:`plan_micro_batches` (length-sorted, under
a token budget) -> :func:`collate` (one padded or packed :class:`TensorBatch` per micro-batch).

The loss mask is the TokenView's mask: 1 only on tokens the policy sampled. Prompt, tool
result, user and padding tokens are 0, and the losses multiply by the mask, so they never
receive gradient. Nothing is re-tokenised here: ids are the TokenView's ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from traject.types import Status, Trajectory

__all__ = [
    "DropStats",
    "TensorBatch",
    "TrainSequence",
    "collate",
    "pack_rows",
    "plan_micro_batches",
    "EvalOnlyTrajectories",
    "select_trainable",
    "sequences_from_trajectories",
    "should_pack",
]


@dataclass
class DropStats:
    """What was left out of training, and why."""

    infra_error: int = 0
    cancelled: int = 0
    reward_failed: int = 0
    no_tokens: int = 0
    truncated: int = 0  # kept, but cut to ``max_len``

    @property
    def dropped(self) -> int:
        return self.infra_error + self.cancelled + self.reward_failed + self.no_tokens

    def as_metrics(self) -> dict[str, float]:
        return {"drop/infra_error": self.infra_error, "drop/cancelled": self.cancelled,
                "drop/reward_failed": self.reward_failed, "drop/no_tokens": self.no_tokens,
                "drop/total": self.dropped, "truncated_seqs": self.truncated}


class EvalOnlyTrajectories(ValueError):
    """Trajectories without exact tokens reached a trainer."""


def select_trainable(trajectories: Sequence[Trajectory], *, require_tokens: bool = True,
                     ) -> tuple[list[Trajectory], DropStats]:
    """The trajectories fit for training, and a count of the rest by cause.

    Raises EvalOnlyTrajectories when any trajectory is marked ``eval_only`` (turns without
    their exact tokens): training on them would mean re-tokenising text, which traject never does.
    """
    eval_only = [t for t in trajectories if t.eval_only is not None]
    if eval_only:
        raise EvalOnlyTrajectories(
            f"{len(eval_only)} of {len(trajectories)} trajectories are eval-only ({eval_only[0].eval_only}). "
            "Train from a policy that returns exact tokens: HFPolicy, VLLMPolicy, CompletionsPolicy, or "
            "OpenAIPolicy against a server that answers return_token_ids (vLLM >= 0.10.2, traject serve)")
    stats = DropStats()
    kept: list[Trajectory] = []
    for t in trajectories:
        if t.status is Status.INFRA_ERROR:
            stats.infra_error += 1
        elif t.status is Status.CANCELLED:
            stats.cancelled += 1
        elif t.reward is None or t.reward.failed:
            stats.reward_failed += 1
        elif require_tokens and not any(v.num_trained_tokens for v in t.token_views):
            stats.no_tokens += 1
        else:
            kept.append(t)
    return kept, stats


@dataclass
class TrainSequence:
    """One prefix-consistent token sequence to train on, token-aligned lists."""

    ids: list[int]
    mask: list[int]
    sampler_logprobs: list[float]
    advantages: list[float]
    source: int = 0  # index of the trajectory (or conversation) it came from

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_trained(self) -> int:
        return sum(self.mask)


def sequences_from_trajectories(trajectories: Sequence[Trajectory], advantages: Sequence[float | Sequence[float]],
                                *, max_len: int | None = None, stats: DropStats | None = None,
                                ) -> list[TrainSequence]:
    """One TrainSequence per TokenView segment.

    ``advantages[i]`` is either one number for trajectory i (all its trained tokens get it)
    or one number per assistant turn (a token gets the advantage of the turn that produced it,
    by ``TokenView.turn``). Sequences longer than ``max_len`` are cut (counted in ``stats``).
    """
    if len(advantages) != len(trajectories):
        raise ValueError(f"{len(advantages)} advantages for {len(trajectories)} trajectories")
    out: list[TrainSequence] = []
    for i, (traj, adv) in enumerate(zip(trajectories, advantages, strict=True)):
        for view in traj.token_views:
            if isinstance(adv, (int, float)):
                tok_adv = [float(adv) if m else 0.0 for m in view.mask]
            else:
                if not view.turn:
                    raise ValueError(f"trajectory {traj.id}: per-turn advantages need TokenView.turn")
                tok_adv = [float(adv[k]) if m and 0 <= k < len(adv) else 0.0
                           for m, k in zip(view.mask, view.turn, strict=True)]
            seq = TrainSequence(ids=list(view.ids), mask=list(view.mask), sampler_logprobs=list(view.logprobs),
                                advantages=tok_adv, source=i)
            if max_len is not None and len(seq) > max_len:
                seq = TrainSequence(seq.ids[:max_len], seq.mask[:max_len], seq.sampler_logprobs[:max_len],
                                    seq.advantages[:max_len], source=i)
                if stats is not None:
                    stats.truncated += 1
            if seq.num_trained:
                out.append(seq)
    return out


@dataclass
class TensorBatch:
    """A micro-batch as tensors, all ``[B, L]`` and aligned with ``input_ids``.

    ``attention_mask`` is ``[B, L]`` (1 on real tokens) for padded rows, or a boolean
    ``[B, 1, L, L]`` block-diagonal causal mask for packed rows, where ``seq_ids`` says which
    sequence each token belongs to (-1 on padding) and ``position_ids`` restart at each one.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    loss_mask: torch.Tensor
    advantages: torch.Tensor
    sampler_logprobs: torch.Tensor
    seq_ids: torch.Tensor | None = None
    sources: list[int] = field(default_factory=list)
    packed: bool = False

    @property
    def num_tokens(self) -> int:
        """Trained tokens (mask 1)."""
        return int(self.loss_mask.sum())

    @property
    def num_seqs(self) -> int:
        return len(self.sources)

    @property
    def real_tokens(self) -> int:
        if self.seq_ids is not None:
            return int((self.seq_ids >= 0).sum())
        return int(self.attention_mask.sum())

    def to(self, device: torch.device | str) -> TensorBatch:
        def mv(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)
        return TensorBatch(mv(self.input_ids), mv(self.attention_mask), mv(self.position_ids),  # type: ignore[arg-type]
                           mv(self.loss_mask), mv(self.advantages), mv(self.sampler_logprobs),  # type: ignore[arg-type]
                           mv(self.seq_ids), list(self.sources), self.packed)


def should_pack(lengths: Sequence[int], *, max_tokens: int | None = None, max_seqs: int | None = None,
                threshold: float = 0.25) -> bool:
    """Whether packing pays: when the length-sorted, padded micro-batches of
    :func:`plan_micro_batches` would hold more than ``1 / (1 - threshold)`` times the tokens
    of packed rows as long as the longest sequence.

    Packed rows need a ``[B, 1, L, L]`` attention mask, which dense attention kernels do not
    exploit (no work is saved inside a row) and which loses the fused causal path; rows are
    therefore never longer than the longest sequence, and packing is used only when it
    removes a good share of padding.
    """
    if len(lengths) < 2:
        return False
    plan = plan_micro_batches(lengths, max_tokens=max_tokens, max_seqs=max_seqs)
    padded = sum(len(mb) * max(lengths[i] for i in mb) for mb in plan)
    packed = len(pack_rows(lengths, max(lengths))) * max(lengths)
    return packed < (1.0 - threshold) * padded


def pack_rows(lengths: Sequence[int], row_len: int) -> list[list[int]]:
    """First-fit decreasing: indices of sequences per row, no row longer than ``row_len``."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    free: list[int] = []
    for i in order:
        for r, space in enumerate(free):
            if lengths[i] <= space:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(row_len - lengths[i])
    return rows


def collate(seqs: Sequence[TrainSequence], *, pad_id: int = 0, pack: bool = False,
            row_len: int | None = None, pad_to_multiple: int = 1) -> TensorBatch:
    """Pad (or, with ``pack``, pack into rows of ``row_len`` tokens) ``seqs`` into tensors."""
    if not seqs:
        raise ValueError("collate() needs at least one sequence")
    lengths = [len(s) for s in seqs]
    if pack:
        width = row_len or max(lengths)
        if max(lengths) > width:
            raise ValueError(f"a sequence of {max(lengths)} tokens does not fit rows of {width}")
        rows = pack_rows(lengths, width)
        width = max(sum(lengths[i] for i in row) for row in rows)
    else:
        rows = [[i] for i in range(len(seqs))]
        width = max(lengths)
    if pad_to_multiple > 1:
        width = -(-width // pad_to_multiple) * pad_to_multiple
    b = len(rows)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    pos = torch.zeros((b, width), dtype=torch.long)
    lmask = torch.zeros((b, width), dtype=torch.float32)
    adv = torch.zeros((b, width), dtype=torch.float32)
    slp = torch.zeros((b, width), dtype=torch.float32)
    seq_ids = torch.full((b, width), -1, dtype=torch.long)
    sources: list[int] = []
    n = 0
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            s = seqs[i]
            k = len(s)
            ids[r, at:at + k] = torch.tensor(s.ids, dtype=torch.long)
            pos[r, at:at + k] = torch.arange(k)
            lmask[r, at:at + k] = torch.tensor(s.mask, dtype=torch.float32)
            lmask[r, at] = 0.0  # nothing predicts a sequence's first token
            adv[r, at:at + k] = torch.tensor(s.advantages, dtype=torch.float32)
            slp[r, at:at + k] = torch.tensor(s.sampler_logprobs, dtype=torch.float32)
            seq_ids[r, at:at + k] = n
            sources.append(s.source)
            n += 1
            at += k
    if pack:
        same = seq_ids[:, :, None] == seq_ids[:, None, :]
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        real = (seq_ids >= 0)[:, :, None]
        attn = (same & causal & real).unsqueeze(1)
        # Padding rows attend to themselves only, so that no softmax row is empty.
        attn = attn | torch.eye(width, dtype=torch.bool)[None, None]
        return TensorBatch(ids, attn, pos, lmask, adv, slp, seq_ids, sources, packed=True)
    attn = (seq_ids >= 0).long()
    return TensorBatch(ids, attn, pos, lmask, adv, slp, None, sources, packed=False)


def plan_micro_batches(lengths: Sequence[int], *, max_tokens: int | None = None,
                       max_seqs: int | None = None) -> list[list[int]]:
    """Split sequence indices into micro-batches whose padded size (rows x longest row) stays
    under ``max_tokens`` and whose row count stays under ``max_seqs``.

    Sequences are sorted by length first, so each micro-batch pads little. A sequence longer
    than ``max_tokens`` gets a micro-batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        new_longest = max(longest, lengths[i])
        too_many_tokens = max_tokens is not None and cur and new_longest * (len(cur) + 1) > max_tokens
        too_many_seqs = max_seqs is not None and len(cur) >= max_seqs
        if too_many_tokens or too_many_seqs:
            batches.append(cur)
            cur, new_longest = [], lengths[i]
        cur.append(i)
        longest = new_longest
    if cur:
        batches.append(cur)
    return batches
