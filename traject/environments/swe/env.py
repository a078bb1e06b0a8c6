"""SweEnv: a repository in a Docker sandbox; bash, the file editor and submit; tests as reward.

Per episode: a fresh container from the task's environment image (built once per repository
and version, cached by content), whose workspace starts with a copy of the repository; the
env checks out ``base_commit``. The episode ends on ``submit`` or at ``max_turns``. At the end,
while the sandbox is still open, the env records (in the last step's ``info``):

* ``swe``: submitted, the patch (``git diff`` against ``base_commit``, new files included),
  whether the repository was modified, and whether the tests resolved the task;
* ``test_run``: after a submit, the test files of ``test_patch`` are reset to ``base_commit``,
  ``test_patch`` is applied, the test command runs, and its per-test lines are parsed.

Each step's ``info["swe"]`` also says whether it changed the repository and whether it ran
tests, for the step rewards that G-RA gates.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from traject.environments.swe.images import REPO_DIR, ensure_env_image
from traject.environments.swe.parsing import parse_report, report_parser
from traject.environments.swe.reward import OutcomeLevel, StepRewardConfig, swe_reward
from traject.environments.swe.task import SweTaskData, patch_files
from traject.environments.tool_env import ToolEnv
from traject.rewards.base import Reward
from traject.rewards.verifiers.unit_tests import UnitTestReward
from traject.sandboxes.base import Sandbox
from traject.sandboxes.config import DEFAULT_IMAGE, SandboxConfig
from traject.sandboxes.factory import open_sandbox
from traject.tools.base import ToolOutput
from traject.tools.builtin import bash_tool, file_editor_tool
from traject.tools.context import ToolContext
from traject.tools.decorator import tool
from traject.tools.toolset import Toolset
from traject.types import InfraError, Message, Step, Task, Trajectory

SYSTEM_PROMPT = """You are a software engineer fixing an issue in a repository, inside a sandbox with no network.
Tools: `bash` runs shell commands (the shell keeps its state between calls), `file_editor` views and edits files, `submit` ends the task with the repository as it is.
Work step by step: find the relevant code, reproduce the problem, make a minimal fix in non-test files, check it, then call `submit`."""

TEST_COMMAND = re.compile(r"\b(pytest|py\.test|unittest|runtests(\.py)?|manage\.py\s+test|nosetests|tox)\b")
TEST_PATCH_PATH = "/tmp/traject_test.patch"
STATE_KEY = "traject.swe"


class SweSetupError(InfraError):
    """The episode's repository could not be prepared (checkout of base_commit failed)."""


class SweConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_image: str = Field(DEFAULT_IMAGE, description="the sandbox base image the environment images derive from")
    sandbox: SandboxConfig = Field(default_factory=lambda: SandboxConfig(
        backend="docker", memory="2g", workspace_size="2g", pids_limit=512))
    max_turns: int = Field(30, ge=1)
    command_timeout_s: float = Field(60.0, gt=0, description="per bash command")
    test_timeout_s: float = Field(600.0, gt=0)
    setup_timeout_s: float = Field(120.0, gt=0)
    install_network: bool = Field(True, description="image builds (apt, pip, install commands) may use the network")
    images: Literal["build", "official", "auto"] = Field(
        "build", description="build environment images here, run in SWE-bench's prebuilt ones (a registry must "
        "answer), or auto: the prebuilt one when it can be pulled")
    host_build_settings: bool = Field(False, description="lend image builds this host's CA bundle, pip settings and "
                                      "proxies (BuildSettings.from_host()), for installs behind an intercepting proxy")
    track_edits: bool = Field(True, description="fingerprint the repository after each step (one git call)")
    run_tests_on_empty_patch: bool = True
    gate: OutcomeLevel | None = Field("patch_fails", description="G-RA gate; None: the outcome reward alone")
    outcome_values: dict[str, float] | None = None
    step_rewards: StepRewardConfig = Field(default_factory=StepRewardConfig)
    system_prompt: str = SYSTEM_PROMPT


class SweSession(Toolset):
    """Per episode: checks out ``base_commit`` at set-up; offers ``submit``."""

    def __init__(self, env: SweEnv) -> None:
        self.env = env

    async def setup(self, ctx: ToolContext) -> None:
        await self.env.prepare(ctx)

    @tool
    async def submit(self) -> ToolOutput:
        """Submit your changes: the repository as it is now is your answer, and the task ends."""
        return ToolOutput(content="Submitted. The repository's changes will be tested.", done=True)


class SweEnv(ToolEnv):
    def __init__(self, config: SweConfig | None = None, *, reward: Reward | None = None, **overrides: Any) -> None:
        if config is not None and overrides:
            config = SweConfig.model_validate({**config.model_dump(), **overrides})
        self.config = config or SweConfig.model_validate(overrides)
        cfg = self.config
        if cfg.sandbox.backend == "local":
            raise ValueError("the swe env needs Docker (its repositories live in images): "
                             "use SandboxConfig(backend='docker')")
        super().__init__(
            [bash_tool(timeout_s=cfg.command_timeout_s), file_editor_tool(), SweSession(self)],
            name="swe", system_prompt=cfg.system_prompt, max_turns=cfg.max_turns,
            tool_timeout_s=cfg.command_timeout_s + 30, parallel_tool_calls=False, sandbox=self._open_sandbox,
            reward=reward if reward is not None else swe_reward(gate=cfg.gate, values=cfg.outcome_values,
                                                                steps=cfg.step_rewards),
            on_text_reply="nudge")
        self._data: SweTaskData | None = None
        self._fingerprint: str | None = None

    # --- episode set-up ----------------------------------------------------------------------

    @property
    def repo_dir(self) -> str:
        return f"{self.config.sandbox.workspace}/{REPO_DIR}"

    async def _open_sandbox(self, task: Task) -> Sandbox:
        data = task_data(task)
        from traject.sandboxes.images import BuildSettings

        build = BuildSettings.from_host() if self.config.host_build_settings else None
        ref = await ensure_env_image(data, base=self.config.base_image, workspace=self.config.sandbox.workspace,
                                     install_network=self.config.install_network, build=build,
                                     images=self.config.images)
        return await open_sandbox(self.config.sandbox.model_copy(update={"image": ref.tag, "backend": "docker"}))

    async def prepare(self, ctx: ToolContext) -> None:
        data = task_data(ctx.task)
        sandbox = ctx.require_sandbox()
        base = shlex.quote(data.base_commit)
        res = await sandbox.exec(f"git checkout -q -f {base} && git clean -fdq && git rev-parse HEAD",
                                 timeout=self.config.setup_timeout_s, workdir=self.repo_dir)
        head = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
        if not res.ok or not head.startswith(data.base_commit[:7]):
            raise SweSetupError(f"task {data.instance_id}: checking out base_commit {data.base_commit} failed "
                                f"(exit {res.exit_code}): {(res.stderr or res.stdout).strip()[-500:]}")
        self._data = data
        self._fingerprint = await self._repo_fingerprint(sandbox) if self.config.track_edits else None

    # --- steps -------------------------------------------------------------------------------

    async def step(self, action: Message):
        result = await super().step(action)
        assert self.ctx is not None and self._data is not None
        sandbox = self.ctx.require_sandbox()
        swe: dict[str, Any] = {"tests_run": any(
            c.name == "bash" and isinstance(c.arguments.get("command"), str)
            and TEST_COMMAND.search(str(c.arguments["command"])) for c in action.tool_calls)}
        if self.config.track_edits:
            fingerprint = await self._repo_fingerprint(sandbox)
            swe["edited"] = fingerprint != self._fingerprint
            self._fingerprint = fingerprint
        if result.done:
            submitted = any(r.name == "submit" and not r.is_error for r in result.tool_results)
            final, run = await self._finish(sandbox, self._data, submitted)
            swe.update(final)
            if run is not None:
                result.info["test_run"] = run
            if submitted:
                result.final_answer = final["patch"]
        result.info["swe"] = swe
        return result

    async def _repo_fingerprint(self, sandbox: Sandbox) -> str:
        res = await sandbox.exec("{ git status --porcelain=v1 -uall; git diff HEAD --no-color; "
                                 "git ls-files -o --exclude-standard -z | xargs -0 -r sha1sum; } | sha1sum",
                                 timeout=self.config.setup_timeout_s, workdir=self.repo_dir)
        return res.stdout.strip()

    async def diff(self, sandbox: Sandbox, base_commit: str) -> str:
        """The repository's changes against ``base_commit``, new files included."""
        res = await sandbox.exec(f"git add -A && git diff --cached --no-color --binary {shlex.quote(base_commit)}",
                                 timeout=self.config.setup_timeout_s, workdir=self.repo_dir)
        if not res.ok:
            raise InfraError(f"git diff failed in the sandbox (exit {res.exit_code}): {res.stderr.strip()[-500:]}")
        return res.stdout

    async def _finish(self, sandbox: Sandbox, data: SweTaskData,
                      submitted: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
        patch = await self.diff(sandbox, data.base_commit)
        modified = bool(patch.strip())
        final: dict[str, Any] = {"final": True, "submitted": submitted, "modified": modified, "patch": patch,
                                 "resolved": False}
        run = None
        if submitted and (modified or self.config.run_tests_on_empty_patch):
            run, final["test_patch_applied"] = await self.run_tests(sandbox, data)
            final["log_parser"] = report_parser(data.log_parser, data.repo)
            assert self.ctx is not None
            probe = Trajectory(task_id=data.instance_id, steps=[Step(index=0, action=Message.assistant(""),
                                                                     info={"test_run": run})])
            verdict = await UnitTestReward().score(probe, self.ctx.task)
            final["resolved"] = bool(verdict.success)
        return final, run

    async def run_tests(self, sandbox: Sandbox, data: SweTaskData) -> tuple[dict[str, Any], bool]:
        """Reset the test patch's files to base_commit, apply the test patch, run the tests and
        parse their per-test lines. Returns a TestRun record and whether the test patch applied."""
        files = patch_files(data.test_patch)
        base = shlex.quote(data.base_commit)
        if files:
            quoted = " ".join(shlex.quote(f) for f in files)
            # Files the test patch touches go back to base_commit (the agent's edits to them are
            # dropped, as in SWE-bench); files it creates are removed so that it applies.
            await sandbox.exec(f"git reset -q && for f in {quoted}; do "
                               f"if git cat-file -e {base}:\"$f\" 2>/dev/null; then git checkout -q {base} -- \"$f\"; "
                               "else rm -f -- \"$f\"; fi; done",
                               timeout=self.config.setup_timeout_s, workdir=self.repo_dir)
        applied = True
        apply_output = ""
        if data.test_patch.strip():
            await sandbox.write_file(TEST_PATCH_PATH, data.test_patch.encode("utf-8"))
            res = await sandbox.exec(f"git apply --whitespace=nowarn {TEST_PATCH_PATH}",
                                     timeout=self.config.setup_timeout_s, workdir=self.repo_dir)
            applied, apply_output = res.ok, (res.stdout + res.stderr).strip()
        command = data.full_test_cmd
        if not applied:
            return {"command": command, "exit_code": -1, "timed_out": False, "duration_s": 0.0, "statuses": {},
                    "output_tail": f"the test patch did not apply: {apply_output[-2000:]}"}, False
        res = await sandbox.exec(command, timeout=self.config.test_timeout_s, workdir=self.repo_dir)
        text = res.stdout + "\n" + res.stderr
        statuses = parse_report(text, data.log_parser, repo=data.repo, instance_id=data.instance_id,
                                version=data.version)
        return {"command": command, "exit_code": res.exit_code, "timed_out": res.timed_out,
                "duration_s": res.duration_s, "statuses": {k: v.value for k, v in statuses.items()},
                "output_tail": text[-4000:]}, True


def task_data(task: Task) -> SweTaskData:
    try:
        return SweTaskData.model_validate(task.data)
    except ValueError as exc:
        raise ValueError(f"task {task.id!r} is not a SWE task: {exc}") from exc
