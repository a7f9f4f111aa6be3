"""Start the fake 1min.ai and the relay as subprocesses on loopback, and read their resource use."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """A running subprocess that serves HTTP on ``LOOPBACK:port``."""

    name: str
    process: subprocess.Popen
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """Return the user plus system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of proc(5) stat, and this split starts at field 3.
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def memory_kib(self, field_name: str) -> int:
        """Return a /proc/PID/status memory field such as VmHWM (peak RSS) or VmRSS, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"{field_name} missing from /proc/{self.pid}/status")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_fake(chunk_delay: float, chunk_size: int, reply_chars: int) -> Server:
    """Start ``python -m tests.fake_onemin`` on a free port and wait for its URL line."""
    command = [sys.executable, "-m", "tests.fake_onemin", "--host", LOOPBACK, "--port", "0",
               "--chunk-delay", str(chunk_delay), "--chunk-size", str(chunk_size),
               "--reply-chars", str(reply_chars)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith(f"http://{LOOPBACK}:"):
        process.kill()
        raise RuntimeError(f"the fake 1min.ai did not start; it printed {line!r}")
    return Server("fake", process, int(line.rsplit(":", 1)[1]))


def start_relay(fake: Server, threads: int, extra_env: dict[str, str] | None = None) -> Server:
    """Start ``python app.py`` against the fake and wait until ``GET /health`` returns 200."""
    port = free_port()
    fake_url = f"http://{LOOPBACK}:{fake.port}"
    env = {
        **os.environ,
        "HOST": LOOPBACK,
        "PORT": str(port),
        "ONE_MIN_API_URL": fake_url,
        "ONE_MIN_ASSET_URL": fake_url + "/cdn",
        "RATE_LIMIT": "off",
        "LOG_LEVEL": "WARNING",
        "WAITRESS_THREADS": str(threads),
        "MEMCACHED_HOST": "",
        **(extra_env or {}),
    }
    process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env)
    server = Server("relay", process, port)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the relay exited at start-up with status {process.returncode}")
        if _health_ok(port):
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"the relay did not respond to /health within {START_TIMEOUT:.0f} s")


def _health_ok(port: int) -> bool:
    # http.client ignores proxy variables, so this request cannot leave loopback.
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=1)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class ServerGroup:
    """Stop every added server, last started first, when the ``with`` block ends."""

    def __init__(self) -> None:
        self._servers: list[Server] = []

    def add(self, server: Server) -> Server:
        self._servers.append(server)
        return server

    def __enter__(self) -> "ServerGroup":
        return self

    def __exit__(self, *exc_info: object) -> None:
        for server in reversed(self._servers):
            server.stop()
