"""Run the fake 1min.ai and the relay as separate processes, the way an operator runs them.

Both bind 127.0.0.1 on a port the system picks (port 0) and report it: the fake prints its base
URL on stdout, and the relay writes it in its start-up log line on stderr. Used by the shutdown
tests and by ``bench/load.py``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


@dataclass
class Process:
    """A child process whose stderr lines are collected by a thread, so the pipe never fills."""

    popen: subprocess.Popen[str]
    base_url: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def log_text(self) -> str:
        return "".join(self.log)

    def terminate(self, timeout: float = 30.0) -> int:
        """Send SIGTERM and return the exit code; kill the process if it outlives ``timeout``."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
            raise


def _collect(stream, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)
    stream.close()


def _spawn(command: list[str], env: dict[str, str]) -> Process:
    popen = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process = Process(popen)
    threading.Thread(target=_collect, args=(popen.stderr, process.log), daemon=True).start()
    return process


def start_fake(*options: str) -> Process:
    """Start ``python -m tests.fake_onemin`` with ``options`` and wait for its base URL."""
    process = _spawn([sys.executable, "-m", "tests.fake_onemin", "--port", "0", *options], dict(os.environ))
    line = process.popen.stdout.readline() if process.popen.stdout else ""
    if not line.startswith("http://"):
        process.terminate()
        raise RuntimeError(f"the fake 1min.ai did not start: {line!r} {process.log_text()}")
    process.base_url = line.strip()
    return process


def start_relay(upstream_url: str, **settings: str) -> Process:
    """Start ``python app.py`` on a free port in front of ``upstream_url``, with in-memory storage.

    ``settings`` are environment variables such as ``SHUTDOWN_GRACE_SECONDS="5"``.
    """
    env = {
        **os.environ,
        "HOST": LOOPBACK,
        "PORT": "0",
        "ONE_MIN_API_URL": upstream_url,
        "ONE_MIN_ASSET_URL": upstream_url + "/cdn",
        "MEMCACHED_HOST": "",
        **settings,
    }
    process = _spawn([sys.executable, "app.py"], env)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        match = LISTENING.search(process.log_text())
        if match:
            process.base_url = f"http://{LOOPBACK}:{match.group(1)}"
            return process
        if process.popen.poll() is not None:
            break
        time.sleep(0.02)
    process.terminate()
    raise RuntimeError(f"the relay did not start: {process.log_text()}")
