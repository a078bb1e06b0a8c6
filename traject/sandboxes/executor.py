"""The in-sandbox executor: a small stdlib-only python3 server started with the sandbox.

This file is shipped into the sandbox as source (``python3 -c <this file>``) and must
run on any python3 >= 3.9 with nothing but the standard library. It never imports traject.

Wire protocol (both directions): a frame is ``>II`` (header length, body length), then a
UTF-8 JSON header, then the raw body bytes. Requests carry an ``op``; replies carry ``ok``
and, on failure, ``error`` and ``kind`` (an OSError subclass name where one applies).

It serves many connections on the unix socket given by --socket (one thread per
connection). The host reaches that socket through a bind-mounted directory (the fast
channel), or through ``docker exec`` of a tiny relay (channel.py's RELAY_SOURCE).

Processes are spawned in their own session; a timeout stops then kills every process of
that session, its process group and its descendants, so a command cannot outlive its
timeout by forking or by moving to a new process group. When the executor is PID 1 (in a
container) or a child subreaper (local backend) it also reaps orphans.
"""

import argparse
import ctypes
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

FRAME = struct.Struct(">II")
MAX_HEADER = 1 << 20
MAX_BODY = 1 << 31
EXIT_GRACE_S = 0.05  # how long to drain pipes held open by background processes after exit
INTERRUPT_GRACE_S = 3.0  # how long a session may take to come back after an interrupt
STATUS_LINE_MAX = 4096

WORKSPACE = os.getcwd()
OOM_DETECT = False
MY_PID = os.getpid()


# ---------------------------------------------------------------- framing


def read_exact(read, n):
    chunks = []
    while n:
        chunk = read(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(read):
    head = read_exact(read, FRAME.size)
    if head is None:
        return None
    hlen, blen = FRAME.unpack(head)
    if hlen > MAX_HEADER or blen > MAX_BODY:
        raise ValueError("frame too large")
    header = read_exact(read, hlen)
    body = read_exact(read, blen) if blen else b""
    if header is None or body is None:
        return None
    return json.loads(header.decode("utf-8")), body


def encode_frame(header, body=b""):
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return FRAME.pack(len(raw), len(body)) + raw + body


# ---------------------------------------------------------------- processes


class Reaper:
    """Owns every waitpid in this process, so that orphans are reaped and the exit status of
    each spawned child reaches the thread that waits for it (subprocess.Popen.wait is never
    called)."""

    def __init__(self):
        self.cond = threading.Condition()
        self.status = {}  # pid -> (wait status, time reaped)
        self.watchers = {}  # pid -> write end of a wake-up pipe
        threading.Thread(target=self._loop, name="reaper", daemon=True).start()

    def spawn(self, argv, **kwargs):
        with self.cond:
            proc = subprocess.Popen(argv, **kwargs)
            self.cond.notify_all()
        return proc

    def watch(self, pid):
        """A file descriptor that becomes readable once ``pid`` has been reaped."""
        r, w = os.pipe()
        with self.cond:
            if pid in self.status:
                os.write(w, b"x")
                os.close(w)
            else:
                self.watchers[pid] = w
        return r

    def unwatch(self, pid, rfd):
        with self.cond:
            w = self.watchers.pop(pid, None)
        if w is not None:
            os.close(w)
        os.close(rfd)

    def wait(self, pid, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while pid not in self.status:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.status.pop(pid)[0]

    def poll(self, pid):
        with self.cond:
            entry = self.status.get(pid)
            return None if entry is None else entry[0]

    def forget(self, pid):
        with self.cond:
            self.status.pop(pid, None)

    def _loop(self):
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                with self.cond:
                    self.cond.wait(0.5)
                continue
            except InterruptedError:
                continue
            now = time.monotonic()
            with self.cond:
                self.status[pid] = (status, now)
                w = self.watchers.pop(pid, None)
                # statuses nobody claimed (orphans) are dropped after a minute
                stale = [p for p, (_, t) in self.status.items() if now - t > 60]
                for p in stale:
                    del self.status[p]
                self.cond.notify_all()
            if w is not None:
                try:
                    os.write(w, b"x")
                finally:
                    os.close(w)


REAPER = None


def exit_code_of(status):
    if status is None:
        return -1
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def process_table():
    """pid -> (ppid, pgid, sid) for every visible process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                raw = f.read()
        except OSError:
            continue
        rest = raw[raw.rfind(b")") + 2 :].split()
        # fields after "(comm)": state ppid pgrp session ...
        if rest[0] == b"Z":
            continue
        table[int(name)] = (int(rest[1]), int(rest[2]), int(rest[3]))
    return table


def tree_of(table, root, sid=None, include_root=True):
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found = set()
    stack = [root]
    while stack:
        pid = stack.pop()
        for child in children.get(pid, ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    if sid is not None:
        for pid, (_, pgid, psid) in table.items():
            if psid == sid or pgid == sid:
                found.add(pid)
    if include_root and root in table:
        found.add(root)
    else:
        found.discard(root)
    found.discard(MY_PID)
    return found


def kill_tree(root, sid=None, include_root=True):
    """Stop, then kill, the process tree of ``root`` (and every process of session ``sid``).

    Stopped processes cannot fork, so repeated rounds converge even against a fork bomb."""
    for _ in range(100):
        targets = tree_of(process_table(), root, sid, include_root)
        if not targets:
            return
        for pid in targets:
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                pass
        targets |= tree_of(process_table(), root, sid, include_root)
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)


def kill_everything():
    """Kill every process this executor may see except itself (PID 1 / subreaper teardown)."""
    for _ in range(100):
        table = process_table()
        if os.getpid() == 1:
            targets = set(table) - {MY_PID}
        else:
            targets = tree_of(table, MY_PID, include_root=False)
        if not targets:
            return
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)


def read_oom_count():
    if not OOM_DETECT:
        return None
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except OSError:
            continue
    return None


def demote_oom_score(pid):
    # Children go first under memory pressure, so the executor survives to report it.
    try:
        with open("/proc/%d/oom_score_adj" % pid, "w") as f:
            f.write("1000")
    except OSError:
        pass


def build_env(extra):
    env = dict(os.environ)
    if extra:
        env.update(extra)
    return env


class Capture:
    """Keeps the head and the tail of a stream, up to ``limit`` bytes in all."""

    def __init__(self, limit):
        self.head_max = limit // 2
        self.tail_max = limit - self.head_max
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data):
        self.total += len(data)
        room = self.head_max - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.tail_max + 65536:
                del self.tail[: len(self.tail) - self.tail_max]

    def finish(self):
        if len(self.tail) > self.tail_max:
            del self.tail[: len(self.tail) - self.tail_max]
        omitted = self.total - len(self.head) - len(self.tail)
        return bytes(self.head), bytes(self.tail), omitted


def resolve(path):
    return path if os.path.isabs(path) else os.path.join(WORKSPACE, path)


def spawn(argv, cwd, env, stdin, stderr_to_stdout=False):
    proc = REAPER.spawn(
        argv,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if stderr_to_stdout else subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    demote_oom_score(proc.pid)
    return proc


def spawn_error(exc, argv, cwd):
    if isinstance(exc, FileNotFoundError):
        if cwd and not os.path.isdir(cwd):
            return 127, "traject: working directory not found: %s\n" % cwd
        return 127, "traject: command not found: %s\n" % argv[0]
    if isinstance(exc, PermissionError):
        return 126, "traject: permission denied: %s\n" % argv[0]
    return 126, "traject: cannot run %s: %s\n" % (argv[0], exc)


def client_gone(conn):
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


# ---------------------------------------------------------------- operations


def op_exec(h, body, conn):
    argv = h["argv"]
    timeout = float(h["timeout"])
    limit = int(h.get("limit", 65536))
    cwd = resolve(h["cwd"]) if h.get("cwd") else WORKSPACE
    env = build_env(h.get("env"))
    started = time.monotonic()
    deadline = started + timeout
    oom_before = read_oom_count()
    try:
        proc = spawn(argv, cwd, env, stdin=bool(h.get("stdin")))
    except OSError as exc:
        code, msg = spawn_error(exc, argv, cwd)
        return exec_reply(code, (b"", b"", 0), (msg.encode(), b"", 0), False, started, False)
    pid = proc.pid
    wake = REAPER.watch(pid)
    out, err = Capture(limit), Capture(limit)
    sel = selectors.DefaultSelector()
    streams = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    for fd in streams:
        sel.register(fd, selectors.EVENT_READ)
    sel.register(wake, selectors.EVENT_READ)
    pending_in = memoryview(body) if h.get("stdin") else None
    if pending_in is not None:
        in_fd = proc.stdin.fileno()
        os.set_blocking(in_fd, False)
        if len(pending_in):
            sel.register(in_fd, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
    if conn is not None:
        sel.register(conn.fileno(), selectors.EVENT_READ)
    exited_at = None
    timed_out = abandoned = False
    try:
        while True:
            now = time.monotonic()
            if exited_at is not None and (not streams or now - exited_at > EXIT_GRACE_S):
                break
            if now >= deadline:
                timed_out = True
                break
            wait = deadline - now
            if exited_at is not None:
                wait = min(wait, exited_at + EXIT_GRACE_S - now)
            for key, _ in sel.select(wait):
                fd = key.fd
                if fd in streams:
                    data = os.read(fd, 65536)
                    if data:
                        streams[fd].add(data)
                    else:
                        sel.unregister(fd)
                        del streams[fd]
                elif fd == wake:
                    sel.unregister(wake)
                    exited_at = time.monotonic()
                elif conn is not None and fd == conn.fileno():
                    if client_gone(conn):
                        abandoned = True
                    else:
                        sel.unregister(fd)
                elif pending_in is not None:
                    try:
                        n = os.write(fd, pending_in[:65536])
                        pending_in = pending_in[n:]
                    except BrokenPipeError:
                        pending_in = pending_in[:0]
                    if not len(pending_in):
                        sel.unregister(fd)
                        proc.stdin.close()
            if abandoned:
                timed_out = True
                break
        if timed_out:
            kill_tree(pid, sid=pid)
        status = REAPER.wait(pid, 5.0)
        # take what is already in the pipes without waiting for background holders
        for fd, cap in list(streams.items()):
            os.set_blocking(fd, False)
            try:
                while True:
                    data = os.read(fd, 65536)
                    if not data:
                        break
                    cap.add(data)
            except BlockingIOError:
                pass
    finally:
        sel.close()
        REAPER.unwatch(pid, wake)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        proc.returncode = 0  # Popen must never wait on its own: the reaper owns waitpid
    if abandoned:
        return None
    code = exit_code_of(status)
    oom = False
    if oom_before is not None and code == 128 + signal.SIGKILL and not timed_out:
        after = read_oom_count()
        oom = after is not None and after > oom_before
    return exec_reply(code, out.finish(), err.finish(), timed_out, started, oom)


def exec_reply(code, out, err, timed_out, started, oom):
    header = {
        "ok": True,
        "exit_code": code,
        "timed_out": timed_out,
        "oom_killed": oom,
        "duration_s": time.monotonic() - started,
        "stdout": [len(out[0]), len(out[1]), out[2]],
        "stderr": [len(err[0]), len(err[1]), err[2]],
    }
    return header, out[0] + out[1] + err[0] + err[1]


def op_write(h, body, conn):
    path = resolve(h["path"])
    if h.get("parents", True):
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, int(h.get("mode", 0o644)))
    try:
        view = memoryview(body)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)
    return {"ok": True}, b""


def op_read(h, body, conn):
    path = resolve(h["path"])
    limit = int(h.get("max_bytes", 64 << 20))
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(27, "file larger than %d bytes" % limit, path)  # EFBIG
    return {"ok": True}, data


def op_ping(h, body, conn):
    return {"ok": True, "pid": os.getpid(), "workspace": WORKSPACE}, b""


SESSIONS = {}
SESSIONS_LOCK = threading.Lock()


class Session:
    """A long-lived process (a shell, an interpreter) fed with input and read until a marker."""

    def __init__(self, sid, argv, cwd, env, interrupt_signal):
        self.sid = sid
        self.proc = spawn(argv, cwd, env, stdin=True, stderr_to_stdout=True)
        self.pid = self.proc.pid
        self.wake = REAPER.watch(self.pid)
        self.interrupt_signal = interrupt_signal
        self.lock = threading.Lock()
        self.pending = bytearray()  # output that arrived after the previous marker
        self.dead = False
        os.set_blocking(self.proc.stdout.fileno(), False)
        os.set_blocking(self.proc.stdin.fileno(), False)

    def run(self, data, marker, timeout, limit, conn):
        if not self.lock.acquire(blocking=False):
            raise RuntimeError("session %s is busy" % self.sid)
        try:
            return self._run(data, marker, timeout, limit, conn)
        finally:
            self.lock.release()

    def _run(self, data, marker, timeout, limit, conn):
        started = time.monotonic()
        deadline = started + timeout
        oom_before = read_oom_count()
        cap = Capture(limit)
        scan = bytearray(self.pending)
        self.pending = bytearray()
        status_line = None
        timed_out = exited = interrupted = abandoned = False
        out_fd, in_fd = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        to_write = memoryview(data)
        sel = selectors.DefaultSelector()
        sel.register(out_fd, selectors.EVENT_READ)
        sel.register(self.wake, selectors.EVENT_READ)
        if len(to_write):
            sel.register(in_fd, selectors.EVENT_WRITE)
        if conn is not None:
            sel.register(conn.fileno(), selectors.EVENT_READ)
        exited_at = None

        def consume():
            nonlocal scan, status_line
            idx = scan.find(marker)
            if idx < 0:
                keep = len(marker) - 1
                if len(scan) > keep:
                    cap.add(bytes(scan[: len(scan) - keep]))
                    del scan[: len(scan) - keep]
                return
            cap.add(bytes(scan[:idx]))
            del scan[:idx]
            nl = scan.find(b"\n", len(marker))
            if nl < 0 and len(scan) < len(marker) + STATUS_LINE_MAX:
                return
            end = nl if nl >= 0 else len(scan)
            status_line = bytes(scan[len(marker) : end])
            self.pending = bytearray(scan[end + 1 :])
            scan = bytearray()

        try:
            consume()
            while status_line is None:
                now = time.monotonic()
                if exited_at is not None and now - exited_at > EXIT_GRACE_S:
                    exited = True
                    break
                if now >= deadline:
                    if interrupted:
                        break
                    timed_out = interrupted = True
                    self.interrupt()
                    deadline = time.monotonic() + INTERRUPT_GRACE_S
                    continue
                wait = deadline - now
                if exited_at is not None:
                    wait = min(wait, exited_at + EXIT_GRACE_S - now)
                for key, _ in sel.select(max(wait, 0)):
                    fd = key.fd
                    if fd == out_fd:
                        try:
                            chunk = os.read(out_fd, 65536)
                        except BlockingIOError:
                            continue
                        if not chunk:
                            sel.unregister(out_fd)
                            if exited_at is None:
                                exited_at = time.monotonic()
                            continue
                        scan += chunk
                        consume()
                    elif fd == in_fd:
                        try:
                            n = os.write(in_fd, to_write[:65536])
                            to_write = to_write[n:]
                        except BlockingIOError:
                            continue
                        except BrokenPipeError:
                            to_write = to_write[:0]
                        if not len(to_write):
                            sel.unregister(in_fd)
                    elif fd == self.wake:
                        sel.unregister(self.wake)
                        if exited_at is None:
                            exited_at = time.monotonic()
                    elif conn is not None and fd == conn.fileno():
                        if client_gone(conn):
                            abandoned = True
                        else:
                            sel.unregister(fd)
                if abandoned:
                    break
            if status_line is None and not exited:
                # did not come back from the interrupt (or the client left): start over
                self.close()
                exited = True
            if scan:
                cap.add(bytes(scan))
        finally:
            sel.close()
        code = None
        oom = False
        if exited:
            self.dead = True
            code = exit_code_of(REAPER.wait(self.pid, 2.0))
            self.close()
            if oom_before is not None and code == 128 + signal.SIGKILL and not interrupted:
                after = read_oom_count()
                oom = after is not None and after > oom_before
        if abandoned:
            return None
        head, tail, omitted = cap.finish()
        header = {
            "ok": True,
            "status": None if status_line is None else status_line.decode("utf-8", "replace"),
            "timed_out": timed_out,
            "exited": exited,
            "exit_code": code,
            "oom_killed": oom,
            "duration_s": time.monotonic() - started,
            "output": [len(head), len(tail), omitted],
        }
        return header, head + tail

    def interrupt(self):
        kill_tree(self.pid, sid=self.pid, include_root=False)
        if self.interrupt_signal:
            try:
                os.kill(self.pid, self.interrupt_signal)
            except OSError:
                pass

    def close(self):
        kill_tree(self.pid, sid=self.pid, include_root=True)
        self.dead = True
        with SESSIONS_LOCK:
            SESSIONS.pop(self.sid, None)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        if self.wake is not None:
            REAPER.unwatch(self.pid, self.wake)
            self.wake = None
        self.proc.returncode = 0


_session_ids = iter(range(1, 1 << 62))


def op_session_open(h, body, conn):
    argv = h["argv"]
    cwd = resolve(h["cwd"]) if h.get("cwd") else WORKSPACE
    sid = "s%d" % next(_session_ids)
    try:
        session = Session(sid, argv, cwd, build_env(h.get("env")), int(h.get("interrupt_signal") or 0))
    except OSError as exc:
        code, msg = spawn_error(exc, argv, cwd)
        raise OSError(exc.errno or 0, msg.strip())
    with SESSIONS_LOCK:
        SESSIONS[sid] = session
    return {"ok": True, "session": sid, "pid": session.pid}, b""


def get_session(h):
    with SESSIONS_LOCK:
        session = SESSIONS.get(h["session"])
    if session is None:
        raise LookupError("no such session: %s (it has exited or was closed)" % h["session"])
    return session


def op_session_run(h, body, conn):
    session = get_session(h)
    marker = h["marker"].encode("utf-8")
    return session.run(body, marker, float(h["timeout"]), int(h.get("limit", 65536)), conn)


def op_session_close(h, body, conn):
    with SESSIONS_LOCK:
        session = SESSIONS.get(h["session"])
    if session is not None:
        session.close()
    return {"ok": True}, b""


def op_shutdown(h, body, conn):
    with SESSIONS_LOCK:
        sessions = list(SESSIONS.values())
    for session in sessions:
        session.close()
    kill_everything()
    return {"ok": True}, b""


OPS = {
    "exec": op_exec,
    "write": op_write,
    "read": op_read,
    "ping": op_ping,
    "session_open": op_session_open,
    "session_run": op_session_run,
    "session_close": op_session_close,
    "shutdown": op_shutdown,
}


def dispatch(header, body, conn):
    op = OPS.get(header.get("op"))
    if op is None:
        return {"ok": False, "error": "unknown op %r" % header.get("op"), "kind": "ValueError"}, b""
    try:
        return op(header, body, conn)
    except OSError as exc:
        return {
            "ok": False,
            "error": exc.strerror or str(exc),
            "kind": type(exc).__name__,
            "errno": exc.errno,
            "filename": exc.filename,
        }, b""
    except Exception as exc:  # reported to the host; the executor keeps serving
        return {"ok": False, "error": str(exc), "kind": type(exc).__name__}, b""


# ---------------------------------------------------------------- serving


def handle_connection(conn):
    try:
        while True:
            frame = read_frame(conn.recv)
            if frame is None:
                return
            reply = dispatch(frame[0], frame[1], conn)
            if reply is None:  # the client went away mid-request
                return
            conn.sendall(encode_frame(*reply))
    except (OSError, ValueError):
        return
    finally:
        conn.close()


def serve(path):
    tmp = path + ".tmp"
    for p in (path, tmp):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(tmp)
    os.chmod(tmp, 0o666)
    server.listen(128)
    os.rename(tmp, path)  # the socket appears only once it accepts connections
    while True:
        try:
            conn, _ = server.accept()
        except InterruptedError:
            continue
        threading.Thread(target=handle_connection, args=(conn,), daemon=True).start()


def seed_workspace(src):
    if not os.path.isdir(src):
        return
    for name in os.listdir(src):
        s, d = os.path.join(src, name), os.path.join(WORKSPACE, name)
        if os.path.isdir(s) and not os.path.islink(s):
            shutil.copytree(s, d, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(s, d, follow_symlinks=False)


def apply_rlimits(spec):
    import resource

    names = {"as": "RLIMIT_AS", "nproc": "RLIMIT_NPROC", "fsize": "RLIMIT_FSIZE",
             "nofile": "RLIMIT_NOFILE", "cpu": "RLIMIT_CPU"}
    for item in spec.split(","):
        name, _, value = item.partition("=")
        limit = int(value)
        resource.setrlimit(getattr(resource, names[name]), (limit, limit))


def exit_with_parent(cleanup):
    """Local backend: when the process that started us dies (SIGKILL, a crash), nobody will
    close this sandbox, so kill everything it runs, remove its directories and exit."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                with SESSIONS_LOCK:
                    sessions = list(SESSIONS.values())
                for session in sessions:
                    session.close()
                kill_everything()
                for path in cleanup:
                    shutil.rmtree(path, ignore_errors=True)
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def become_subreaper():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def main():
    global WORKSPACE, OOM_DETECT, REAPER
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket")
    parser.add_argument("--workspace", default=os.getcwd())
    parser.add_argument("--seed")
    parser.add_argument("--oom-detect", action="store_true")
    parser.add_argument("--umask", type=lambda v: int(v, 8), default=0o022)
    parser.add_argument("--rlimits", help="name=value,... e.g. as=1073741824,nproc=256")
    parser.add_argument("--exit-with-parent", action="store_true")
    parser.add_argument("--cleanup", action="append", default=[], help="a directory to remove then")
    args = parser.parse_args()
    WORKSPACE = os.path.abspath(args.workspace)
    OOM_DETECT = args.oom_detect
    os.umask(args.umask)
    if args.rlimits:
        apply_rlimits(args.rlimits)
    os.makedirs(WORKSPACE, exist_ok=True)
    if args.seed:
        seed_workspace(args.seed)
    os.chdir(WORKSPACE)
    if os.getpid() != 1:
        become_subreaper()
    # PID 1 ignores signals it has no handler for; on the ones docker (or a user) sends,
    # take every process of the sandbox down too, then exit.
    def stop(*_):
        kill_everything()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    REAPER = Reaper()
    if args.exit_with_parent:
        exit_with_parent(args.cleanup)
    serve(args.socket)


if __name__ == "__main__":
    main()
