"""A loopback HTTP server that serves test images, redirects and misbehaving responses.

Tests register a handler per path with `route()`. Every request is recorded in `hits`, so a
test can prove that a rejected URL never reached the server.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[BaseHTTPRequestHandler], None]


def send_body(handler: BaseHTTPRequestHandler, body: bytes, content_type: str, status: int = 200) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def image(body: bytes, content_type: str = "image/png") -> Responder:
    return lambda handler: send_body(handler, body, content_type)


def redirect(location: str, status: int = 302) -> Responder:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return respond


def chunked(body: bytes, content_type: str = "image/png", chunk_size: int = 1024) -> Responder:
    """Send the body with chunked transfer encoding, so no Content-Length announces its size."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for start in range(0, len(body), chunk_size):
            piece = body[start:start + chunk_size]
            handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")

    return respond


def drip(head: bytes, content_type: str = "image/png", interval: float = 0.1, total: int = 100) -> Responder:
    """Announce a large body, then send one byte per ``interval`` seconds, each well inside a socket timeout."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(head) + total))
        handler.end_headers()
        handler.wfile.write(head)
        handler.wfile.flush()
        for _ in range(total):
            time.sleep(interval)
            handler.wfile.write(b"x")
            handler.wfile.flush()

    return respond


def slow_headers(interval: float = 0.1, total: int = 100) -> Responder:
    """Send the status line and headers one byte at a time."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * total:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(interval)

    return respond


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self.server.owner.hits.append(self.path)
        responder = self.server.owner.routes.get(self.path.split("?")[0])
        if responder is None:
            send_body(self, b"not found", "text/plain", status=404)
            return
        try:
            responder(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str, owner: ImageServer) -> None:
        self.owner = owner
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up in DNS, which these tests never need.
        import socketserver

        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The fetch under test cuts connections short on purpose (deadline, size cap).
        pass


class ImageServer:
    """Serve registered responders on a loopback address and an ephemeral port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[str, Responder] = {}
        self.hits: list[str] = []
        self._server = _Server(host, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def route(self, path: str, responder: Responder) -> str:
        """Serve ``responder`` at ``path`` and return the absolute URL."""
        self.routes[path] = responder
        return self.url(path)

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
