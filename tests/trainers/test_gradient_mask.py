"""Tokens whose mask is 0 (prompt, tool results, user turns, padding) get exactly zero gradient."""

import torch

from .helpers import random_causal_lm
from traject.trainers.algorithms import ppo_clip_loss
from traject.trainers.batching import TrainSequence, collate
from traject.trainers.forward import score_tokens

# A conversation laid out as the chat template would: system+user prompt (0), assistant (1),
# tool result (0), assistant (1), user turn (0), assistant (1).
MASK = [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1]


def make_seqs() -> list[TrainSequence]:
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 64, (len(MASK),), generator=gen).tolist()
    short = ids[:9]
    return [TrainSequence(ids, MASK, [-1.0] * len(MASK), [1.5 if m else 0.0 for m in MASK]),
            TrainSequence(short, MASK[:9], [-1.0] * 9, [-0.7 if m else 0.0 for m in MASK[:9]])]


def grads_of_logits(pack: bool, selective: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    model = random_causal_lm(seed=5)
    batch = collate(make_seqs(), pack=pack, row_len=len(MASK) + 9)
    captured = {}

    def hook(_mod, _inp, out):
        out.retain_grad()
        captured["logits"] = out

    model.get_output_embeddings().register_forward_hook(hook)
    scores = score_tokens(model, batch, selective_head=selective)
    lp = scores.logprobs
    lp.retain_grad()
    out = ppo_clip_loss(lp, lp.detach(), batch.advantages, batch.loss_mask, agg="seq-mean-token-mean",
                        seq_ids=batch.seq_ids)
    out.loss.backward()
    return lp.grad, captured["logits"].grad, batch.loss_mask


def test_masked_tokens_get_exactly_zero_gradient_padded():
    lp_grad, logit_grad, mask = grads_of_logits(pack=False, selective=False)
    assert torch.all(lp_grad[mask == 0] == 0)
    assert torch.all(lp_grad[mask == 1] != 0)
    # logits at position t predict token t+1: rows predicting untrained tokens get no gradient
    predicts_untrained = mask[:, 1:] == 0
    assert torch.all(logit_grad[:, :-1][predicts_untrained] == 0)
    assert torch.all(logit_grad[:, -1] == 0)
    assert torch.any(logit_grad[:, :-1][~predicts_untrained] != 0)


def test_masked_tokens_get_exactly_zero_gradient_packed_selective_head():
    lp_grad, logit_grad, mask = grads_of_logits(pack=True, selective=True)
    assert torch.all(lp_grad[mask == 0] == 0)
    assert torch.all(lp_grad[mask == 1] != 0)
    # the selective head only ever computes logits for positions that predict trained tokens
    assert logit_grad.shape[0] == int(mask.sum())


def test_selective_and_full_head_give_the_same_gradients():
    def param_grads(selective: bool) -> list[torch.Tensor]:
        model = random_causal_lm(seed=5)
        batch = collate(make_seqs())
        lp = score_tokens(model, batch, selective_head=selective).logprobs
        ppo_clip_loss(lp, lp.detach(), batch.advantages, batch.loss_mask).loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    for a, b in zip(param_grads(True), param_grads(False), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
