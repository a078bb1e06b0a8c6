"""Region consistency (GUI-RC / GUI-RCPO): worked example and a brute-force pixel grid check."""

from __future__ import annotations

import anyio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traject.rewards.gui import RegionConsistency, RegionConsistencyConfig, VoteGrid, consistency_rewards
from traject.rewards.gui.region_consistency import parse_region
from traject.types import Message, Task, Trajectory


def traj(text: str) -> Trajectory:
    return Trajectory(task_id="g", messages=[Message.user("find it"), Message.assistant(text)])


def test_worked_example():
    # 10x10 screen. A [0,0,4,4], B [2,2,6,6], C point (3,3) -> square of side 2 = [2,2,4,4],
    # D no answer, E [8,8,20,20] clipped to [8,8,10,10].
    # votes: [2,4)^2 = 3 (A,B,C); rest of A and of B: 1 (12 px each); E: 1 (4 px). max = 3.
    # A: (12*1 + 4*3) / (3*16) = 0.5; B: 0.5; C: 4*3 / (3*4) = 1; D: 0; E: 4 / (3*4) = 1/3
    texts = ["[0, 0, 4, 4]", "<think>maybe 7 or 9</think><answer>[2, 2, 6, 6]</answer>", "(3, 3)", "I can't see it",
             "[8, 8, 20, 20]"]
    reward = RegionConsistency(RegionConsistencyConfig(point_box_size=2))
    out = anyio.run(reward.score_group, [traj(t) for t in texts], Task(id="g", data={"image_size": [10, 10]}))
    assert [r.total for r in out] == pytest.approx([0.5, 0.5, 1.0, 0.0, 1 / 3])
    assert out[0].info["consensus_region"] == [2, 2, 4, 4] and out[0].info["max_vote"] == 3
    assert out[3].info["region"] is None


def test_coordinate_spaces_and_missing_size():
    cfg = RegionConsistencyConfig(coordinates="thousandths")
    assert parse_region("[100, 200, 500, 1000]", cfg, (200, 100)) == (20, 20, 100, 100)
    cfg = RegionConsistencyConfig(coordinates="normalized", point_box_size=10)
    assert parse_region("(0.5, 0.5)", cfg, (200, 100)) == (95, 45, 105, 55)
    with pytest.raises(ValueError, match=r"image_size.*width, height"):
        anyio.run(RegionConsistency().score_group, [traj("[1,2,3,4]")], Task(id="g"))


def brute(regions, size):
    w, h = size
    grid = np.zeros((h, w), dtype=np.int64)
    for r in regions:
        if r is not None:
            grid[r[1]:r[3], r[0]:r[2]] += 1
    mx = grid.max()
    rewards = [0.0 if r is None or mx == 0 else grid[r[1]:r[3], r[0]:r[2]].sum() / (mx * (r[2] - r[0]) * (r[3] - r[1]))
               for r in regions]
    consensus = None
    if mx > 0:  # raster-order labelling of 4-connected max-vote pixels
        seen = np.zeros_like(grid, dtype=bool)
        best = -1
        for y in range(h):
            for x in range(w):
                if grid[y, x] != mx or seen[y, x]:
                    continue
                stack, px = [(y, x)], []
                seen[y, x] = True
                while stack:
                    cy, cx = stack.pop()
                    px.append((cy, cx))
                    for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                        if 0 <= ny < h and 0 <= nx < w and grid[ny, nx] == mx and not seen[ny, nx]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
                if len(px) > best:
                    best = len(px)
                    ys, xs = [p[0] for p in px], [p[1] for p in px]
                    consensus = ((min(xs), min(ys), max(xs) + 1, max(ys) + 1), best)
    return rewards, consensus


box = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(1, 16), st.integers(1, 16)).map(
    lambda t: (t[0], t[1], min(32, t[0] + t[2]), min(24, t[1] + t[3])) if t[1] < 24 else None)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.one_of(st.none(), box), min_size=1, max_size=8))
def test_property_compressed_grid_equals_pixel_grid(regions):
    regions = [r if r is None or (r[2] > r[0] and r[3] > r[1]) else None for r in regions]
    size = (32, 24)
    got, grid = consistency_rewards(regions, size)
    want, consensus = brute(regions, size)
    assert got == pytest.approx(want)
    assert all(0.0 <= g <= 1.0 + 1e-12 for g in got)
    assert grid.consensus() == consensus


def test_large_screen_is_cheap():
    regions = [(i * 37 % 3000, i * 53 % 2000, i * 37 % 3000 + 400, i * 53 % 2000 + 300) for i in range(64)]
    grid = VoteGrid(regions, (3840, 2160))
    assert grid.votes.shape[0] <= 129 and grid.max_vote >= 1
