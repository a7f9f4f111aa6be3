"""GET /metrics and GET /ready: what the relay reports about itself, its upstream and its storage."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

AUTH = {"Authorization": "Bearer test-key-1"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
STREAM = {**CHAT, "stream": True}


def scrape(relay) -> dict[tuple[str, frozenset], float]:
    """Return every sample of ``/metrics`` keyed by (name, frozenset of label items)."""
    response = requests.get(relay.url("/metrics"), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for_sample(relay, name: str, expected: float, **labels: str) -> dict:
    """Scrape until ``name`` reaches ``expected``: requests are counted when the server closes them."""
    deadline = time.monotonic() + 5
    while True:
        samples = scrape(relay)
        if sample(samples, name, **labels) == expected or time.monotonic() > deadline:
            return samples
        time.sleep(0.02)


def chat(relay, body: dict = CHAT, **kwargs) -> requests.Response:
    return requests.post(relay.url("/v1/chat/completions"), json=body, headers=AUTH, timeout=30, **kwargs)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_requests_counted_by_route_status_model(relay):
    assert chat(relay).status_code == 200
    assert requests.get(relay.url("/v1/models/no-such-model-7f3a"), timeout=10).status_code == 404
    assert requests.get(relay.url("/v1/secret-path-91c2"), timeout=10).status_code == 404

    samples = wait_for_sample(
        relay, "relay_requests_total", 1, route="unmatched", method="GET", status="404", model=""
    )

    assert sample(
        samples, "relay_requests_total", route="/v1/chat/completions", method="POST", status="200", model="gpt-4o-mini"
    ) == 1
    assert sample(
        samples, "relay_requests_total", route="/v1/models/<path:model>", method="GET", status="404", model="unknown"
    ) == 1
    assert sample(samples, "relay_requests_total", route="unmatched", method="GET", status="404", model="") == 1


def test_labels_never_contain_client_input(relay):
    requests.get(relay.url("/v1/models/no-such-model-7f3a"), timeout=10)
    requests.request("BREW", relay.url("/v1/coffee-pot-5e1d"), timeout=10)
    chat(relay, {"model": "invented-model-0b9e", "messages": [{"role": "user", "content": "x"}]})
    wait_for_sample(relay, "relay_requests_total", 1, route="unmatched", method="other", status="404", model="")

    text = requests.get(relay.url("/metrics"), timeout=10).text

    assert "no-such-model-7f3a" not in text
    assert "coffee-pot-5e1d" not in text
    assert "invented-model-0b9e" not in text
    assert "BREW" not in text


def test_relay_latency_histogram(relay):
    chat(relay)
    samples = wait_for_sample(relay, "relay_request_duration_seconds_count", 1, route="/v1/chat/completions")

    assert sample(samples, "relay_request_duration_seconds_count", route="/v1/chat/completions") == 1
    assert sample(samples, "relay_request_duration_seconds_sum", route="/v1/chat/completions") > 0
    assert sample(samples, "relay_request_duration_seconds_bucket", route="/v1/chat/completions", le="+Inf") == 1


def test_upstream_latency_histogram(relay):
    chat(relay)

    samples = scrape(relay)

    assert sample(samples, "relay_upstream_request_duration_seconds_count", method="POST", path="/api/chat-with-ai") == 1
    # The catalog is fetched once per feature.
    assert sample(samples, "relay_upstream_request_duration_seconds_count", method="GET", path="/models") >= 1


def test_stream_gauge_and_duration(relay, fake_onemin):
    fake_onemin.set(chunk_delay=0.05)
    response = chat(relay, STREAM, stream=True)
    lines = response.iter_lines()
    next(lines)

    during = scrape(relay)
    body = b"\n".join(lines)
    after = wait_for_sample(relay, "relay_open_streams", 0)

    assert sample(during, "relay_open_streams") == 1
    assert body.strip().endswith(b"data: [DONE]")
    assert sample(after, "relay_open_streams") == 0
    assert sample(after, "relay_upstream_stream_duration_seconds_count") == 1
    assert sample(after, "relay_upstream_stream_duration_seconds_sum") > 0.05


@pytest.mark.parametrize(
    ("behaviour", "kind"),
    [
        ({"fail_status": 500, "fail_count": 1}, "http_5xx"),
        ({"fail_status": 429, "fail_count": 1}, "http_4xx"),
        ({"stall_seconds": 2}, "timeout"),
    ],
)
def test_upstream_errors_by_kind(relay_factory, fake_onemin, behaviour, kind):
    relay = relay_factory(MEMCACHED_HOST="", UPSTREAM_READ_TIMEOUT="0.3")
    requests.get(relay.url("/v1/models"), timeout=10)
    fake_onemin.set(**behaviour)

    status = chat(relay).status_code

    assert status in (429, 502, 504)
    assert sample(scrape(relay), "relay_upstream_errors_total", kind=kind) == 1


def test_connection_error_counted(relay_factory):
    relay = relay_factory(MEMCACHED_HOST="", ONE_MIN_API_URL=f"http://127.0.0.1:{closed_port()}")

    assert chat(relay).status_code == 502
    # The catalog calls fail too, each counted once.
    assert sample(scrape(relay), "relay_upstream_errors_total", kind="connection") >= 2


def test_error_event_counted(relay, fake_onemin):
    fake_onemin.set(error_event="The model is overloaded", error_after_chunks=2)

    body = chat(relay, STREAM).text

    assert "The model is overloaded" in body
    assert sample(scrape(relay), "relay_upstream_errors_total", kind="error_event") == 1


def test_storage_state_memory(relay):
    samples = scrape(relay)

    assert sample(samples, "relay_storage_backend", backend="memory") == 1
    assert sample(samples, "relay_storage_degraded") == 0
    assert ("relay_storage_backend", frozenset({("backend", "memcached")})) not in samples


def test_storage_state_memcached(relay_memcached):
    samples = scrape(relay_memcached)

    assert sample(samples, "relay_storage_backend", backend="memcached") == 1
    assert sample(samples, "relay_storage_backend", backend="memory") == 0
    assert sample(samples, "relay_storage_degraded") == 0


def test_each_app_has_own_registry(relay_factory):
    first = relay_factory(MEMCACHED_HOST="")
    second = relay_factory(MEMCACHED_HOST="")
    chat(first)
    chat(first)
    wait_for_sample(first, "relay_request_duration_seconds_count", 2, route="/v1/chat/completions")

    assert sample(scrape(second), "relay_request_duration_seconds_count", route="/v1/chat/completions") == 0


def test_ready_when_upstream_answers(any_relay, request):
    response = requests.get(any_relay.url("/ready"), timeout=10)

    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["upstream"] == "reachable"
    expected = "memcached" if "memcached" in request.node.callspec.id else "memory"
    assert body["storage"] == expected
    assert body["storage_degraded"] is False


def test_ready_result_cached(relay, fake_onemin):
    requests.get(relay.url("/ready"), timeout=10)
    after_first = fake_onemin.catalog_requests

    for _ in range(5):
        requests.get(relay.url("/ready"), timeout=10)

    assert after_first == 1
    assert fake_onemin.catalog_requests == 1


def test_not_ready_while_upstream_fails(relay, fake_onemin):
    relay.app.extensions["relay"].readiness.cache_seconds = 0
    fake_onemin.set(fail_status=500, fail_catalog=True)

    failing = requests.get(relay.url("/ready"), timeout=10)
    fake_onemin.set(fail_status=None, fail_catalog=False)
    recovered = requests.get(relay.url("/ready"), timeout=10)

    assert failing.status_code == 503
    assert failing.json()["ready"] is False
    assert failing.json()["upstream"].startswith("unreachable: 1min.ai failed with HTTP 500")
    assert recovered.status_code == 200


def test_ready_times_out_quickly(relay_factory, fake_onemin):
    relay = relay_factory(MEMCACHED_HOST="", UPSTREAM_READ_TIMEOUT="0.3")
    fake_onemin.set(stall_seconds=5, fail_catalog=True)

    started = time.monotonic()
    response = requests.get(relay.url("/ready"), timeout=10)
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert "did not respond in time" in response.json()["upstream"]
    assert elapsed < 2


def test_service_endpoints_not_rate_limited(relay_factory):
    relay = relay_factory(MEMCACHED_HOST="", RATE_LIMIT="1 per minute")

    statuses = [requests.get(relay.url(path), timeout=10).status_code for path in ("/ready", "/metrics") * 3]

    assert set(statuses) == {200}
