"""`antiphon serve` in a child process on 127.0.0.1, for the evaluations, benchmarks and tests that drive
a real server."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    """Starts `antiphon serve SERVE_ARGS --port P`, waits until /healthz answers, stops on `stop()`.

    Output goes to `log` (or is discarded); `tls` is the client context for a server given a
    certificate; `program` replaces `-m antiphon.server serve` for a script that serves the app its own
    way (a benchmark's stand-in engine) and takes `--port` too."""

    def __init__(self, serve_args: list[str], log: Path | None = None, tls: ssl.SSLContext | None = None,
                 ready_seconds: float = 300.0,
                 program: tuple[str, ...] = ("-m", "antiphon.server", "serve")) -> None:
        self.port = free_port()
        self.tls = tls
        self.base = f"{'wss' if tls else 'ws'}://127.0.0.1:{self.port}"
        self.http = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "w") if log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, *program, *serve_args, "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self._wait_ready(ready_seconds)

    def _wait_ready(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.process.returncode}{self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.http}/healthz", timeout=1, context=self.tls) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not become healthy within {seconds:g} s{self._log_tail()}")

    def _log_tail(self) -> str:
        return f":\n{self.log_path.read_text()[-4000:]}" if self.log_path else ""

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.http}{path}", timeout=5, context=self.tls) as response:
            return response.read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if self.log_path:
            self._log.close()
