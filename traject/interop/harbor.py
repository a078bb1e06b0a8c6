"""Harbor task directories (harbor 0.25 format) as traject tasks, run in their own images.

A Harbor task is a directory::

    task.toml            [task] name, [agent]/[verifier] timeouts, [verifier] env, [environment] ...
    instruction.md       what the agent is asked to do
    environment/Dockerfile
    tests/test.sh        the verifier: writes /logs/verifier/reward.txt (a number) or reward.json
    solution/solve.sh    (optional) a reference solution

``traject.load_tasks("harbor:PATH")`` reads a dataset (a directory of task directories, or one
task directory); ``traject.make("harbor:PATH")`` makes the env: per episode, a Docker sandbox
from the image built from the task's ``environment/`` (built once, tagged by content), the
agent working in the Dockerfile's ``WORKDIR`` with ``bash``, ``file_editor`` and ``submit``.
When the episode ends, ``tests/`` is copied to ``/tests`` and ``test.sh`` runs in the same
container, as Harbor's verifier does; the reward file it writes is the reward.

Base images: no registry can be reached here, so each ``FROM`` image resolves to a local one:
the image itself when the Docker daemon has it, else ``base_images[name]`` when given, else
traject's own base image (``traject/base:latest``, made by ``traject sandbox build`` from a
Debian root filesystem with mmdebstrap). A base needs ``python3`` (traject's in-container
executor runs on it). Departures from Harbor: the agent and the tests run as uid 1000 (traject
sandboxes never run as root), with no network; ``docker-compose`` environments, multi-step
tasks and Windows tasks are refused by name.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import tarfile
import threading
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field

from traject.environments.registry import EnvEntry
from traject.environments.tool_env import ToolEnv
from traject.rewards.base import Reward
from traject.sandboxes.base import Sandbox
from traject.sandboxes.config import DEFAULT_IMAGE, SandboxConfig
from traject.sandboxes.factory import open_sandbox
from traject.sandboxes.images import SEED_DIR, SEED_LABEL
from traject.tools.base import ToolOutput
from traject.tools.builtin import bash_tool, file_editor_tool
from traject.tools.context import ToolContext
from traject.tools.decorator import tool
from traject.tools.toolset import Toolset
from traject.types import InfraError, Message, RewardResult, Task, Trajectory

RECIPE_VERSION = 1
IMAGE_REPOSITORY = "traject/harbor"
VERIFIER_DIR = "/logs/verifier"
TESTS_DIR = "/tests"
AGENT_UID = 1000

SYSTEM_PROMPT = """You are an agent working in a Linux container with no network.
Tools: `bash` runs shell commands (the shell keeps its state between calls), `file_editor` views and edits files, `submit` ends the task.
Do the task, check your work, then call `submit`. Your work is graded by tests that run after you submit."""


class HarborTaskError(ValueError):
    """A Harbor task directory traject cannot run; the message names the file and what is wrong."""


class HarborTaskData(BaseModel):
    """What an episode needs of a Harbor task (``Task.data["harbor"]``)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="the task directory")
    name: str
    agent_timeout_s: float | None = None
    verifier_timeout_s: float = 600.0
    verifier_env: dict[str, str] = Field(default_factory=dict)
    docker_image: str | None = None
    workdir: str | None = None
    cpus: float | None = None
    memory_mb: int | None = None


# --- loading ----------------------------------------------------------------------------------


# Harbor drops leading canary lines (data-provenance markers, HTML or hash comments naming a
# "canary") and the blank lines after them from the instruction the agent sees.
_CANARY_LINE = re.compile(r"^(<!--.*canary.*-->|#.*canary.*)$", re.IGNORECASE)


def strip_canary(text: str) -> str:
    lines = text.split("\n")
    i = 0
    while i < len(lines) and _CANARY_LINE.match(lines[i].strip()):
        i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    return "\n".join(lines[i:])


def _memory_mb(env_cfg: dict[str, Any], config_path: Path) -> int | None:
    """``memory_mb``, else Harbor's deprecated ``memory = "2G"`` (G, M or K), as Harbor reads it."""
    if env_cfg.get("memory_mb") is not None or not isinstance(env_cfg.get("memory"), str):
        return env_cfg.get("memory_mb")
    size = env_cfg["memory"].strip().upper()
    try:
        number = float(size[:-1])
    except ValueError:
        number = None
    if number is None or size[-1:] not in ("G", "M", "K"):
        raise HarborTaskError(f"{config_path}: environment.memory = {env_cfg['memory']!r} is not a size like "
                              "'2G' or '512M'; or give environment.memory_mb")
    return int(number * 1024 if size[-1] == "G" else number if size[-1] == "M" else number / 1024)


def is_task_dir(path: Path) -> bool:
    return (path / "instruction.md").is_file() or (path / "task.toml").is_file()


def read_task(path: str | Path) -> Task:
    """One Harbor task directory as a traject Task."""
    root = Path(path).resolve()
    config_path = root / "task.toml"
    try:
        config = tomllib.loads(config_path.read_text()) if config_path.is_file() else {}
    except tomllib.TOMLDecodeError as exc:
        raise HarborTaskError(f"{config_path}: not valid TOML: {exc}") from None
    if config.get("steps"):
        raise HarborTaskError(f"{config_path}: multi-step Harbor tasks ([[steps]]) are not supported")
    env_cfg = config.get("environment") or {}
    if str(env_cfg.get("os", "linux")).lower() != "linux":
        raise HarborTaskError(f"{config_path}: environment.os = {env_cfg['os']!r}: only linux tasks are supported")
    instruction = root / "instruction.md"
    if not instruction.is_file():
        raise HarborTaskError(f"{root}: no instruction.md")
    if not (root / "tests" / "test.sh").is_file():
        raise HarborTaskError(f"{root}: no tests/test.sh (the verifier)")
    env_dir = root / "environment"
    if env_cfg.get("docker_image") is None and not (env_dir / "Dockerfile").is_file():
        other = sorted(p.name for p in env_dir.iterdir()) if env_dir.is_dir() else []
        raise HarborTaskError(f"{root}: no environment/Dockerfile (found {other or 'nothing'}); "
                              "docker-compose and other environment kinds are not supported")
    agent, verifier = config.get("agent") or {}, config.get("verifier") or {}
    name = (config.get("task") or {}).get("name") or root.name
    data = HarborTaskData(path=str(root), name=name, agent_timeout_s=agent.get("timeout_sec"),
                          verifier_timeout_s=float(verifier.get("timeout_sec", 600.0)),
                          verifier_env={k: str(v) for k, v in (verifier.get("env") or {}).items()},
                          docker_image=env_cfg.get("docker_image"), workdir=env_cfg.get("workdir"),
                          cpus=env_cfg.get("cpus"), memory_mb=_memory_mb(env_cfg, config_path))
    return Task(id=name, prompt=strip_canary(instruction.read_text()), data={"harbor": data.model_dump(mode="json")},
                metadata={"source": "harbor", **(config.get("metadata") or {})})


def harbor_tasks(path: str | Path, *, n: int | None = None, seed: int | None = None, split: str | None = None,
                 **_: Any) -> list[Task]:
    """The tasks of a Harbor dataset: ``path`` is one task directory or a directory of them."""
    root = Path(path)
    if not root.is_dir():
        raise HarborTaskError(f"{root}: not a directory (a Harbor dataset or task directory)")
    dirs = [root] if is_task_dir(root) else sorted(p for p in root.iterdir() if p.is_dir() and is_task_dir(p))
    if not dirs:
        raise HarborTaskError(f"{root}: no Harbor task directories (each holds instruction.md and task.toml)")
    tasks = [read_task(d) for d in dirs]
    if seed is not None:
        import random

        random.Random(seed).shuffle(tasks)
    return tasks[:n] if n is not None else tasks


def task_data(task: Task) -> HarborTaskData:
    raw = task.data.get("harbor")
    if not isinstance(raw, dict):
        raise ValueError(f"task {task.id!r} is not a Harbor task (no data['harbor'])")
    return HarborTaskData.model_validate(raw)


# --- images -----------------------------------------------------------------------------------

_FROM = re.compile(r"^(\s*FROM\s+)((?:--\S+\s+)*)(\S+)(.*)$", re.IGNORECASE | re.MULTILINE)
_WORKDIR = re.compile(r"^\s*WORKDIR\s+(\S+)", re.IGNORECASE | re.MULTILINE)
_build_lock = threading.Lock()


def resolve_dockerfile(text: str, exists: Any, base_images: dict[str, str] | None = None,
                       default_base: str = DEFAULT_IMAGE) -> tuple[str, dict[str, str]]:
    """``text`` with each ``FROM`` image resolved to a local one, and what was replaced.
    ``exists(image)`` says whether the daemon has an image; earlier build stages stay as named."""
    stages: set[str] = set()
    replaced: dict[str, str] = {}

    def sub(match: re.Match[str]) -> str:
        image, rest = match.group(3), match.group(4)
        alias = re.search(r"\bAS\s+(\S+)", rest, re.IGNORECASE)
        if image not in stages and not exists(image):
            local = (base_images or {}).get(image, default_base)
            replaced[image] = local
            image = local
        if alias:
            stages.add(alias.group(1))
        return f"{match.group(1)}{match.group(2)}{image}{rest}"

    return _FROM.sub(sub, text), replaced


def workdir_of(dockerfile: str, override: str | None) -> str:
    found = _WORKDIR.findall(dockerfile)
    workdir = override or (found[-1] if found else "/workspace")
    return str(PurePosixPath("/") / workdir)


def _context_tar(env_dir: Path, dockerfile: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(env_dir.rglob("*")):
            rel = path.relative_to(env_dir).as_posix()
            if rel != "Dockerfile":
                tar.add(path, arcname=rel, recursive=False)
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_task_image(data: HarborTaskData, *, base_images: dict[str, str] | None = None,
                     default_base: str = DEFAULT_IMAGE, network: bool = False, client: Any = None) -> tuple[str, str]:
    """Build (or find) the image of a Harbor task's environment: (tag, workdir). Blocking."""
    import docker.errors

    from traject.sandboxes.docker_client import get_client
    from traject.sandboxes.images import build_labels

    client = client or get_client(timeout=600)

    def image_id(ref: str) -> str | None:
        try:
            return client.api.inspect_image(ref)["Id"]
        except docker.errors.ImageNotFound:
            return None

    env_dir = Path(data.path) / "environment"
    if data.docker_image is not None:
        if image_id(data.docker_image) is None:
            raise HarborTaskError(f"{data.path}/task.toml: environment.docker_image {data.docker_image!r} is not "
                                  "on this Docker daemon and no registry can be reached; build or load it first")
        source = f"FROM {data.docker_image}\n"
    else:
        source = (env_dir / "Dockerfile").read_text()
    dockerfile, replaced = resolve_dockerfile(source, lambda ref: image_id(ref) is not None, base_images, default_base)
    for image in set(replaced.values()):
        if image_id(image) is None:
            raise HarborTaskError(f"{data.path}: base image {image!r} (for {sorted(replaced)}) is not on this Docker "
                                  "daemon: build traject's base with `traject sandbox build`, or map the task's "
                                  "base to a local image with base_images={...}")
    workdir = workdir_of(source, data.workdir)
    q = shlex.quote
    # The agent (uid 1000) works in a tmpfs at WORKDIR, seeded from the image's copy of it.
    dockerfile += (f"\nUSER root\nRUN mkdir -p {q(workdir)} {VERIFIER_DIR} {TESTS_DIR} && rm -rf {SEED_DIR} && "
                   f"mkdir -p {PurePosixPath(SEED_DIR).parent} && cp -a {q(workdir)} {SEED_DIR} && "
                   f"chown -R {AGENT_UID}:{AGENT_UID} {SEED_DIR} /logs {TESTS_DIR}\n"
                   f"LABEL {SEED_LABEL}={SEED_DIR}\n")
    context = _context_tar(env_dir, dockerfile) if env_dir.is_dir() else _context_tar(Path("/nonexistent"), dockerfile)
    bases = sorted({image_id(m.group(3)) or m.group(3) for m in _FROM.finditer(dockerfile)})
    digest = hashlib.sha256(json.dumps([RECIPE_VERSION, bases]).encode() + context).hexdigest()[:16]
    tag = f"{IMAGE_REPOSITORY}:{digest}"
    with _build_lock:
        if image_id(tag) is None:
            try:
                client.images.build(fileobj=io.BytesIO(context), custom_context=True, tag=tag, rm=True, forcerm=True,
                                    network_mode=None if network else "none", labels=build_labels())
            except docker.errors.BuildError as exc:
                log_tail = "".join(str(c.get("stream", c.get("error", ""))) for c in exc.build_log)[-3000:]
                raise InfraError(f"building the image of Harbor task {data.name!r} failed: {exc.msg}\n{log_tail}") \
                    from None
    return tag, workdir


# --- the env ----------------------------------------------------------------------------------


class HarborConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_turns: int = Field(30, ge=1)
    command_timeout_s: float = Field(60.0, gt=0, description="per bash command")
    base_images: dict[str, str] = Field(default_factory=dict, description="FROM image -> local image")
    default_base: str = Field(DEFAULT_IMAGE, description="the local image any other missing FROM image becomes")
    build_network: bool = Field(False, description="image builds may use the network (RUN apt-get ...)")
    sandbox: SandboxConfig = Field(default_factory=lambda: SandboxConfig(
        backend="docker", memory="2g", workspace_size="1g", pids_limit=512, read_only=False))
    system_prompt: str = SYSTEM_PROMPT


class HarborSession(Toolset):
    @tool
    async def submit(self) -> ToolOutput:
        """Submit your work: the task ends and its tests run."""
        return ToolOutput(content="Submitted. The task's tests will run now.", done=True)


class HarborEnv(ToolEnv):
    def __init__(self, config: HarborConfig | None = None, **overrides: Any) -> None:
        if config is not None and overrides:
            config = HarborConfig.model_validate({**config.model_dump(), **overrides})
        self.config = config or HarborConfig.model_validate(overrides)
        cfg = self.config
        super().__init__([bash_tool(timeout_s=cfg.command_timeout_s), file_editor_tool(), HarborSession()],
                         name="harbor", system_prompt=cfg.system_prompt, max_turns=cfg.max_turns,
                         tool_timeout_s=cfg.command_timeout_s + 30, parallel_tool_calls=False,
                         sandbox=self._open_sandbox, reward=HarborReward(), on_text_reply="nudge")

    async def _open_sandbox(self, task: Task) -> Sandbox:
        data = task_data(task)
        tag, workdir = await anyio.to_thread.run_sync(lambda: build_task_image(
            data, base_images=self.config.base_images, default_base=self.config.default_base,
            network=self.config.build_network))
        update: dict[str, Any] = {"image": tag, "backend": "docker", "workspace": workdir}
        if data.cpus:
            update["cpus"] = float(data.cpus)
        if data.memory_mb:
            update["memory"] = f"{int(data.memory_mb)}m"
        return await open_sandbox(self.config.sandbox.model_copy(update=update))

    async def step(self, action: Message):
        result = await super().step(action)
        if result.done:
            assert self.ctx is not None
            result.info["harbor"] = await self.verify(self.ctx.require_sandbox(), task_data(self.ctx.task),
                                                      submitted=result.terminated)
        return result

    async def verify(self, sandbox: Sandbox, data: HarborTaskData, *, submitted: bool) -> dict[str, Any]:
        """Harbor's verifier: copy tests/ to /tests, run test.sh, read the reward file."""
        tests = Path(data.path) / "tests"
        await sandbox.exec(f"rm -rf {VERIFIER_DIR}/reward.txt {VERIFIER_DIR}/reward.json && mkdir -p {VERIFIER_DIR}",
                           timeout=60)
        for path in sorted(p for p in tests.rglob("*") if p.is_file()):
            await sandbox.write_file(f"{TESTS_DIR}/{path.relative_to(tests).as_posix()}", path.read_bytes())
        res = await sandbox.exec(f"bash {TESTS_DIR}/test.sh > {VERIFIER_DIR}/test-stdout.txt 2>&1",
                                 timeout=data.verifier_timeout_s, workdir=self._workdir(),
                                 env=dict(data.verifier_env))
        record: dict[str, Any] = {"submitted": submitted, "test_exit_code": res.exit_code,
                                  "test_timed_out": res.timed_out}
        try:
            record["test_output_tail"] = (await sandbox.read_file(f"{VERIFIER_DIR}/test-stdout.txt")).decode(
                "utf-8", "replace")[-4000:]
        except Exception:  # noqa: BLE001 - the log is informative only
            record["test_output_tail"] = ""
        for name in ("reward.json", "reward.txt"):
            try:
                text = (await sandbox.read_file(f"{VERIFIER_DIR}/{name}")).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 - absent: try the other, then say so
                continue
            record["reward_file"] = name
            record["reward_text"] = text[:10_000]
            break
        return record

    def _workdir(self) -> str:
        assert self.ctx is not None and self.ctx.sandbox is not None
        return getattr(self.ctx.sandbox, "workspace", None) or "/"


class HarborReward(Reward):
    """The reward the task's tests wrote: ``reward.txt`` (one number, named ``reward``) or
    ``reward.json`` (named numbers; the total is ``reward`` when present, else their sum).
    No reward file, or one that does not parse: a failed reward naming the file."""

    name = "harbor"

    async def score(self, traj: Trajectory, task: Task) -> RewardResult:
        record = next((s.info["harbor"] for s in reversed(traj.steps) if isinstance(s.info.get("harbor"), dict)), None)
        if record is None:
            return RewardResult(failed=True, error="the episode ended without running the task's tests")
        name, text = record.get("reward_file"), record.get("reward_text")
        if name is None or text is None:
            return RewardResult(failed=True, error=f"tests/test.sh wrote no {VERIFIER_DIR}/reward.txt or reward.json "
                                f"(exit {record.get('test_exit_code')}): {record.get('test_output_tail', '')[-500:]}")
        try:
            if name == "reward.txt":
                rewards = {"reward": float(text.strip())}
            else:
                parsed = json.loads(text)
                if not isinstance(parsed, dict):
                    raise ValueError("not a JSON object")
                rewards = {str(k): float(v) for k, v in parsed.items()}
        except ValueError as exc:
            return RewardResult(failed=True, error=f"{VERIFIER_DIR}/{name} does not parse: {exc}: {text[:200]!r}")
        total = rewards["reward"] if "reward" in rewards else sum(rewards.values())
        return RewardResult(total=total, components=rewards, success=total >= 1.0,
                            info={"test_exit_code": record.get("test_exit_code")})


def scheme_entry(path: str) -> EnvEntry:
    if not path:
        raise ValueError("harbor:PATH needs a Harbor dataset or task directory")
    return EnvEntry(name=f"harbor:{path}", make=lambda **config: HarborEnv(**config),
                    tasks=lambda **options: harbor_tasks(path, **options),
                    description=f"the Harbor tasks under {path}")
