"""Several choices (n), stop sequences and token limits on chat completions."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.openapi_check import assert_matches_schema
from utils.common import calculate_token

KEY = "test-key-1"
MODEL = "gpt-4o-mini"
ASK = [{"role": "user", "content": "Tell me something"}]


def _chat(relay, body: dict, **kwargs) -> requests.Response:
    return requests.post(
        relay.url("/v1/chat/completions"),
        json={"model": MODEL, "messages": ASK, **body},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
        **kwargs,
    )


def _chunks(response: requests.Response) -> list[dict]:
    payloads = [line[len("data: "):] for line in response.text.split("\n") if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    for chunk in chunks:
        assert_matches_schema("CreateChatCompletionStreamResponse", chunk)
    return chunks


def _text(chunks: list[dict], index: int = 0) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for chunk in chunks
        for choice in chunk["choices"]
        if choice["index"] == index
    )


def _finish_reasons(chunks: list[dict]) -> dict[int, str]:
    return {
        choice["index"]: choice["finish_reason"]
        for chunk in chunks
        for choice in chunk["choices"]
        if choice["finish_reason"] is not None
    }


def _wait_for_disconnect(fake, expected: int = 1) -> None:
    deadline = time.monotonic() + 5
    while fake.stream_disconnects < expected and time.monotonic() < deadline:
        time.sleep(0.02)


# n

def test_n_returns_indexed_choices_with_summed_usage(relay, fake_onemin):
    single = _chat(relay, {}).json()

    body = _chat(relay, {"n": 3}).json()

    assert_matches_schema("CreateChatCompletionResponse", body)
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2]
    expected = fake_onemin.default_answer(MODEL, "Tell me something")
    assert all(choice["message"]["content"] == expected for choice in body["choices"])
    assert len(fake_onemin.requests_to("/api/chat-with-ai")) == 1 + 3
    assert body["usage"]["prompt_tokens"] == 3 * single["usage"]["prompt_tokens"]
    assert body["usage"]["completion_tokens"] == 3 * single["usage"]["completion_tokens"]


def test_n_distinct_scripted_answers(relay, fake_onemin):
    fake_onemin.script("alpha", "beta")

    body = _chat(relay, {"n": 2}).json()

    assert sorted(choice["message"]["content"] for choice in body["choices"]) == ["alpha", "beta"]


def test_n_streamed_interleaved(relay, fake_onemin):
    fake_onemin.set(chunk_size=2, chunk_delay=0.01)
    fake_onemin.script("first answer", "other answer")

    chunks = _chunks(_chat(relay, {"n": 2, "stream": True, "stream_options": {"include_usage": True}}))

    roles = [chunk["choices"][0]["index"] for chunk in chunks if chunk["choices"] and "role" in chunk["choices"][0]["delta"]]
    assert sorted(roles) == [0, 1]
    assert sorted([_text(chunks, 0), _text(chunks, 1)]) == ["first answer", "other answer"]
    assert _finish_reasons(chunks) == {0: "stop", 1: "stop"}
    finish_positions = [
        position
        for position, chunk in enumerate(chunks)
        if chunk["choices"] and chunk["choices"][0]["finish_reason"] is not None
    ]
    assert len(finish_positions) == 2
    content_indexes = [chunk["choices"][0]["index"] for chunk in chunks[2:] if chunk["choices"]]
    assert content_indexes != sorted(content_indexes), "the choices' chunks should interleave"
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["completion_tokens"] > 0
    assert len({chunk["id"] for chunk in chunks}) == 1


def test_n_above_max_rejected(relay_factory, fake_onemin):
    relay = relay_factory(MEMCACHED_HOST="", MAX_N="2")

    response = _chat(relay, {"n": 3})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "n"
    assert "at most 2 choices" in response.json()["error"]["message"]
    assert fake_onemin.requests_to("/api/chat-with-ai") == []


def test_n_failure_in_one_choice_fails_request(relay, fake_onemin):
    fake_onemin.set(fail_status=500, fail_count=1)

    response = _chat(relay, {"n": 2})

    assert response.status_code == 502
    assert len(fake_onemin.requests_to("/api/chat-with-ai")) == 2


def test_n_with_tools_each_choice_parsed(relay, fake_onemin):
    call = '{"tool_calls": [{"name": "f", "arguments": {}}]}'
    fake_onemin.script(call, call)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]

    chunks = _chunks(_chat(relay, {"n": 2, "stream": True, "tools": tools}))

    assert _finish_reasons(chunks) == {0: "tool_calls", 1: "tool_calls"}
    headers = [
        (choice["index"], fragment["index"])
        for chunk in chunks
        for choice in chunk["choices"]
        for fragment in choice["delta"].get("tool_calls") or []
        if "id" in fragment
    ]
    assert sorted(headers) == [(0, 0), (1, 0)]


# stop

def test_stop_cuts_answer(relay, fake_onemin):
    fake_onemin.script("Hello END world")

    body = _chat(relay, {"stop": "END"}).json()

    assert_matches_schema("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["content"] == "Hello "
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == calculate_token("Hello ")


def test_stop_earliest_of_several(relay, fake_onemin):
    fake_onemin.script("one two three four")

    body = _chat(relay, {"stop": ["four", "three", "two"]}).json()

    assert body["choices"][0]["message"]["content"] == "one "


def test_stop_not_found_keeps_answer(relay, fake_onemin):
    fake_onemin.script("nothing to cut")

    chunks = _chunks(_chat(relay, {"stop": ["zzz"], "stream": True}))

    assert _text(chunks) == "nothing to cut"
    assert _finish_reasons(chunks) == {0: "stop"}


def test_stop_split_across_stream_events(relay, fake_onemin):
    # With 4 characters per event the stop sequence arrives as "o EN" + "D wo".
    fake_onemin.set(chunk_size=4)
    fake_onemin.script("Hello END world")

    chunks = _chunks(_chat(relay, {"stop": ["END"], "stream": True}))

    assert _text(chunks) == "Hello "
    assert _finish_reasons(chunks) == {0: "stop"}
    assert all("END" not in (chunk["choices"][0]["delta"].get("content") or "") for chunk in chunks)


def test_stop_holds_back_only_what_it_needs(relay, fake_onemin):
    fake_onemin.set(chunk_size=1)
    fake_onemin.script("abcdefgh")

    chunks = _chunks(_chat(relay, {"stop": ["xyz"], "stream": True}))

    deltas = [chunk["choices"][0]["delta"].get("content") for chunk in chunks[1:-1]]
    # Two characters stay held back for a 3-character stop sequence, then come together at the end.
    assert deltas == ["a", "b", "c", "d", "e", "f", "gh"]


def test_stop_closes_upstream_stream(relay, fake_onemin):
    fake_onemin.set(chunk_size=1, chunk_delay=0.02)
    fake_onemin.script("stop here STOP" + " and much more text" * 20)

    chunks = _chunks(_chat(relay, {"stop": "STOP", "stream": True}))

    assert _text(chunks) == "stop here "
    _wait_for_disconnect(fake_onemin)
    assert fake_onemin.stream_disconnects == 1


def test_stop_closes_upstream_when_not_streamed(relay, fake_onemin):
    fake_onemin.set(chunk_size=1, chunk_delay=0.02)
    fake_onemin.script("cut here STOP" + " and much more text" * 20)

    body = _chat(relay, {"stop": "STOP"}).json()

    assert body["choices"][0]["message"]["content"] == "cut here "
    assert fake_onemin.requests_to("/api/chat-with-ai")[0].query == {"isStreaming": "true"}
    _wait_for_disconnect(fake_onemin)
    assert fake_onemin.stream_disconnects == 1


@pytest.mark.parametrize(
    "stop",
    [["a", "b", "c", "d", "e"], [""], 5, ["ok", 3]],
)
def test_invalid_stop_rejected(relay, fake_onemin, stop):
    response = _chat(relay, {"stop": stop})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stop"
    assert fake_onemin.requests_to("/api/chat-with-ai") == []


# max_tokens

def test_max_tokens_cuts_long_answer(relay, fake_onemin):
    fake_onemin.set(reply_chars=3000)

    body = _chat(relay, {"max_tokens": 12}).json()

    assert_matches_schema("CreateChatCompletionResponse", body)
    content = body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "length"
    assert calculate_token(content) == 12
    assert fake_onemin.default_answer(MODEL, "Tell me something").startswith(content)
    assert body["usage"]["completion_tokens"] == 12


def test_max_completion_tokens_wins(relay, fake_onemin):
    fake_onemin.set(reply_chars=3000)

    body = _chat(relay, {"max_tokens": 50, "max_completion_tokens": 5}).json()

    assert calculate_token(body["choices"][0]["message"]["content"]) == 5


def test_max_tokens_above_answer_length_no_cut(relay, fake_onemin):
    fake_onemin.script("short answer")

    body = _chat(relay, {"max_tokens": 100}).json()

    assert body["choices"][0]["message"]["content"] == "short answer"
    assert body["choices"][0]["finish_reason"] == "stop"


def test_max_tokens_streamed_closes_upstream(relay, fake_onemin):
    fake_onemin.set(chunk_size=3, chunk_delay=0.01, reply_chars=2000)

    chunks = _chunks(_chat(relay, {"max_tokens": 20, "stream": True, "stream_options": {"include_usage": True}}))

    text = _text(chunks)
    assert calculate_token(text) == 20
    assert _finish_reasons(chunks) == {0: "length"}
    assert chunks[-1]["usage"]["completion_tokens"] == 20
    _wait_for_disconnect(fake_onemin)
    assert fake_onemin.stream_disconnects == 1


def test_max_tokens_streamed_matches_unstreamed_cut(relay, fake_onemin):
    fake_onemin.set(chunk_size=2, reply_chars=1500)
    whole = _chat(relay, {"max_tokens": 40}).json()["choices"][0]["message"]["content"]

    chunks = _chunks(_chat(relay, {"max_tokens": 40, "stream": True}))

    assert _text(chunks) == whole


def test_max_tokens_through_sdk(openai_client, fake_onemin):
    fake_onemin.set(reply_chars=1000)

    completion = openai_client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8)

    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 8


def test_stop_and_max_tokens_earliest_wins(relay, fake_onemin):
    fake_onemin.script("word " * 50 + "STOP")

    body = _chat(relay, {"stop": "STOP", "max_tokens": 10}).json()

    assert body["choices"][0]["finish_reason"] == "length"
    assert calculate_token(body["choices"][0]["message"]["content"]) == 10


def test_truncated_tool_call_returned_as_text(relay, fake_onemin):
    answer = '{"tool_calls": [{"name": "f", "arguments": {"text": "' + "long " * 50 + '"}}]}'
    fake_onemin.script(answer)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]

    body = _chat(relay, {"tools": tools, "max_tokens": 10}).json()

    assert body["choices"][0]["finish_reason"] == "length"
    assert answer.startswith(body["choices"][0]["message"]["content"])
    assert len(fake_onemin.requests_to("/api/chat-with-ai")) == 1
