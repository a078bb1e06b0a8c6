"""The Docker hosts sandboxes are placed on: which answer, which is drained, which has room.

One process-wide registry (``docker_hosts``). Hosts come from ``SandboxConfig.hosts``, else
``TRAJECT_DOCKER_HOSTS`` (comma-separated), else ``DOCKER_HOST``. A host that does not answer
at start is named in one log line and left out; none answering is a SandboxError. A sandbox
goes to the answering host with the most free run slots (admission.py: counted across every
process of this machine). A host that stops answering is drained: no new sandboxes go there
(it is probed again after ``REPROBE_S``), its episodes fail as infra errors, and the
containers that could not be removed meanwhile are removed once it answers again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
import anyio

from traject.sandboxes import admission
from traject.sandboxes.base import SandboxError
from traject.sandboxes.config import SandboxConfig, check_host_url
from traject.sandboxes.docker_client import docker_host, get_client, is_remote_url, ping_host, ping_hosts

log = logging.getLogger(__name__)

HOSTS_ENV = "TRAJECT_DOCKER_HOSTS"
ALLOW_LOCAL_ENV = "TRAJECT_ALLOW_LOCAL_SANDBOX"
REPROBE_S = 30.0
RANK_TTL_S = 0.25  # how long a count of a host's held run slots ranks placements
PING_TIMEOUT_S = 3.0


def configured_hosts(config: SandboxConfig) -> tuple[str, ...]:
    if config.hosts:
        return config.hosts
    raw = os.environ.get(HOSTS_ENV, "")
    urls = tuple(u.strip() for u in raw.replace("\n", ",").split(",") if u.strip())
    for url in urls:
        try:
            check_host_url(url)
        except ValueError as exc:
            raise SandboxError(f"{HOSTS_ENV}: {exc}") from None
    return urls or (docker_host(),)


def local_allowed() -> bool:
    return os.environ.get(ALLOW_LOCAL_ENV, "").strip().lower() in ("1", "true", "yes")


@dataclass
class HostState:
    url: str
    down: str | None = None  # why it is drained; None while it answers
    checked_at: float = 0.0
    orphans: list[str] = field(default_factory=list)  # containers to remove once it answers

    @property
    def remote(self) -> bool:
        return is_remote_url(self.url)


class DockerHosts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hosts: dict[str, HostState] = {}
        self._images: dict[tuple[str, str], threading.Lock] = {}
        self._have_image: set[tuple[str, str]] = set()
        self._rank_lock = threading.Lock()
        self._held: dict[tuple[str, int], tuple[float, int]] = {}  # (url, cap) -> (counted at, held)

    def state(self, url: str) -> HostState:
        with self._lock:
            if url not in self._hosts:
                self._hosts[url] = HostState(url)
            return self._hosts[url]

    # ------------------------------------------------------------------ answering

    def probe_sync(self, urls: tuple[str, ...], *, force: bool = False) -> list[str]:
        """Ping the hosts not checked lately (in parallel); the ones that answer, in order."""
        now = time.monotonic()
        todo = [u for u in urls if force or not self.state(u).checked_at
                or (self.state(u).down and now - self.state(u).checked_at > REPROBE_S)]
        results = ping_hosts(todo, PING_TIMEOUT_S)
        for url in todo:
            st = self.state(url)
            was_down, st.checked_at = st.down, time.monotonic()
            st.down = results.get(url)
            if st.down is not None and was_down is None:
                log.warning("docker host %s does not answer (%s): no sandboxes go there", url, st.down)
            elif st.down is None and was_down is not None:
                log.warning("docker host %s answers again", url)
                self._remove_orphans(st)
        return [u for u in urls if self.state(u).down is None]

    def require_sync(self, urls: tuple[str, ...]) -> list[str]:
        """The hosts that answer; SandboxError naming every host when none does."""
        live = self.probe_sync(urls)
        if not live and any(self.state(u).checked_at for u in urls):
            live = self.probe_sync(urls, force=True)  # all drained: ask again before giving up
        if not live:
            reasons = "; ".join(f"{u} ({self.state(u).down})" for u in urls)
            raise SandboxError(
                f"no Docker host answers: {reasons}. Start a daemon (scripts/setup_docker.sh) or fix "
                f"the sandbox config's hosts / {HOSTS_ENV}; to run untrusted code WITHOUT isolation "
                f"name `backend: local` or set {ALLOW_LOCAL_ENV}=1"
            )
        return live

    def drain_if_silent(self, url: str, reason: str) -> bool:
        """After a failed call: drain ``url`` when it does not answer a ping either (a slow
        daemon is not a dead one); True when drained."""
        if ping_host(url, PING_TIMEOUT_S) is None:
            return False
        self.drain(url, reason)
        return True

    def drain(self, url: str, reason: str) -> None:
        st = self.state(url)
        if st.down is None:
            log.warning("docker host %s stopped answering (%s): drained; its episodes fail as "
                        "infra errors, the other hosts carry on", url, reason)
        st.down, st.checked_at = reason, time.monotonic()

    def add_orphan(self, url: str, container_id: str) -> None:
        with self._lock:
            self.state_unlocked(url).orphans.append(container_id)

    def state_unlocked(self, url: str) -> HostState:
        if url not in self._hosts:
            self._hosts[url] = HostState(url)
        return self._hosts[url]

    def _remove_orphans(self, st: HostState) -> None:
        with self._lock:
            orphans, st.orphans = st.orphans, []
        if not orphans:
            return
        api = get_client(host=st.url).api
        for cid in orphans:
            try:
                api.remove_container(cid, force=True)
            except Exception as exc:  # noqa: BLE001 - gone already, or `traject sandbox prune` later
                log.debug("removing orphan %s on %s: %s", cid[:12], st.url, exc)

    def recheck_sync(self, url: str) -> bool:
        """Probe ``url`` now (a restarted daemon); True when it answers."""
        return bool(self.probe_sync((url,), force=True))

    # ------------------------------------------------------------------ placement

    async def place(self, config: SandboxConfig, *, timeout: float | None = None) -> tuple[str, admission.Slot]:
        """The host with the most free run slots, and one of its slots (waits while all are full)."""
        urls = configured_hosts(config)
        with anyio.fail_after(timeout):
            live = await anyio.to_thread.run_sync(self.require_sync, urls)
            if len(live) == 1:
                return live[0], await admission.take(live[0], "run", config.host_cap)
            delay = admission.POLL_S
            while True:
                ranked = await anyio.to_thread.run_sync(self._by_free_slots, live, config.host_cap)
                for url in ranked:
                    slot = admission.try_take(url, "run", config.host_cap)
                    if slot is not None:
                        return url, slot
                await anyio.sleep(delay)
                delay = min(admission.MAX_POLL_S, delay * 1.5)
                live = await anyio.to_thread.run_sync(self.require_sync, urls)

    def _by_free_slots(self, urls: list[str], cap: int) -> list[str]:
        """``urls``, fewest held run slots first. Counting probes every slot file (~5 ms per
        host at a cap of 1000), so a count ranks placements for RANK_TTL_S, each ranking
        adding one to the host it puts first (the take it is about to make): a burst of
        placements counts once and still spreads. Only the ranking is approximate; the slots
        themselves are exact (try_take)."""
        with self._rank_lock:  # one thread counts; the others of a burst use its count
            counts = {}
            for url in urls:
                counted = self._held.get((url, cap))
                if counted is None or time.monotonic() - counted[0] > RANK_TTL_S:
                    counted = self._held[url, cap] = (time.monotonic(), admission.held(url, "run", cap))
                counts[url] = counted[1]
            ranked = sorted(urls, key=counts.__getitem__)
            at, n = self._held[ranked[0], cap]
            self._held[ranked[0], cap] = (at, n + 1)
        return ranked

    # ------------------------------------------------------------------ images

    def ensure_image_sync(self, url: str, image: str) -> None:
        """Make sure ``url`` holds ``image``: loaded from another host that has it (docker save
        | docker load), else built when it is the base image; once per host and image."""
        key = (url, image)
        if key in self._have_image:
            return
        with self._lock:
            lock = self._images.setdefault(key, threading.Lock())
        with lock:
            if key in self._have_image:
                return
            import docker.errors

            api = get_client(host=url).api
            try:
                have = api.inspect_image(image)["Id"]
            except docker.errors.ImageNotFound:
                have = None
            local = self._local_image_id(image) if url != docker_host() else None
            if have is None or (local is not None and have != local):
                self._provide_image(url, image)  # missing, or not what this machine's daemon calls it
            self._have_image.add(key)

    def _local_image_id(self, image: str) -> str | None:
        import docker.errors

        try:
            return str(get_client().api.inspect_image(image)["Id"])
        except docker.errors.ImageNotFound:
            return None
        except Exception:  # noqa: BLE001 - no local daemon: nothing to compare with
            return None

    def _provide_image(self, url: str, image: str) -> None:
        import docker.errors

        for source in [docker_host(), *list(self._hosts)]:
            if source == url or self.state(source).down is not None:
                continue
            try:
                src_api = get_client(host=source).api
                src_api.inspect_image(image)
            except docker.errors.ImageNotFound:
                continue
            except Exception:  # noqa: BLE001 - that source does not answer: try the next
                continue
            log.warning("docker host %s lacks %s: loading it from %s (once)", url, image, source)
            stream = src_api.get_image(image, chunk_size=1 << 20)
            get_client(timeout=600, host=url).api.load_image(stream)  # streamed, chunked
            return
        from traject.sandboxes.config import DEFAULT_IMAGE

        if image == DEFAULT_IMAGE:
            from traject.sandboxes.images import build_base_image

            log.warning("docker host %s lacks %s and no host has it: building it there (once)", url, image)
            build_base_image(client=get_client(timeout=600, host=url))
            return
        raise SandboxError(f"sandbox image {image!r} not found on docker host {url} nor on any other "
                           "host: build it with `traject sandbox build`")


docker_hosts = DockerHosts()
