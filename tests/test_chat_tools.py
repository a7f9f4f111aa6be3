"""Function calling and structured outputs, emulated in the prompt, end to end with the openai SDK."""

from __future__ import annotations

import json

import openai
import pydantic
import pytest
import requests

from tests.openapi_check import assert_matches_schema

KEY = "test-key-1"
MODEL = "gpt-4o-mini"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone.",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}
TOOLS = [WEATHER_TOOL, TIME_TOOL]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
PARIS_CALL = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}'
TWO_CALLS = (
    '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},'
    ' {"name": "get_time", "arguments": {"zone": "Europe/Paris"}}]}'
)
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
CITY_FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY_SCHEMA, "strict": True}}


class City(pydantic.BaseModel):
    city: str
    population: int


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


def _prompts(fake) -> list[str]:
    return [request.json["promptObject"]["prompt"] for request in fake.requests_to("/api/chat-with-ai")]


def _streamed_calls(chunks: list[dict]) -> dict[int, dict]:
    """Assemble streamed tool call fragments by index, as an SDK does."""
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for fragment in chunk["choices"][0]["delta"].get("tool_calls") or []:
            call = calls.setdefault(fragment["index"], {"id": None, "name": None, "arguments": ""})
            if "id" in fragment:
                assert call["id"] is None, "a call's id must come in its first fragment only"
                call["id"] = fragment["id"]
                assert fragment["type"] == "function"
                call["name"] = fragment["function"]["name"]
            call["arguments"] += fragment["function"].get("arguments", "")
    return calls


# Tool calls, not streamed.

def test_tool_call_becomes_tool_calls(relay, fake_onemin):
    fake_onemin.script(PARIS_CALL)

    response = _chat(relay, {"tools": TOOLS})

    body = response.json()
    assert_matches_schema("CreateChatCompletionResponse", body)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_tools_described_in_prompt(relay, fake_onemin):
    fake_onemin.script("It is sunny.")

    _chat(relay, {"tools": TOOLS})

    [prompt] = _prompts(fake_onemin)
    assert "get_weather: Current weather for a city." in prompt
    assert json.dumps(WEATHER_TOOL["function"]["parameters"]) in prompt
    assert '{"tool_calls": [{"name": "<function name>"' in prompt
    assert prompt.endswith("What is the weather in Paris?")


def test_tool_call_through_sdk(openai_client, fake_onemin):
    fake_onemin.script(PARIS_CALL)

    completion = openai_client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS)

    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert completion.choices[0].finish_reason == "tool_calls"


def test_parallel_calls_both_returned(relay, fake_onemin):
    fake_onemin.script(TWO_CALLS)

    body = _chat(relay, {"tools": TOOLS}).json()

    calls = body["choices"][0]["message"]["tool_calls"]
    assert [call["function"]["name"] for call in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[1]["function"]["arguments"]) == {"zone": "Europe/Paris"}
    assert calls[0]["id"] != calls[1]["id"]


def test_parallel_calls_off_keeps_first(relay, fake_onemin):
    fake_onemin.script(TWO_CALLS)

    body = _chat(relay, {"tools": TOOLS, "parallel_tool_calls": False}).json()

    calls = body["choices"][0]["message"]["tool_calls"]
    assert [call["function"]["name"] for call in calls] == ["get_weather"]
    assert "exactly one entry" in _prompts(fake_onemin)[0]


@pytest.mark.parametrize(
    "answer",
    [
        "```json\n" + PARIS_CALL + "\n```",
        "```\n" + PARIS_CALL + "\n```",
        "  " + PARIS_CALL + "\n",
    ],
)
def test_tool_call_in_fence_or_whitespace(relay, fake_onemin, answer):
    fake_onemin.script(answer)

    body = _chat(relay, {"tools": TOOLS}).json()

    assert body["choices"][0]["message"]["content"] is None
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_tool_call_with_prose_keeps_prose_as_content(relay, fake_onemin):
    fake_onemin.script("Let me check that.\n```json\n" + PARIS_CALL + "\n```\nOne moment.")

    body = _chat(relay, {"tools": TOOLS}).json()

    message = body["choices"][0]["message"]
    assert_matches_schema("CreateChatCompletionResponse", body)
    assert message["content"] == "Let me check that."
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert body["choices"][0]["finish_reason"] == "tool_calls"


def test_text_answer_with_tools_stays_text(relay, fake_onemin):
    fake_onemin.script("It is {probably} sunny.")

    body = _chat(relay, {"tools": TOOLS}).json()

    assert body["choices"][0]["message"]["content"] == "It is {probably} sunny."
    assert "tool_calls" not in body["choices"][0]["message"]
    assert body["choices"][0]["finish_reason"] == "stop"


def test_invalid_arguments_retried_with_error(relay, fake_onemin):
    fake_onemin.script(
        '{"tool_calls": [{"name": "get_weather", "arguments": {"town": "Paris"}}]}',
        PARIS_CALL,
    )

    body = _chat(relay, {"tools": TOOLS}).json()

    assert json.loads(body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    first, second = _prompts(fake_onemin)
    assert second.startswith(first)
    assert "Your previous reply was rejected" in second
    assert "'city' is a required property" in second
    assert body["usage"]["prompt_tokens"] > 0


def test_unknown_function_retried(relay, fake_onemin):
    fake_onemin.script('{"tool_calls": [{"name": "get_wether", "arguments": {"city": "Paris"}}]}', PARIS_CALL)

    body = _chat(relay, {"tools": TOOLS}).json()

    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert "unknown function 'get_wether'" in _prompts(fake_onemin)[1]


def test_still_invalid_call_returned_as_text(relay, fake_onemin):
    bad = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": 7}}]}'
    fake_onemin.script(bad, bad)

    body = _chat(relay, {"tools": TOOLS}).json()

    assert_matches_schema("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["content"] == bad
    assert "tool_calls" not in body["choices"][0]["message"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert len(_prompts(fake_onemin)) == 2


def test_retry_disabled_by_setting(relay_factory, fake_onemin):
    relay = relay_factory(MEMCACHED_HOST="", INVALID_OUTPUT_RETRIES="0")
    bad = '{"tool_calls": [{"name": "nope", "arguments": {}}]}'
    fake_onemin.script(bad, PARIS_CALL)

    body = _chat(relay, {"tools": TOOLS}).json()

    assert body["choices"][0]["message"]["content"] == bad
    assert len(_prompts(fake_onemin)) == 1


def test_tool_choice_none_offers_no_tools(relay, fake_onemin):
    fake_onemin.script(PARIS_CALL)

    body = _chat(relay, {"tools": TOOLS, "tool_choice": "none"}).json()

    assert body["choices"][0]["message"]["content"] == PARIS_CALL
    assert "get_weather" not in _prompts(fake_onemin)[0]


def test_tool_choice_required_retries_text(relay, fake_onemin):
    fake_onemin.script("I think it is sunny.", PARIS_CALL)

    body = _chat(relay, {"tools": TOOLS, "tool_choice": "required"}).json()

    assert body["choices"][0]["finish_reason"] == "tool_calls"
    first, second = _prompts(fake_onemin)
    assert "You must call at least one function" in first
    assert "calls no function" in second


def test_tool_choice_named_offers_only_that_function(relay, fake_onemin):
    fake_onemin.script('{"tool_calls": [{"name": "get_time", "arguments": {"zone": "UTC"}}]}', PARIS_CALL)

    body = _chat(relay, {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}).json()

    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    first = _prompts(fake_onemin)[0]
    assert "get_time" not in first
    assert 'You must call the function "get_weather"' in first


def test_tool_history_rendered_in_order(relay, fake_onemin):
    messages = ASK + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "18 C"},
    ]
    fake_onemin.script("It is 18 C in Paris.")

    body = _chat(relay, {"messages": messages, "tools": TOOLS}).json()

    assert body["choices"][0]["message"]["content"] == "It is 18 C in Paris."
    prompt = _prompts(fake_onemin)[0]
    called = prompt.index('Assistant called tool get_weather (call id call_a) with arguments: {"city":"Paris"}')
    assert prompt.index("Tool result (call id call_a): 18 C") > called


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools.[0].function.name"),
        ({"tools": [{"type": "function"}]}, "tools.[0].function"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "nonsense"}}}]},
            "tools.[0].function.parameters",
        ),
        ({"tools": [WEATHER_TOOL, WEATHER_TOOL]}, "tools.[1].function.name"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice.function.name"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}}},
            "response_format.json_schema.schema",
        ),
    ],
)
def test_invalid_tool_fields_rejected(relay, fake_onemin, extra, param):
    response = _chat(relay, extra)

    assert response.status_code == 400
    assert_matches_schema("ErrorResponse", response.json())
    assert response.json()["error"]["param"] == param
    assert fake_onemin.requests_to("/api/chat-with-ai") == []


# Tool calls, streamed.

def test_streamed_tool_call_fragments(relay, fake_onemin):
    fake_onemin.script(TWO_CALLS)

    chunks = _chunks(_chat(relay, {"tools": TOOLS, "stream": True}))

    calls = _streamed_calls(chunks)
    assert sorted(calls) == [0, 1]
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert calls[1]["name"] == "get_time"
    assert calls[0]["id"].startswith("call_")
    assert calls[0]["id"] != calls[1]["id"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(chunk["choices"][0]["delta"].get("content") in (None, "") for chunk in chunks)


def test_streamed_tool_call_through_sdk(openai_client, fake_onemin):
    fake_onemin.set(chunk_size=3)
    fake_onemin.script("```json\n" + PARIS_CALL + "\n```")

    stream = openai_client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, stream=True)
    chunks = list(stream)

    fragments = [call for chunk in chunks for call in (chunk.choices[0].delta.tool_calls or [])]
    assert fragments[0].id.startswith("call_")
    assert fragments[0].function.name == "get_weather"
    assert json.loads("".join(fragment.function.arguments or "" for fragment in fragments)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_streamed_text_with_tools_starts_early(relay, fake_onemin):
    answer = "It is sunny in Paris today, with a light breeze."
    fake_onemin.set(chunk_size=4)
    fake_onemin.script(answer)

    chunks = _chunks(_chat(relay, {"tools": TOOLS, "stream": True}))

    contents = [chunk["choices"][0]["delta"].get("content") for chunk in chunks]
    texts = [content for content in contents if content]
    assert "".join(texts) == answer
    assert len(texts) >= len(answer) // 4 - 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_streamed_prose_then_call(relay, fake_onemin):
    fake_onemin.set(chunk_size=5)
    fake_onemin.script("Checking the weather. " + PARIS_CALL)

    chunks = _chunks(_chat(relay, {"tools": TOOLS, "stream": True}))

    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert text == "Checking the weather. "
    assert _streamed_calls(chunks)[0]["name"] == "get_weather"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_streamed_invalid_call_retried(relay, fake_onemin):
    fake_onemin.script('{"tool_calls": [{"name": "get_weather", "arguments": {}}]}', PARIS_CALL)

    chunks = _chunks(_chat(relay, {"tools": TOOLS, "stream": True}))

    assert json.loads(_streamed_calls(chunks)[0]["arguments"]) == {"city": "Paris"}
    assert len(_prompts(fake_onemin)) == 2


def test_streamed_braces_in_text_not_held(relay, fake_onemin):
    answer = 'Use {"a": 1} or `code` here.'
    fake_onemin.script(answer)

    chunks = _chunks(_chat(relay, {"tools": TOOLS, "stream": True}))

    assert "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks) == answer
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


# Structured outputs.

def test_json_object_from_fence(relay, fake_onemin):
    fake_onemin.script('Here you go:\n```json\n{"answer": 42}\n```')

    body = _chat(relay, {"response_format": {"type": "json_object"}}).json()

    assert_matches_schema("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["content"] == '{"answer": 42}'
    assert "Reply with a single JSON value only" in _prompts(fake_onemin)[0]


def test_json_schema_parsed_by_sdk(openai_client, fake_onemin):
    fake_onemin.script('Sure! The data is {"city": "Paris", "population": 2100000}. Anything else?')

    completion = openai_client.chat.completions.parse(model=MODEL, messages=ASK, response_format=City)

    assert completion.choices[0].message.parsed == City(city="Paris", population=2100000)
    prompt = _prompts(fake_onemin)[0]
    assert '"population"' in prompt
    assert 'named "City"' in prompt


def test_json_schema_mismatch_retried(relay, fake_onemin):
    fake_onemin.script('{"city": "Paris"}', '{"city": "Paris", "population": 2100000}')

    body = _chat(relay, {"response_format": CITY_FORMAT}).json()

    assert json.loads(body["choices"][0]["message"]["content"]) == {"city": "Paris", "population": 2100000}
    assert "'population' is a required property" in _prompts(fake_onemin)[1]


def test_json_schema_still_invalid_returns_found_json(openai_client, fake_onemin):
    fake_onemin.script('Result: {"city": "Paris"}', 'Result again: {"city": "Paris"}')

    with pytest.raises(pydantic.ValidationError):
        openai_client.chat.completions.parse(model=MODEL, messages=ASK, response_format=City)

    assert len(_prompts(fake_onemin)) == 2


def test_json_still_missing_returns_text(relay, fake_onemin):
    fake_onemin.script("I cannot answer in JSON.", "Still no JSON, sorry.")

    body = _chat(relay, {"response_format": {"type": "json_object"}}).json()

    assert body["choices"][0]["message"]["content"] == "Still no JSON, sorry."
    assert body["choices"][0]["finish_reason"] == "stop"


def test_json_schema_streamed(relay, fake_onemin):
    fake_onemin.set(chunk_size=3)
    fake_onemin.script('```json\n{"city": "Paris", "population": 2100000}\n```')

    chunks = _chunks(_chat(relay, {"response_format": CITY_FORMAT, "stream": True}))

    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert text == '{"city": "Paris", "population": 2100000}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_tools_with_json_format_accept_either(relay, fake_onemin):
    fake_onemin.script('{"city": "Paris", "population": 2100000}')

    body = _chat(relay, {"tools": TOOLS, "response_format": CITY_FORMAT}).json()

    assert json.loads(body["choices"][0]["message"]["content"])["city"] == "Paris"
    prompt = _prompts(fake_onemin)[0]
    assert "do not start with" not in prompt
    assert "When you do not call a function, reply with a single JSON value only" in prompt


def test_sdk_raises_on_parse_of_text_tool_answer(openai_client, fake_onemin):
    fake_onemin.script("plain words")

    completion = openai_client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS)

    assert completion.choices[0].message.content == "plain words"
    assert completion.choices[0].message.tool_calls is None


def test_sdk_bad_request_for_bad_schema(openai_client):
    with pytest.raises(openai.BadRequestError):
        openai_client.chat.completions.create(
            model=MODEL,
            messages=ASK,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}},
        )
