"""Simulated tools (CM2): tool schemas answered by replay, schema checks, then a model."""

from traject.environments.simulated_tools.env import SimulatedToolset, make_simulated_tools_env
from traject.environments.simulated_tools.simulator import RecordedCall, SimulatedTool, canonical_json, schema_errors

__all__ = ["RecordedCall", "SimulatedTool", "SimulatedToolset", "canonical_json", "make_simulated_tools_env",
           "schema_errors"]
