"""The benchmark's load client and statistics, checked against the fake 1min.ai and the relay."""

from __future__ import annotations

import asyncio
import json

import pytest

from bench.client import Connection, StreamResult, post, stream
from bench.patterns import StreamStats, percentile
from bench.run import MODEL, PROMPT, make_targets
from tests.fake_onemin import default_answer


def test_percentile_interpolates():
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0], 0.0) == 1.0
    assert percentile([1.0, 2.0, 3.0], 1.0) == 3.0
    assert percentile([7.0], 0.99) == 7.0


def test_peak_concurrent_counts_overlap():
    results = [
        StreamResult(status=200, started=0.0, first_content=1.0, ended=5.0, finished=True),
        StreamResult(status=200, started=2.0, first_content=1.0, ended=2.0, finished=True),
        StreamResult(status=200, started=10.0, first_content=1.0, ended=2.0, finished=True),
    ]

    assert StreamStats(3, results, "", 12.0).peak_concurrent() == 2


def _run(coroutine):
    return asyncio.run(coroutine)


@pytest.mark.parametrize("through_relay", [False, True], ids=["direct", "relay"])
def test_plain_request_returns_fake_answer(relay, fake_onemin, through_relay):
    direct, relayed = make_targets(fake_onemin.port, relay.port)
    target = relayed if through_relay else direct

    async def two_requests():
        connection = Connection(target.host, target.port)
        try:
            return [await post(connection, target.plain_request) for _ in range(2)]
        finally:
            connection.close()

    expected = default_answer(MODEL, PROMPT)
    for status, body in _run(two_requests()):
        assert status == 200
        assert expected in json.dumps(json.loads(body), ensure_ascii=False)


@pytest.mark.parametrize("through_relay", [False, True], ids=["direct", "relay"])
def test_stream_collects_every_delta(relay, fake_onemin, through_relay):
    fake_onemin.set(chunk_size=5, reply_chars=60)
    direct, relayed = make_targets(fake_onemin.port, relay.port)
    target = relayed if through_relay else direct

    async def two_streams():
        connection = Connection(target.host, target.port)
        try:
            return [await stream(connection, target.stream_request, target.openai_events) for _ in range(2)]
        finally:
            connection.close()

    for result in _run(two_streams()):
        assert result.ok, result.error
        assert result.text == default_answer(MODEL, PROMPT, 60)
        assert len(result.content_times) == 12
        assert result.first_content == result.content_times[0]


def test_stream_reports_upstream_error(relay, fake_onemin):
    fake_onemin.set(error_event="model overloaded", error_after_chunks=2)
    _, relayed = make_targets(fake_onemin.port, relay.port)

    async def one_stream():
        connection = Connection(relayed.host, relayed.port)
        try:
            return await stream(connection, relayed.stream_request, relayed.openai_events)
        finally:
            connection.close()

    result = _run(one_stream())

    assert not result.ok
    assert "model overloaded" in (result.error or "")
