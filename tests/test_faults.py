"""Upstream and storage faults: errors within the configured timeouts, freed threads, recovery."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time

import pytest
import requests

from tests.conftest import (
    LOOPBACK,
    MEMCACHED_MISSING,
    _free_port,
    _memcached_command,
    _stop_process,
    _wait_for_memcached,
)
from tests.fake_onemin import FakeOneMin
from tests.openapi_check import assert_matches_schema
from tests.test_observability import sample, scrape

AUTH = {"Authorization": "Bearer test-key-1"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
STREAM = {**CHAT, "stream": True}


def chat(relay, body: dict = CHAT, **kwargs) -> requests.Response:
    return requests.post(relay.url("/v1/chat/completions"), json=body, headers=AUTH, timeout=30, **kwargs)


def assert_openai_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status
    assert_matches_schema("ErrorResponse", response.json())
    assert response.json()["error"]["code"] == code


def wait_for(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.02)


@pytest.fixture
def own_fake():
    """A fake 1min.ai of this test's own, which the test may stop and start again."""
    fake = FakeOneMin(host=LOOPBACK, port=0).start()
    yield fake
    fake.stop()


def test_upstream_outage_and_recovery(relay_factory, own_fake):
    relay = relay_factory(
        MEMCACHED_HOST="",
        ONE_MIN_API_URL=own_fake.base_url,
        ONE_MIN_ASSET_URL=own_fake.asset_url,
        UPSTREAM_CONNECT_TIMEOUT="1",
        UPSTREAM_READ_TIMEOUT="2",
    )
    relay.app.extensions["relay"].readiness.cache_seconds = 0
    assert chat(relay).status_code == 200

    own_fake.stop()
    during = [chat(relay), chat(relay, STREAM)]
    not_ready = requests.get(relay.url("/ready"), timeout=10)
    own_fake.start()
    after = [chat(relay), chat(relay, STREAM)]
    ready = requests.get(relay.url("/ready"), timeout=10)

    for response in during:
        assert_openai_error(response, 502, "upstream_error")
        assert "Could not reach 1min.ai" in response.json()["error"]["message"]
    assert not_ready.status_code == 503
    assert [response.status_code for response in after] == [200, 200]
    assert after[1].text.rstrip().endswith("data: [DONE]")
    assert ready.status_code == 200


@pytest.mark.parametrize("body", [CHAT, STREAM], ids=["plain", "stream"])
def test_silent_upstream_times_out_and_frees_thread(relay_factory, body):
    # A listening socket that never accepts: the kernel completes the handshake, and nothing responds.
    with socket.socket() as silent:
        silent.bind((LOOPBACK, 0))
        silent.listen(64)
        relay = relay_factory(
            MEMCACHED_HOST="",
            ONE_MIN_API_URL=f"http://{LOOPBACK}:{silent.getsockname()[1]}",
            UPSTREAM_CONNECT_TIMEOUT="1",
            UPSTREAM_READ_TIMEOUT="0.3",
            # One request slot: the second request is served only if the first freed it.
            WAITRESS_THREADS="2",
        )

        first = chat(relay, body)
        second = chat(relay, body)

        assert_openai_error(first, 504, "upstream_timeout")
        assert_openai_error(second, 504, "upstream_timeout")
        assert sample(scrape(relay), "relay_requests_in_progress") == 0


def test_stall_mid_stream_ends_with_error_event(relay_factory, fake_onemin):
    relay = relay_factory(MEMCACHED_HOST="", UPSTREAM_READ_TIMEOUT="0.3", WAITRESS_THREADS="2")
    fake_onemin.set(stall_after_chunks=2, stall_mid_stream_seconds=10)

    response = chat(relay, STREAM)

    assert response.status_code == 200
    events = [line[len("data: "):] for line in response.text.split("\n") if line.startswith("data: ")]
    assert events[-1] != "[DONE]"
    assert '"code":"upstream_timeout"' in events[-1]
    assert "stopped sending the answer" in events[-1]
    # The relay closed its upstream request, which the stalled fake notices.
    wait_for(lambda: fake_onemin.stream_disconnects == 1, 1.0, "the upstream stream was not closed")
    assert sample(scrape(relay), "relay_requests_in_progress") == 0
    assert chat(relay).status_code == 200


def test_client_disconnect_closes_upstream(relay, fake_onemin, caplog):
    caplog.set_level(logging.INFO)
    fake_onemin.set(chunk_delay=0.05)
    response = chat(relay, STREAM, stream=True)
    lines = response.iter_lines()
    for _ in range(3):
        next(lines)

    response.close()

    # Within a second the relay notices on its next write and closes the upstream request.
    wait_for(lambda: fake_onemin.stream_disconnects == 1, 1.0, "the upstream stream was not closed within 1 s")
    wait_for(
        lambda: any("stream closed after" in record.getMessage() for record in caplog.records),
        1.0,
        "the disconnect was not logged",
    )
    line = next(record for record in caplog.records if "stream closed after" in record.getMessage())
    assert line.levelno == logging.INFO
    assert line.request_id not in (None, "-")


@pytest.fixture
def private_memcached():
    """Start a memcached that the test may stop; return a function that starts it again on its port."""
    memcached_path = shutil.which("memcached")
    if memcached_path is None:
        pytest.skip(MEMCACHED_MISSING)
    port = _free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            _memcached_command(memcached_path, port), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        processes.append(process)
        assert _wait_for_memcached(process, port), "memcached did not start"
        return process

    start()
    yield port, processes, start
    for process in processes:
        _stop_process(process)


def limited_statuses(relay, key: str, count: int) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"}
    return [requests.get(relay.url("/v1/models"), headers=headers, timeout=10).status_code for _ in range(count)]


def records_of(caplog, logger_name: str, level: int) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == logger_name and record.levelno == level]


@pytest.mark.slow
def test_memcached_outage_and_recovery(relay_factory, private_memcached, caplog):
    port, processes, start_memcached = private_memcached
    caplog.set_level(logging.INFO)
    relay = relay_factory(MEMCACHED_HOST=LOOPBACK, MEMCACHED_PORT=str(port), RATE_LIMIT="3 per minute")
    key = f"outage-key-{time.monotonic_ns()}"
    assert limited_statuses(relay, key, 2) == [200, 200]

    _stop_process(processes[0])
    degraded = [requests.get(relay.url("/ready"), timeout=10).json() for _ in range(3)]
    # The limiter counts this key from zero in memory, so three more requests pass.
    during = limited_statuses(relay, key, 4)
    chat_during = chat(relay)

    start_memcached()
    wait_for(
        lambda: requests.get(relay.url("/ready"), timeout=10).json()["storage"] == "memcached",
        15,
        "storage did not switch back to memcached",
    )
    # The limiter probes memcached with growing pauses (1, 2, 4 ... s) and then counts there again,
    # in the restarted memcached, which starts empty.
    wait_for(lambda: limited_statuses(relay, key, 1) == [200], 20, "the rate limiter did not recover")
    after = limited_statuses(relay, key, 3)

    assert all(report["storage"] == "memory (memcached unreachable)" for report in degraded)
    assert all(report["storage_degraded"] and report["ready"] for report in degraded)
    assert during == [200, 200, 200, 429]
    assert chat_during.status_code == 200
    assert after == [200, 200, 429]
    assert len(records_of(caplog, "utils.memcached", logging.WARNING)) == 1
    recoveries = [line for line in records_of(caplog, "utils.memcached", logging.INFO) if "reachable again" in line]
    assert len(recoveries) == 1
    assert len(records_of(caplog, "flask-limiter", logging.WARNING)) == 1
    assert records_of(caplog, "flask-limiter", logging.INFO).count("Rate limit storage recovered") == 1
