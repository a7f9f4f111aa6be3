"""One HTTP exchange: the parsed request and the ways to respond, including SSE streams."""

from __future__ import annotations

import json
import select
import socket
import time
from email import policy
from email.parser import HeaderParser
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .errors import FakeError, invalid_body
from .state import RecordedRequest

_MAX_LINE = 65536


class ClientGone(Exception):
    """The client closed the connection while the fake was still responding."""


class Call:
    """A request read in full, plus helpers that write the response to the same connection."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self._handler = handler
        url = urlsplit(handler.path)
        self.method = handler.command
        self.path = url.path
        self.query = dict(parse_qsl(url.query, keep_blank_values=True))
        self.headers = {name.lower(): value for name, value in handler.headers.items()}
        self.body = _read_body(handler)
        self.json = _parse_json(self.body) if self.is_json else None
        self.form: dict[str, str] = {}
        self.files: dict[str, tuple[str, str, bytes]] = {}
        self.multipart_error: str | None = None
        if self.content_type.startswith("multipart/form-data"):
            try:
                self.form, self.files = parse_multipart(self.body, self.headers["content-type"])
            except ValueError as error:
                self.multipart_error = str(error)
        self.split_bytes = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").lower()

    @property
    def is_json(self) -> bool:
        return self.content_type.split(";")[0].strip() == "application/json"

    @property
    def api_key(self) -> str | None:
        return self.headers.get("api-key")

    def recorded(self) -> RecordedRequest:
        return RecordedRequest(self.method, self.path, dict(self.query), dict(self.headers),
                               self.json, dict(self.form), dict(self.files))

    def json_object(self) -> dict[str, Any]:
        """Return the body as a JSON object, or raise the 400 the real service sends."""
        if not self.is_json:
            raise invalid_body("Content-Type must be application/json")
        if not isinstance(self.json, dict):
            raise invalid_body("Request body must be a JSON object")
        return self.json

    # Plain responses.

    def send(self, status: int, body: bytes, content_type: str,
             headers: dict[str, str] | None = None) -> None:
        handler = self._handler
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        self._write(body)

    def send_json(self, payload: Any, status: int = 200) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        self.send(status, body, "application/json; charset=utf-8")

    def send_error(self, error: FakeError) -> None:
        self.send(error.status, error.body, error.content_type, error.headers)

    # Server-Sent Events over a chunked body.

    def start_event_stream(self) -> None:
        handler = self._handler
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        self._flush()

    def write_events(self, *events: tuple[str, Any]) -> None:
        """Write events in one burst, or one byte per write when `split_bytes` is set."""
        payload = b"".join(encode_event(name, data) for name, data in events)
        if self.split_bytes:
            for index in range(len(payload)):
                self._write_chunk(payload[index:index + 1])
        else:
            self._write_chunk(payload)

    def end_stream(self) -> None:
        self._write(b"0\r\n\r\n")
        self._flush()

    def close_after_response(self) -> None:
        self._handler.close_connection = True

    def drop(self) -> None:
        """Close the connection without ending the chunked body, as a lost upstream does."""
        self._flush()
        self._handler.close_connection = True
        try:
            self._handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, returning False early when the client closes the connection."""
        deadline = time.monotonic() + seconds
        poller = select.poll()
        poller.register(self._handler.connection, select.POLLIN | select.POLLHUP)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if not poller.poll(remaining * 1000):
                return True
            try:
                peeked = self._handler.connection.recv(1, socket.MSG_PEEK)
            except OSError:
                return False
            if not peeked:
                return False
            # A pipelined request is waiting, not a close: the socket stays readable, so sleep.
            time.sleep(max(0.0, deadline - time.monotonic()))
            return True

    def _write_chunk(self, data: bytes) -> None:
        self._write(b"%x\r\n%s\r\n" % (len(data), data))
        self._flush()

    def _write(self, data: bytes) -> None:
        try:
            self._handler.wfile.write(data)
        except OSError as error:
            raise ClientGone() from error

    def _flush(self) -> None:
        try:
            self._handler.wfile.flush()
        except OSError as error:
            raise ClientGone() from error


def encode_event(name: str, data: Any) -> bytes:
    """Encode one named SSE event with compact JSON and raw UTF-8, as the real service writes."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {text}\n\n".encode()


def parse_multipart(body: bytes, content_type: str
                    ) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    """Split a multipart/form-data body into text fields and file parts, byte-exact."""
    boundary = _header_params("Content-Type", content_type).get_param("boundary")
    if not boundary:
        raise ValueError("multipart body without a boundary")
    delimiter = b"\r\n--" + boundary.encode()
    sections = (b"\r\n" + body).split(delimiter)
    form: dict[str, str] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    for section in sections[1:]:
        if section.startswith(b"--"):
            return form, files
        # The rest of the boundary line may carry transport padding before its CRLF.
        section = section.partition(b"\r\n")[2]
        head, separator, data = section.partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("multipart part without a blank line after its headers")
        headers = HeaderParser(policy=policy.HTTP).parsestr(head.decode("utf-8", "replace"))
        name = headers.get_param("name", header="content-disposition")
        if not name:
            raise ValueError("multipart part without a name")
        filename = headers.get_filename()
        if filename is None:
            form[name] = data.decode("utf-8", "replace")
        else:
            files[name] = (filename, headers.get("content-type", ""), data)
    raise ValueError("multipart body without a closing boundary")


def _header_params(name: str, value: str) -> Any:
    return HeaderParser(policy=policy.HTTP).parsestr(f"{name}: {value}\r\n\r\n")


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        return _read_chunked(handler.rfile)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


def _read_chunked(stream: Any) -> bytes:
    chunks = []
    while True:
        size_line = stream.readline(_MAX_LINE)
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        chunks.append(stream.read(size))
        stream.readline(_MAX_LINE)


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None

