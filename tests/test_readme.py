"""The README's first example runs as written against the documented local command
(``traject serve`` on a tiny model built locally; here on a free port), and the scripted
stand-in server keeps its one-line error for a port in use."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_readme_first_example_runs_against_traject_serve(tmp_path):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## A tool, an env, an episode"):]
    commands = re.search(r"```bash\n(.*?)\n```", section, re.DOTALL).group(1).strip().splitlines()
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    build, serve = (c.split("#")[0].strip() for c in commands)
    assert serve == "traject serve runs/tiny --port 8000"
    assert "http://127.0.0.1:8000/v1" in code
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(build.replace("python", sys.executable, 1), shell=True, cwd=tmp_path, env=env, check=True,
                   timeout=300)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "traject.cli", *serve.split()[1:-1], str(port)],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "traject serve did not answer"
            time.sleep(0.5)
        run = subprocess.run([sys.executable, "-c", code.replace(":8000/", f":{port}/")], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300, env=env)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert run.returncode == 0, run.stderr
    status, turns, trained = run.stdout.split()
    assert status.startswith("Status.") and status != "Status.INFRA_ERROR"
    assert int(turns) >= 1 and int(trained) > 0  # token ids came back: the trajectory can be trained on


def test_the_scripted_server_refuses_a_port_in_use_in_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "traject.testing.openai_server", "--port", str(port)],
                           capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 2 and "pick another --port" in p.stderr and "Traceback" not in p.stderr
