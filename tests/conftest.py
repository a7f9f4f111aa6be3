"""Shared fixtures: the fake 1min.ai, a memcached server, and the relay served by waitress.

Every server binds to 127.0.0.1 on an ephemeral port, so several test runs can share the machine.
Importing this module imports neither the application nor the fake: each fixture imports what it
needs when it first runs.

Fixture overview (see each docstring):

* ``fake_onemin`` (session): the fake 1min.ai, reset before every test that uses it.
* ``memcached_server`` (session): ``(host, port)`` of a private memcached process.
* ``relay_factory``: ``start(**settings) -> Relay``, any number of relays per test.
* ``relay`` / ``relay_memcached`` / ``any_relay``: a started relay with in-memory storage, with
  memcached storage, or once with each.
* ``openai_client``: an ``openai.OpenAI`` client pointed at ``relay``.

Every log record of the session is also checked for the fake's API keys. A key found in one
fails the run at its end, which names the test and the line that logged it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import openai
    from flask import Flask
    from waitress.server import BaseWSGIServer

    from tests.fake_onemin import FakeOneMin

LOOPBACK = "127.0.0.1"
TEST_API_KEY = "test-key-1"

MEMCACHED_MISSING = (
    "memcached binary not installed; install it (apt-get install memcached) to run memcached tests"
)
MEMCACHED_START_ATTEMPTS = 3
MEMCACHED_START_TIMEOUT = 10.0
SERVER_STOP_TIMEOUT = 10.0


# --- API keys in logs ---------------------------------------------------------------------------


class _KeyScanHandler(logging.Handler):
    """Check each log record, formatted with its traceback, for any of ``keys``."""

    def __init__(self, keys: frozenset[str]) -> None:
        super().__init__()
        self.keys = keys
        self.checked = 0
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        self.checked += 1
        if any(key in text for key in self.keys):
            self.leaks.append(f"{os.environ.get('PYTEST_CURRENT_TEST', '?')}: {text[:500]}")


_key_scan = pytest.StashKey[_KeyScanHandler]()


def pytest_configure(config: pytest.Config) -> None:
    from tests.fake_onemin.server import DEFAULT_KEYS

    handler = _KeyScanHandler(DEFAULT_KEYS | {TEST_API_KEY})
    logging.getLogger().addHandler(handler)
    config.stash[_key_scan] = handler


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    handler = session.config.stash[_key_scan]
    logging.getLogger().removeHandler(handler)
    if not handler.leaks:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", f"API keys in {len(handler.leaks)} of {handler.checked} log records", red=True)
        for leak in handler.leaks:
            reporter.write_line(leak)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- fake 1min.ai ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_onemin() -> Iterator[FakeOneMin]:
    """Start the fake 1min.ai once per session on an ephemeral loopback port.

    Yields the ``FakeOneMin`` instance: ``.base_url`` (API root), ``.asset_url`` (asset host
    root), ``.keys`` (API keys it accepts, by default ``{"test-key-1", "test-key-2"}``) and
    ``.reset()``. Its state is reset before every test that uses it, directly or through
    ``relay``, so a test may change its behaviour freely.
    """
    from tests.fake_onemin import FakeOneMin

    fake = FakeOneMin(host=LOOPBACK, port=0)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(autouse=True)
def _reset_fake_onemin(request: pytest.FixtureRequest) -> None:
    """Reset the fake 1min.ai before each test that uses it, and only then.

    Tests that never touch the fake do not start it.
    """
    if "fake_onemin" in request.fixturenames:
        request.getfixturevalue("fake_onemin").reset()


# --- memcached ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _memcached_command(memcached_path: str, port: int) -> list[str]:
    command = [memcached_path, "-l", LOOPBACK, "-p", str(port), "-m", "64", "-U", "0"]
    # Run as root, memcached exits at start-up unless -u names the user to run as.
    if os.geteuid() == 0:
        command += ["-u", "root"]
    return command


def _send_memcached_command(host: str, port: int, command: bytes, timeout: float = 2.0) -> bytes:
    """Send one text-protocol command and return the first reply line."""
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(command)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = connection.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply


def _wait_for_memcached(process: subprocess.Popen[bytes], port: int) -> bool:
    """Wait until memcached replies to ``version`` on ``port``. Return False if it exited first."""
    deadline = time.monotonic() + MEMCACHED_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if _send_memcached_command(LOOPBACK, port, b"version\r\n").startswith(b"VERSION "):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(
        f"memcached on {LOOPBACK}:{port} timed out: "
        f"no reply to 'version' within {MEMCACHED_START_TIMEOUT} s"
    )


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[tuple[str, int]]:
    """Start a private memcached (64 MB, TCP only) on an ephemeral loopback port.

    Yields ``(host, port)`` and terminates the process at the end of the session. Skips the
    requesting test when the ``memcached`` binary is not on PATH.
    """
    memcached_path = shutil.which("memcached")
    if memcached_path is None:
        pytest.skip(MEMCACHED_MISSING)

    # The free port is found by binding and releasing it, so another process can take it before
    # memcached binds. memcached then exits, and a new port is tried.
    stderr_output = b""
    for _ in range(MEMCACHED_START_ATTEMPTS):
        port = _free_port()
        process = subprocess.Popen(
            _memcached_command(memcached_path, port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            started = _wait_for_memcached(process, port)
        except BaseException:
            _stop_process(process)
            raise
        if started:
            break
        stderr_output = process.stderr.read() if process.stderr else b""
    else:
        raise RuntimeError(
            f"memcached failed to start after {MEMCACHED_START_ATTEMPTS} attempts: "
            f"{stderr_output.decode(errors='replace').strip()}"
        )

    try:
        yield LOOPBACK, port
    finally:
        _stop_process(process)
        if process.stderr:
            process.stderr.close()


def flush_memcached(host: str, port: int) -> None:
    """Delete every item in the memcached at ``host:port``."""
    reply = _send_memcached_command(host, port, b"flush_all\r\n")
    if reply != b"OK\r\n":
        raise RuntimeError(f"memcached flush_all on {host}:{port} failed: {reply!r}")


# --- relay -------------------------------------------------------------------------------------


@dataclass
class Relay:
    """A relay application served by waitress on a loopback port."""

    app: Flask
    base_url: str
    settings: dict[str, Any]
    server: BaseWSGIServer = field(repr=False)
    thread: threading.Thread = field(repr=False)

    @property
    def port(self) -> int:
        return self.server.effective_port

    def url(self, path: str) -> str:
        """Return the absolute URL of ``path`` (for example ``"/v1/models"``) on this relay."""
        return self.base_url + "/" + path.lstrip("/")

    def openai_client(self, api_key: str = TEST_API_KEY, **options: Any) -> openai.OpenAI:
        """Create an ``openai.OpenAI`` client for this relay; ``options`` override the defaults.

        The caller closes the client. Retries are off by default so a failure shows at once.
        """
        import openai

        options = {"max_retries": 0, "timeout": 30, **options}
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=api_key, **options)

    def stop(self) -> None:
        """Close every connection and the listening socket, then stop the worker threads."""
        import waitress.wasyncore

        if not self.thread.is_alive():
            return

        server = self.server

        def close_sockets() -> None:
            # Runs on the server thread, so no socket is closed under a running poll(). Channels get
            # handle_close() so that worker threads blocked on a send see the client disconnect.
            for dispatcher in list(server._map.values()):
                if dispatcher is not server and dispatcher is not server.trigger:
                    dispatcher.handle_close()
            waitress.wasyncore.dispatcher.close(server)
            # The loop may run this before pull_trigger() below has written its wake-up byte, so
            # the trigger's pipe stays open until the loop has ended. Removing the trigger from the
            # socket map ends the loop.
            server.trigger.del_channel()

        server.trigger.pull_trigger(close_sockets)
        self.thread.join(SERVER_STOP_TIMEOUT)
        server.task_dispatcher.shutdown(timeout=SERVER_STOP_TIMEOUT)
        if self.thread.is_alive():
            raise RuntimeError(f"relay server thread on port {self.port} did not stop")
        server.trigger.close()


def _serve(app: Flask, settings: dict[str, Any]) -> Relay:
    from utils.server import create_server

    # The production server set-up, with fewer threads unless the test sets WAITRESS_THREADS.
    threads = int(settings.get("WAITRESS_THREADS", 16))
    server = create_server(app, host=LOOPBACK, port=0, threads=threads)
    thread = threading.Thread(
        target=server.run, name=f"relay-{server.effective_port}", daemon=True
    )
    thread.start()
    base_url = f"http://{LOOPBACK}:{server.effective_port}"
    return Relay(app=app, base_url=base_url, settings=settings, server=server, thread=thread)


@pytest.fixture
def relay_factory(fake_onemin: FakeOneMin) -> Iterator[Callable[..., Relay]]:
    """Return ``start(**settings) -> Relay``, which builds and serves a relay.

    ``settings`` are keyword arguments named after the relay's environment variables
    (``RATE_LIMIT="2 per minute"``, ``LOG_LEVEL="DEBUG"``, ...), with strings or native values.
    ``ONE_MIN_API_URL`` and ``ONE_MIN_ASSET_URL`` default to the fake 1min.ai. The app comes from
    ``app.create_app(settings)`` and is served by waitress (16 threads, or ``WAITRESS_THREADS``
    when given) on an ephemeral loopback port. The ``Relay`` has ``.base_url``
    (``http://127.0.0.1:PORT``), ``.app``, ``.url(path)``, ``.openai_client()`` and ``.settings``.
    Every relay started here stops at teardown.
    """
    from app import create_app

    relays: list[Relay] = []

    def start(**settings: Any) -> Relay:
        config = {
            "ONE_MIN_API_URL": fake_onemin.base_url,
            "ONE_MIN_ASSET_URL": fake_onemin.asset_url,
            **settings,
        }
        relay = _serve(create_app(config), config)
        relays.append(relay)
        return relay

    try:
        yield start
    finally:
        for relay in relays:
            relay.stop()


def _start_memory_relay(start: Callable[..., Relay]) -> Relay:
    # An explicit empty host wins over a MEMCACHED_HOST exported by the shell running the tests.
    return start(MEMCACHED_HOST="")


def _start_memcached_relay(start: Callable[..., Relay], memcached: tuple[str, int]) -> Relay:
    host, port = memcached
    flush_memcached(host, port)
    return start(MEMCACHED_HOST=host, MEMCACHED_PORT=port)


@pytest.fixture
def relay(relay_factory: Callable[..., Relay]) -> Relay:
    """Serve a relay with in-memory storage (``MEMCACHED_HOST=""``) in front of the fake 1min.ai."""
    return _start_memory_relay(relay_factory)


@pytest.fixture
def relay_memcached(
    relay_factory: Callable[..., Relay], memcached_server: tuple[str, int]
) -> Relay:
    """Serve a relay that stores its state in the session's memcached, flushed first.

    Skips when memcached is not installed.
    """
    return _start_memcached_relay(relay_factory, memcached_server)


@pytest.fixture(params=["memory", "memcached"])
def any_relay(request: pytest.FixtureRequest, relay_factory: Callable[..., Relay]) -> Relay:
    """Serve a relay once with in-memory storage and once with memcached storage.

    A test that uses it runs twice, with ids ``[memory]`` and ``[memcached]``. The memcached run
    skips when memcached is not installed.
    """
    if request.param == "memory":
        return _start_memory_relay(relay_factory)
    return _start_memcached_relay(relay_factory, request.getfixturevalue("memcached_server"))


@pytest.fixture
def openai_client(relay: Relay) -> Iterator[openai.OpenAI]:
    """Return an ``openai.OpenAI`` client for ``relay`` with API key ``test-key-1``.

    Its base URL is ``relay.base_url + "/v1"``, with no retries and a 30 s timeout. For
    ``any_relay``, call ``any_relay.openai_client()`` instead.
    """
    client = relay.openai_client()
    try:
        yield client
    finally:
        client.close()
