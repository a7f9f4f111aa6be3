"""Readiness: whether 1min.ai's catalog responds, and which storage backend serves requests.

Load balancers call ``GET /ready`` every few seconds on every replica, so the upstream
check is one catalog call with a short timeout whose result is reused for a few seconds,
and concurrent probes share one call.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from utils.common import OneMinClient
from utils.constants import CATALOG_FEATURES, CATALOG_PATH
from utils.errors import OpenAIError

CACHE_SECONDS = 5.0
TIMEOUT_SECONDS = 2.0
STORAGE_PROBE_KEY = "ready:probe"


class ReadinessProbe:
    """Check the upstream catalog (cached) and the storage backend."""

    def __init__(self, client: OneMinClient, storage: Any) -> None:
        self._client = client
        self._storage = storage
        # A probe never waits longer than the configured upstream timeouts allow a real call.
        self._timeout = min(TIMEOUT_SECONDS, *client.timeout)
        self.cache_seconds = CACHE_SECONDS
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._upstream_error: str | None = None

    def check(self) -> dict:
        """Return the readiness report; ``ready`` is false only when the upstream is unreachable.

        Storage on its in-memory stand-in still serves requests, so it is reported but
        does not make the replica unready.
        """
        upstream_error = self._check_upstream()
        # Any storage call lets FallbackStorage notice an outage or, when due, a recovery.
        self._storage.get(STORAGE_PROBE_KEY)
        return {
            "ready": upstream_error is None,
            "upstream": "reachable" if upstream_error is None else f"unreachable: {upstream_error}",
            "storage": self._storage.backend_name,
            "storage_degraded": bool(getattr(self._storage, "degraded", False)),
        }

    def _check_upstream(self) -> str | None:
        with self._lock:
            now = time.monotonic()
            if self._checked_at is not None and now - self._checked_at < self.cache_seconds:
                return self._upstream_error
            try:
                self._client.probe(CATALOG_PATH, {"feature": CATALOG_FEATURES[0]}, self._timeout)
                self._upstream_error = None
            except OpenAIError as error:
                self._upstream_error = error.message
            self._checked_at = time.monotonic()
            return self._upstream_error
