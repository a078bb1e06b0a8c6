"""The persistent Python interpreter behind the ``python`` tool, run inside the sandbox.

Shipped as source (``python3 -u -c <this file> MARKER``); standard library only. It reads
cells from stdin as ``<byte count>\\n<code>``, runs each in one namespace that lives as long
as the process, shows the value of a trailing expression, and after each cell writes
``MARKER<status>\\n`` (status: ok, error or interrupted) so the host knows the cell is done.
SIGINT (sent by the executor on a timeout) interrupts the running cell, not the interpreter.
"""

import ast
import os
import sys
import traceback


def main():
    marker = sys.argv[1].encode()
    source = sys.stdin.buffer
    sys.stdin = open(os.devnull)  # the cell's input() sees end of file, never the protocol
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    while True:
        try:
            line = source.readline()
            if not line:
                return
            code = source.read(int(line)).decode("utf-8", "replace")
            status = run_cell(code, namespace)
        except KeyboardInterrupt:  # an interrupt that arrived between cells
            status = "interrupted"
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.write(1, marker + status.encode() + b"\n")


def run_cell(code, namespace):
    try:
        tree = ast.parse(code, "<cell>", "exec")
    except SyntaxError as exc:
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        return "error"
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    try:
        exec(compile(tree, "<cell>", "exec"), namespace)
        if last is not None:
            value = eval(compile(last, "<cell>", "eval"), namespace)
            if value is not None:
                namespace["_"] = value
                print(repr(value))
        return "ok"
    except KeyboardInterrupt:
        sys.stderr.write("KeyboardInterrupt: the cell was interrupted\n")
        return "interrupted"
    except SystemExit as exc:
        sys.stderr.write("SystemExit(%r): the interpreter keeps running\n" % (exc.code,))
        return "error"
    except BaseException as exc:
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # drop this frame
        sys.stderr.write("".join(traceback.format_exception(type(exc), exc, tb)))
        return "error"


if __name__ == "__main__":
    main()
