"""Tools: the contract, ``@tool``, toolsets, the registry and plugin discovery."""

from traject.tools.base import Tool, ToolArgumentError, ToolOutput
from traject.tools.context import ToolContext
from traject.tools.decorator import FunctionTool, tool
from traject.tools.registry import ToolRegistry, get_tool, register_tool, registry
from traject.tools.toolset import Toolset

__all__ = [
    "FunctionTool", "Tool", "ToolArgumentError", "ToolContext", "ToolOutput", "ToolRegistry",
    "Toolset", "get_tool", "register_tool", "registry", "tool",
]
