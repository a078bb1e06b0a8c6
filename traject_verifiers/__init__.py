"""The verifiers taskset plugin of traject: ``--env.taskset.id traject-verifiers``.

verifiers imports a taskset by a top-level module name; this package is that name for
``traject.interop.verifiers_export`` (a traject env's tasks and reward as a verifiers taskset).
"""

from traject.interop.verifiers_export import TrajectTask, TrajectTaskData, TrajectTaskset, TrajectTasksetConfig

__all__ = ["TrajectTaskset"]
_ = (TrajectTask, TrajectTaskData, TrajectTasksetConfig)
