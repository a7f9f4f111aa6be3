"""Request slots: with every server thread busy, a client gets a 503 with Retry-After, never a hang."""

from __future__ import annotations

import time

import pytest
import requests

from tests.openapi_check import assert_matches_schema
from tests.test_observability import sample, scrape
from utils.capacity import slots_for_threads

AUTH = {"Authorization": "Bearer test-key-1"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
STREAM = {**CHAT, "stream": True}
# A relay with 4 threads has 3 request slots and keeps 1 thread for service endpoints and 503s.
THREADS = 4
SLOTS = 3


class OpenStream:
    """A streaming response and its line iterator.

    The iterator must stay referenced: when it is garbage collected, urllib3 closes the connection.
    """

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()

    def close(self) -> None:
        self.response.close()


def open_streams(relay, count: int) -> list[OpenStream]:
    """Start ``count`` streams and read their first line, so each takes a slot."""
    streams = []
    for _ in range(count):
        response = requests.post(relay.url("/v1/chat/completions"), json=STREAM, headers=AUTH, stream=True, timeout=10)
        assert response.status_code == 200
        stream = OpenStream(response)
        next(stream.lines)
        streams.append(stream)
    return streams


def wait_until_slots_free(relay) -> None:
    deadline = time.monotonic() + 5
    while sample(scrape(relay), "relay_requests_in_progress") != 0:
        assert time.monotonic() < deadline, "request slots were not released"
        time.sleep(0.02)


@pytest.fixture
def small_relay(relay_factory, fake_onemin):
    # Each stream lasts 10 s (100 chunks 0.1 s apart), far longer than the checks below take even
    # on a busy machine. The tests close their streams, which frees the slots at once.
    fake_onemin.set(chunk_delay=0.1, reply_chars=400)
    return relay_factory(MEMCACHED_HOST="", WAITRESS_THREADS=str(THREADS), RATE_LIMIT="off")


@pytest.mark.parametrize(
    ("threads", "slots"),
    [(1, 1), (2, 1), (4, 3), (16, 14), (256, 240), (1000, 984)],
)
def test_slots_for_threads(threads, slots):
    assert slots_for_threads(threads) == slots


def test_request_slots_exported(relay_factory):
    relay = relay_factory(MEMCACHED_HOST="", WAITRESS_THREADS="16")

    samples = scrape(relay)

    assert sample(samples, "relay_request_slots") == 14
    assert sample(samples, "relay_requests_in_progress") == 0


def test_request_beyond_slots_gets_503(small_relay):
    streams = open_streams(small_relay, SLOTS)

    rejected = requests.post(small_relay.url("/v1/chat/completions"), json=CHAT, headers=AUTH, timeout=5)

    assert rejected.status_code == 503
    assert rejected.headers["Retry-After"] == "1"
    assert rejected.headers["X-Request-ID"]
    assert_matches_schema("ErrorResponse", rejected.json())
    assert rejected.json()["error"]["code"] == "server_busy"
    assert f"all {SLOTS} request slots are in use" in rejected.json()["error"]["message"]
    for stream in streams:
        stream.close()


def test_service_endpoints_served_when_full(small_relay):
    streams = open_streams(small_relay, SLOTS)

    health = requests.get(small_relay.url("/health"), timeout=5)
    samples = scrape(small_relay)

    assert health.status_code == 200
    assert sample(samples, "relay_requests_in_progress") == SLOTS
    for stream in streams:
        stream.close()


def test_rejections_counted(small_relay):
    streams = open_streams(small_relay, SLOTS)
    for _ in range(2):
        requests.post(small_relay.url("/v1/chat/completions"), json=CHAT, headers=AUTH, timeout=5)

    assert sample(scrape(small_relay), "relay_rejected_requests_total") == 2
    for stream in streams:
        stream.close()


def test_slots_freed_by_client_disconnect(small_relay):
    for stream in open_streams(small_relay, SLOTS):
        stream.close()

    wait_until_slots_free(small_relay)
    accepted = requests.post(small_relay.url("/v1/chat/completions"), json=CHAT, headers=AUTH, timeout=10)

    assert accepted.status_code == 200


def test_slots_freed_after_errors(small_relay, fake_onemin):
    fake_onemin.set(fail_status=500)

    statuses = {
        requests.post(small_relay.url("/v1/chat/completions"), json=CHAT, headers=AUTH, timeout=10).status_code
        for _ in range(SLOTS + 2)
    }
    invalid = requests.post(small_relay.url("/v1/chat/completions"), json={"model": 1}, headers=AUTH, timeout=10)

    assert statuses == {502}
    assert invalid.status_code == 400
    wait_until_slots_free(small_relay)


def test_sdk_retries_after_503(small_relay, fake_onemin):
    client = small_relay.openai_client(max_retries=6)
    # Streams of 25 chunks 0.1 s apart end in 2.5 s, which frees slots for one of the SDK's retries,
    # 1 s apart as Retry-After says.
    fake_onemin.set(chunk_delay=0.1, reply_chars=100)
    streams = open_streams(small_relay, SLOTS)

    completion = client.chat.completions.create(model="gpt-4o-mini", messages=CHAT["messages"])

    assert completion.choices[0].message.content == fake_onemin.default_answer("gpt-4o-mini", "Hi")
    assert sample(scrape(small_relay), "relay_rejected_requests_total") >= 1
    client.close()
    for stream in streams:
        stream.close()
