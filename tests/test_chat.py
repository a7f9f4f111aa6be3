"""Chat completions end to end: the openai SDK, the relay under waitress, the fake 1min.ai."""

from __future__ import annotations

import json
import logging
import time

import openai
import pytest
import requests

from tests.openapi_check import assert_matches_schema

KEY = "test-key-1"


def _client(relay) -> openai.OpenAI:
    return openai.OpenAI(base_url=relay.base_url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def _raw_chat(relay, body: dict, key: str = KEY, **kwargs) -> requests.Response:
    return requests.post(
        relay.url("/v1/chat/completions"),
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
        **kwargs,
    )


def _sse_payloads(response: requests.Response) -> list[str]:
    """Return the data fields of an SSE body, in order."""
    return [line[len("data: "):] for line in response.text.split("\n") if line.startswith("data: ")]


def _last_chat_prompt(fake) -> str:
    return fake.requests_to("/api/chat-with-ai")[-1].json["promptObject"]["prompt"]


def test_chat_answer_matches_fake_and_spec(any_relay, fake_onemin):
    raw = _raw_chat(any_relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi there"}]})

    assert raw.status_code == 200
    body = raw.json()
    assert_matches_schema("CreateChatCompletionResponse", body)
    expected = fake_onemin.default_answer("gpt-4o-mini", "Hi there")
    assert body["choices"][0]["message"]["content"] == expected
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["message"]["refusal"] is None
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["model"] == "gpt-4o-mini"
    assert body["id"].startswith("chatcmpl-")
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_chat_through_sdk(relay, fake_onemin):
    completion = _client(relay).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
    )

    assert completion.choices[0].message.content == fake_onemin.default_answer("gpt-4o-mini", "Hello")
    sent = fake_onemin.requests_to("/api/chat-with-ai")[-1]
    assert sent.headers["api-key"] == KEY
    assert sent.json == {"type": "UNIFY_CHAT_WITH_AI", "model": "gpt-4o-mini", "promptObject": {"prompt": "Hello"}}
    assert "user-agent" in sent.headers


def test_stream_through_sdk(any_relay, fake_onemin):
    stream = _client(any_relay).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Stream me"}], stream=True
    )
    chunks = list(stream)

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == fake_onemin.default_answer("gpt-4o-mini", "Stream me")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({chunk.id for chunk in chunks}) == 1
    assert len({chunk.created for chunk in chunks}) == 1


def test_stream_wire_format(relay, fake_onemin):
    response = _raw_chat(
        relay,
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "wire"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        stream=True,
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    payloads = _sse_payloads(response)
    assert payloads.count("[DONE]") == 1
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    for chunk in chunks:
        assert_matches_schema("CreateChatCompletionStreamResponse", chunk)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finish = chunks[-2]
    assert finish["choices"][0]["delta"] == {}
    assert finish["choices"][0]["finish_reason"] == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] > 0
    assert all(chunk["usage"] is None for chunk in chunks[:-1])


def test_stream_without_usage_has_no_usage_chunk(relay):
    response = _raw_chat(
        relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}
    )

    chunks = [json.loads(payload) for payload in _sse_payloads(response)[:-1]]
    assert all(chunk["choices"] for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks)


def test_stream_split_utf8_arrives_intact(relay, fake_onemin):
    fake_onemin.set(split_utf8=True)
    fake_onemin.script("Привет 👋 мир — ok")

    stream = _client(relay).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )

    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Привет 👋 мир — ok"


def test_zero_upstream_tokens_counted_locally(relay, fake_onemin):
    fake_onemin.set(zero_tokens=True)

    completion = _client(relay).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "count these words please"}]
    )

    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0


def test_upstream_token_counts_are_passed_on(relay, fake_onemin):
    raw = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "tokens"}]})

    record = fake_onemin.requests_to("/api/chat-with-ai")
    assert len(record) == 1
    usage = raw.json()["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0


@pytest.mark.parametrize(
    ("provider_word", "expected"),
    [("end_turn", "stop"), ("max_tokens", "length"), ("length", "length"), ("complete", "stop"), (None, "stop")],
)
def test_finish_reason_mapped(relay, fake_onemin, provider_word, expected):
    fake_onemin.set(finish_reason=provider_word)

    body = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}).json()

    assert body["choices"][0]["finish_reason"] == expected


def test_result_object_at_record_top(relay, fake_onemin):
    fake_onemin.set(result_location="top")
    fake_onemin.script("top-level answer")

    body = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}).json()

    assert body["choices"][0]["message"]["content"] == "top-level answer"


def test_failed_record_is_502(relay, fake_onemin):
    fake_onemin.set(record_status="FAILED")

    response = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})

    assert response.status_code == 502
    assert_matches_schema("ErrorResponse", response.json())


def test_history_flattened_with_roles(relay, fake_onemin):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Use English."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
        {"role": "assistant", "content": "It is 18 C."},
        {"role": "user", "content": "And tomorrow?"},
    ]

    _client(relay).chat.completions.create(model="gpt-4o-mini", messages=messages)

    assert _last_chat_prompt(fake_onemin).split("\n") == [
        "System: Be brief.",
        "System: Use English.",
        "User: Weather in Paris?",
        'Assistant called tool get_weather (call id call_1) with arguments: {"city":"Paris"}',
        "Tool result (call id call_1): 18 C, sunny",
        "Assistant: It is 18 C.",
        "User: And tomorrow?",
    ]


def test_web_search_flag_sets_upstream_settings(relay, fake_onemin):
    _raw_chat(
        relay,
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "news"}],
            "web_search": True,
            "num_of_site": 5,
            "max_word": 300,
        },
    )

    settings = fake_onemin.requests_to("/api/chat-with-ai")[-1].json["promptObject"]["settings"]
    assert settings["webSearchSettings"] == {"webSearch": True, "numOfSite": 5, "maxWord": 300}


@pytest.mark.parametrize(
    "extra",
    [{"tools": [{"type": "retrieval"}]}, {"web_search_options": {}}],
)
def test_web_search_other_spellings(relay, fake_onemin, extra):
    _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "news"}], **extra})

    settings = fake_onemin.requests_to("/api/chat-with-ai")[-1].json["promptObject"]["settings"]
    assert settings["webSearchSettings"]["webSearch"] is True


def test_code_interpreter_routes_to_code_generator(relay, fake_onemin):
    fake_onemin.script("print('hi')")

    body = _raw_chat(
        relay,
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "code"}], "tools": [{"type": "code_interpreter"}]},
    ).json()

    sent = fake_onemin.requests_to("/api/features")[-1].json
    assert sent["type"] == "CODE_GENERATOR"
    assert sent["conversationId"] == "CODE_GENERATOR"
    assert sent["promptObject"]["prompt"] == "code"
    assert body["choices"][0]["message"]["content"] == "print('hi')"


def test_code_interpreter_stream_replayed(relay, fake_onemin):
    fake_onemin.script("x = 1")

    stream = _client(relay).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "code"}], tools=[{"type": "code_interpreter"}], stream=True
    )

    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "x = 1"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, 400, "model"),
        ({"model": 5, "messages": [{"role": "user", "content": "x"}]}, 400, "model"),
        ({"model": "gpt-4o-mini"}, 400, "messages"),
        ({"model": "gpt-4o-mini", "messages": []}, 400, "messages"),
        ({"model": "gpt-4o-mini", "messages": "hi"}, 400, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages.[0].role"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": 7}]}, 400, "messages.[1].content"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": None}]}, 400, "messages.[0].content"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "tool", "content": "x"}]}, 400, "messages.[0].tool_call_id"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "text"}]}]}, 400, "messages.[0].content.[0].text"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "n": 9}, 400, "n"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400, "temperature"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": 3}, 400, "temperature"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, 400, "stream"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "   "}]}, 400, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}}, 400, "stream_options"),
        ({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
    ],
)
def test_invalid_chat_body_rejected_before_upstream(relay, fake_onemin, body, status, param):
    response = _raw_chat(relay, body)

    assert response.status_code == status
    error = response.json()
    assert_matches_schema("ErrorResponse", error)
    assert error["error"]["param"] == param
    assert fake_onemin.requests_to("/api/chat-with-ai") == []


def test_unknown_model_is_model_not_found(relay):
    with pytest.raises(openai.NotFoundError) as caught:
        _client(relay).chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])

    assert caught.value.body["code"] == "model_not_found"


def test_sampling_fields_accepted_not_forwarded(relay, fake_onemin):
    _raw_chat(
        relay,
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 50,
            "seed": 3,
            "user": "u1",
        },
    )

    sent = fake_onemin.requests_to("/api/chat-with-ai")[-1].json
    assert set(sent) == {"type", "model", "promptObject"}
    assert set(sent["promptObject"]) == {"prompt"}


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b""])
def test_bad_json_is_400(relay, body):
    response = requests.post(
        relay.url("/v1/chat/completions"),
        data=body,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 400
    assert_matches_schema("ErrorResponse", response.json())


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer "])
def test_missing_or_malformed_key_is_401(relay, fake_onemin, header):
    headers = {"Authorization": header} if header else {}

    response = requests.post(
        relay.url("/v1/chat/completions"),
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        headers=headers,
        timeout=10,
    )

    assert response.status_code == 401
    assert_matches_schema("ErrorResponse", response.json())
    assert fake_onemin.requests_to("/api/chat-with-ai") == []


# Upstream failures, translated once in the upstream client.

@pytest.mark.parametrize("stream", [False, True])
def test_upstream_401_is_invalid_api_key(relay, stream):
    with pytest.raises(openai.AuthenticationError) as caught:
        _client_with_key(relay, "wrong-key").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=stream
        )

    assert caught.value.body["code"] == "invalid_api_key"
    assert "wrong-key" not in str(caught.value.body)


def _client_with_key(relay, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=relay.base_url + "/v1", api_key=key, max_retries=0, timeout=30)


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_429_passes_retry_after(relay, fake_onemin, stream):
    fake_onemin.set(fail_status=429, retry_after="7")

    response = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": stream})

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_upstream_400_carries_message_and_details(relay, fake_onemin):
    fake_onemin.set(
        fail_status=400,
        error_code="EXTERNAL_API_RESPONSE_WITH_ERROR",
        error_message="The service is a bit busy",
        error_details=json.dumps({"reason": "context length exceeded"}),
    )

    response = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "The service is a bit busy" in error["message"]
    assert "context length exceeded" in error["message"]


def test_upstream_unsupported_model_is_404(relay, fake_onemin):
    fake_onemin.set(fail_status=400, error_code="UNSUPPORTED_MODEL", error_message="Model not supported")

    response = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert "1min.ai rejected the model 'gpt-4o-mini'" in response.json()["error"]["message"]


@pytest.mark.parametrize("status", [500, 502, 522, 403])
def test_upstream_server_failures_are_502(relay, fake_onemin, status):
    fake_onemin.set(fail_status=status)

    response = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})

    assert response.status_code == 502
    assert_matches_schema("ErrorResponse", response.json())
    # A POST that reached the upstream is never retried: it may have cost credits.
    assert len(fake_onemin.requests_to("/api/chat-with-ai")) == 1


def test_upstream_unreachable_is_502(relay_factory):
    relay = relay_factory(ONE_MIN_API_URL="http://127.0.0.1:9")

    response = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})

    assert response.status_code == 502


def test_upstream_silence_is_504(relay_factory, fake_onemin):
    relay = relay_factory(UPSTREAM_READ_TIMEOUT="0.5")
    relay_catalog_warm = requests.get(relay.url("/v1/models"), timeout=10)
    assert relay_catalog_warm.status_code == 200
    fake_onemin.set(stall_seconds=3)

    response = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})

    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


# Stream failures.

@pytest.mark.parametrize("shape", ["string", "object", "message"])
def test_error_event_before_content_is_http_error(relay, fake_onemin, shape):
    fake_onemin.set(error_event="Something broke upstream", error_event_shape=shape)

    response = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True})

    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Something broke upstream" in response.json()["error"]["message"]


def test_unsupported_model_error_event_is_404(relay, fake_onemin):
    fake_onemin.set(error_event="Model gpt-4o-mini is not supported")

    response = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_error_event_mid_stream_ends_with_error(relay, fake_onemin):
    fake_onemin.set(error_event="quota gone", error_after_chunks=2)

    response = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True})

    assert response.status_code == 200
    payloads = _sse_payloads(response)
    assert "[DONE]" not in payloads
    final = json.loads(payloads[-1])
    assert_matches_schema("ErrorResponse", final)
    assert "quota gone" in final["error"]["message"]


def test_error_event_mid_stream_raises_in_sdk(relay, fake_onemin):
    fake_onemin.set(error_event="quota gone", error_after_chunks=2)

    stream = _client(relay).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError):
        list(stream)


def test_dropped_connection_mid_stream_ends_with_error(relay, fake_onemin):
    fake_onemin.set(drop_after_chunks=2)

    response = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True})

    payloads = _sse_payloads(response)
    assert "[DONE]" not in payloads
    assert json.loads(payloads[-1])["error"]["code"] == "upstream_error"


def test_dropped_connection_before_content_is_502(relay, fake_onemin):
    fake_onemin.set(drop_after_chunks=0)

    response = _raw_chat(relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True})

    assert response.status_code == 502


def test_repeated_full_text_with_result_dropped(relay, fake_onemin):
    fake_onemin.set(duplicate_full_text=True)
    fake_onemin.script("alpha beta gamma")

    stream = _client(relay).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    )

    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "alpha beta gamma"


def test_repeated_deltas_kept(relay, fake_onemin):
    fake_onemin.set(chunk_size=2)
    fake_onemin.script("okok")

    stream = _client(relay).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    )

    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "okok"


def test_client_disconnect_closes_upstream(relay, fake_onemin):
    fake_onemin.set(chunk_delay=0.05, chunk_size=1, reply_chars=400)

    response = _raw_chat(
        relay, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}, stream=True
    )
    lines = response.iter_lines()
    for _ in range(3):
        next(lines)
    response.close()

    deadline = time.monotonic() + 5
    while fake_onemin.stream_disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_onemin.stream_disconnects == 1


def test_api_key_never_logged(relay, fake_onemin, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "test-key-2"
    fake_onemin.set(fail_status=500)

    requests.post(
        relay.url("/v1/chat/completions"),
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )

    assert caplog.records
    assert all(secret not in record.getMessage() for record in caplog.records)


def test_form_body_hint_names_json(relay):
    response = requests.post(
        relay.url("/v1/chat/completions"), data={"model": "gpt-4o-mini"}, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    )

    assert response.status_code == 400
    assert "takes JSON with Content-Type: application/json" in response.json()["error"]["message"]
