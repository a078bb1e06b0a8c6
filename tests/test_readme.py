"""The README's first example runs as written against the documented local command
(``python -m traject.testing.openai_server --port 8000``; here on a free port)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_readme_first_example_runs_against_the_scripted_server():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## A tool, an env, an episode"):]
    command = re.search(r"```bash\n(.*?)\n```", section, re.DOTALL).group(1).strip()
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert command == "python -m traject.testing.openai_server --port 8000"
    assert "http://127.0.0.1:8000/v1" in code
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen([sys.executable, "-m", "traject.testing.openai_server", "--port", "0"],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        first = server.stdout.readline()
        url = re.search(r"serving (http://127\.0\.0\.1:\d+/v1)", first).group(1)
        run = subprocess.run([sys.executable, "-c", code.replace("http://127.0.0.1:8000/v1", url)],
                             capture_output=True, text=True, timeout=120, env=env)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert run.returncode == 0, run.stderr
    status, answer, turns = run.stdout.split()
    assert status == "Status.COMPLETED" and int(answer) > 0 and int(turns) >= 2


def test_the_server_refuses_a_port_in_use_in_one_line():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "traject.testing.openai_server", "--port", str(port)],
                           capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 2 and "pick another --port" in p.stderr and "Traceback" not in p.stderr
