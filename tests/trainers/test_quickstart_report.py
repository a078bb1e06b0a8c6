"""The quickstart's comparison arithmetic: per-phase estimates and the reward-trend check."""

from __future__ import annotations

from traject.trainers.quickstart import phase_result, reward_trend
from traject.types import Message, RewardResult, Status, Step, ToolCall, Trajectory


def _traj(task: str, success: bool, status: Status = Status.COMPLETED) -> Trajectory:
    call = Message.assistant(tool_calls=[ToolCall(name="submit", arguments={"answer": 3})])
    return Trajectory(task_id=task, messages=[Message.user("q"), call], steps=[Step(index=0, action=call)], status=status,
                      reward=RewardResult(total=float(success), success=success))


def test_phase_result_counts_greedy_and_sampled_success_per_task_and_skips_infra_errors():
    greedy = [_traj("a", True), _traj("b", False), _traj("c", True), _traj("d", False, Status.INFRA_ERROR)]
    sampled = [_traj("a", s) for s in (True, False, False, False)] + [_traj("b", False) for _ in range(4)]
    r = phase_result("rl", greedy, sampled, k=4)
    assert r.greedy.mean == 2 / 3 and r.greedy.tasks == 3 and r.greedy.low <= r.greedy.mean <= r.greedy.high
    assert r.sampled_pass1.mean == 1 / 8
    assert r.sampled_pass_k.mean == 0.5  # task a: pass@4 = 1 (one of four right); task b: 0
    assert r.submitted_rate == 1.0 and r.lookups_per_episode == 0.0


def test_reward_trend_flags_a_fall_beyond_the_noise_only():
    rising = [0.1 + 0.02 * i for i in range(30)]
    assert not reward_trend(rising).falls and reward_trend(rising).last_third_change > 0
    collapse = [0.6] * 20 + [0.6 - 0.03 * i for i in range(10)]
    t = reward_trend(collapse)
    assert t.falls and t.last_third_change < -0.2
    noisy_flat = [0.5 + (0.05 if i % 2 else -0.05) for i in range(30)]
    assert not reward_trend(noisy_flat).falls
    assert reward_trend([0.5] * 3) is None
