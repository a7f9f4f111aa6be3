"""Serving with waitress, and a graceful shutdown on SIGTERM or SIGINT.

On the signal the relay closes its listening socket, so new connections are refused and a
load balancer moves on to another replica. Requests in progress, streams included, run to
the end for up to SHUTDOWN_GRACE_SECONDS; idle keep-alive connections are closed as soon as
they have nothing in flight. Whatever is still open when the grace period ends is cut, and the
process exits 0 either way, because stopping on request is not a failure.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from typing import Any, Callable

import waitress
from flask import Flask
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer
from waitress.task import ErrorTask

from utils.config import ConfigError, Settings

logger = logging.getLogger(__name__)

DRAIN_POLL_SECONDS = 0.1
LOOP_CALL_TIMEOUT = 5.0
WORKER_STOP_TIMEOUT = 2.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class OpenAIErrorTask(ErrorTask):
    """Error task that renders the requests waitress rejects itself (bad request line or headers,
    too large) as an OpenAI error object instead of waitress's plain-text page."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps(
            {
                "error": {
                    "message": f"{error.reason}: {error.body}",
                    "type": "invalid_request_error" if error.code < 500 else "server_error",
                    "param": None,
                    "code": None,
                }
            }
        ).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class RelayChannel(HTTPChannel):
    error_task_class = OpenAIErrorTask


def create_server(
    app: Flask, host: str | None = None, port: int | None = None, threads: int | None = None
) -> BaseWSGIServer:
    """Create (but do not run) the waitress server for ``app``, sized by the app's settings.

    ``host``, ``port`` and ``threads`` override HOST, PORT and WAITRESS_THREADS; port 0 picks
    a free port.
    """
    settings: Settings = app.extensions["relay"].settings
    server = waitress.create_server(
        app,
        host=settings.host if host is None else host,
        port=settings.port if port is None else port,
        threads=settings.waitress_threads if threads is None else threads,
        connection_limit=settings.waitress_connection_limit,
        asyncore_use_poll=True,
        # With one request read ahead, waitress notices a client that closed its
        # connection while its stream is still being written.
        channel_request_lookahead=1,
        max_request_body_size=max(settings.max_request_bytes, settings.max_file_bytes) + 1024 * 1024,
        ident="1min-relay",
    )
    if isinstance(server, MultiSocketServer):
        server.close()
        raise ConfigError(
            f"HOST={settings.host!r} resolves to several addresses; set one IP address such as 0.0.0.0 or ::"
        )
    server.channel_class = RelayChannel
    return server


def serve_until_stopped(app: Flask) -> int:
    """Serve ``app`` until SIGTERM or SIGINT, then shut down gracefully; return the exit code."""
    settings: Settings = app.extensions["relay"].settings
    try:
        server = create_server(app)
    except OSError as error:
        print(
            f"1min-relay: cannot listen on {settings.host}:{settings.port}: {error.strerror or error}. "
            "Choose another PORT or HOST.",
            file=sys.stderr,
        )
        return 2

    def announce() -> None:
        logger.info(
            "1min-relay listening on http://%s:%s (threads=%s, request slots=%s, upstream=%s, storage=%s)",
            server.effective_host,
            server.effective_port,
            settings.waitress_threads,
            app.extensions["relay_slots"].limit,
            settings.one_min_api_url,
            app.extensions["relay"].storage.backend_name,
        )

    return GracefulServer(server, settings.shutdown_grace_seconds).run(announce)


class GracefulServer:
    """Run a waitress server in a thread and drain it when a stop signal arrives."""

    def __init__(self, server: BaseWSGIServer, grace_seconds: float) -> None:
        self._server = server
        self._grace_seconds = grace_seconds
        self._stop = threading.Event()
        self._signal_name = ""
        self._loop = threading.Thread(target=server.run, name="waitress-loop", daemon=True)

    def run(self, announce: Callable[[], None]) -> int:
        """Serve until a stop signal, then drain. Must run in the main thread.

        ``announce`` runs once the signal handlers are in place, so a signal sent as soon as
        the start-up line appears is handled. Signals that arrive during the drain are
        ignored, because the grace period already bounds it.
        """
        previous = {number: signal.signal(number, self._on_signal) for number in STOP_SIGNALS}
        try:
            self._loop.start()
            announce()
            while not self._stop.wait(1.0):
                if not self._loop.is_alive():
                    logger.error("the server loop ended unexpectedly")
                    return 1
            logger.info("%s received; shutting down", self._signal_name)
            self.drain()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        return 0

    def _on_signal(self, number: int, frame: Any) -> None:
        # Only record it: logging from inside a signal handler could interleave with a line being written.
        if not self._stop.is_set():
            self._signal_name = signal.Signals(number).name
            self._stop.set()

    def drain(self) -> None:
        """Stop accepting, wait up to the grace period for open requests, then close everything."""
        deadline = time.monotonic() + self._grace_seconds
        busy = self._in_loop(self._stop_accepting)
        logger.info(
            "no longer accepting connections; waiting up to %.0f s for %d connection(s) with requests in progress",
            self._grace_seconds,
            busy,
        )
        while busy and time.monotonic() < deadline:
            time.sleep(DRAIN_POLL_SECONDS)
            busy = self._in_loop(self._close_idle_channels)
        if busy:
            logger.warning(
                "grace period of %.0f s (SHUTDOWN_GRACE_SECONDS) ended with %d connection(s) still busy; closing them",
                self._grace_seconds,
                busy,
            )
        self._in_loop(self._close_all)
        self._loop.join(LOOP_CALL_TIMEOUT)
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=WORKER_STOP_TIMEOUT)
        self._server.trigger.close()
        logger.info("shutdown complete")

    def _in_loop(self, function: Callable[[], int]) -> int:
        """Run ``function`` on the server loop's thread, where sockets may be closed safely."""
        done = threading.Event()
        result: list[int] = []

        def call() -> None:
            try:
                result.append(function())
            finally:
                done.set()

        self._server.trigger.pull_trigger(call)
        if not done.wait(LOOP_CALL_TIMEOUT) or not result:
            raise RuntimeError("the server loop did not run the shutdown step in time")
        return result[0]

    def _channels(self) -> list[HTTPChannel]:
        return [item for item in list(self._server._map.values()) if isinstance(item, HTTPChannel)]

    def _stop_accepting(self) -> int:
        # The dispatcher's own close() closes only the listening socket; the server's
        # close() would also close the trigger that the drain still needs.
        wasyncore.dispatcher.close(self._server)
        return self._close_idle_channels()

    def _close_idle_channels(self) -> int:
        """Close connections with nothing in flight; return how many are still busy."""
        busy = 0
        for channel in self._channels():
            if channel.requests or channel.request is not None or channel.total_outbufs_len:
                busy += 1
            else:
                channel.handle_close()
        return busy

    def _close_all(self) -> int:
        for channel in self._channels():
            channel.handle_close()
        # An empty socket map ends the server loop. The trigger's pipe stays open until then,
        # because the loop can run this before pull_trigger() has written its wake-up byte.
        self._server.trigger.del_channel()
        return 0
