"""Removing what a crashed process left behind: labelled containers and socket directories."""

from __future__ import annotations

import os
import shutil
import socket
import time
from typing import Any

from pydantic import BaseModel, Field

from traject.sandboxes.docker_client import LABEL, LABEL_RUN_DIR, get_client, owner_alive
from traject.sandboxes.docker_sandbox import run_root

STALE_DIR_AGE_S = 120.0


class PruneReport(BaseModel):
    removed: list[str] = Field(default_factory=list, description="ids of the containers removed")
    kept: list[str] = Field(default_factory=list, description="containers of processes still running")
    run_dirs_removed: int = 0


def prune(*, include_live: bool = False, client: Any = None) -> PruneReport:
    """Remove traject-labelled containers whose owning process is gone (all of them with
    ``include_live``), and socket directories that no container uses any more.

    Blocking: call it from a worker thread in async code."""
    client = client or get_client()
    api = client.api
    report = PruneReport()
    in_use: set[str] = set()
    for label in (f"{LABEL}=1", "traject.build=1"):
        for info in api.containers(all=True, filters={"label": label}):
            labels = info.get("Labels") or {}
            if include_live or not owner_alive(labels):
                try:
                    api.remove_container(info["Id"], force=True)
                except Exception as exc:
                    if "No such container" not in str(exc) and "already in progress" not in str(exc):
                        raise
                report.removed.append(info["Id"])
                run_dir = labels.get(LABEL_RUN_DIR)
                if run_dir and os.path.dirname(run_dir) == run_root():
                    shutil.rmtree(run_dir, ignore_errors=True)
                    report.run_dirs_removed += 1
            else:
                report.kept.append(info["Id"])
                if labels.get(LABEL_RUN_DIR):
                    in_use.add(labels[LABEL_RUN_DIR])
    root = run_root()
    now = time.time()
    for name in os.listdir(root):
        path = os.path.join(root, name)
        try:
            old = now - os.stat(path).st_mtime > STALE_DIR_AGE_S
        except FileNotFoundError:
            continue
        # "s*": docker socket dirs; young ones may belong to a sandbox being created right now.
        # "l*": local sandboxes; stale once no executor listens on their socket.
        stale_docker = name.startswith("s") and path not in in_use and (old or include_live)
        stale_local = name.startswith("l") and old and not _listening(os.path.join(path, "exec.sock"))
        if stale_docker or stale_local:
            shutil.rmtree(path, ignore_errors=True)
            report.run_dirs_removed += 1
    return report


def _listening(path: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(1.0)
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def list_sandboxes(*, client: Any = None) -> list[dict[str, Any]]:
    """Every traject-labelled container: id, status, owner pid and whether the owner runs."""
    client = client or get_client()
    out = []
    for info in client.api.containers(all=True, filters={"label": f"{LABEL}=1"}):
        labels = info.get("Labels") or {}
        out.append({
            "id": info["Id"][:12],
            "image": info.get("Image"),
            "status": info.get("Status"),
            "owner_pid": labels.get("traject.owner.pid"),
            "owner_alive": owner_alive(labels),
        })
    return out
