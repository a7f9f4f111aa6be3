"""The fake 1min.ai itself, exercised with plain HTTP on loopback."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fake_onemin import FakeOneMin
from tests.fake_onemin.audio import transcript_text

KEY = "test-key-1"
OTHER_KEY = "test-key-2"
CHAT_PATH = "/api/chat-with-ai"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeOneMin]:
    fake = FakeOneMin(host="127.0.0.1", port=0).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake(fake_server: FakeOneMin) -> FakeOneMin:
    fake_server.reset()
    return fake_server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def chat_body(prompt: str = "Hi there", model: str = "gpt-4o-mini", **prompt_fields: Any) -> dict:
    return {"type": "UNIFY_CHAT_WITH_AI", "model": model,
            "promptObject": {"prompt": prompt, **prompt_fields}}


def post_chat(http: requests.Session, fake: FakeOneMin, body: dict, *, stream: bool = False,
              key: str | None = KEY, user_agent: str | None = None,
              timeout: float = 10) -> requests.Response:
    headers = {"API-KEY": key} if key is not None else {}
    if user_agent is not None:
        headers["User-Agent"] = user_agent
    suffix = "?isStreaming=true" if stream else ""
    return http.post(fake.base_url + CHAT_PATH + suffix, json=body, headers=headers,
                     timeout=timeout, stream=stream)


def post_feature(http: requests.Session, fake: FakeOneMin, feature: str, model: str,
                 prompt_object: dict, key: str = KEY, **extra: Any) -> requests.Response:
    body = {"type": feature, "model": model, "promptObject": prompt_object, **extra}
    return http.post(fake.base_url + "/api/features", json=body, headers={"API-KEY": key},
                     timeout=10)


def upload(http: requests.Session, fake: FakeOneMin, filename: str, data: bytes,
           content_type: str | None, key: str = KEY) -> requests.Response:
    part = (filename, data, content_type) if content_type else (filename, data)
    return http.post(fake.base_url + "/api/assets", files={"asset": part},
                     headers={"API-KEY": key}, timeout=10)


def uploaded_content(http: requests.Session, fake: FakeOneMin, filename: str, data: bytes,
                     content_type: str, key: str = KEY) -> dict:
    response = upload(http, fake, filename, data, content_type, key)
    assert response.status_code == 200, response.text
    return response.json()["fileContent"]


def parse_events(raw: bytes) -> list[tuple[str, Any]]:
    """Split an SSE body into (event name, decoded JSON data) pairs."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def read_chunked_frames(sock: socket.socket) -> list[bytes]:
    """Read an HTTP/1.1 chunked response from a raw socket and return each chunk's payload."""
    stream = sock.makefile("rb")
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 200"), status_line
    while stream.readline() not in (b"\r\n", b""):
        pass
    frames = []
    while True:
        size = int(stream.readline().strip(), 16)
        if size == 0:
            return frames
        frames.append(stream.read(size))
        assert stream.read(2) == b"\r\n"


def stream_frames(fake: FakeOneMin, body: dict) -> list[bytes]:
    """Send a streaming chat call on a raw socket and return the payload of each HTTP chunk."""
    payload = json.dumps(body).encode()
    request = (f"POST {CHAT_PATH}?isStreaming=true HTTP/1.1\r\nHost: {fake.host}:{fake.port}\r\n"
               f"API-KEY: {KEY}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
    with socket.create_connection((fake.host, fake.port), timeout=10) as sock:
        sock.sendall(request)
        return read_chunked_frames(sock)


# Auth and basic strictness.

def test_missing_key_is_401(fake, http):
    response = post_chat(http, fake, chat_body(), key=None)

    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "Unauthorized"
    assert body["statusCode"] == 401
    assert "message" in body


def test_wrong_key_is_401(fake, http):
    response = post_chat(http, fake, chat_body(), key="not-a-key")

    assert response.status_code == 401


def test_key_set_is_editable(fake, http):
    fake.keys.add("extra-key")

    assert post_chat(http, fake, chat_body(), key="extra-key").status_code == 200


def test_key_is_recorded_for_forwarding_checks(fake, http):
    post_chat(http, fake, chat_body("record me"))

    sent = fake.requests_to(CHAT_PATH)
    assert len(sent) == 1
    assert sent[0].headers["api-key"] == KEY
    assert sent[0].method == "POST"
    assert sent[0].json == chat_body("record me")


def test_query_is_recorded(fake, http):
    post_chat(http, fake, chat_body(), stream=True).content

    assert fake.requests_to(CHAT_PATH)[0].query == {"isStreaming": "true"}


def test_unknown_model_is_unsupported(fake, http):
    response = post_chat(http, fake, chat_body(model="no-such-model"))

    assert response.status_code == 400
    assert response.json()["errorCode"] == "UNSUPPORTED_MODEL"


def test_disabled_chat_model_is_unsupported(fake, http):
    response = post_chat(http, fake, chat_body(model="gemini-1.5-pro"))

    assert response.status_code == 400
    assert response.json()["errorCode"] == "UNSUPPORTED_MODEL"


def test_catalog_model_chat_rejects(fake, http):
    listed = http.get(fake.base_url + "/models", params={"feature": "UNIFY_CHAT_WITH_AI"}).json()
    assert "o1-pro" in {model["modelId"] for model in listed["models"]}

    response = post_chat(http, fake, chat_body(model="o1-pro"))

    assert response.status_code == 400
    assert response.json()["errorCode"] == "UNSUPPORTED_MODEL"


def test_image_model_is_not_a_chat_model(fake, http):
    response = post_chat(http, fake, chat_body(model="dall-e-3"))

    assert response.json()["errorCode"] == "UNSUPPORTED_MODEL"


def test_stream_unknown_model_is_error_event(fake, http):
    response = post_chat(http, fake, chat_body(model="no-such-model"), stream=True)

    assert response.status_code == 200
    assert parse_events(response.content) == [
        ("error", {"error": "Model no-such-model is not supported"})]


@pytest.mark.parametrize("body", [
    {**chat_body(), "imageList": ["images/x.png"]},
    chat_body(imageList=["images/x.png"]),
])
def test_image_list_rejected(fake, http, body):
    response = post_chat(http, fake, body)

    assert response.status_code == 400
    assert response.json()["errorCode"] == "REQUEST_BODY_VALIDATION_FAILED"
    assert "imageList" in response.json()["message"]
    assert "attachments.images" in response.json()["message"]


def test_unread_fields_rejected(fake, http):
    body = {**chat_body(), "temperature": 0.2}

    response = post_chat(http, fake, body)

    assert response.status_code == 400
    assert "body.temperature" in response.json()["message"]


def test_wrong_type_rejected(fake, http):
    body = {**chat_body(), "type": "CHAT_WITH_AI"}

    response = post_chat(http, fake, body)

    assert response.status_code == 400
    assert response.json()["errorCode"] == "REQUEST_BODY_VALIDATION_FAILED"


def test_non_json_body_rejected(fake, http):
    response = http.post(fake.base_url + CHAT_PATH, data="prompt=hi",
                         headers={"API-KEY": KEY, "Content-Type": "text/plain"})

    assert response.status_code == 400


def test_missing_prompt_rejected(fake, http):
    body = {"type": "UNIFY_CHAT_WITH_AI", "model": "gpt-4o-mini", "promptObject": {}}

    assert post_chat(http, fake, body).status_code == 400


def test_whitespace_prompt_gets_greeting(fake, http):
    response = post_chat(http, fake, chat_body("   "))

    assert response.status_code == 200
    answer = response.json()["aiRecord"]["aiRecordDetail"]["resultObject"][0]
    assert answer == fake.default_answer("gpt-4o-mini", "   ")
    assert "How can I help" in answer


def test_unknown_conversation_rejected(fake, http):
    response = post_chat(http, fake, chat_body(conversationId="no-such-conversation"))

    assert response.status_code == 400
    assert "not found" in response.json()["message"]


# Attachments.

def test_image_attachment_by_path_accepted(fake, http):
    image = uploaded_content(http, fake, "photo.png", PNG_SIGNATURE, "image/png")

    response = post_chat(http, fake, chat_body(attachments={"images": [image["path"]]}))

    assert response.status_code == 200, response.text


def test_image_attachment_by_url_rejected(fake, http):
    image = uploaded_content(http, fake, "photo.png", PNG_SIGNATURE, "image/png")
    url = f"{fake.asset_url}/{image['path']}"

    response = post_chat(http, fake, chat_body(attachments={"images": [url]}))

    assert response.status_code == 400
    assert "not a URL" in response.json()["message"]


def test_image_attachment_unknown_path_rejected(fake, http):
    response = post_chat(http, fake, chat_body(attachments={"images": ["images/none.png"]}))

    assert response.status_code == 400


def test_document_attachment_by_uuid_accepted(fake, http):
    document = uploaded_content(http, fake, "notes.txt", b"hello", "text/plain")

    response = post_chat(http, fake, chat_body(attachments={"files": [document["uuid"]]}))

    assert response.status_code == 200, response.text


def test_document_attachment_by_path_rejected(fake, http):
    document = uploaded_content(http, fake, "notes.pdf", b"%PDF-1.4", "application/pdf")

    response = post_chat(http, fake, chat_body(attachments={"files": [document["path"]]}))

    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == "REQUEST_BODY_VALIDATION_FAILED"
    assert "uuid" in body["message"]
    assert "path" in body["message"]


def test_image_in_files_rejected(fake, http):
    image = uploaded_content(http, fake, "photo.png", PNG_SIGNATURE, "image/png")

    response = post_chat(http, fake, chat_body(attachments={"files": [image["uuid"]]}))

    assert response.status_code == 400


def test_asset_of_other_key_rejected(fake, http):
    image = uploaded_content(http, fake, "photo.png", PNG_SIGNATURE, "image/png", OTHER_KEY)

    response = post_chat(http, fake, chat_body(attachments={"images": [image["path"]]}))

    assert response.status_code == 400
    assert "different API key" in response.json()["message"]


# Non-streaming records.

def test_record_shape_and_tokens(fake, http):
    response = post_chat(http, fake, chat_body("count my tokens please"))

    assert response.status_code == 200
    record = response.json()["aiRecord"]
    assert record["status"] == "SUCCESS"
    assert record["type"] == "UNIFY_CHAT_WITH_AI"
    assert record["model"] == "gpt-4o-mini"
    assert record["aiRecordDetail"]["resultObject"] == [
        fake.default_answer("gpt-4o-mini", "count my tokens please")]
    metadata = record["metadata"]
    assert metadata["inputToken"] > 0
    assert metadata["outputToken"] > 0
    assert metadata["totalToken"] == metadata["inputToken"] + metadata["outputToken"]
    assert metadata["finishReason"] == "stop"
    assert "usedCredit" in response.json()["teamUser"]


def test_used_credit_lags_one_request(fake, http):
    first = post_chat(http, fake, chat_body()).json()
    second = post_chat(http, fake, chat_body()).json()

    assert first["teamUser"]["usedCredit"] == 0
    assert second["teamUser"]["usedCredit"] == first["aiRecord"]["metadata"]["credit"]


def test_default_answer_has_non_ascii(fake):
    answer = fake.default_answer("gpt-4o", "x" * 100)

    assert answer == "Hello from gpt-4o! Привет 👋 You said: " + "x" * 40
    assert len(answer.encode()) > len(answer)


def test_reply_chars_pads_and_cuts(fake, http):
    fake.set(reply_chars=500)

    answer = post_chat(http, fake, chat_body()).json()["aiRecord"]["aiRecordDetail"][
        "resultObject"][0]

    assert len(answer) == 500
    assert answer == fake.default_answer("gpt-4o-mini", "Hi there")
    fake.set(reply_chars=5)
    assert fake.default_answer("gpt-4o-mini", "Hi") == "Hello"


def test_scripted_replies_in_order(fake, http):
    fake.script("first", "second")

    answers = [post_chat(http, fake, chat_body()).json()["aiRecord"]["aiRecordDetail"][
        "resultObject"][0] for _ in range(3)]

    assert answers == ["first", "second", fake.default_answer("gpt-4o-mini", "Hi there")]


def test_zero_tokens(fake, http):
    fake.set(zero_tokens=True)

    metadata = post_chat(http, fake, chat_body()).json()["aiRecord"]["metadata"]

    assert (metadata["inputToken"], metadata["outputToken"], metadata["totalToken"]) == (0, 0, 0)


def test_finish_reason_word_and_omission(fake, http):
    fake.set(finish_reason="end_turn")
    assert post_chat(http, fake, chat_body()).json()["aiRecord"]["metadata"][
        "finishReason"] == "end_turn"

    fake.set(finish_reason=None)
    assert "finishReason" not in post_chat(http, fake, chat_body()).json()["aiRecord"]["metadata"]


def test_result_location_top(fake, http):
    fake.set(result_location="top")
    fake.script("at the top")

    record = post_chat(http, fake, chat_body()).json()["aiRecord"]

    assert record["resultObject"] == ["at the top"]
    assert "resultObject" not in record["aiRecordDetail"]


def test_failed_record(fake, http):
    fake.set(record_status="FAILED", error_message="provider exploded")

    response = post_chat(http, fake, chat_body())

    assert response.status_code == 200
    record = response.json()["aiRecord"]
    assert record["status"] == "FAILED"
    assert record["aiRecordDetail"]["errorMessage"] == "provider exploded"


def test_urls_in_prompt_echo_link_list(fake, http):
    prompt_object = post_chat(http, fake, chat_body("read http://127.0.0.1/page")).json()[
        "aiRecord"]["aiRecordDetail"]["promptObject"]

    assert prompt_object["linkContentList"][0]["link"] == "http://127.0.0.1/page"
    assert prompt_object["searchContentList"] == []


# Streaming.

def test_stream_named_events(fake, http):
    response = post_chat(http, fake, chat_body("stream this"), stream=True)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    raw = response.content
    assert b"[DONE]" not in raw
    events = parse_events(raw)
    names = [name for name, _ in events]
    assert names[0] == "content"
    assert events[0][1] == {"content": ""}
    assert names[-2:] == ["result", "done"]
    assert set(names[:-2]) == {"content"}
    assert events[-1][1] == {"message": "Stream completed"}
    expected = fake.default_answer("gpt-4o-mini", "stream this")
    deltas = [data["content"] for name, data in events if name == "content"]
    assert "".join(deltas) == expected
    assert all(len(delta) <= 4 for delta in deltas)
    record = events[-2][1]["aiRecord"]
    assert record["aiRecordDetail"]["resultObject"] == [expected]
    assert record["metadata"]["outputToken"] > 0


def test_stream_chunk_size_and_no_empty_delta(fake, http):
    fake.set(chunk_size=10, empty_first_delta=False)
    fake.script("abcdefghijklmnopqrstuvwxy")

    events = parse_events(post_chat(http, fake, chat_body(), stream=True).content)

    deltas = [data["content"] for name, data in events if name == "content"]
    assert deltas == ["abcdefghij", "klmnopqrst", "uvwxy"]


def test_stream_keeps_connection_alive(fake, http):
    for _ in range(3):
        assert post_chat(http, fake, chat_body(), stream=True).content.endswith(b"\n\n")

    assert post_chat(http, fake, chat_body()).status_code == 200


def test_split_utf8_one_byte_per_chunk(fake):
    fake.set(split_utf8=True)
    fake.script("Привет 👋")

    frames = stream_frames(fake, chat_body())

    assert all(len(frame) == 1 for frame in frames)
    deltas = [data["content"] for name, data in parse_events(b"".join(frames))
              if name == "content"]
    assert "".join(deltas) == "Привет 👋"


def test_unsplit_stream_writes_whole_events(fake):
    fake.script("Привет 👋")

    frames = stream_frames(fake, chat_body())

    assert all(frame.endswith(b"\n\n") for frame in frames)
    assert frames[0] == b'event: content\ndata: {"content":""}\n\n'


def test_drop_after_chunks(fake, http):
    fake.set(drop_after_chunks=2, chunk_size=3)
    fake.script("abcdefghijkl")

    response = post_chat(http, fake, chat_body(), stream=True)
    received = b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for piece in response.iter_content(chunk_size=None):
            received += piece

    events = parse_events(received)
    assert events == [("content", {"content": ""}), ("content", {"content": "abc"}),
                      ("content", {"content": "def"})]


@pytest.mark.parametrize(("shape", "payload"), [
    ("string", {"error": "boom"}),
    ("object", {"error": {"message": "boom"}}),
    ("message", {"message": "boom"}),
])
def test_error_event_shapes(fake, http, shape, payload):
    fake.set(error_event="boom", error_after_chunks=1, error_event_shape=shape)
    fake.script("abcdefgh")

    response = post_chat(http, fake, chat_body(), stream=True)

    assert response.status_code == 200
    assert parse_events(response.content) == [
        ("content", {"content": ""}), ("content", {"content": "abcd"}), ("error", payload)]


def test_duplicate_full_text_in_result_burst(fake):
    fake.set(duplicate_full_text=True)
    fake.script("abcdefgh")

    frames = stream_frames(fake, chat_body())

    burst = parse_events(frames[-2])
    assert [name for name, _ in burst] == ["content", "result"]
    assert burst[0][1] == {"content": "abcdefgh"}
    assert parse_events(frames[-1]) == [("done", {"message": "Stream completed"})]


def test_client_close_counts_disconnect(fake, http):
    fake.set(chunk_delay=0.05, reply_chars=400)

    response = post_chat(http, fake, chat_body(), stream=True)
    next(response.iter_content(chunk_size=None))
    response.close()

    deadline = time.monotonic() + 5
    while fake.stream_disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.stream_disconnects == 1


def test_finished_stream_is_no_disconnect(fake, http):
    post_chat(http, fake, chat_body(), stream=True).content

    assert fake.stream_disconnects == 0


def test_stall_before_answer_times_out(fake, http):
    fake.set(stall_seconds=5)

    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        post_chat(http, fake, chat_body(), stream=True, timeout=0.3)

    assert time.monotonic() - started < 3
    assert len(fake.requests_to(CHAT_PATH)) == 1


def test_stall_mid_stream(fake, http):
    fake.set(stall_after_chunks=1, stall_mid_stream_seconds=0.3)
    fake.script("abcdefgh")

    response = post_chat(http, fake, chat_body(), stream=True)
    pieces = response.iter_content(chunk_size=None)
    received = b""
    while b'"abcd"' not in received:
        received += next(pieces)
    started = time.monotonic()
    rest = b"".join(pieces)

    assert time.monotonic() - started >= 0.25
    assert b'"efgh"' in rest


def test_concurrent_streams(fake):
    fake.set(chunk_delay=0.01)
    results: list[bool] = []
    lock = threading.Lock()

    def run() -> None:
        with requests.Session() as session:
            ok = all(post_chat(session, fake, chat_body(), stream=True).content.endswith(
                b'data: {"message":"Stream completed"}\n\n') for _ in range(2))
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=run) for _ in range(150)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert results == [True] * 150


# Injected HTTP failures.

def test_429_with_retry_after(fake, http):
    fake.set(fail_status=429, retry_after="7")

    response = post_chat(http, fake, chat_body())

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_fail_count_then_recovers(fake, http):
    fake.set(fail_status=500, fail_count=2)

    statuses = [post_chat(http, fake, chat_body()).status_code for _ in range(3)]

    assert statuses == [500, 500, 200]


def test_fail_status_400_body(fake, http):
    fake.set(fail_status=400, error_code="EXTERNAL_API_RESPONSE_WITH_ERROR",
             error_message="busy", error_details='{"cause": "real cause"}')

    response = post_chat(http, fake, chat_body())

    assert response.status_code == 400
    assert response.json() == {"errorCode": "EXTERNAL_API_RESPONSE_WITH_ERROR",
                               "message": "busy", "details": '{"cause": "real cause"}'}


@pytest.mark.parametrize("status", [403, 522, 502])
def test_cdn_failures_are_html(fake, http, status):
    fake.set(fail_status=status)

    response = post_chat(http, fake, chat_body())

    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.lstrip().startswith("<!DOCTYPE html>")


def test_fail_status_spares_catalog_and_cdn(fake, http):
    image = uploaded_content(http, fake, "photo.png", PNG_SIGNATURE, "image/png")
    fake.set(fail_status=500)

    assert http.get(fake.base_url + "/models?feature=IMAGE_GENERATOR").status_code == 200
    assert http.get(f"{fake.asset_url}/{image['path']}").status_code == 200
    fake.set(fail_catalog=True)
    assert http.get(fake.base_url + "/models?feature=IMAGE_GENERATOR").status_code == 500


def test_fail_status_on_stream_is_http_status(fake, http):
    fake.set(fail_status=401)

    response = post_chat(http, fake, chat_body(), stream=True)

    assert response.status_code == 401
    assert response.json()["statusCode"] == 401


def test_rate_limit_per_key(fake, http):
    fake.set(rate_limit_per_minute=2)

    statuses = [post_chat(http, fake, chat_body()).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    assert post_chat(http, fake, chat_body(), key=OTHER_KEY).status_code == 200


def test_bot_filter_blocks_library_user_agent(fake, http):
    fake.set(block_plain_clients=True)

    blocked = post_chat(http, fake, chat_body())
    allowed = post_chat(http, fake, chat_body(), user_agent="1min-relay/1.0")

    assert blocked.status_code == 403
    assert blocked.headers["Content-Type"].startswith("text/html")
    assert allowed.status_code == 200


def test_set_unknown_field_is_type_error(fake):
    with pytest.raises(TypeError):
        fake.set(no_such_field=1)


def test_set_invalid_value_is_value_error(fake):
    with pytest.raises(ValueError):
        fake.set(fail_status=418)


def test_reset_restores_everything(fake, http):
    fake.set(fail_status=500)
    fake.script("queued")
    fake.keys.add("extra-key")
    post_chat(http, fake, chat_body())

    fake.reset()

    assert fake.received == []
    assert fake.keys == {"test-key-1", "test-key-2"}
    answer = post_chat(http, fake, chat_body()).json()["aiRecord"]["aiRecordDetail"][
        "resultObject"][0]
    assert answer == fake.default_answer("gpt-4o-mini", "Hi there")


def test_unknown_route_is_404(fake, http):
    response = http.get(fake.base_url + "/api/models")

    assert response.status_code == 404


# Catalog.

@pytest.mark.parametrize("feature", [
    "UNIFY_CHAT_WITH_AI", "CODE_GENERATOR", "IMAGE_GENERATOR", "IMAGE_VARIATOR", "IMAGE_EDITOR",
    "SPEECH_TO_TEXT", "AUDIO_TRANSLATOR", "TEXT_TO_SPEECH",
])
def test_catalog_per_feature(fake, http, feature):
    response = http.get(fake.base_url + "/models", params={"feature": feature})

    assert response.status_code == 200
    body = response.json()
    assert body["total"] == len(body["models"]) > 0
    for model in body["models"]:
        assert set(model) == {"modelId", "name", "provider", "status", "features", "modality",
                              "creditMetadata", "deprecationDate"}
        assert feature in model["features"]
        assert model["status"] in {"ACTIVE", "DISABLED"}


def test_catalog_without_feature_is_empty(fake, http):
    assert http.get(fake.base_url + "/models").json() == {"models": [], "total": 0}


def test_catalog_lists_disabled_and_dated(fake, http):
    images = http.get(fake.base_url + "/models?feature=IMAGE_GENERATOR").json()["models"]
    chats = http.get(fake.base_url + "/models?feature=UNIFY_CHAT_WITH_AI").json()["models"]

    by_id = {model["modelId"]: model for model in images + chats}
    assert by_id["black-forest-labs/flux-schnell"]["status"] == "DISABLED"
    assert by_id["claude-3-5-sonnet-20240620"]["status"] == "ACTIVE"
    assert by_id["claude-3-5-sonnet-20240620"]["deprecationDate"] is not None
    assert "image" in by_id["gpt-4o"]["modality"]["INPUT"]
    assert by_id["deepseek-chat"]["modality"]["INPUT"] == ["text"]
    assert by_id["gpt-4o"]["creditMetadata"]["CONTEXT"] > 0


def test_catalog_requests_counted(fake, http):
    for _ in range(3):
        http.get(fake.base_url + "/models?feature=IMAGE_GENERATOR")

    assert fake.catalog_requests == 3


# Assets and the CDN.

def test_upload_and_cdn_serving(fake, http):
    data = PNG_SIGNATURE + b"rest of image"

    response = upload(http, fake, "photo.png", data, "image/png")

    assert response.status_code == 200
    body = response.json()
    path = body["fileContent"]["path"]
    assert re.fullmatch(r"images/\d{4}_\d{2}_\d{2}_[0-9a-f]+_photo\.png", path)
    assert body["asset"]["key"] == path
    assert body["asset"]["size"] == len(data)
    assert body["fileContent"]["type"] == "png"
    assert body["fileContent"]["uuid"]
    served = requests.get(f"{fake.asset_url}/{path}", timeout=10)
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["Content-Type"] == "image/png"


def test_cdn_unknown_key_is_404(fake, http):
    assert http.get(fake.asset_url + "/images/missing.png").status_code == 404


def test_upload_folders_by_kind(fake, http):
    audio = uploaded_content(http, fake, "talk.mp3", b"ID3", "audio/mpeg")
    document = uploaded_content(http, fake, "paper.pdf", b"%PDF", "application/pdf")

    assert audio["path"].startswith("audio/")
    assert document["path"].startswith("documents/")


def test_upload_markdown_rejected(fake, http):
    response = upload(http, fake, "readme.md", b"# Title", "text/markdown")

    assert response.status_code == 400
    assert response.json()["errorCode"] == "UNSUPPORTED_FILE_TYPE"


def test_upload_markdown_as_plain_text_accepted(fake, http):
    assert upload(http, fake, "readme.md", b"# Title", "text/plain").status_code == 200


def test_upload_without_extension_rejected(fake, http):
    response = upload(http, fake, "photo", PNG_SIGNATURE, "image/png")

    assert response.status_code == 400
    assert response.json()["errorCode"] == "UNSUPPORTED_FILE_TYPE"


def test_upload_type_mismatch_rejected(fake, http):
    response = upload(http, fake, "photo.png", PNG_SIGNATURE, None)

    assert response.status_code == 400
    assert "does not match" in response.json()["message"]


def test_upload_wrong_part_name_rejected(fake, http):
    response = http.post(fake.base_url + "/api/assets",
                         files={"file": ("photo.png", PNG_SIGNATURE, "image/png")},
                         headers={"API-KEY": KEY})

    assert response.status_code == 400


def test_upload_records_files(fake, http):
    upload(http, fake, "photo.png", PNG_SIGNATURE, "image/png")

    recorded = fake.requests_to("/api/assets")[0]
    assert recorded.files["asset"] == ("photo.png", "image/png", PNG_SIGNATURE)


# Conversations.

def test_conversation_life_cycle(fake, http):
    created = http.post(fake.base_url + "/api/conversations", headers={"API-KEY": KEY},
                        json={"type": "UNIFY_CHAT_WITH_AI", "title": "t", "model": "gpt-4o"})
    conversation_id = created.json()["conversation"]["uuid"]

    chat = post_chat(http, fake, chat_body("first turn", conversationId=conversation_id))
    deleted = http.delete(f"{fake.base_url}/api/conversations/{conversation_id}",
                          headers={"API-KEY": KEY})
    deleted_again = http.delete(f"{fake.base_url}/api/conversations/{conversation_id}",
                                headers={"API-KEY": KEY})

    assert created.status_code == 200
    assert chat.json()["aiRecord"]["conversationId"] == conversation_id
    assert deleted.status_code == 200
    assert deleted_again.status_code == 404


def test_conversation_turns_recorded(fake, http):
    created = http.post(fake.base_url + "/api/conversations", headers={"API-KEY": KEY},
                        json={"type": "UNIFY_CHAT_WITH_AI", "model": "gpt-4o"}).json()
    conversation_id = created["conversation"]["uuid"]
    fake.script("reply one")

    post_chat(http, fake, chat_body("turn one", conversationId=conversation_id))

    assert fake.conversations[conversation_id].turns == [("turn one", "reply one")]


@pytest.mark.parametrize(("body", "fragment"), [
    ({"type": "UNIFY_CHAT_WITH_AI", "title": "t"}, "model"),
    ({"type": "UNIFY_CHAT_WITH_AI", "model": "gpt-4o", "title": "x" * 91}, "90"),
    ({"type": "UNIFY_CHAT_WITH_AI", "model": "gpt-4o", "fileList": ["no-such-uuid"]}, "not found"),
])
def test_conversation_validation(fake, http, body, fragment):
    response = http.post(fake.base_url + "/api/conversations", headers={"API-KEY": KEY},
                         json=body)

    assert response.status_code == 400
    assert response.json()["errorCode"] == "REQUEST_BODY_VALIDATION_FAILED"
    assert fragment in response.json()["message"]


# Image features.

def test_gpt_image_without_quality(fake, http):
    response = post_feature(http, fake, "IMAGE_GENERATOR", "gpt-image-1",
                            {"prompt": "a cat", "n": 1, "size": "1024x1024"})

    assert response.status_code == 400
    assert response.json()["errorCode"] == "MISSING_REQUIRED_FIELDS"


def test_image_generation_result_keys(fake, http):
    response = post_feature(http, fake, "IMAGE_GENERATOR", "gpt-image-1",
                            {"prompt": "a cat", "n": 2, "size": "1024x1024", "quality": "low"})

    assert response.status_code == 200, response.text
    record = response.json()["aiRecord"]
    keys = record["aiRecordDetail"]["resultObject"]
    assert len(keys) == 2
    assert all(key.startswith("images/") for key in keys)
    assert all(key.endswith(".png") for key in keys)
    assert record["temporaryUrl"].startswith(f"{fake.asset_url}/{keys[0]}?")
    assert record["metadata"] == {}
    for key in keys:
        served = http.get(f"{fake.asset_url}/{key}")
        assert served.content.startswith(PNG_SIGNATURE)
        assert served.headers["Content-Type"] == "image/png"
    assert http.get(record["temporaryUrl"]).content.startswith(PNG_SIGNATURE)


def test_midjourney_returns_four(fake, http):
    response = post_feature(http, fake, "IMAGE_GENERATOR", "midjourney",
                            {"prompt": "a cat", "mode": "fast", "n": 1, "aspect_width": 1,
                             "aspect_height": 1, "isNiji6": False, "maintainModeration": True})

    assert len(response.json()["aiRecord"]["aiRecordDetail"]["resultObject"]) == 4


@pytest.mark.parametrize(("model", "prompt_object", "code"), [
    ("dall-e-3", {"prompt": "x", "size": "512x512"}, "EXTERNAL_API_RESPONSE_WITH_ERROR"),
    ("stable-diffusion-xl-1024-v1-0", {"prompt": "x", "size": "1000x1000"},
     "EXTERNAL_API_RESPONSE_WITH_ERROR"),
    ("black-forest-labs/flux-dev", {"prompt": "x", "size": "1024x1024"},
     "REQUEST_BODY_VALIDATION_FAILED"),
    ("black-forest-labs/flux-dev", {"prompt": "x", "aspect_ratio": "7:3"},
     "REQUEST_BODY_VALIDATION_FAILED"),
    ("black-forest-labs/flux-schnell", {"prompt": "x"}, "UNSUPPORTED_MODEL"),
    ("gpt-4o", {"prompt": "x"}, "UNSUPPORTED_MODEL"),
    ("dall-e-2", {"n": 1}, "MISSING_REQUIRED_FIELDS"),
])
def test_image_generation_rejections(fake, http, model, prompt_object, code):
    response = post_feature(http, fake, "IMAGE_GENERATOR", model, prompt_object)

    assert response.status_code == 400
    assert response.json()["errorCode"] == code


def test_provider_error_details_json_string(fake, http):
    response = post_feature(http, fake, "IMAGE_GENERATOR", "dall-e-3",
                            {"prompt": "x", "size": "512x512"})

    details = json.loads(response.json()["details"])
    assert "512x512" in details["error"]["message"]


def test_image_variation_needs_asset_path(fake, http):
    image = uploaded_content(http, fake, "photo.png", PNG_SIGNATURE, "image/png")

    accepted = post_feature(http, fake, "IMAGE_VARIATOR", "dall-e-2",
                            {"imageUrl": image["path"], "n": 2, "size": "256x256"})
    by_url = post_feature(http, fake, "IMAGE_VARIATOR", "dall-e-2",
                          {"imageUrl": f"{fake.asset_url}/{image['path']}", "n": 1})

    assert accepted.status_code == 200
    assert len(accepted.json()["aiRecord"]["aiRecordDetail"]["resultObject"]) == 2
    assert by_url.status_code == 400


def test_variation_of_generated_image(fake, http):
    generated = post_feature(http, fake, "IMAGE_GENERATOR", "dall-e-2", {"prompt": "a dog"})
    key = generated.json()["aiRecord"]["aiRecordDetail"]["resultObject"][0]

    response = post_feature(http, fake, "IMAGE_VARIATOR", "midjourney",
                            {"imageUrl": key, "mode": "fast"})

    assert response.status_code == 200, response.text


def test_image_edit(fake, http):
    image = uploaded_content(http, fake, "photo.png", PNG_SIGNATURE, "image/png")

    response = post_feature(http, fake, "IMAGE_EDITOR", "gpt-image-1",
                            {"imageUrl": image["path"], "prompt": "add a hat", "quality": "low"})
    without_prompt = post_feature(http, fake, "IMAGE_EDITOR", "gpt-image-1",
                                  {"imageUrl": image["path"]})

    assert response.status_code == 200
    assert without_prompt.json()["errorCode"] == "MISSING_REQUIRED_FIELDS"


# Other features.

@pytest.mark.parametrize(("audio_format", "signature"), [
    ("mp3", b"ID3"),
    ("wav", b"RIFF"),
    ("opus", b"OggS"),
    ("flac", b"fLaC"),
    ("aac", b"\xff\xf1"),
])
def test_speech_envelope_and_signature(fake, http, audio_format, signature):
    response = post_feature(http, fake, "TEXT_TO_SPEECH", "tts-1",
                            {"text": "hello", "voice": "alloy", "response_format": audio_format})

    assert response.status_code == 200, response.text
    record = response.json()["aiRecord"]
    key = record["aiRecordDetail"]["resultObject"][0]
    assert key.startswith("audios/")
    assert key.endswith("." + audio_format)
    audio = http.get(record["temporaryUrl"]).content
    assert audio.startswith(signature)
    assert http.get(f"{fake.asset_url}/{key}").content == audio


def test_wav_header_is_consistent(fake, http):
    response = post_feature(http, fake, "TEXT_TO_SPEECH", "tts-1",
                            {"text": "hello", "voice": "alloy", "response_format": "wav"})
    audio = http.get(response.json()["aiRecord"]["temporaryUrl"]).content

    assert audio[8:12] == b"WAVE"
    assert int.from_bytes(audio[4:8], "little") == len(audio) - 8


def test_speech_raw_bytes_mode(fake, http):
    fake.set(tts_raw_bytes=True)

    response = post_feature(http, fake, "TEXT_TO_SPEECH", "tts-1",
                            {"text": "hello", "voice": "alloy"})

    assert response.headers["Content-Type"] == "audio/mpeg"
    assert response.content.startswith(b"ID3")


def test_speech_without_temporary_url(fake, http):
    fake.set(tts_temporary_url="missing")

    response = post_feature(http, fake, "TEXT_TO_SPEECH", "tts-1", {"text": "hello", "voice": "alloy"})

    record = response.json()["aiRecord"]
    assert "temporaryUrl" not in record
    key = record["aiRecordDetail"]["resultObject"][0]
    assert http.get(f"{fake.asset_url}/{key}").content.startswith(b"ID3")


def test_speech_expired_temporary_url(fake, http):
    fake.set(tts_temporary_url="expired")

    response = post_feature(http, fake, "TEXT_TO_SPEECH", "tts-1", {"text": "hello", "voice": "alloy"})

    record = response.json()["aiRecord"]
    expired = http.get(record["temporaryUrl"])
    assert expired.status_code == 403
    assert b"Request has expired" in expired.content
    key = record["aiRecordDetail"]["resultObject"][0]
    assert http.get(f"{fake.asset_url}/{key}").status_code == 200


def test_temporary_url_mode_is_checked(fake):
    with pytest.raises(ValueError):
        fake.set(tts_temporary_url="stale")


def test_qwen_speech_is_always_wav(fake, http):
    response = post_feature(http, fake, "TEXT_TO_SPEECH", "qwen3-tts-flash",
                            {"text": "hello", "response_format": "mp3"})

    assert response.json()["aiRecord"]["aiRecordDetail"]["resultObject"][0].endswith(".wav")


@pytest.mark.parametrize(("model", "prompt_object"), [
    ("tts-1", {"text": "x" * 4097, "voice": "alloy"}),
    ("tts-1", {"text": "x", "voice": "alloy", "speed": 5}),
    ("elevenlabs-tts", {"text": "x", "voice_id": "v1", "speed": 1.0}),
    ("elevenlabs-tts", {"text": "x", "voice_id": "v1", "output_format": "wav"}),
])
def test_speech_rejections(fake, http, model, prompt_object):
    assert post_feature(http, fake, "TEXT_TO_SPEECH", model, prompt_object).status_code == 400


def test_transcription_text_and_json(fake, http):
    audio = uploaded_content(http, fake, "talk.mp3", b"ID3", "audio/mpeg")

    plain = post_feature(http, fake, "SPEECH_TO_TEXT", "whisper-1", {"audioUrl": audio["path"]})
    fake.set(stt_json_text=True)
    wrapped = post_feature(http, fake, "SPEECH_TO_TEXT", "whisper-1", {"audioUrl": audio["path"]})

    assert plain.json()["aiRecord"]["aiRecordDetail"]["resultObject"] == [
        transcript_text("talk.mp3")]
    assert json.loads(wrapped.json()["aiRecord"]["aiRecordDetail"]["resultObject"][0]) == {
        "text": transcript_text("talk.mp3")}


@pytest.mark.parametrize(("model", "prompt_object_extra"), [
    ("whisper-1", {"language": "en-US"}),
    ("latest_long", {"language": "en"}),
    ("whisper-1", {"prompt": "context"}),
])
def test_transcription_rejections(fake, http, model, prompt_object_extra):
    audio = uploaded_content(http, fake, "talk.wav", b"RIFF", "audio/wav")

    response = post_feature(http, fake, "SPEECH_TO_TEXT", model,
                            {"audioUrl": audio["path"], **prompt_object_extra})

    assert response.status_code == 400


def test_transcription_needs_audio_asset(fake, http):
    image = uploaded_content(http, fake, "photo.png", PNG_SIGNATURE, "image/png")

    response = post_feature(http, fake, "SPEECH_TO_TEXT", "whisper-1", {"audioUrl": image["path"]})

    assert response.status_code == 400


def test_translation(fake, http):
    audio = uploaded_content(http, fake, "talk.ogg", b"OggS", "audio/ogg")

    response = post_feature(http, fake, "AUDIO_TRANSLATOR", "whisper-1",
                            {"audioUrl": audio["path"]})

    assert response.json()["aiRecord"]["aiRecordDetail"]["resultObject"][0].startswith(
        "Translation of talk.ogg")


def test_code_generator(fake, http):
    fake.script("print('hi')")

    response = post_feature(http, fake, "CODE_GENERATOR", "gpt-4o", {"prompt": "write code"},
                            conversationId="CODE_GENERATOR")

    record = response.json()["aiRecord"]
    assert record["aiRecordDetail"]["resultObject"] == ["print('hi')"]
    assert record["metadata"]["outputToken"] > 0


@pytest.mark.parametrize("feature", ["CHAT_WITH_AI", "CHAT_WITH_IMAGE", "NO_SUCH_FEATURE"])
def test_unsupported_feature_type(fake, http, feature):
    response = post_feature(http, fake, feature, "gpt-4o", {"prompt": "x"})

    assert response.status_code == 400
    assert response.json()["message"] == "Unsupported feature type"


def test_feature_streaming_rejected(fake, http):
    response = http.post(fake.base_url + "/api/features?isStreaming=true",
                         headers={"API-KEY": KEY},
                         json={"type": "CODE_GENERATOR", "model": "gpt-4o",
                               "promptObject": {"prompt": "x"}})

    assert response.status_code == 400


def test_async_result_polling(fake, http):
    started = post_feature(http, fake, "IMAGE_GENERATOR", "dall-e-2", {"prompt": "x"},
                           **{"async": True}).json()["aiRecord"]

    polled = http.get(f"{fake.base_url}/api/results/{started['uuid']}", headers={"API-KEY": KEY})

    assert started["status"] == "PROCESSING"
    assert polled.json()["aiRecord"]["status"] == "SUCCESS"
    assert len(polled.json()["aiRecord"]["aiRecordDetail"]["resultObject"]) == 1


# Running alone.

def test_command_line_serves_until_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_onemin", "--port", "0", "--reply-chars", "50"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base_url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
        response = requests.post(base_url + CHAT_PATH, json=chat_body(),
                                 headers={"API-KEY": KEY}, timeout=10)
        assert len(response.json()["aiRecord"]["aiRecordDetail"]["resultObject"][0]) == 50
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=10)
    assert exit_code == 0
