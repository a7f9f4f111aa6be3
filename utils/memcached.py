"""Key-value storage shared by the routes: memcached when configured, else memory.

Values are JSON-serialisable objects. Every backend offers the same narrow interface
(`get`, `set`, `add`, `delete`, `update`), so route code does not depend on which one runs.
When memcached is configured but unreachable, `FallbackStorage` serves from memory,
warns once, and switches back (with an INFO line) as soon as memcached responds again.
Data written to memory during an outage is not copied to memcached afterwards.
Both backends refuse a value above memcached's item size (`ValueTooLargeError`), so code
that works on memory storage also works on memcached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections import OrderedDict
from types import ModuleType
from typing import Any, Callable, Protocol

from pymemcache.client.base import PooledClient
from pymemcache.client.retrying import RetryingClient
from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError

logger = logging.getLogger(__name__)

KEY_PREFIX = "1minrelay:"
MAX_MEMCACHED_KEY_LENGTH = 250
UPDATE_ATTEMPTS = 20
MAX_UPDATE_BACKOFF_SECONDS = 0.05
# memcached rejects items above its -I limit (1 MiB by default), and the limit counts the key and
# an item header too. Values stay below it with room to spare.
MAX_VALUE_BYTES = 1_000_000
# Errors of a pooled connection opened before memcached restarted. The failed connection is
# dropped, so one more attempt runs on a new connection.
STALE_CONNECTION_ERRORS = (MemcacheUnexpectedCloseError, BrokenPipeError, ConnectionResetError)


class ValueTooLargeError(ValueError):
    """A value is larger than memcached stores in one item."""


def encode_value(key: str, value: Any) -> str:
    """Serialise ``value`` as ASCII JSON, or raise `ValueTooLargeError` above MAX_VALUE_BYTES."""
    encoded = json.dumps(value)
    if len(encoded) > MAX_VALUE_BYTES:
        raise ValueTooLargeError(
            f"the value for storage key {key!r} is {len(encoded)} bytes of JSON; "
            f"memcached stores at most {MAX_VALUE_BYTES} bytes per item"
        )
    return encoded


class Storage(Protocol):
    backend_name: str

    def get(self, key: str) -> Any | None: ...

    def set(self, key: str, value: Any, ttl: int) -> None: ...

    def add(self, key: str, value: Any, ttl: int) -> bool: ...

    def delete(self, key: str) -> None: ...

    def update(self, key: str, change: Callable[[Any | None], Any], ttl: int) -> Any: ...


def retrying_client(client: Any) -> RetryingClient:
    """Wrap a pymemcache client so a call on a stale connection is tried once more."""
    return RetryingClient(client, attempts=2, retry_for=STALE_CONNECTION_ERRORS)


def limiter_memcached_client(module: ModuleType, hosts: list, **options: Any) -> RetryingClient:
    """Build the memcached client of the rate limiter's storage (its ``client_getter`` option).

    Without the retry, every server thread's first call after a memcached restart fails, and
    the limiter warns and falls back to memory once per thread.
    """
    return retrying_client(module.PooledClient(*hosts, **options))


def hash_secret(secret: str) -> str:
    """Return a stable, non-reversible id for a secret such as an API key, for use in keys."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:32]


class MemoryStorage:
    """Thread-safe in-process store with per-item expiry and a bound on the item count.

    When full, the least recently used item is evicted, as memcached does.
    """

    backend_name = "memory"

    def __init__(self, max_items: int = 10000) -> None:
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_items = max_items

    def _live_value(self, key: str, now: float) -> str | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        expires_at, encoded = entry
        if expires_at <= now:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return encoded

    def _store(self, key: str, value: Any, ttl: int) -> None:
        self._items[key] = (time.monotonic() + ttl, encode_value(key, value))
        self._items.move_to_end(key)
        while len(self._items) > self._max_items:
            self._items.popitem(last=False)

    def get(self, key: str) -> Any | None:
        with self._lock:
            encoded = self._live_value(key, time.monotonic())
        return None if encoded is None else json.loads(encoded)

    def set(self, key: str, value: Any, ttl: int) -> None:
        with self._lock:
            self._store(key, value, ttl)

    def add(self, key: str, value: Any, ttl: int) -> bool:
        with self._lock:
            if self._live_value(key, time.monotonic()) is not None:
                return False
            self._store(key, value, ttl)
            return True

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def update(self, key: str, change: Callable[[Any | None], Any], ttl: int) -> Any:
        with self._lock:
            encoded = self._live_value(key, time.monotonic())
            new_value = change(None if encoded is None else json.loads(encoded))
            self._store(key, new_value, ttl)
            return new_value


class MemcachedStorage:
    """Storage on memcached through a pymemcache connection pool.

    Errors propagate (``MemcacheError`` or ``OSError``); `FallbackStorage` handles them.
    """

    backend_name = "memcached"

    def __init__(self, host: str, port: int, pool_size: int, timeout: float = 1.0) -> None:
        self._client = retrying_client(
            PooledClient(
                (host, port),
                connect_timeout=timeout,
                timeout=timeout,
                no_delay=True,
                max_pool_size=pool_size,
            )
        )

    @staticmethod
    def _key(key: str) -> str:
        full = KEY_PREFIX + key
        if len(full) > MAX_MEMCACHED_KEY_LENGTH or any(ch.isspace() for ch in full):
            full = KEY_PREFIX + "h:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
        return full

    def get(self, key: str) -> Any | None:
        raw = self._client.get(self._key(key))
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, ttl: int) -> None:
        self._client.set(self._key(key), encode_value(key, value).encode(), expire=ttl, noreply=False)

    def add(self, key: str, value: Any, ttl: int) -> bool:
        return bool(
            self._client.add(self._key(key), encode_value(key, value).encode(), expire=ttl, noreply=False)
        )

    def delete(self, key: str) -> None:
        self._client.delete(self._key(key), noreply=False)

    def update(self, key: str, change: Callable[[Any | None], Any], ttl: int) -> Any:
        """Apply ``change`` atomically with gets/cas, retrying when another writer won.

        Between attempts it waits a random, growing pause, so writers that keep colliding
        on one key spread out instead of losing every round together.
        """
        full_key = self._key(key)
        for attempt in range(UPDATE_ATTEMPTS):
            if attempt:
                # Exponential random back-off spreads out writers that keep colliding on a hot key.
                time.sleep(random.uniform(0, min(MAX_UPDATE_BACKOFF_SECONDS, 0.001 * 2**attempt)))
            raw, cas_token = self._client.gets(full_key)
            new_value = change(None if raw is None else json.loads(raw))
            encoded = encode_value(key, new_value).encode()
            if raw is None:
                if self._client.add(full_key, encoded, expire=ttl, noreply=False):
                    return new_value
            elif self._client.cas(full_key, encoded, cas_token, expire=ttl, noreply=False):
                return new_value
        raise MemcacheError(f"update of {key!r} lost {UPDATE_ATTEMPTS} races in a row")

    def ping(self) -> None:
        self._client.version()

    def close(self) -> None:
        self._client.close()


class FallbackStorage:
    """Memcached with an in-memory stand-in while memcached is unreachable."""

    def __init__(self, primary: MemcachedStorage, fallback: MemoryStorage, retry_seconds: float = 5.0) -> None:
        self._primary = primary
        self._fallback = fallback
        self._retry_seconds = retry_seconds
        self._degraded_since: float | None = None
        self._next_probe = 0.0
        self._lock = threading.Lock()

    @property
    def backend_name(self) -> str:
        return "memory (memcached unreachable)" if self._degraded_since is not None else "memcached"

    @property
    def degraded(self) -> bool:
        return self._degraded_since is not None

    def _use_primary(self) -> bool:
        if self._degraded_since is None:
            return True
        now = time.monotonic()
        if now < self._next_probe:
            return False
        with self._lock:
            if self._degraded_since is None or now < self._next_probe:
                return self._degraded_since is None
            self._next_probe = now + self._retry_seconds
        # Pooled connections lead to the memcached process that went away; open new ones.
        self._primary.close()
        try:
            self._primary.ping()
        except (MemcacheError, OSError):
            return False
        with self._lock:
            if self._degraded_since is not None:
                outage = time.monotonic() - self._degraded_since
                self._degraded_since = None
                logger.info("memcached is reachable again after %.1f s; storage is back on memcached", outage)
        return True

    def _mark_down(self, error: Exception) -> None:
        with self._lock:
            if self._degraded_since is None:
                self._degraded_since = time.monotonic()
                self._next_probe = self._degraded_since + self._retry_seconds
                logger.warning(
                    "memcached failed (%s: %s); serving storage from memory until it is back",
                    type(error).__name__,
                    error,
                )

    def check_primary(self) -> bool:
        """Ping memcached now; on failure switch to memory (warning once). Return whether it responded."""
        try:
            self._primary.ping()
        except (MemcacheError, OSError) as error:
            self._mark_down(error)
            return False
        return True

    def _call(self, method: str, *args: Any) -> Any:
        if self._use_primary():
            try:
                return getattr(self._primary, method)(*args)
            except (MemcacheError, OSError) as error:
                self._mark_down(error)
        return getattr(self._fallback, method)(*args)

    def get(self, key: str) -> Any | None:
        return self._call("get", key)

    def set(self, key: str, value: Any, ttl: int) -> None:
        self._call("set", key, value, ttl)

    def add(self, key: str, value: Any, ttl: int) -> bool:
        return self._call("add", key, value, ttl)

    def delete(self, key: str) -> None:
        self._call("delete", key)

    def update(self, key: str, change: Callable[[Any | None], Any], ttl: int) -> Any:
        return self._call("update", key, change, ttl)


def create_storage(memcached_host: str, memcached_port: int, pool_size: int, max_memory_items: int) -> Storage:
    """Return memcached-backed storage when a host is configured, else memory storage."""
    memory = MemoryStorage(max_memory_items)
    if not memcached_host:
        return memory
    storage = FallbackStorage(MemcachedStorage(memcached_host, memcached_port, pool_size), memory)
    if storage.check_primary():
        logger.info("storage: memcached at %s:%s", memcached_host, memcached_port)
    return storage
