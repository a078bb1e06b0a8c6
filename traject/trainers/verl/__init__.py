"""The veRL backend: TrajectAgentLoop (veRL's agent-loop extension point running traject envs),
the parquet export of tasks, the agent-loop registration and the ``main_ppo`` launcher.

Importing this package needs nothing beyond traject; ``agent_loop``, ``advantage`` and
``testing`` import veRL (``pip install 'traject[verl]'``). See docs/verl.md.
"""
