"""Graceful shutdown of ``python app.py`` on SIGTERM, against the fake 1min.ai in its own process."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from tests.fake_onemin import default_answer
from tests.processes import LOOPBACK, start_fake, start_relay

AUTH = {"Authorization": "Bearer test-key-1"}
TEST_KEYS = ("test-key-1", "test-key-2")
PROMPT = "Shut down gently"
CHUNK_DELAY = 0.05
REPLY_CHARS = 80


@pytest.fixture(scope="module")
def slow_fake():
    """A fake whose streams take about 1 s: 20 chunks of 4 characters, 50 ms apart."""
    fake = start_fake("--chunk-delay", str(CHUNK_DELAY), "--reply-chars", str(REPLY_CHARS))
    yield fake
    fake.terminate()


def start_stream(relay) -> requests.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    response = requests.post(relay.url("/v1/chat/completions"), json=body, headers=AUTH, stream=True, timeout=30)
    assert response.status_code == 200
    return response


def read_until_closed(lines) -> tuple[list[bytes], bool]:
    """Read SSE lines until the body ends; also return whether it ended cleanly."""
    received = []
    try:
        for line in lines:
            received.append(line)
    except requests.exceptions.ChunkedEncodingError:
        return received, False
    return received, True


def streamed_text(lines: list[bytes]) -> tuple[str, bool]:
    """Join the content deltas of SSE ``lines``; also return whether ``[DONE]`` arrived."""
    parts, done = [], False
    for line in lines:
        if not line.startswith(b"data: "):
            continue
        data = line[len(b"data: "):]
        if data == b"[DONE]":
            done = True
            continue
        choices = json.loads(data).get("choices") or [{}]
        parts.append(choices[0].get("delta", {}).get("content") or "")
    return "".join(parts), done


def wait_until_refused(port: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.02)
    return False


def assert_no_key_logged(log: str) -> None:
    for key in TEST_KEYS:
        assert key not in log


def test_sigterm_lets_open_stream_finish(slow_fake):
    relay = start_relay(slow_fake.base_url, SHUTDOWN_GRACE_SECONDS="10")
    port = int(relay.base_url.rsplit(":", 1)[1])
    response = start_stream(relay)
    lines = response.iter_lines()
    first = [next(lines), next(lines)]

    relay.popen.terminate()
    refused = wait_until_refused(port)
    rest, clean = read_until_closed(lines)
    text, done = streamed_text(first + rest)
    exit_code = relay.popen.wait(10)

    assert refused
    assert clean
    assert text == default_answer("gpt-4o-mini", PROMPT, REPLY_CHARS)
    assert done
    assert exit_code == 0
    log = relay.log_text()
    assert "SIGTERM received; shutting down" in log
    assert "waiting up to 10 s for 1 connection(s)" in log
    assert "shutdown complete" in log
    assert "WARNING" not in log
    assert_no_key_logged(log)


def test_grace_period_cuts_long_stream(slow_fake):
    relay = start_relay(slow_fake.base_url, SHUTDOWN_GRACE_SECONDS="0.2")
    response = start_stream(relay)
    lines = response.iter_lines()
    next(lines)

    relay.popen.terminate()
    rest, clean = read_until_closed(lines)
    text, done = streamed_text(rest)
    exit_code = relay.popen.wait(10)

    assert not clean
    assert not done
    assert len(text) < REPLY_CHARS
    assert exit_code == 0
    log = relay.log_text()
    assert "grace period of 0 s (SHUTDOWN_GRACE_SECONDS) ended with 1 connection(s) still busy" in log
    assert "shutdown complete" in log


def test_idle_connection_does_not_delay_exit(slow_fake):
    relay = start_relay(slow_fake.base_url, SHUTDOWN_GRACE_SECONDS="60")
    session = requests.Session()
    assert session.get(relay.url("/health"), timeout=10).status_code == 200

    # An idle keep-alive connection is closed at once, so the exit does not wait out the grace period.
    exit_code = relay.terminate(timeout=10)

    assert exit_code == 0
    assert "shutdown complete" in relay.log_text()
    assert "grace period" not in relay.log_text()
    session.close()


def test_sigint_also_drains(slow_fake):
    relay = start_relay(slow_fake.base_url)
    relay.popen.send_signal(2)

    assert relay.popen.wait(10) == 0
    assert "SIGINT received; shutting down" in relay.log_text()
