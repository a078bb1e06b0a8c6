"""SWE env hot paths against the local Docker daemon, side by side in one run.

1. Episode set-up from a cached environment image: the image lookup (content tag, cached),
   the fresh container (the workspace starts with a copy of the repository), the checkout of
   ``base_commit``; the whole ``reset``. Next to it, building the environment image again
   (``force``), which is what the cache saves on every episode.
2. Test run at submit: reset the test files, apply the test patch, run the tests and parse
   them; next to it, the same test command alone.

    python benchmarks/swe.py [--repeats 5] [--names textkit mathkit] [--toolchain] [--out runs/bench_swe.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from traject.environments.swe import SweConfig, SweEnv, SweTaskData, builtin_swe_tasks, ensure_env_image  # noqa: E402
from traject.environments.swe.images import REPO_DIR  # noqa: E402
from traject.sandboxes.config import DEFAULT_IMAGE, SandboxConfig  # noqa: E402
from traject.sandboxes.factory import open_sandbox  # noqa: E402
from traject.sandboxes.images import build_base_image  # noqa: E402


def ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"mean_ms": 1000 * statistics.fmean(ordered), "p50_ms": 1000 * ordered[len(ordered) // 2],
            "max_ms": 1000 * ordered[-1], "n": len(ordered)}


async def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
    return out


async def bench_task(task, repeats: int, toolchain: bool) -> list[dict]:
    data = SweTaskData.model_validate(task.data)
    config = SweConfig()
    workdir = f"{config.sandbox.workspace}/{REPO_DIR}"
    rows: list[dict] = []
    ref = await ensure_env_image(data, base=config.base_image)  # make sure it is cached first
    rows.append({"task": task.id, "what": "image lookup (cached)",
                 **ms(await timed(lambda: ensure_env_image(data, base=config.base_image), repeats))})
    sandbox_config = config.sandbox.model_copy(update={"image": ref.tag})

    async def start_and_close():
        sandbox = await open_sandbox(sandbox_config)
        await sandbox.aclose()

    rows.append({"task": task.id, "what": "container start + close", **ms(await timed(start_and_close, repeats))})

    sandbox = await open_sandbox(sandbox_config)
    try:
        checkout = f"git checkout -q -f {data.base_commit} && git clean -fdq && git rev-parse HEAD"
        rows.append({"task": task.id, "what": "checkout base_commit",
                     **ms(await timed(lambda: sandbox.exec(checkout, timeout=60, workdir=workdir), repeats))})
        env = SweEnv(config)
        rows.append({"task": task.id, "what": "test run: reset files + test patch + tests + parse",
                     **ms(await timed(lambda: env.run_tests(sandbox, data), repeats))})
        rows.append({"task": task.id, "what": "the test command alone",
                     **ms(await timed(lambda: sandbox.exec(data.full_test_cmd, timeout=600, workdir=workdir),
                                      repeats))})
    finally:
        await sandbox.aclose()

    async def reset_and_close():
        env = SweEnv(config)
        await env.reset(task)
        await env.aclose()

    rows.append({"task": task.id, "what": "episode set-up: env.reset (cached image)",
                 **ms(await timed(reset_and_close, repeats))})

    async def rebuild():
        await ensure_env_image(data, base=config.base_image, force=True)

    rows.append({"task": task.id, "what": "environment image build (repository layer, forced)",
                 **ms(await timed(rebuild, 1))})
    if toolchain:
        async def rebuild_all():
            await ensure_env_image(data, base=config.base_image, force=True, force_toolchain=True)

        rows.append({"task": task.id, "what": "toolchain (apt) + repository layers, forced",
                     **ms(await timed(rebuild_all, 1))})
    return rows


async def main(args: argparse.Namespace) -> dict:
    await anyio.to_thread.run_sync(build_base_image)
    rows: list[dict] = []
    for i, task in enumerate(builtin_swe_tasks(names=args.names)):
        rows.extend(await bench_task(task, args.repeats, args.toolchain and i == 0))
    print(f"\nSWE env timings ({args.repeats} repeats; the forced image build once)")
    cols = ["task", "what", "mean_ms", "p50_ms", "max_ms", "n"]
    widths = [max(len(c), *(len(f"{r[c]:.1f}" if isinstance(r[c], float) else str(r[c])) for r in rows))
              for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join((f"{r[c]:.1f}" if isinstance(r[c], float) else str(r[c])).ljust(w) for c, w in zip(cols, widths)))
    ratios = {}
    for task in {r["task"] for r in rows}:
        get = {r["what"]: r["mean_ms"] for r in rows if r["task"] == task}
        setup = get["episode set-up: env.reset (cached image)"]
        build = get["environment image build (repository layer, forced)"]
        tests = get["test run: reset files + test patch + tests + parse"]
        alone = get["the test command alone"]
        ratios[task] = {"image_build_over_cached_setup": build / setup, "test_run_over_test_command": tests / alone}
        print(f"{task}: building the repository layer costs {build / setup:.1f}x a cached set-up; "
              f"the full test run costs {tests / alone:.2f}x the test command alone")
        full = get.get("toolchain (apt) + repository layers, forced")
        if full is not None:
            ratios[task]["full_build_over_cached_setup"] = full / setup
            print(f"{task}: building the toolchain and the repository layers costs {full / setup:.1f}x a cached set-up")
    return {"benchmark": "swe", "base_image": DEFAULT_IMAGE, "rows": rows, "ratios": ratios,
            "sandbox": SandboxConfig().model_dump(mode="json")}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--names", nargs="+", default=["textkit", "mathkit"])
    p.add_argument("--toolchain", action="store_true",
                   help="also rebuild the shared toolchain layer once (apt; invalidates the cached env images)")
    p.add_argument("--out", type=Path, default=Path("runs/bench_swe.json"))
    args = p.parse_args()
    result = anyio.run(main, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
