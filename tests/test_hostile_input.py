"""Hostile input: random and broken bodies, wrong content types and path tricks never cause a 500.

Every route that reads client input is listed in one of the tables below, and
``test_every_route_is_fuzzed`` fails for a route that is missing, so a new endpoint joins with
one line. JSON routes get property-based fuzzing (hypothesis) and fixed hard cases. Every route
that takes a body also gets the malformed multipart cases, and routes with an id in the path get
the path tricks. The property everywhere: the relay answers within the request timeout, never
with a 5xx, and every 4xx is an OpenAI error object.

``RELAY_FUZZ_EXAMPLES`` sets how many examples each property runs (default 200).
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import socket
import wave
from dataclasses import dataclass, field

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LOOPBACK
from tests.openapi_check import assert_matches_schema
from tests.test_observability import sample, wait_for_sample

FUZZ_EXAMPLES = int(os.environ.get("RELAY_FUZZ_EXAMPLES", "200"))
TIMEOUT = 20
AUTH = {"Authorization": "Bearer test-key-1"}


@dataclass(frozen=True)
class JsonRoute:
    """A route that reads a JSON body. ``fields`` are parameter names worth mutating."""

    rule: str
    method: str
    url: str
    valid_body: dict
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class MultipartRoute:
    """A route that reads multipart/form-data: text ``fields`` and ``files`` as (filename, bytes, type)."""

    rule: str
    method: str
    url: str
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class IdRoute:
    """A route with an id in its path; ``url`` has ``{}`` where the id goes."""

    rule: str
    method: str
    url: str


CHAT_FIELDS = (
    "model", "messages", "stream", "stream_options", "temperature", "top_p", "n", "max_tokens",
    "max_completion_tokens", "presence_penalty", "frequency_penalty", "seed", "user", "logit_bias",
    "metadata", "tools", "tool_choice", "response_format", "stop", "web_search", "web_search_options",
    "num_of_site", "max_word", "logprobs", "modalities", "audio", "parallel_tool_calls",
)

def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(b"\x00\x00" * 800)
    return buffer.getvalue()


PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)

JSON_ROUTES = (
    JsonRoute(
        "/v1/chat/completions",
        "POST",
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
        CHAT_FIELDS,
    ),
    JsonRoute(
        "/v1/completions", "POST", "/v1/completions", {"model": "gpt-4o-mini", "prompt": "Hi"},
        ("model", "prompt", "stream", "n", "stop", "max_tokens", "echo", "suffix", "temperature"),
    ),
    JsonRoute("/v1/embeddings", "POST", "/v1/embeddings", {"model": "text-embedding-3-small", "input": "Hi"}, ("model", "input")),
    JsonRoute(
        "/v1/responses", "POST", "/v1/responses", {"model": "gpt-4o-mini", "input": "Hi"},
        ("model", "input", "instructions", "tools", "tool_choice", "text", "max_output_tokens", "stream", "store",
         "previous_response_id"),
    ),
    JsonRoute(
        "/v1/images/generations", "POST", "/v1/images/generations", {"model": "dall-e-2", "prompt": "a cat"},
        ("model", "prompt", "n", "size", "quality", "style", "response_format", "background", "output_format"),
    ),
    JsonRoute(
        "/v1/audio/speech", "POST", "/v1/audio/speech", {"model": "tts-1", "input": "Hi", "voice": "alloy"},
        ("model", "input", "voice", "response_format", "speed", "instructions"),
    ),
    JsonRoute(
        "/v1/assistants", "POST", "/v1/assistants", {"model": "gpt-4o-mini", "name": "helper"},
        ("model", "name", "instructions", "tools", "tool_resources", "file_ids", "metadata"),
    ),
)
MULTIPART_ROUTES: tuple[MultipartRoute, ...] = (
    MultipartRoute("/v1/files", "POST", "/v1/files", {"purpose": "assistants"}, {"file": ("notes.txt", b"hello", "text/plain")}),
    MultipartRoute(
        "/v1/audio/transcriptions", "POST", "/v1/audio/transcriptions", {"model": "whisper-1"},
        {"file": ("talk.wav", _wav(), "audio/wav")},
    ),
    MultipartRoute(
        "/v1/audio/translations", "POST", "/v1/audio/translations", {"model": "whisper-1"},
        {"file": ("talk.wav", _wav(), "audio/wav")},
    ),
    MultipartRoute(
        "/v1/images/variations", "POST", "/v1/images/variations", {"model": "dall-e-2"},
        {"image": ("cat.png", PNG_1X1, "image/png")},
    ),
    MultipartRoute(
        "/v1/images/edits", "POST", "/v1/images/edits", {"model": "gpt-image-1", "prompt": "add a hat"},
        {"image": ("cat.png", PNG_1X1, "image/png")},
    ),
)
ID_ROUTES = (
    IdRoute("/v1/models/<path:model>", "GET", "/v1/models/{}"),
    IdRoute("/v1/responses/<response_id>", "GET", "/v1/responses/{}"),
    IdRoute("/v1/responses/<response_id>", "DELETE", "/v1/responses/{}"),
    IdRoute("/v1/files/<file_id>", "GET", "/v1/files/{}"),
    IdRoute("/v1/files/<file_id>", "DELETE", "/v1/files/{}"),
    IdRoute("/v1/files/<file_id>/content", "GET", "/v1/files/{}/content"),
    IdRoute("/v1/assistants/<assistant_id>", "GET", "/v1/assistants/{}"),
    IdRoute("/v1/assistants/<assistant_id>", "DELETE", "/v1/assistants/{}"),
)
# Routes that read nothing from the client but the method, the path and optional query parameters.
NO_INPUT_ROUTES = {("/v1/models", "GET"), ("/v1/files", "GET"), ("/v1/assistants", "GET")}

BODY_ROUTES = JSON_ROUTES + MULTIPART_ROUTES
CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=utf-16",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "application/octet-stream",
    "",
)


@pytest.fixture
def fuzz_relay(relay_factory):
    # No rate limit, or hundreds of requests per second would be rejected with 429.
    return relay_factory(MEMCACHED_HOST="", RATE_LIMIT="off")


def assert_handled(response: requests.Response, allow_success: bool = True) -> None:
    """Check the property: no 5xx, and every 4xx is an OpenAI error object."""
    assert response.status_code < 500, response.text[:2000]
    if response.status_code < 400:
        assert allow_success, f"malformed input was accepted: {response.status_code}"
        return
    assert_matches_schema("ErrorResponse", response.json())


def send(relay, route, body: bytes, content_type: str, headers: dict | None = None) -> requests.Response:
    all_headers = {**AUTH, **(headers or {})}
    if content_type:
        all_headers["Content-Type"] = content_type
    return requests.request(route.method, relay.url(route.url), data=body, headers=all_headers, timeout=TIMEOUT)


# --- coverage ----------------------------------------------------------------------------------


def test_every_route_is_fuzzed(relay):
    covered = (
        {(route.rule, route.method) for route in BODY_ROUTES + ID_ROUTES}
        | NO_INPUT_ROUTES
    )
    missing = []
    for rule in relay.app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("service."):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if (rule.rule, method) not in covered:
                missing.append(f"{method} {rule.rule}")

    assert not missing, f"add these routes to a table in tests/test_hostile_input.py: {missing}"


# --- JSON properties ---------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_bodies(draw, route: JsonRoute) -> dict:
    """Start from the route's valid body and change, add or remove a few fields."""
    body = json.loads(json.dumps(route.valid_body))
    names = st.sampled_from(sorted(set(route.fields) | set(body))) | st.text(max_size=12)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["set", "delete", "nested"]))
        name = draw(names)
        if action == "set":
            body[name] = draw(json_values)
        elif action == "delete":
            body.pop(name, None)
        else:
            container = body.get(name)
            if isinstance(container, list) and container:
                index = draw(st.integers(0, len(container) - 1))
                element = container[index]
                if isinstance(element, dict) and element and draw(st.booleans()):
                    element[draw(st.sampled_from(sorted(element)))] = draw(json_values)
                else:
                    container[index] = draw(json_values)
            else:
                body[name] = [draw(json_values)]
    return body


@st.composite
def encoded(draw, value) -> bytes:
    """Encode a JSON value, sometimes breaking the bytes: truncation, bad UTF-8, lone surrogates."""
    text = json.dumps(value, allow_nan=True, ensure_ascii=draw(st.booleans()))
    damage = draw(st.sampled_from(["none", "none", "truncate", "bad_utf8", "surrogate", "bom"]))
    raw = text.encode("utf-8", "surrogatepass")
    if damage == "truncate" and raw:
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if damage == "bad_utf8":
        position = draw(st.integers(0, len(raw)))
        return raw[:position] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"])) + raw[position:]
    if damage == "surrogate":
        # A lone UTF-16 surrogate escape inside the first string value, which JSON allows syntactically.
        return re.sub(rb'"([^"]*)"', rb'"\\ud800\1"', raw, count=1)
    if damage == "bom":
        return b"\xef\xbb\xbf" + raw
    return raw


FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("route", JSON_ROUTES, ids=lambda route: route.url)
@FUZZ_SETTINGS
@given(data=st.data())
def test_json_route_random_values(fuzz_relay, route, data):
    body = data.draw(encoded(data.draw(json_values)))
    content_type = data.draw(st.sampled_from(CONTENT_TYPES))

    assert_handled(send(fuzz_relay, route, body, content_type))


@pytest.mark.parametrize("route", JSON_ROUTES, ids=lambda route: route.url)
@FUZZ_SETTINGS
@given(data=st.data())
def test_json_route_mutated_bodies(fuzz_relay, route, data):
    body = data.draw(encoded(data.draw(mutated_bodies(route))))
    content_type = data.draw(st.sampled_from(CONTENT_TYPES))

    assert_handled(send(fuzz_relay, route, body, content_type))


def raw_exchange(relay, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send a request byte for byte (HTTP clients validate and normalise what they send)."""
    port = int(relay.base_url.rsplit(":", 1)[1])
    with socket.create_connection((LOOPBACK, port), timeout=TIMEOUT) as connection:
        connection.sendall(head + b"\r\n" + body)
        response = http.client.HTTPResponse(connection)
        response.begin()
        return response.status, response.read()


@pytest.mark.parametrize("route", JSON_ROUTES, ids=lambda route: route.url)
@FUZZ_SETTINGS
@given(authorization=st.binary(max_size=60).filter(lambda value: b"\r" not in value and b"\n" not in value))
def test_json_route_random_authorization(fuzz_relay, route, authorization):
    body = json.dumps(route.valid_body).encode()
    head = (
        f"{route.method} {route.url} HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    ).encode() + b"Authorization: " + authorization + b"\r\n"

    status, answer = raw_exchange(fuzz_relay, head, body)

    assert status < 500, answer[:2000]
    if status >= 400:
        assert_matches_schema("ErrorResponse", json.loads(answer))


def deep_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


HARD_CASES = {
    "deep list at top": lambda route: deep_list(200_000),
    "deep object at top": lambda route: deep_object(200_000),
    "deep list in every field": lambda route: json.dumps({name: None for name in route.valid_body}).replace(
        "null", deep_list(5_000)
    ),
    "deep list just under the parser limit": lambda route: json.dumps(
        {**route.valid_body, "metadata": None}
    ).replace("null", deep_list(900)),
    "huge string in every field": lambda route: json.dumps({name: "x" * 2_000_000 for name in route.valid_body}),
    "huge field name": lambda route: json.dumps({**route.valid_body, "k" * 1_000_000: 1}),
    "many fields": lambda route: json.dumps({**{f"f{index}": index for index in range(50_000)}, **route.valid_body}),
    "NUL bytes": lambda route: json.dumps(route.valid_body).replace('"', '"\\u0000', 1),
    "raw NUL byte": lambda route: "\x00" + json.dumps(route.valid_body),
    "only whitespace": lambda route: " \n\t ",
    "JSON null": lambda route: "null",
    "number with huge exponent": lambda route: json.dumps({**route.valid_body, "temperature": None}).replace(
        "null", "1e999999"
    ),
    "integer with 5000 digits": lambda route: json.dumps({**route.valid_body, "max_tokens": None}).replace(
        "null", "9" * 5000
    ),
}


@pytest.mark.parametrize("route", JSON_ROUTES, ids=lambda route: route.url)
@pytest.mark.parametrize("case", sorted(HARD_CASES))
def test_json_route_hard_cases(fuzz_relay, route, case):
    body = HARD_CASES[case](route).encode("utf-8")

    assert_handled(send(fuzz_relay, route, body, "application/json"))


def test_huge_valid_prompt_accepted(fuzz_relay, fake_onemin):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "word " * 400_000}]}

    response = requests.post(fuzz_relay.url("/v1/chat/completions"), json=body, headers=AUTH, timeout=TIMEOUT)

    assert response.status_code == 200
    assert len(fake_onemin.requests_to("/api/chat-with-ai")[-1].json["promptObject"]["prompt"]) == 2_000_000


# --- multipart ---------------------------------------------------------------------------------

BOUNDARY = "relay-fuzz-boundary"


def multipart_body(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]], boundary: str) -> bytes:
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, content, content_type) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def form_of(route) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """Return the form a route is sent: its own for multipart routes, its JSON fields otherwise."""
    if isinstance(route, MultipartRoute):
        return dict(route.fields), dict(route.files)
    return {name: json.dumps(value) for name, value in route.valid_body.items()}, {}


def nameless_first_part(fields, files) -> bytes:
    body = multipart_body(fields, files, BOUNDARY)
    return body.replace(b'form-data; name="', b'form-data; nameless="', 1)


MULTIPART_CASES = {
    "no boundary parameter": lambda fields, files: ("multipart/form-data", multipart_body(fields, files, BOUNDARY)),
    "boundary not in body": lambda fields, files: (
        f"multipart/form-data; boundary={BOUNDARY}",
        multipart_body(fields, files, "some-other-boundary"),
    ),
    "truncated in the middle": lambda fields, files: (
        f"multipart/form-data; boundary={BOUNDARY}",
        multipart_body(fields, files, BOUNDARY)[: len(multipart_body(fields, files, BOUNDARY)) // 2],
    ),
    "no closing boundary": lambda fields, files: (
        f"multipart/form-data; boundary={BOUNDARY}",
        multipart_body(fields, files, BOUNDARY).removesuffix(f"--{BOUNDARY}--\r\n".encode()),
    ),
    "empty body": lambda fields, files: (f"multipart/form-data; boundary={BOUNDARY}", b""),
    "part without a name": lambda fields, files: (
        f"multipart/form-data; boundary={BOUNDARY}",
        nameless_first_part(fields, files),
    ),
    "boundary of 300 characters": lambda fields, files: (
        f"multipart/form-data; boundary={'b' * 300}",
        multipart_body(fields, files, "b" * 300),
    ),
    "headers without blank line": lambda fields, files: (
        f"multipart/form-data; boundary={BOUNDARY}",
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n'.encode(),
    ),
}


# Forms that still carry every field a multipart route needs: such a route may accept them.
ODD_BUT_COMPLETE_FORMS = {"part without a name", "boundary of 300 characters"}


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda route: route.url)
@pytest.mark.parametrize("case", sorted(MULTIPART_CASES))
def test_malformed_multipart_rejected(fuzz_relay, route, case):
    content_type, body = MULTIPART_CASES[case](*form_of(route))

    response = send(fuzz_relay, route, body, content_type)

    if isinstance(route, MultipartRoute) and case in ODD_BUT_COMPLETE_FORMS:
        assert_handled(response)
        return
    assert 400 <= response.status_code < 500, response.text[:2000]
    assert_matches_schema("ErrorResponse", response.json())


def test_truncated_upload_frees_connection(fuzz_relay):
    """A client that announces a body and stops sending never reaches a worker thread."""
    with socket.create_connection((LOOPBACK, int(fuzz_relay.base_url.rsplit(":", 1)[1])), timeout=5) as connection:
        connection.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer test-key-1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n" + b'{"model": "gpt-4o'
        )

    after = requests.post(
        fuzz_relay.url("/v1/chat/completions"),
        json=JSON_ROUTES[0].valid_body,
        headers=AUTH,
        timeout=TIMEOUT,
    )

    samples = wait_for_sample(
        fuzz_relay, "relay_requests_total", 1, route="/v1/chat/completions", method="POST", status="200",
        model="gpt-4o-mini",
    )
    counted = sum(
        value
        for (name, labels), value in samples.items()
        if name == "relay_requests_total" and ("route", "/v1/chat/completions") in labels
    )
    assert after.status_code == 200
    # Only the complete request reached the application; the truncated one held no worker thread.
    assert counted == 1
    assert sample(samples, "relay_requests_in_progress") == 0


# --- path tricks -------------------------------------------------------------------------------

PATH_TRICKS = (
    "../",
    "..%2f",
    "%2e%2e",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%5c..%5cwindows",
    "....//....//",
    "%252e%252e%252f",
    "%00",
    "gpt-4o-mini%00",
    "gpt-4o-mini%00.json",
    "%ff%fe",
    "%c0%ae%c0%ae%2f",
    "gpt-4o-mini/../../v1/models",
    "/etc/passwd",
    "%2F%2Fexample.com",
    "x" * 8000,
    "%41" * 20000,
)


# The fake's own routes; a path tricked into anything else would show up in its log.
UPSTREAM_PATHS = re.compile(r"/models|/api/(chat-with-ai|features|assets|conversations(/[0-9a-f-]+)?|results/[0-9a-f-]+)")


@pytest.mark.parametrize("route", ID_ROUTES, ids=lambda route: route.url)
@pytest.mark.parametrize("trick", PATH_TRICKS, ids=lambda trick: trick[:30])
def test_path_tricks_are_404_or_400(fuzz_relay, fake_onemin, route, trick):
    path = route.url.format(trick)
    head = f"{route.method} {path} HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer test-key-1\r\nConnection: close\r\n"
    status, body = raw_exchange(fuzz_relay, head.encode())

    assert status in (400, 404), body[:500]
    assert_matches_schema("ErrorResponse", json.loads(body))
    for sent in fake_onemin.received:
        assert UPSTREAM_PATHS.fullmatch(sent.path), sent.path
