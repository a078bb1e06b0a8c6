"""Running the ``traject serve`` app: in the foreground (the CLI) or in a background thread.

>>> with ServerThread(ServeEngine.load(path)) as server:      # doctest: +SKIP
...     policy = CompletionsPolicy(base_url=server.base_url + "/v1", tokenizer=path)
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

from traject.serve.app import build_app
from traject.serve.engine import ServeEngine

DEFAULT_HOST = "127.0.0.1"


def _uvicorn_config(engine: ServeEngine, host: str, port: int, log_level: str) -> Any:
    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError("traject serve needs uvicorn and starlette: pip install 'traject[serve]'") from exc
    return uvicorn.Config(build_app(engine), host=host, port=port, log_level=log_level, access_log=False,
                          lifespan="off")


def serve(model_path: str | Path, *, host: str = DEFAULT_HOST, port: int = 8000, model_name: str | None = None,
          log_level: str = "info", **policy_config: Any) -> None:
    """Serve the model at ``model_path`` until interrupted. ``policy_config``: HFPolicyConfig
    fields (tool_format, max_batch_size, device, dtype, max_model_len, ...)."""
    import uvicorn

    engine = ServeEngine.load(model_path, model_name=model_name, **policy_config)
    uvicorn.Server(_uvicorn_config(engine, host, port, log_level)).run()


class ServerThread:
    """The server on a free port of ``host`` in a daemon thread; ``base_url`` is its root."""

    def __init__(self, engine: ServeEngine, *, host: str = DEFAULT_HOST, port: int = 0,
                 log_level: str = "warning") -> None:
        import uvicorn

        self.engine = engine
        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.host, self.port = host, port
        self.server = uvicorn.Server(_uvicorn_config(engine, host, port, log_level))
        self.thread = threading.Thread(target=self.server.run, name="traject-serve", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> ServerThread:
        import time

        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"traject serve did not start on {self.base_url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
