"""The page server: a browser that drops a page mid-response is not an error."""

from __future__ import annotations

import socket
import struct
import time

from traject.environments.gui.server import PageServer


def test_dropped_connections_are_counted_not_printed(tmp_path, capfd):
    (tmp_path / "big.html").write_bytes(b"<p>" + b"x" * 20_000_000)
    server = PageServer()
    try:
        key = server.mount(tmp_path).rstrip("/").rsplit("/", 1)[1]
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
            s.sendall(f"GET /{key}/big.html HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert s.recv(64).startswith(b"HTTP/1.0 200")
            s.close()
        deadline = time.monotonic() + 30
        while server.dropped_connections < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.close()
    assert server.dropped_connections == 3
    err = capfd.readouterr().err
    assert "BrokenPipeError" not in err and "ConnectionResetError" not in err and "Traceback" not in err
