"""Policy losses and aggregation modes against values worked out by hand."""

import math

import pytest
import torch

from traject.trainers.algorithms import (
    aggregate,
    kl_penalty,
    ppo_clip_loss,
    sft_loss,
    token_logprobs,
    truncated_is_weights,
)

# Two rows, three tokens. Row 0's last token is masked out. Ratios and advantages:
#   row 0: ratio 1.5, 0.5, (0.7 masked), A = +1
#   row 1: ratio 1.0, 1.1, 0.5,          A = -1
# With clip_low 0.2, clip_high 0.28 the per-token losses max(-A r, -A clip(r)) are:
#   row 0: max(-1.5, -1.28) = -1.28 (clipped); max(-0.5, -0.8) = -0.5
#   row 1: 1.0; 1.1; max(0.5, 0.8) = 0.8 (clipped)
RATIO = torch.tensor([[1.5, 0.5, 0.7], [1.0, 1.1, 0.5]])
ADV = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
OLD = torch.full((2, 3), -1.0)
NEW = OLD + RATIO.log()


def loss(mode: str, **kw) -> float:
    return float(ppo_clip_loss(NEW, OLD, ADV, MASK, clip_low=0.2, clip_high=0.28, agg=mode, **kw).loss)


def test_token_mean():
    assert loss("token-mean") == pytest.approx((-1.28 - 0.5 + 1.0 + 1.1 + 0.8) / 5, abs=1e-6)


def test_seq_mean_token_sum():
    assert loss("seq-mean-token-sum") == pytest.approx(((-1.28 - 0.5) + (1.0 + 1.1 + 0.8)) / 2, abs=1e-6)


def test_seq_mean_token_mean():
    assert loss("seq-mean-token-mean") == pytest.approx(((-1.78) / 2 + 2.9 / 3) / 2, abs=1e-6)


def test_seq_mean_token_sum_norm():
    assert loss("seq-mean-token-sum-norm", norm_length=10) == pytest.approx((-0.178 + 0.29) / 2, abs=1e-6)
    with pytest.raises(ValueError, match="norm_length"):
        loss("seq-mean-token-sum-norm")


def test_clip_fraction_and_gradients_of_clipped_tokens():
    new = NEW.clone().requires_grad_(True)
    out = ppo_clip_loss(new, OLD, ADV, MASK, clip_low=0.2, clip_high=0.28, agg="token-mean")
    assert float(out.clip_frac) == pytest.approx(2 / 5)
    out.loss.backward()
    g = new.grad
    # clipped tokens and the masked token get no gradient; d/dlogp (-A r) / 5 = -A r / 5 elsewhere
    assert g[0, 0] == 0 and g[1, 2] == 0 and g[0, 2] == 0
    assert float(g[0, 1]) == pytest.approx(-0.5 / 5)
    assert float(g[1, 0]) == pytest.approx(1.0 / 5)
    assert float(g[1, 1]) == pytest.approx(1.1 / 5)


def test_symmetric_clip_differs_from_clip_higher():
    # ratio 1.5 with A=+1 is clipped at 1.2 instead of 1.28
    out = ppo_clip_loss(NEW, OLD, ADV, MASK, clip_low=0.2, clip_high=0.2, agg="token-mean")
    assert float(out.loss) == pytest.approx((-1.2 - 0.5 + 1.0 + 1.1 + 0.8) / 5, abs=1e-6)


def test_dual_clip_caps_negative_advantage_losses():
    new = torch.log(torch.tensor([[5.0]]))
    old = torch.zeros(1, 1)
    adv = torch.tensor([[-1.0]])
    m = torch.ones(1, 1)
    assert float(ppo_clip_loss(new, old, adv, m).loss) == pytest.approx(5.0)
    assert float(ppo_clip_loss(new, old, adv, m, dual_clip=3.0).loss) == pytest.approx(3.0)


def test_kl_estimators():
    lp = torch.tensor([-1.0])
    ref = torch.tensor([-2.0])
    assert float(kl_penalty(lp, ref, "k1")) == pytest.approx(1.0)
    assert float(kl_penalty(lp, ref, "k2")) == pytest.approx(0.5)
    assert float(kl_penalty(lp, ref, "k3")) == pytest.approx(math.exp(-1) + 1 - 1)
    with pytest.raises(ValueError):
        kl_penalty(lp, ref, "k9")  # type: ignore[arg-type]


def test_kl_term_is_added_with_its_coefficient():
    ref = NEW - 0.5  # k1 = 0.5 everywhere; k3 = e^-0.5 - (-0.5) - 1
    k3 = math.exp(-0.5) + 0.5 - 1
    base = loss("token-mean")
    out = ppo_clip_loss(NEW, OLD, ADV, MASK, clip_low=0.2, clip_high=0.28, ref_logprobs=ref, kl_coef=0.1)
    assert float(out.loss) == pytest.approx(base + 0.1 * k3, abs=1e-6)
    assert float(out.kl) == pytest.approx(k3, abs=1e-6)


def test_truncated_is_weights():
    prox = torch.tensor([[-1.0, -1.0, -1.0]])
    samp = torch.tensor([[-1.5, -3.0, -1.0]])
    w = truncated_is_weights(prox, samp, torch.tensor([[1.0, 1.0, 0.0]]), cap=2.0)
    assert torch.allclose(w, torch.tensor([[math.exp(0.5), 2.0, 0.0]]))
    # the weights scale the per-token loss
    out = ppo_clip_loss(prox, prox, torch.ones(1, 3), torch.tensor([[1.0, 1.0, 0.0]]), is_weights=w)
    assert float(out.loss) == pytest.approx(-(math.exp(0.5) + 2.0) / 2)


def test_micro_batch_normalisers_sum_to_the_full_batch():
    per_token = torch.rand(4, 5)
    mask = (torch.rand(4, 5) > 0.3).float()
    mask[:, 0] = 1
    for mode in ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean"):
        full = aggregate(per_token, mask, mode)
        parts = sum(aggregate(per_token[i:i + 2], mask[i:i + 2], mode, num_tokens=float(mask.sum()), num_seqs=4.0)
                    for i in (0, 2))
        assert float(parts) == pytest.approx(float(full), abs=1e-6), mode


def test_packed_rows_aggregate_per_sequence():
    # one packed row holding sequences 0 (2 tokens) and 1 (1 token), then padding
    per_token = torch.tensor([[1.0, 3.0, 5.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    seq_ids = torch.tensor([[0, 0, 1, -1]])
    assert float(aggregate(per_token, mask, "seq-mean-token-mean", seq_ids=seq_ids)) == pytest.approx((2 + 5) / 2)
    assert float(aggregate(per_token, mask, "seq-mean-token-sum", seq_ids=seq_ids)) == pytest.approx((4 + 5) / 2)


def test_token_logprobs_and_sft_loss():
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]]])
    labels = torch.tensor([[0, 0]])
    lp = token_logprobs(logits, labels)
    assert torch.allclose(lp, torch.tensor([[math.log(0.5), math.log(0.75)]]))
    assert float(sft_loss(lp, torch.tensor([[0.0, 1.0]]))) == pytest.approx(-math.log(0.75))
