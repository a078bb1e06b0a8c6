"""The veRL engine of traject's one trainer: the ``verl:`` config section, the ``main_ppo``
launcher, TrajectAgentLoop (veRL's agent-loop extension point running traject envs), traject's
estimators and policy loss in veRL's registries, the group-reward manager, and the parquet
export of tasks.

Importing this package registers the ``verl`` config section and runner and needs nothing
beyond traject; ``agent_loop``, ``algorithms``, ``reward_manager`` and ``testing`` import veRL
(``pip install 'traject[verl]'``). See docs/verl.md.
"""

from traject.trainers.verl import config as _config  # noqa: F401  (registers the verl: section)
from traject.trainers.verl import launcher as _launcher  # noqa: F401  (registers the verl runner)
