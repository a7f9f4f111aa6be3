"""Two relays sharing one memcached behave as one: shared rate limits, one catalog fetch per TTL,
and the same item size limit whichever storage backend runs."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import requests

from tests.conftest import flush_memcached
from utils.constants import CATALOG_FEATURES
from utils.memcached import MAX_VALUE_BYTES, MemoryStorage, ValueTooLargeError, create_storage

# One catalog fetch requests GET /models once per feature.
CALLS_PER_FETCH = len(CATALOG_FEATURES)


@pytest.fixture
def two_relays(relay_factory, memcached_server):
    """Start two relays on the session's memcached (flushed first); settings go to both."""
    host, port = memcached_server
    flush_memcached(host, port)

    def start(**settings: str) -> tuple:
        return tuple(relay_factory(MEMCACHED_HOST=host, MEMCACHED_PORT=str(port), **settings) for _ in range(2))

    return start


def list_models(relay, key: str = "test-key-1") -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return requests.get(relay.url("/v1/models"), headers=headers, timeout=10).status_code


def test_rate_limit_holds_across_replicas(two_relays):
    first, second = two_relays(RATE_LIMIT="4 per minute")
    key = f"shared-limit-{time.monotonic_ns()}"

    statuses = [list_models(relay, key) for relay in (first, second, first, second, first, second)]

    assert statuses == [200, 200, 200, 200, 429, 429]


def test_other_key_unaffected_by_shared_limit(two_relays):
    first, second = two_relays(RATE_LIMIT="1 per minute")

    suffix = str(time.monotonic_ns())
    limited = [list_models(first, "key-one-" + suffix) for _ in range(2)]
    other = list_models(second, "key-two-" + suffix)

    assert limited == [200, 429]
    assert other == 200


def test_catalog_fetched_once_per_ttl(two_relays, fake_onemin):
    first, second = two_relays(MODELS_CACHE_SECONDS="1", RATE_LIMIT="off")

    for relay in (first, second, first, second):
        assert list_models(relay) == 200
    after_first_round = fake_onemin.catalog_requests

    # memcached expires an item 1 to 2 s after it was stored (its clock ticks in whole seconds).
    time.sleep(2.2)
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def request_together(relay) -> None:
        barrier.wait()
        statuses.append(list_models(relay))

    threads = [threading.Thread(target=request_together, args=(relay,)) for relay in (first, second) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert after_first_round == CALLS_PER_FETCH
    assert statuses == [200] * 4
    assert fake_onemin.catalog_requests == 2 * CALLS_PER_FETCH


@pytest.mark.parametrize("backend", ["memory", "memcached"])
def test_value_over_item_size_refused(backend, request):
    if backend == "memory":
        storage = MemoryStorage()
    else:
        host, port = request.getfixturevalue("memcached_server")
        storage = create_storage(host, port, 2, 100)
    too_large = "x" * MAX_VALUE_BYTES

    with pytest.raises(ValueTooLargeError, match="at most 1000000 bytes per item"):
        storage.set("big", too_large, ttl=60)
    storage.set("fits", "x" * (MAX_VALUE_BYTES - 2), ttl=60)

    assert storage.get("big") is None
    assert len(storage.get("fits")) == MAX_VALUE_BYTES - 2
    assert storage.backend_name == backend


def test_oversized_value_keeps_memcached_in_use(memcached_server, caplog):
    host, port = memcached_server
    storage = create_storage(host, port, 2, 100)

    with pytest.raises(ValueTooLargeError):
        storage.update("big-list", lambda value: ["x" * 1000] * 2000, ttl=60)

    assert not storage.degraded
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_file_shared_across_replicas(two_relays):
    first, second = two_relays(RATE_LIMIT="off")
    uploader = first.openai_client()
    reader = second.openai_client()

    created = uploader.files.create(file=("notes.txt", b"shared between replicas"), purpose="assistants")

    listed = [item.id for item in reader.files.list()]
    content = reader.files.content(created.id).read()
    deleted = reader.files.delete(created.id)

    assert created.id in listed
    assert content == b"shared between replicas"
    assert deleted.deleted is True
    assert created.id not in [item.id for item in uploader.files.list()]
    uploader.close()
    reader.close()


def test_stored_response_shared_across_replicas(two_relays, fake_onemin):
    first, second = two_relays(RATE_LIMIT="off")
    fake_onemin.script("first answer", "second answer")
    writer = first.openai_client()
    chainer = second.openai_client()

    original = writer.responses.create(model="gpt-4o-mini", input="Remember the word apple.")
    retrieved = chainer.responses.retrieve(original.id)
    follow_up = chainer.responses.create(model="gpt-4o-mini", input="Which word?", previous_response_id=original.id)

    assert retrieved.output_text == "first answer"
    assert follow_up.output_text == "second answer"
    prompt = fake_onemin.requests_to("/api/chat-with-ai")[-1].json["promptObject"]["prompt"]
    assert "Remember the word apple." in prompt
    assert "first answer" in prompt
    writer.close()
    chainer.close()
