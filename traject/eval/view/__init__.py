"""``traject view RUN``: a static HTML report of an eval run (no server, no external assets).

``index.html`` lists every trajectory with filters (search, status, outcome); ``traj/N.html``
shows one trajectory turn by turn: messages, tool calls and results, the reward breakdown per
turn, and GUI screenshots with the step's action drawn on them.

Reward details come from the reward library's own shapes, wherever a combinator nested them
in ``RewardResult.info``: the checklist reward's ``judgements`` (each placed at the assistant
step it judged, with the judge's rationale), ``gated_total``/``ungated_total`` (components),
the emotion reward's ``emotion_trace`` and ``reasons`` (else the steps' ``user_state``),
``per_step`` at each step and ``per_turn`` at the end of each user turn. The whole ``info`` is
also shown as JSON.
"""

from __future__ import annotations

from pathlib import Path

from traject.agents.store import TrajectoryStore
from traject.eval.config import ConfigError
from traject.eval.run_dir import TASKS, TRAJECTORIES, RunDir
from traject.eval.summary import latest_per_key
from traject.eval.task_file import load_task_file
from traject.eval.view.render import index_page, trajectory_page


def write_report(run: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of run directory ``run`` into ``out`` (default ``RUN/report``)."""
    run_dir = RunDir(run)
    store = run_dir.file(TRAJECTORIES)
    if not store.exists():
        raise ConfigError(f"{run_dir.path} holds no trajectories ({TRAJECTORIES}); is it an eval run?")
    results = None
    if run_dir.file("results.json").exists():
        from traject.eval.compare import load_results

        results = load_results(run_dir.path)
    tasks = {t.id: t for t in load_task_file(run_dir.file(TASKS))} if run_dir.file(TASKS).exists() else {}
    trajs = sorted(latest_per_key(TrajectoryStore.read(store)), key=lambda t: (t.task_id, t.sample_index))
    out_dir = Path(out) if out is not None else run_dir.path / "report"
    (out_dir / "traj").mkdir(parents=True, exist_ok=True)
    title = results.config.label if results is not None else run_dir.path.name
    links = []
    for i, t in enumerate(trajs):
        name = f"traj/{i}.html"
        (out_dir / name).write_text(trajectory_page(t, tasks.get(t.task_id), home="../index.html"), encoding="utf-8")
        links.append((name, t))
    index = out_dir / "index.html"
    index.write_text(index_page(results, links, title), encoding="utf-8")
    return index
