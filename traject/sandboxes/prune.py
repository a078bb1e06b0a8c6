"""Listing and removing what crashed processes left behind, on every configured Docker host:
labelled containers, and this machine's socket directories."""

from __future__ import annotations

import os
import shutil
import socket
import time
from typing import Any

from pydantic import BaseModel, Field

from traject.sandboxes.docker_client import (
    LABEL,
    LABEL_RUN_DIR,
    docker_host,
    get_client,
    is_local_daemon,
    is_remote_url,
    owner_alive,
    ping_hosts,
)
from traject.sandboxes.docker_sandbox import run_root

STALE_DIR_AGE_S = 120.0


class PruneReport(BaseModel):
    removed: list[str] = Field(default_factory=list, description="ids of the containers removed")
    kept: list[str] = Field(default_factory=list, description="containers of processes still running")
    run_dirs_removed: int = 0
    removed_per_host: dict[str, int] = Field(default_factory=dict)
    unreachable: dict[str, str] = Field(default_factory=dict, description="host -> why it did not answer")


class SandboxRow(BaseModel):
    """One traject container, as `traject sandbox list` shows it."""

    host: str
    id: str
    image: str
    status: str
    owner_pid: str | None
    owner_alive: bool


def reachable(hosts: list[str] | tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """The hosts that answer (in order), and why each of the others did not."""
    answers = ping_hosts(hosts)
    return [h for h in hosts if answers[h] is None], {h: str(why) for h, why in answers.items() if why is not None}


def prune(*, include_live: bool = False, client: Any = None,
          hosts: list[str] | tuple[str, ...] | None = None) -> PruneReport:
    """Remove traject-labelled containers whose owning process is gone (all of them with
    ``include_live``) on each of ``hosts`` that answers (default: this process's DOCKER_HOST;
    ``client``: that client's daemon only), and socket directories no container uses any more.

    Blocking: call it from a worker thread in async code."""
    report = PruneReport()
    if client is not None:
        targets = [(str(client.api.base_url), client)]
    else:
        live, report.unreachable = reachable(list(hosts or [docker_host()]))
        targets = [(h, get_client(host=h)) for h in live]
    in_use: set[str] = set()
    for name, target in targets:
        api = target.api
        report.removed_per_host[name] = 0
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
                    report.removed_per_host[name] += 1
                    run_dir = labels.get(LABEL_RUN_DIR)
                    if run_dir and os.path.dirname(run_dir) == run_root():
                        shutil.rmtree(run_dir, ignore_errors=True)
                        report.run_dirs_removed += 1
                else:
                    report.kept.append(info["Id"])
                    if labels.get(LABEL_RUN_DIR):
                        in_use.add(labels[LABEL_RUN_DIR])
    # socket dirs belong to containers of a daemon on this machine: judge them only when every
    # such daemon was asked (a silent one may hold containers that still use theirs)
    local_asked = any(is_local_daemon(target) for _, target in targets)
    sweep_docker_dirs = local_asked and not any(not is_remote_url(h) for h in report.unreachable)
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
        stale_docker = (sweep_docker_dirs and name.startswith("s") and path not in in_use
                        and (old or include_live))
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


def list_sandboxes(*, client: Any = None, host: str | None = None) -> list[SandboxRow]:
    """Every traject-labelled container on ``host`` (default: DOCKER_HOST) or ``client``'s
    daemon: id, status, owner pid and whether the owner runs."""
    host = host or docker_host()
    client = client or get_client(host=host)
    out = []
    for info in client.api.containers(all=True, filters={"label": f"{LABEL}=1"}):
        labels = info.get("Labels") or {}
        out.append(SandboxRow(
            host=host, id=info["Id"][:12], image=str(info.get("Image")), status=str(info.get("Status")),
            owner_pid=labels.get("traject.owner.pid"), owner_alive=owner_alive(labels),
        ))
    return out
