"""The persistent Python interpreter behind the ``python`` tool, run inside the sandbox.

Shipped as source (``python3 -u -c <this file> MARKER``); standard library only. It reads
cells from stdin as ``<byte count> <cell id>\\n<code>``, runs each in one namespace that lives
as long as the process, shows the value of a trailing expression, and after each cell writes
``MARKER<cell id>:<status>\\n`` (status: ok, error or interrupted) so the host knows that
this cell, and no earlier one, is done. SIGINT (sent by the executor on a timeout) interrupts
the running cell, not the interpreter; one that arrives between cells is ignored.
"""

import ast
import os
import sys
import traceback


def behave_like_plain_python():
    """The worker runs isolated (-I) so that a workspace file named ast.py cannot break it;
    once its own imports are done, cells get the path a plain ``python3`` in the workspace
    has: the current directory, PYTHONPATH and the user's site-packages (pip install --user)."""
    import site

    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:0] = [""] + extra
    user_site = site.getusersitepackages()
    if os.path.isdir(user_site):
        site.addsitedir(user_site)


def main():
    marker = sys.argv[1].encode()
    behave_like_plain_python()
    source = sys.stdin.buffer
    sys.stdin = open(os.devnull)  # the cell's input() sees end of file, never the protocol
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    while True:
        try:
            line = source.readline()
            if not line:
                return
            size, cell_id = line.split()
            code = source.read(int(size)).decode("utf-8", "replace")
        except KeyboardInterrupt:  # a late interrupt, meant for a cell that already ended
            continue
        try:
            status = run_cell(code, namespace)
        except KeyboardInterrupt:  # arrived after the cell's own handler
            status = "interrupted"
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.write(1, marker + cell_id + b":" + status.encode() + b"\n")


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
