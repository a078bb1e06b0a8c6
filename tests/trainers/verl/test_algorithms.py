"""One algorithm library on both engines: the same scored trajectories through the local
learner's path (select_trainable -> compute_advantages -> token advantages -> ppo_clip_loss)
and through veRL's (rows as its agent-loop worker builds them -> veRL's compute_advantage with
the registered traject_* estimator -> the registered traject_ppo_clip loss) give the same
advantages and losses; rows that must not train change no healthy row's advantage."""

from __future__ import annotations

import pytest

verl = pytest.importorskip("verl", reason="the veRL extra is not installed (pip install 'traject[verl]')")

import zlib  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from traject.trainers.advantage import compute_advantages  # noqa: E402
from traject.trainers.algorithms import ppo_clip_loss  # noqa: E402
from traject.trainers.batching import select_trainable, sequences_from_trajectories  # noqa: E402
from traject.trainers.config import AlgorithmConfig  # noqa: E402
from traject.trainers.verl.algorithms import ALGORITHM_ENV, register  # noqa: E402
from traject.trainers.verl.output import Segment, turn_token_scores  # noqa: E402
from traject.types import Message, RewardResult, Status, TokenView, Trajectory  # noqa: E402

PROMPT = 3


def make_traj(task: str, index: int, step_rewards: list[float], lengths: list[int], *, status=Status.COMPLETED,
              failed: bool = False, seed: int = 0) -> Trajectory:
    """A prompt, then per assistant turn k ``lengths[k]`` sampled tokens and (between turns) 2
    observation tokens; ``step_rewards[k]`` is turn k's reward (RewardResult.per_step)."""
    g = torch.Generator().manual_seed(zlib.crc32(f"{task}:{index}:{seed}".encode()))
    ids, mask, turn = list(range(1, PROMPT + 1)), [0] * PROMPT, [-1] * PROMPT
    messages = [Message.user("q")]
    for k, n in enumerate(lengths):
        ids += torch.randint(10, 60, (n,), generator=g).tolist()
        mask += [1] * n
        turn += [k] * n
        messages.append(Message.assistant(f"a{k}"))
        if k < len(lengths) - 1:
            ids += [7, 8]
            mask += [0, 0]
            turn += [-1, -1]
            messages.append(Message.tool("obs", tool_call_id=f"c{k}", name="lookup"))
    lps = [(-0.1 - torch.rand(1, generator=g).item()) if m else 0.0 for m in mask]
    view = TokenView(ids=ids, mask=mask, logprobs=lps, prompt_len=PROMPT, turn=turn)
    reward = RewardResult(total=sum(step_rewards), success=sum(step_rewards) > 0, per_step=step_rewards,
                          failed=failed, error="judge said garbage" if failed else None)
    return Trajectory(task_id=task, sample_index=index, token_views=[view], status=status, reward=reward,
                      messages=messages, error="sandbox died" if status is Status.INFRA_ERROR else None)


def batch(seed: int = 0) -> list[Trajectory]:
    rng = np.random.default_rng(seed)
    out = []
    for t in range(3):
        for i in range(4):
            turns = int(rng.integers(1, 4))
            out.append(make_traj(f"task{t}", i, [float(x) for x in rng.choice([0.0, 0.5, 1.0], size=turns)],
                                 [int(x) for x in rng.integers(2, 6, size=turns)], seed=seed))
    return out


def bad_rows() -> list[Trajectory]:
    return [make_traj("task0", 10, [1.0], [3], status=Status.INFRA_ERROR),
            make_traj("task1", 11, [0.0, 1.0], [2, 2], status=Status.CANCELLED),
            make_traj("task2", 12, [0.5], [4], failed=True)]


def verl_rows(trajs: list[Trajectory], turn: bool):
    """Rows as veRL's agent-loop worker assembles them from TrajectAgentLoop's outputs: the
    response part of the view, its mask, the score(s) at their positions; a row that must not
    train has an all-zero mask and score 0 (the legacy worker's one output per row)."""
    width = max(len(t.token_views[0].ids) - PROMPT for t in trajs)
    n = len(trajs)
    rewards, mask = torch.zeros(n, width), torch.zeros(n, width, dtype=torch.long)
    old = torch.zeros(n, width)
    for i, t in enumerate(trajs):
        v = t.token_views[0]
        resp, m = v.ids[PROMPT:], v.mask[PROMPT:]
        ok = t.status is Status.COMPLETED and not t.reward.failed
        if not ok:
            continue
        mask[i, : len(m)] = torch.tensor(m)
        old[i, : len(m)] = torch.tensor(v.logprobs[PROMPT:])
        if turn:
            for pos, val in turn_token_scores(t, Segment(v.ids[:PROMPT], resp, m, v.logprobs[PROMPT:])):
                rewards[i, int(pos)] = val
        else:
            rewards[i, len(resp) - 1] = t.reward.total
    uid = np.array([t.task_id for t in trajs], dtype=object)
    return rewards, mask, old, uid


def verl_advantages(name: str, rewards, mask, uid, values=None, algo=None):
    from omegaconf import OmegaConf
    from verl.protocol import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    tensors = {"token_level_rewards": rewards, "response_mask": mask}
    if values is not None:
        tensors["values"] = values
    data = DataProto.from_dict(tensors=tensors, non_tensors={"uid": uid})
    config = OmegaConf.create({"use_pf_ppo": False, **(algo or {})})
    return compute_advantage(data, adv_estimator=name, config=config).batch["advantages"]


def new_logprobs(old: torch.Tensor, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return old + 0.3 * torch.randn(old.shape, generator=g)


@pytest.fixture(autouse=True)
def registered():
    register()


CASES = [("grpo", "token-mean"), ("dr_grpo", "seq-mean-token-mean"), ("rloo", "token-mean"),
         ("reinforce_pp", "seq-mean-token-sum"), ("turn", "token-mean"), ("turn", "seq-mean-token-mean")]


@pytest.mark.parametrize("advantage, agg", CASES)
def test_same_batch_same_advantages_and_loss_on_both_engines(advantage, agg, monkeypatch, compose):
    from verl.trainer.ppo.core_algos import get_policy_loss_fn
    from verl.utils.config import omega_conf_to_dataclass

    algo = AlgorithmConfig(advantage=advantage, loss_agg=agg, turn_rewards="per_step", clip_low=0.2, clip_high=0.28,
                           dual_clip=3.0 if advantage == "rloo" else None, turn_min_count=2)
    monkeypatch.setenv(ALGORITHM_ENV, algo.model_dump_json())
    trajs = batch(seed=len(advantage)) + bad_rows()

    # the local engine
    kept, _ = select_trainable(trajs)
    seqs = sequences_from_trajectories(kept, compute_advantages(kept, algo))
    # the veRL engine
    rewards, mask, old, uid = verl_rows(trajs, turn=advantage == "turn")
    adv = verl_advantages(f"traject_{advantage}", rewards, mask, uid)

    rows = [i for i, t in enumerate(trajs) if t in kept]
    assert len(rows) == len(seqs) == len(trajs) - 3
    for seq, i in zip(seqs, rows, strict=True):
        n = len(seq.ids) - PROMPT
        assert torch.allclose(adv[i, :n], torch.tensor(seq.advantages[PROMPT:]), atol=1e-6), (advantage, i)
        assert torch.all(adv[i, n:] == 0)
    assert torch.all(adv[len(trajs) - 3:] == 0)  # the bad rows: nothing
    assert float(adv.abs().sum()) > 0

    lp = new_logprobs(old)
    # local: the sequences padded as the local learner batches them (prompt included, mask 0)
    width = max(len(s.ids) for s in seqs)
    L = torch.zeros(len(seqs), width)
    O, A, M = torch.zeros_like(L), torch.zeros_like(L), torch.zeros_like(L)
    for r, (seq, i) in enumerate(zip(seqs, rows, strict=True)):
        n = len(seq.ids)
        L[r, PROMPT:n], O[r, PROMPT:n] = lp[i, : n - PROMPT], old[i, : n - PROMPT]
        A[r, :n], M[r, :n] = torch.tensor(seq.advantages), torch.tensor(seq.mask, dtype=torch.float32)
    local = ppo_clip_loss(L, O, A, M, clip_low=algo.clip_low, clip_high=algo.clip_high, dual_clip=algo.dual_clip,
                          agg=agg).loss
    conf = compose([f"actor_rollout_ref.actor.clip_ratio_low={algo.clip_low}",
                    f"actor_rollout_ref.actor.clip_ratio_high={algo.clip_high}",
                    "actor_rollout_ref.actor.policy_loss.loss_mode=traject_ppo_clip",
                    "actor_rollout_ref.actor.ppo_mini_batch_size=1", "actor_rollout_ref.model.path=/x",
                    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
                    f"actor_rollout_ref.actor.loss_agg_mode={agg}"])
    actor = omega_conf_to_dataclass(conf.actor_rollout_ref.actor)
    actor.global_batch_info.update({"dp_size": 1, "batch_num_tokens": int(mask.sum()),
                                    "global_batch_size": int((mask.sum(-1) > 0).sum()), "loss_scale_factor": None})
    loss_fn = get_policy_loss_fn(actor.policy_loss.loss_mode)
    theirs, metrics = loss_fn(old, lp, adv, mask, loss_agg_mode=agg, config=actor, rollout_is_weights=None)
    assert abs(float(theirs) - float(local)) < 1e-6, (float(theirs), float(local))
    assert 0 <= metrics["actor/pg_clipfrac"] <= 1


@pytest.mark.parametrize("advantage", ["grpo", "dr_grpo", "rloo", "reinforce_pp", "gae"])
def test_rows_that_must_not_train_leave_healthy_advantages_alone(advantage, monkeypatch):
    """Infra errors, cancelled episodes and failed rewards, on both engines: the healthy rows'
    advantages are the same with and without them in the batch."""
    monkeypatch.setenv(ALGORITHM_ENV, AlgorithmConfig(advantage=advantage).model_dump_json())
    healthy = batch(seed=3)
    mixed = healthy[:5] + bad_rows()[:2] + healthy[5:] + bad_rows()[2:]
    where = [mixed.index(t) for t in healthy]

    if advantage != "gae":  # the local engine (it has no critic, so no gae)
        algo = AlgorithmConfig(advantage=advantage)
        kept, drops = select_trainable(mixed)
        assert drops.infra_error == 1 and drops.cancelled == 1 and drops.reward_failed == 1
        assert compute_advantages(kept, algo) == pytest.approx(compute_advantages(healthy, algo), abs=1e-9)

    name = "gae" if advantage == "gae" else f"traject_{advantage}"
    r_h, m_h, _, u_h = verl_rows(healthy, turn=False)
    r_m, m_m, _, u_m = verl_rows(mixed, turn=False)
    values = None
    if advantage == "gae":
        g = torch.Generator().manual_seed(0)
        values_h = torch.randn(r_h.shape, generator=g) * m_h
        values = torch.zeros(r_m.shape)
        for j, i in enumerate(where):
            values[i] = values_h[j]
        a_h = verl_advantages(name, r_h, m_h, u_h, values=values_h, algo={"gamma": 1.0, "lam": 0.95})
        a_m = verl_advantages(name, r_m, m_m, u_m, values=values, algo={"gamma": 1.0, "lam": 0.95})
    else:
        a_h = verl_advantages(name, r_h, m_h, u_h)
        a_m = verl_advantages(name, r_m, m_m, u_m)
    assert float(a_h.abs().sum()) > 0
    for j, i in enumerate(where):
        assert torch.allclose(a_m[i] * m_m[i], a_h[j] * m_h[j], atol=1e-6), (advantage, j)
    bad = [i for i in range(len(mixed)) if i not in where]
    assert torch.all(a_m[bad] * m_m[bad] == 0)


def test_stock_grpo_would_let_them_in():
    """The check above can fail: veRL's own grpo counts a masked row's score in its group."""
    healthy = batch(seed=3)
    mixed = healthy + [make_traj("task0", 20, [0.0], [3])]
    r_m, m_m, _, u_m = verl_rows(mixed, turn=False)
    m_m[-1] = 0  # what the legacy worker hands over for a row that must not train
    r_h, m_h, _, u_h = verl_rows(healthy, turn=False)
    a_h = verl_advantages("grpo", r_h, m_h, u_h)
    a_m = verl_advantages("grpo", r_m, m_m, u_m)
    assert not torch.allclose(a_m[:4], a_h[:4])
