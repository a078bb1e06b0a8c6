"""Small builders shared by the trainer tests (no model download: random tiny configs)."""

from __future__ import annotations

import torch

from traject.types import Message, RewardResult, Status, TokenView, Trajectory


def random_causal_lm(vocab: int = 64, seed: int = 0) -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=False)
    return Qwen2ForCausalLM(cfg)


def traj(task_id: str, reward: float, segments: list[tuple[list[int], list[int]]], *, index: int = 0,
         status: Status = Status.COMPLETED, failed: bool = False, turns: list[list[int]] | None = None,
         messages: list[Message] | None = None) -> Trajectory:
    views = []
    for k, (ids, mask) in enumerate(segments):
        lps = [-0.5 if m else 0.0 for m in mask]
        turn = turns[k] if turns else [0 if m else -1 for m in mask]
        views.append(TokenView(ids=ids, mask=mask, logprobs=lps, turn=turn))
    return Trajectory(task_id=task_id, sample_index=index, token_views=views, status=status,
                      reward=RewardResult(total=reward, success=reward > 0, failed=failed), messages=messages or [])
