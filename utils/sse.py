"""Incremental parser for the Server-Sent Events that 1min.ai streams."""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str
    # Index of the network read that completed this event; events from one read arrived together.
    burst: int


class SSEParser:
    """Turn raw bytes, fed as they arrive, into complete events.

    Follows the SSE rules the upstream relies on: several ``data:`` lines join with
    ``\\n``, a blank line ends an event and resets its name, lines starting with ``:``
    are comments, and the space after the colon is optional. UTF-8 is decoded
    incrementally, so a character split between two reads is decoded whole.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._event = ""
        self._data: list[str] = []
        self._burst = 0

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        self._burst += 1
        text = self._pending + self._decoder.decode(chunk)
        lines = text.split("\n")
        self._pending = lines.pop()
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._process_line(line.removesuffix("\r"))
            if event is not None:
                events.append(event)
        return events

    def _process_line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(self._event or "message", "\n".join(self._data), self._burst)
        self._event = ""
        self._data = []
        return event
