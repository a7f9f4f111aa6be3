"""The HTTP server: routing, the checks every API call passes, and the `FakeOneMin` handle."""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import socket
import socketserver
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

from . import catalog
from .assets import serve_asset, upload_asset
from .behaviour import Behaviour
from .chat import create_chat, default_answer
from .conversations import create_conversation, delete_conversation
from .errors import (FakeError, bot_filter_page, injected_failure, json_error, not_found,
                     too_many_requests, unauthorized)
from .features import get_result, run_feature
from .state import Asset, Conversation, RecordedRequest, Store
from .transport import Call, ClientGone

logger = logging.getLogger(__name__)

DEFAULT_KEYS = frozenset({"test-key-1", "test-key-2"})

# Route kinds. API calls need a key and suffer injected failures. The catalog needs no key and
# fails only with `fail_catalog`. The CDN never fails.
API, CATALOG, CDN = "api", "catalog", "cdn"

_PLAIN_CLIENTS = ("python-requests", "python-urllib", "curl", "wget", "go-http-client")

Endpoint = Callable[["FakeOneMin", Call, Behaviour], None]


def list_models(fake: FakeOneMin, call: Call, behaviour: Behaviour) -> None:
    """Respond to `GET /models?feature=X`. Without a feature the real catalog is empty."""
    fake.store.count_catalog_request()
    feature = call.query.get("feature")
    models = [model.to_json() for model in catalog.models_for(feature)] if feature else []
    call.send_json({"models": models, "total": len(models)})


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    endpoint: Endpoint
    kind: str


ROUTES = (
    Route("GET", re.compile(r"/models"), list_models, CATALOG),
    Route("POST", re.compile(r"/api/chat-with-ai"), create_chat, API),
    Route("POST", re.compile(r"/api/features"), run_feature, API),
    Route("POST", re.compile(r"/api/assets"), upload_asset, API),
    Route("POST", re.compile(r"/api/conversations"), create_conversation, API),
    Route("DELETE", re.compile(r"/api/conversations/[^/]+"), delete_conversation, API),
    Route("GET", re.compile(r"/api/results/[^/]+"), get_result, API),
    Route("GET", re.compile(r"/cdn/.+"), serve_asset, CDN),
)


class FakeOneMin:
    """A fake 1min.ai on loopback. The package docstring describes the interface for tests."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 keys: Iterable[str] = DEFAULT_KEYS) -> None:
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"host must be a loopback address, got {host!r}")
        self.host = host
        self.port = port
        self._default_keys = frozenset(keys)
        self.keys: set[str] = set(self._default_keys)
        self.store = Store()
        self._behaviour = Behaviour()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Life cycle.

    def start(self) -> FakeOneMin:
        """Bind, serve in a daemon thread, and return self."""
        if self._server is not None:
            raise RuntimeError("the fake 1min.ai server is already running")
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        name=f"fake-1min-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close open connections, and wait for the accept loop to end."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeOneMin:
        return self.start() if self._server is None else self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("start() the fake before asking for its URL")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def asset_url(self) -> str:
        return f"{self.base_url}/cdn"

    # Behaviour and state.

    @property
    def behaviour(self) -> Behaviour:
        return self._behaviour

    def set(self, **fields: Any) -> None:
        """Change behaviour fields. An unknown name raises TypeError, a bad value ValueError."""
        with self._lock:
            self._behaviour = self._behaviour.updated(**fields)

    def reset(self) -> None:
        """Restore default behaviour and keys, and forget every request, asset and reply."""
        with self._lock:
            self._behaviour = Behaviour()
            self.keys = set(self._default_keys)
        self.store.clear()

    def script(self, *replies: str) -> None:
        """Queue chat answers, which the next chat or CODE_GENERATOR calls use in order."""
        self.store.queue_replies(replies)

    def default_answer(self, model: str, prompt: str) -> str:
        return default_answer(model, prompt, self._behaviour.reply_chars)

    def next_answer(self, model: str, prompt: str, behaviour: Behaviour) -> str:
        scripted = self.store.next_reply()
        return scripted if scripted is not None else default_answer(model, prompt,
                                                                      behaviour.reply_chars)

    @property
    def received(self) -> list[RecordedRequest]:
        return self.store.received

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [request for request in list(self.store.received) if request.path == path]

    @property
    def stream_disconnects(self) -> int:
        return self.store.stream_disconnects

    @property
    def catalog_requests(self) -> int:
        return self.store.catalog_requests

    @property
    def assets(self) -> dict[str, Asset]:
        return self.store.assets_by_path

    @property
    def conversations(self) -> dict[str, Conversation]:
        return self.store.conversations

    # Request handling.

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        """Read, record, check and respond to one request."""
        try:
            call = Call(handler)
        except ValueError as error:
            handler.close_connection = True
            handler.send_error(400, f"Malformed request: {error}")
            return
        self.store.record(call.recorded())
        behaviour = self._behaviour
        error: FakeError | None = None
        try:
            route = _match(call)
            self._admit(call, route.kind, behaviour)
            route.endpoint(self, call, behaviour)
        except FakeError as raised:
            error = raised
        except ClientGone:
            handler.close_connection = True
        except Exception as raised:  # noqa: BLE001 - a bug in the fake must reach the test
            logger.exception("fake 1min.ai failed on %s %s", call.method, call.path)
            error = json_error(500, {"statusCode": 500, "message": f"fake server bug: {raised!r}"})
        if error is None:
            return
        try:
            call.send_error(error)
        except ClientGone:
            handler.close_connection = True

    def _admit(self, call: Call, kind: str, behaviour: Behaviour) -> None:
        """Apply the bot filter, stalls, injected failures, auth and the rate limit."""
        if kind == CDN:
            return
        if behaviour.block_plain_clients and _is_plain_client(call.headers.get("user-agent")):
            raise bot_filter_page()
        faults_apply = kind == API or behaviour.fail_catalog
        if faults_apply and behaviour.stall_seconds and not call.wait(behaviour.stall_seconds):
            if call.path == "/api/chat-with-ai" and call.query.get("isStreaming") == "true":
                self.store.count_stream_disconnect()
            raise ClientGone()
        if faults_apply and self._take_failure():
            raise injected_failure(behaviour)
        if kind != API:
            return
        if call.api_key is None:
            raise unauthorized("Missing API key: send it in the API-KEY header")
        if call.api_key not in self.keys:
            raise unauthorized("Invalid API key")
        if behaviour.rate_limit_per_minute is not None:
            wait = self.store.seconds_until_allowed(call.api_key, behaviour.rate_limit_per_minute)
            if wait:
                raise too_many_requests(str(math.ceil(wait)))

    def _take_failure(self) -> bool:
        """Decide whether this call fails, spending one of `fail_count` if it is set."""
        with self._lock:
            behaviour = self._behaviour
            if behaviour.fail_status is None:
                return False
            if behaviour.fail_count is None:
                return True
            if behaviour.fail_count == 0:
                return False
            self._behaviour = behaviour.updated(fail_count=behaviour.fail_count - 1)
            return True


def _match(call: Call) -> Route:
    for route in ROUTES:
        if route.method == call.method and route.pattern.fullmatch(call.path):
            return route
    raise not_found(f"Cannot {call.method} {call.path}")


def _is_plain_client(user_agent: str | None) -> bool:
    return not user_agent or user_agent.lower().startswith(_PLAIN_CLIENTS)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-1min"
    sys_version = ""
    # Buffered writes put headers and a small body into one TCP segment.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self.server.fake.handle(self)

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def handle_expect_100(self) -> bool:
        # The buffered writer would otherwise hold "100 Continue" back until the response.
        accepted = super().handle_expect_100()
        self.wfile.flush()
        return accepted

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections would otherwise make server_close() wait for their threads.
    block_on_close = False
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], fake: FakeOneMin) -> None:
        self.fake = fake
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, and this skips that DNS lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)
