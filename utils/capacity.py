"""Request slots: a bound on API requests in progress, so a full thread pool responds 503 at once.

Waitress runs each request on one of WAITRESS_THREADS threads and holds that thread until the
response is closed, so an open stream holds one for as long as it lasts. Requests beyond the
pool would wait in waitress's queue with no time bound. Instead, every request routed to an API
blueprint takes a slot, and when none is free the relay responds 503 with ``Retry-After``. A few
threads are left outside the slots, so the service endpoints (``/health``, ``/ready``,
``/metrics``) and the 503 responses themselves are served while every slot is taken.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable

from flask import Flask, request
from werkzeug.wsgi import ClosingIterator

from utils.errors import ServiceUnavailableError
from utils.metrics import RelayMetrics

logger = logging.getLogger(__name__)

# A slot frees whenever any request in progress ends. With hundreds in progress that happens
# many times a second, so a short wait is the honest hint.
RETRY_AFTER_SECONDS = 1
MAX_RESERVED_THREADS = 16
EXEMPT_BLUEPRINTS = frozenset({"service"})
WARNING_INTERVAL_SECONDS = 60.0
ENVIRON_KEY = "relay.request_slot"

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


def slots_for_threads(threads: int) -> int:
    """Return how many API requests may be in progress with ``threads`` server threads.

    One thread in eight, at most 16, stays free for service endpoints and 503 responses.
    """
    reserved = min(MAX_RESERVED_THREADS, max(1, threads // 8))
    return max(1, threads - reserved)


class RequestSlots:
    """Count API requests in progress and reject those beyond ``limit`` with a 503."""

    def __init__(self, limit: int, metrics: RelayMetrics) -> None:
        self.limit = limit
        self._metrics = metrics
        self._in_use = 0
        self._lock = threading.Lock()
        self._rejected_since_warning = 0
        self._next_warning = 0.0
        metrics.request_slots.set(limit)

    @property
    def in_use(self) -> int:
        return self._in_use

    def init_app(self, app: Flask) -> None:
        """Take a slot before each API request; release it when the server closes the response.

        The release sits in a WSGI wrapper rather than in a Flask hook, because the server
        closes the response iterable on every path, including a client that went away.
        """
        app.before_request(self._take_slot)
        app.wsgi_app = self._releasing(app.wsgi_app)  # type: ignore[method-assign]

    def _take_slot(self) -> None:
        if request.url_rule is None or request.blueprint in EXEMPT_BLUEPRINTS or request.method == "OPTIONS":
            return
        with self._lock:
            full = self._in_use >= self.limit
            if not full:
                self._in_use += 1
                self._metrics.requests_in_progress.set(self._in_use)
        if full:
            self._reject()
        request.environ[ENVIRON_KEY] = True

    def _reject(self) -> None:
        self._metrics.rejected_requests.inc()
        self._warn_at_most_once_a_minute()
        raise ServiceUnavailableError(
            f"The relay is at capacity: all {self.limit} request slots are in use. "
            f"Retry after {RETRY_AFTER_SECONDS} s.",
            code="server_busy",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    def _warn_at_most_once_a_minute(self) -> None:
        with self._lock:
            self._rejected_since_warning += 1
            now = time.monotonic()
            if now < self._next_warning:
                return
            rejected, self._rejected_since_warning = self._rejected_since_warning, 0
            self._next_warning = now + WARNING_INTERVAL_SECONDS
        logger.warning(
            "all %d request slots in use; rejected %d request(s) with 503 since the last report. "
            "Raise WAITRESS_THREADS or add replicas if this repeats.",
            self.limit,
            rejected,
        )

    def _release(self, environ: dict) -> None:
        if environ.pop(ENVIRON_KEY, False):
            with self._lock:
                self._in_use -= 1
                self._metrics.requests_in_progress.set(self._in_use)

    def _releasing(self, wsgi_app: WSGIApp) -> WSGIApp:
        def app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
            try:
                body = wsgi_app(environ, start_response)
            except BaseException:
                self._release(environ)
                raise
            return ClosingIterator(body, lambda: self._release(environ))

        return app
