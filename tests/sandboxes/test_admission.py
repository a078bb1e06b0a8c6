"""Admission slots are shared by every process of the machine and die with their holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from traject.sandboxes import admission

HOST = "tcp://bench.invalid:2375"

HOLDER = textwrap.dedent("""
    import sys, time
    from traject.sandboxes import admission
    slots = [admission.try_take(sys.argv[1], "run", int(sys.argv[2])) for _ in range(int(sys.argv[3]))]
    print(sum(s is not None for s in slots), flush=True)
    time.sleep(600)
""")


def hold(n: int, cap: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, HOST, str(cap), str(n)], stdout=subprocess.PIPE,
                            text=True, env=os.environ.copy())
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def test_a_cap_holds_across_processes_and_a_dead_holder_frees_its_slots(isolated_admission):
    a, got_a = hold(2, cap=3)
    b, got_b = hold(2, cap=3)
    try:
        assert (got_a, got_b) == (2, 1), "the second process got only what was left under the cap"
        assert admission.held(HOST, "run", 3) == 3
        assert admission.try_take(HOST, "run", 3) is None  # this process too
        a.send_signal(signal.SIGKILL)
        a.wait()
        assert admission.held(HOST, "run", 3) == 1, "the kernel dropped the dead holder's locks"
        mine = [admission.try_take(HOST, "run", 3) for _ in range(3)]
        assert sum(s is not None for s in mine) == 2
        for s in mine:
            if s is not None:
                s.release()
        assert admission.held(HOST, "run", 3) == 1
    finally:
        for p in (a, b):
            p.kill()
            p.wait()
