"""The incremental SSE parser used on 1min.ai streams."""

from __future__ import annotations

from utils.sse import SSEParser


def _feed_all(parser: SSEParser, chunks: list[bytes]) -> list[tuple[str, str]]:
    events = []
    for chunk in chunks:
        events.extend((event.event, event.data) for event in parser.feed(chunk))
    return events


def test_named_events_and_reset():
    raw = b"event: content\ndata: {\"content\":\"a\"}\n\ndata: plain\n\n"

    assert _feed_all(SSEParser(), [raw]) == [("content", '{"content":"a"}'), ("message", "plain")]


def test_multiline_data_joined_with_newline():
    raw = b"event: content\ndata: one\ndata:two\n\n"

    assert _feed_all(SSEParser(), [raw]) == [("content", "one\ntwo")]


def test_comments_and_crlf():
    raw = b": keep-alive\r\nevent: done\r\ndata: {}\r\n\r\n"

    assert _feed_all(SSEParser(), [raw]) == [("done", "{}")]


def test_utf8_split_byte_by_byte():
    raw = "event: content\ndata: Привет 👋\n\n".encode()

    assert _feed_all(SSEParser(), [bytes([b]) for b in raw]) == [("content", "Привет 👋")]


def test_event_without_data_dispatches_nothing():
    raw = b"event: ping\n\nevent: content\ndata: x\n\n"

    assert _feed_all(SSEParser(), [raw]) == [("content", "x")]


def test_events_of_one_read_share_burst():
    parser = SSEParser()
    first = parser.feed(b"event: content\ndata: a\n\n")
    second = parser.feed(b"event: content\ndata: b\n\nevent: done\ndata: {}\n\n")

    assert first[0].burst != second[0].burst
    assert second[0].burst == second[1].burst
