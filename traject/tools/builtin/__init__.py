"""Built-in tools that work in the episode's sandbox: ``python``, ``bash`` and ``file_editor``.

>>> from traject.tools.builtin import bash, file_editor, python
>>> sorted(t.name for t in (bash, file_editor, python))
['bash', 'file_editor', 'python']

Use ``python_tool(timeout_s=...)`` and friends for other limits or names.
"""

from traject.tools.builtin.bash import bash, bash_tool
from traject.tools.builtin.file_editor import file_editor, file_editor_tool
from traject.tools.builtin.python_exec import python, python_tool

__all__ = ["bash", "bash_tool", "file_editor", "file_editor_tool", "python", "python_tool"]
