"""Storage backends: memory, memcached, and the fallback between them."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time

import pytest

from utils.memcached import FallbackStorage, MemcachedStorage, MemoryStorage, create_storage


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_memcached(port: int) -> subprocess.Popen:
    binary = shutil.which("memcached")
    if binary is None:
        pytest.skip("memcached binary not installed; install it (apt-get install memcached) to run memcached tests")
    process = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port), "-m", "16", "-U", "0", "-u", "root"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("memcached did not start")


def test_memory_expiry():
    storage = MemoryStorage()
    storage.set("short", {"a": 1}, ttl=1)
    storage.set("long", [1, 2], ttl=60)

    assert storage.get("short") == {"a": 1}
    time.sleep(1.1)
    assert storage.get("short") is None
    assert storage.get("long") == [1, 2]


def test_memory_evicts_least_recently_used():
    storage = MemoryStorage(max_items=10)
    for index in range(10):
        storage.set(f"k{index}", index, ttl=60)
    storage.get("k0")

    storage.set("k10", 10, ttl=60)

    assert storage.get("k0") == 0
    assert storage.get("k1") is None
    assert storage.get("k10") == 10


def test_memory_add_only_when_absent():
    storage = MemoryStorage()

    assert storage.add("k", 1, ttl=60) is True
    assert storage.add("k", 2, ttl=60) is False
    assert storage.get("k") == 1


@pytest.mark.parametrize("backend", ["memory", "memcached"])
def test_update_is_atomic_under_threads(backend, request):
    if backend == "memory":
        storage = MemoryStorage()
    else:
        host, port = request.getfixturevalue("memcached_server")
        storage = MemcachedStorage(host, port, pool_size=8)
    key = f"counter-{backend}-{time.monotonic_ns()}"

    def bump() -> None:
        for _ in range(25):
            storage.update(key, lambda value: (value or 0) + 1, ttl=60)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert storage.get(key) == 200


def test_memcached_long_and_spaced_keys(memcached_server):
    host, port = memcached_server
    storage = MemcachedStorage(host, port, pool_size=2)

    storage.set("a key with spaces " + "x" * 300, {"ok": True}, ttl=60)

    assert storage.get("a key with spaces " + "x" * 300) == {"ok": True}


def test_fallback_switches_to_memory_and_back(caplog):
    caplog.set_level(logging.INFO, logger="utils.memcached")
    port = _free_port()
    process = _start_memcached(port)
    try:
        storage = create_storage("127.0.0.1", port, pool_size=4, max_memory_items=100)
        assert isinstance(storage, FallbackStorage)
        storage._retry_seconds = 0.2
        storage.set("k", "from memcached", ttl=60)
        assert storage.backend_name == "memcached"

        process.terminate()
        process.wait(5)
        storage.set("k", "from memory", ttl=60)
        storage.set("k2", "also memory", ttl=60)
        assert storage.backend_name == "memory (memcached unreachable)"
        assert storage.get("k") == "from memory"

        process = _start_memcached(port)
        time.sleep(0.3)
        assert storage.get("k") is None
        assert storage.backend_name == "memcached"
    finally:
        process.kill()
        process.wait(5)

    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    recoveries = [record for record in caplog.records if "reachable again" in record.getMessage()]
    assert len(warnings) == 1
    assert len(recoveries) == 1


def test_unreachable_memcached_at_start_serves_memory():
    storage = create_storage("127.0.0.1", _free_port(), pool_size=2, max_memory_items=100)

    storage.set("k", 1, ttl=60)

    assert storage.get("k") == 1
    assert storage.backend_name == "memory (memcached unreachable)"
