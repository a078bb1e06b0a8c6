"""Harbor's own task loader, run in a sandbox, as the reference for traject's reading of the format.

traject reads Harbor task directories without the ``harbor`` package (traject/interop/harbor.py):
harbor 0.25 needs Python >= 3.12 and traject's environment may be older. The published package
runs in an image derived from traject's trixie base (Python 3.13) with ``pip install
harbor==0.25.0``, built once and cached by content tag (``scripts/setup_docker.sh`` builds it:
``python -m traject.testing.harbor_reference``). :func:`harbor_reads` copies a dataset into a
sandbox of that image and returns what harbor's ``Task`` made of each task directory.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from traject.sandboxes.config import SandboxConfig
from traject.sandboxes.factory import open_sandbox
from traject.sandboxes.images import BaseImageSpec, BuildSettings, DeriveSpec, ImageRef, build_base_image, derive_image

HARBOR_REQUIREMENT = "harbor==0.25.0"
BASE_SUITE = "trixie"  # Debian's python3 there is 3.13

# Run with harbor's interpreter: every task directory of the dataset that harbor accepts, as
# harbor's Task and TaskConfig read it (one JSON line).
PROBE = """
import importlib.metadata, json, sys
from pathlib import Path
from harbor.models.task.task import Task

rows = []
for d in sorted(p for p in Path(sys.argv[1]).iterdir() if p.is_dir()):
    if not Task.is_valid_dir(d):
        continue
    t = Task(d)
    c = t.config
    rows.append({"dir": d.name, "name": t.name, "instruction": t.instruction,
                 "agent_timeout_s": c.agent.timeout_sec, "verifier_timeout_s": c.verifier.timeout_sec,
                 "verifier_env": c.verifier.env, "docker_image": c.environment.docker_image,
                 "workdir": c.environment.workdir, "cpus": c.environment.cpus,
                 "memory_mb": c.environment.memory_mb, "os": c.environment.os.value})
print(json.dumps({"harbor": importlib.metadata.version("harbor"), "tasks": rows}))
"""


def harbor_image() -> ImageRef:
    """The image with the published harbor package (built once; later calls find it by its tag).
    The build's pip reaches the package index through this host's settings (BuildSettings)."""
    base = build_base_image(BaseImageSpec(suite=BASE_SUITE))
    return derive_image(base.tag, DeriveSpec(pip_packages=(HARBOR_REQUIREMENT,)), build=BuildSettings.from_host())


async def harbor_reads(dataset: Path, image: str, sandbox: SandboxConfig | None = None) -> dict[str, Any]:
    """``{"harbor": VERSION, "tasks": [...]}``: what harbor's own loader reads from each task
    directory of ``dataset``, run in a fresh sandbox (no network) of ``image``."""
    config = (sandbox or SandboxConfig()).model_copy(update={"backend": "docker", "image": image})
    async with await open_sandbox(config) as box:
        root = f"{config.workspace}/dataset"
        for path in sorted(p for p in Path(dataset).rglob("*") if p.is_file()):
            await box.write_file(f"{root}/{path.relative_to(dataset).as_posix()}", path.read_bytes())
        await box.write_file(f"{config.workspace}/probe.py", PROBE.encode())
        res = await box.exec(["python3", f"{config.workspace}/probe.py", root], timeout=120)
    if res.exit_code != 0:
        raise RuntimeError(f"harbor's loader failed (exit {res.exit_code}):\n{res.stdout}\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ref = harbor_image()
    print(f"{ref.tag} ({HARBOR_REQUIREMENT} on traject/base:{BASE_SUITE}; "
          f"{'built in %.1fs' % ref.seconds if ref.built else 'up to date'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
