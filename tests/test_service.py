"""Cross-cutting behaviour: service routes, request ids, errors, limits, CORS and logging."""

from __future__ import annotations

import logging
import time

import pytest
import requests

from tests.openapi_check import assert_matches_schema

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
AUTH = {"Authorization": "Bearer test-key-1"}


def test_index_names_service_and_base_url(relay):
    body = requests.get(relay.url("/"), timeout=10).json()

    assert body["service"] == "1min-relay"
    assert body["base_url"] == relay.base_url + "/v1"


def test_health_reports_storage(any_relay, request):
    body = requests.get(any_relay.url("/health"), timeout=10).json()

    assert body["status"] == "ok"
    expected = "memcached" if "memcached" in request.node.callspec.id else "memory"
    assert body["storage"] == expected


def test_request_id_generated_and_echoed(relay):
    generated = requests.get(relay.url("/health"), timeout=10).headers["X-Request-ID"]
    echoed = requests.get(relay.url("/health"), headers={"X-Request-ID": "trace-42"}, timeout=10)

    assert len(generated) >= 16
    assert echoed.headers["X-Request-ID"] == "trace-42"


def test_invalid_request_id_replaced(relay):
    response = requests.get(relay.url("/health"), headers={"X-Request-ID": "bad id\twith spaces"}, timeout=10)

    assert response.headers["X-Request-ID"] != "bad id\twith spaces"


def test_unknown_route_is_openai_404(relay):
    response = requests.post(relay.url("/v1/nothing-here"), json={}, timeout=10)

    assert response.status_code == 404
    assert_matches_schema("ErrorResponse", response.json())


def test_wrong_method_is_openai_405(relay):
    response = requests.delete(relay.url("/v1/chat/completions"), timeout=10)

    assert response.status_code == 405
    assert_matches_schema("ErrorResponse", response.json())
    assert "POST" in response.headers["Allow"]


def test_body_over_limit_is_413(relay_factory):
    relay = relay_factory(MAX_REQUEST_BYTES="2048")
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 4096}]}

    response = requests.post(relay.url("/v1/chat/completions"), json=big, headers=AUTH, timeout=10)

    assert response.status_code == 413
    assert_matches_schema("ErrorResponse", response.json())


@pytest.mark.parametrize("backend", ["memory", "memcached"])
def test_rate_limit_is_openai_429(relay_factory, backend, request):
    settings = {"RATE_LIMIT": "2 per minute"}
    if backend == "memcached":
        host, port = request.getfixturevalue("memcached_server")
        settings.update(MEMCACHED_HOST=host, MEMCACHED_PORT=str(port))
    relay = relay_factory(**settings)
    # A key of its own so earlier tests sharing memcached do not count against it.
    headers = {"Authorization": f"Bearer rate-limit-{backend}-{id(relay)}"}

    statuses = [requests.get(relay.url("/v1/models"), headers=headers, timeout=10) for _ in range(3)]

    assert [response.status_code for response in statuses] == [200, 200, 429]
    limited = statuses[-1]
    assert_matches_schema("ErrorResponse", limited.json())
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(limited.headers["Retry-After"]) > 0


def test_rate_limit_counts_per_key(relay_factory):
    relay = relay_factory(RATE_LIMIT="1 per minute")

    first = requests.get(relay.url("/v1/models"), headers={"Authorization": "Bearer key-a"}, timeout=10)
    other = requests.get(relay.url("/v1/models"), headers={"Authorization": "Bearer key-b"}, timeout=10)

    assert first.status_code == 200
    assert other.status_code == 200


def test_health_not_rate_limited(relay_factory):
    relay = relay_factory(RATE_LIMIT="1 per minute")

    statuses = {requests.get(relay.url("/health"), timeout=10).status_code for _ in range(3)}

    assert statuses == {200}


def test_cors_preflight(relay):
    response = requests.options(
        relay.url("/v1/chat/completions"),
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=10,
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "http://localhost:3000")
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_one_access_line_per_request(relay, caplog):
    caplog.set_level(logging.INFO, logger="relay")

    response = requests.post(relay.url("/v1/chat/completions"), json=CHAT, headers=AUTH, timeout=10)

    request_id = response.headers["X-Request-ID"]
    # The line is written when the server closes the response, just after the client has it.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [r for r in caplog.records if r.name == "relay" and getattr(r, "request_id", None) == request_id]
        if lines:
            break
        time.sleep(0.02)
    assert len(lines) == 1
    message = lines[0].getMessage()
    assert "POST /v1/chat/completions" in message
    assert "model=gpt-4o-mini" in message
    assert "status=200" in message
    assert "duration_ms=" in message


def test_unexpected_failure_is_500_without_trace(relay, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("routes.text.format_conversation_history", explode)

    response = requests.post(relay.url("/v1/chat/completions"), json=CHAT, headers=AUTH, timeout=10)

    assert response.status_code == 500
    assert_matches_schema("ErrorResponse", response.json())
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
