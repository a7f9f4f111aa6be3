"""A small asyncio HTTP/1.1 load client: keep-alive connections, pre-built requests, no TLS.

It parses only what the benchmark needs (status, Content-Length, chunked bodies and
Connection: close), so one event loop can drive hundreds of connections without
becoming the bottleneck that a full client library would be on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import AsyncIterator

READ_SIZE = 65536


class ProtocolError(Exception):
    """The server sent something this client cannot parse, or closed the connection early."""


def build_request(host: str, port: int, path: str, headers: dict[str, str], body: dict) -> bytes:
    """Encode one POST request with a JSON body, ready to be written as is for every call."""
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             f"Content-Length: {len(payload)}", "User-Agent: 1min-relay-bench/1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


@dataclass
class ResponseHead:
    status: int
    headers: dict[str, str]

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


class Connection:
    """One keep-alive connection, reopened on demand after the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=READ_SIZE)

    async def send(self, raw_request: bytes) -> None:
        await self.connect()
        assert self._writer is not None
        self._writer.write(raw_request)

    async def read_head(self) -> ResponseHead:
        assert self._reader is not None
        try:
            raw = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            self.close()
            raise ProtocolError(f"connection closed before the response head ({type(error).__name__})") from None
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            self.close()
            raise ProtocolError(f"malformed status line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        return ResponseHead(int(parts[1]), headers)

    async def read_body(self, head: ResponseHead) -> bytes:
        """Read a whole body framed by Content-Length or chunked encoding."""
        if head.chunked:
            parts = [part async for _, part in self.iter_chunks()]
            body = b"".join(parts)
        else:
            length = int(head.headers.get("content-length", "0"))
            body = await self._read_exactly(length)
        if not head.keep_alive:
            self.close()
        return body

    async def iter_chunks(self) -> AsyncIterator[tuple[float, bytes]]:
        """Yield each chunk of a chunked body with the perf_counter time it was read."""
        assert self._reader is not None
        while True:
            try:
                size_line = await self._reader.readuntil(b"\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as error:
                self.close()
                raise ProtocolError(f"connection closed inside a chunked body ({type(error).__name__})") from None
            arrived = time.perf_counter()
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            data = await self._read_exactly(size + 2)
            if size == 0:
                return
            yield arrived, data[:-2]

    async def _read_exactly(self, count: int) -> bytes:
        assert self._reader is not None
        try:
            return await self._reader.readexactly(count)
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            self.close()
            raise ProtocolError(f"connection closed inside the body ({type(error).__name__})") from None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def post(connection: Connection, raw_request: bytes) -> tuple[int, bytes]:
    """Send one request and return its status and body."""
    await connection.send(raw_request)
    head = await connection.read_head()
    return head.status, await connection.read_body(head)


@dataclass
class StreamResult:
    """One streamed response as the client received it. Times are seconds after the request was written."""

    status: int = 0
    started: float = 0.0
    ended: float = 0.0
    first_content: float | None = None
    content_times: list[float] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)
    finished: bool = False
    error: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.finished and self.error is None


def _direct_event(block: str) -> tuple[str | None, bool, str | None]:
    """Read one 1min.ai event: (content, finished, error)."""
    name, data = "message", ""
    for line in block.split("\n"):
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
    if name == "content":
        return json.loads(data).get("content") or None, False, None
    if name == "done":
        return None, True, None
    if name == "error":
        return None, True, data
    return None, False, None


def _relay_event(block: str) -> tuple[str | None, bool, str | None]:
    """Read one OpenAI stream event: (content, finished, error)."""
    data = block.partition("data:")[2].strip()
    if data == "[DONE]":
        return None, True, None
    payload = json.loads(data)
    if "error" in payload:
        return None, True, json.dumps(payload["error"])
    choices = payload.get("choices") or [{}]
    return choices[0].get("delta", {}).get("content") or None, False, None


async def stream(connection: Connection, raw_request: bytes, openai_events: bool) -> StreamResult:
    """Send one streaming request and record when each non-empty content delta arrived."""
    parse = _relay_event if openai_events else _direct_event
    started = time.perf_counter()
    result = StreamResult(started=started)
    await connection.send(raw_request)
    head = await connection.read_head()
    result.status = head.status
    if head.status != 200 or not head.chunked:
        body = await connection.read_body(head)
        result.error = f"HTTP {head.status}: {body[:200].decode('utf-8', 'replace')}"
        return result

    pending = b""
    async for arrived, data in connection.iter_chunks():
        pending += data
        *blocks, pending = pending.split(b"\n\n")
        for block in blocks:
            content, finished, error = parse(block.decode("utf-8"))
            if content:
                offset = arrived - started
                if result.first_content is None:
                    result.first_content = offset
                result.content_times.append(offset)
                result.text_parts.append(content)
            if error:
                result.error = error
            result.finished = result.finished or finished
    result.ended = time.perf_counter() - started
    if not head.keep_alive:
        connection.close()
    return result
