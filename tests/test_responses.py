"""The Responses API end to end: create, stream, chain, retrieve and delete, with the openai SDK."""

from __future__ import annotations

import json
import time

import openai
import pydantic
import pytest
import requests

from tests.openapi_check import assert_matches_schema

KEY = "test-key-1"
MODEL = "gpt-4o-mini"
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
PARIS_CALL = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}'
EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
    "response.failed": "ResponseFailedEvent",
}
TEXT_EVENT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


class City(pydantic.BaseModel):
    city: str
    population: int


def _create(relay, body: dict, key: str = KEY, **kwargs) -> requests.Response:
    return requests.post(
        relay.url("/v1/responses"),
        json={"model": MODEL, **body},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
        **kwargs,
    )


def _get(relay, response_id: str, key: str = KEY) -> requests.Response:
    return requests.get(relay.url(f"/v1/responses/{response_id}"), headers={"Authorization": f"Bearer {key}"}, timeout=10)


def _events(response: requests.Response) -> list[dict]:
    """Parse a Responses stream, checking each event's name, schema and sequence number."""
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = []
    for block in response.text.strip().split("\n\n"):
        lines = block.split("\n")
        assert lines[0].startswith("event: ")
        assert lines[1].startswith("data: ")
        event = json.loads(lines[1][len("data: "):])
        assert event["type"] == lines[0][len("event: "):]
        assert_matches_schema(EVENT_SCHEMAS[event["type"]], event)
        assert_matches_schema("ResponseStreamEvent", event)
        events.append(event)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    return events


def _prompts(fake) -> list[str]:
    return [request.json["promptObject"]["prompt"] for request in fake.requests_to("/api/chat-with-ai")]


def _collapsed(types: list[str]) -> list[str]:
    return [kind for position, kind in enumerate(types) if position == 0 or types[position - 1] != kind]


# Create, not streamed.

def test_create_text_response(relay, fake_onemin):
    response = _create(relay, {"input": "Hello there"})

    body = response.json()
    assert response.status_code == 200
    assert_matches_schema("Response", body)
    assert body["id"].startswith("resp_")
    assert body["object"] == "response"
    assert body["status"] == "completed"
    [item] = body["output"]
    assert item["type"] == "message"
    assert item["content"][0]["text"] == fake_onemin.default_answer(MODEL, "Hello there")
    assert body["usage"]["total_tokens"] == body["usage"]["input_tokens"] + body["usage"]["output_tokens"]


def test_create_through_sdk(openai_client, fake_onemin):
    fake_onemin.script("Bonjour!")

    response = openai_client.responses.create(model=MODEL, input="Say hello in French", instructions="Be brief.")

    assert response.output_text == "Bonjour!"
    assert response.instructions == "Be brief."
    assert _prompts(fake_onemin)[0] == "System: Be brief.\nUser: Say hello in French"


def test_input_items_rendered_in_order(relay, fake_onemin):
    items = [
        {"role": "developer", "content": "Answer in English."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "18 C"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "It is 18 C."}]},
        {"role": "user", "content": "And tomorrow?"},
    ]

    response = _create(relay, {"input": items})

    assert response.status_code == 200
    assert _prompts(fake_onemin)[0].split("\n") == [
        "System: Answer in English.",
        "User: Weather in Paris?",
        'Assistant called tool get_weather (call id call_1) with arguments: {"city":"Paris"}',
        "Tool result (call id call_1): 18 C",
        "Assistant: It is 18 C.",
        "User: And tomorrow?",
    ]


def test_function_call_output_item(relay, fake_onemin):
    fake_onemin.script(PARIS_CALL)

    body = _create(relay, {"input": "Weather in Paris?", "tools": [WEATHER_TOOL]}).json()

    assert_matches_schema("Response", body)
    [item] = body["output"]
    assert item["type"] == "function_call"
    assert item["call_id"].startswith("call_")
    assert item["id"].startswith("fc_")
    assert item["name"] == "get_weather"
    assert json.loads(item["arguments"]) == {"city": "Paris"}
    assert body["tools"][0]["name"] == "get_weather"


def test_function_result_continues_conversation(openai_client, fake_onemin):
    fake_onemin.script(PARIS_CALL, "It is 18 C in Paris.")
    first = openai_client.responses.create(model=MODEL, input="Weather in Paris?", tools=[WEATHER_TOOL])
    call = first.output[0]

    second = openai_client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 C"}],
        tools=[WEATHER_TOOL],
    )

    assert second.output_text == "It is 18 C in Paris."
    prompt = _prompts(fake_onemin)[1]
    assert f"Assistant called tool get_weather (call id {call.call_id})" in prompt
    assert prompt.endswith(f"Tool result (call id {call.call_id}): 18 C")


def test_json_schema_format_parsed_by_sdk(openai_client, fake_onemin):
    fake_onemin.script('Here: ```json\n{"city": "Paris", "population": 2100000}\n```')

    response = openai_client.responses.parse(model=MODEL, input="Describe Paris", text_format=City)

    assert response.output_parsed == City(city="Paris", population=2100000)
    assert '"population"' in _prompts(fake_onemin)[0]


def test_max_output_tokens_incomplete(relay, fake_onemin):
    fake_onemin.set(reply_chars=2000)

    body = _create(relay, {"input": "Talk", "max_output_tokens": 16}).json()

    assert_matches_schema("Response", body)
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["usage"]["output_tokens"] == 16


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({}, "input"),
        ({"input": []}, "input"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input.[0].type"),
        ({"input": [{"role": "wizard", "content": "x"}]}, "input.[0].role"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}]}]}, "input.[0].content.[0].file_url"),
        ({"input": "x", "background": True}, "background"),
        ({"input": "x", "tools": [{"type": "file_search"}]}, "tools.[0].type"),
        ({"input": "x", "tool_choice": {"type": "file_search"}}, "tool_choice"),
        ({"input": "x", "previous_response_id": "resp_missing"}, "previous_response_id"),
    ],
)
def test_invalid_request_rejected(relay, fake_onemin, extra, param):
    response = _create(relay, extra)

    assert response.status_code == 400
    assert_matches_schema("ErrorResponse", response.json())
    assert response.json()["error"]["param"] == param
    assert fake_onemin.requests_to("/api/chat-with-ai") == []


def test_non_chat_model_rejected(relay, fake_onemin):
    response = _create(relay, {"model": "dall-e-3", "input": "x"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"


# Streaming.

def test_stream_event_sequence(relay, fake_onemin):
    fake_onemin.script("Hello streaming world")

    events = _events(_create(relay, {"input": "Hi", "stream": True}))

    types = [event["type"] for event in events]
    assert _collapsed(types) == TEXT_EVENT_ORDER
    deltas = "".join(event["delta"] for event in events if event["type"] == "response.output_text.delta")
    assert deltas == "Hello streaming world"
    done = next(event for event in events if event["type"] == "response.output_text.done")
    assert done["text"] == "Hello streaming world"
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == "Hello streaming world"
    assert final["id"] == events[0]["response"]["id"]


def test_stream_through_sdk(openai_client, fake_onemin):
    fake_onemin.script("Streamed by the SDK")

    with openai_client.responses.stream(model=MODEL, input="Hi") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()

    assert "".join(deltas) == "Streamed by the SDK"
    assert final.output_text == "Streamed by the SDK"
    assert final.status == "completed"


def test_stream_function_call_events(relay, fake_onemin):
    fake_onemin.script(PARIS_CALL)

    events = _events(_create(relay, {"input": "Weather?", "tools": [WEATHER_TOOL], "stream": True}))

    types = _collapsed([event["type"] for event in events])
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added = next(event for event in events if event["type"] == "response.output_item.added")
    assert added["item"]["type"] == "function_call"
    assert added["item"]["name"] == "get_weather"
    arguments = "".join(event["delta"] for event in events if event["type"] == "response.function_call_arguments.delta")
    assert json.loads(arguments) == {"city": "Paris"}
    assert events[-1]["response"]["output"][0]["arguments"] == arguments


def test_stream_function_call_through_sdk(openai_client, fake_onemin):
    fake_onemin.script(PARIS_CALL)

    with openai_client.responses.stream(model=MODEL, input="Weather?", tools=[WEATHER_TOOL]) as stream:
        final = stream.get_final_response()

    [item] = final.output
    assert item.type == "function_call"
    assert json.loads(item.arguments) == {"city": "Paris"}


def test_stream_incomplete_on_max_output_tokens(relay, fake_onemin):
    fake_onemin.set(reply_chars=2000)

    events = _events(_create(relay, {"input": "Talk", "stream": True, "max_output_tokens": 16}))

    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_stream_failure_sends_response_failed(relay, fake_onemin):
    fake_onemin.set(error_event="quota gone", error_after_chunks=2)

    events = _events(_create(relay, {"input": "Hi", "stream": True}))

    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed"
    assert "quota gone" in events[-1]["response"]["error"]["message"]


def test_stream_early_failure_is_http_error(relay, fake_onemin):
    fake_onemin.set(error_event="Something broke upstream")

    response = _create(relay, {"input": "Hi", "stream": True})

    assert response.status_code == 502
    assert_matches_schema("ErrorResponse", response.json())


# Storage: chaining, retrieval, deletion.

def test_previous_response_chaining(any_relay, fake_onemin):
    client = any_relay.openai_client()
    fake_onemin.script("My name is Relay.", "You asked for my name.")

    first = client.responses.create(model=MODEL, input="What is your name?", instructions="Be formal.")
    second = client.responses.create(model=MODEL, input="What did I ask?", previous_response_id=first.id)

    assert second.previous_response_id == first.id
    assert second.output_text == "You asked for my name."
    assert _prompts(fake_onemin)[1].split("\n") == [
        "User: What is your name?",
        "Assistant: My name is Relay.",
        "User: What did I ask?",
    ]
    client.close()


def test_streamed_response_can_be_continued(relay, fake_onemin):
    fake_onemin.script("first", "second")
    events = _events(_create(relay, {"input": "one", "stream": True}))

    chained = _create(relay, {"input": "two", "previous_response_id": events[-1]["response"]["id"]})

    assert chained.status_code == 200
    assert _prompts(fake_onemin)[1] == "User: one\nAssistant: first\nUser: two"


def test_retrieve_and_delete(any_relay, fake_onemin):
    created = _create(any_relay, {"input": "keep me"}).json()

    retrieved = _get(any_relay, created["id"])
    assert retrieved.status_code == 200
    assert retrieved.json() == created
    assert_matches_schema("Response", retrieved.json())

    client = any_relay.openai_client()
    client.responses.delete(created["id"])
    client.close()
    assert _get(any_relay, created["id"]).status_code == 404


def test_delete_body(relay, fake_onemin):
    created = _create(relay, {"input": "x"}).json()

    deleted = requests.delete(
        relay.url(f"/v1/responses/{created['id']}"), headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    )

    assert deleted.json() == {"id": created["id"], "object": "response", "deleted": True}
    again = requests.delete(relay.url(f"/v1/responses/{created['id']}"), headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert again.status_code == 404


def test_responses_private_to_their_key(relay, fake_onemin):
    created = _create(relay, {"input": "mine"}).json()

    other = _get(relay, created["id"], key="test-key-2")
    chained = _create(relay, {"input": "x", "previous_response_id": created["id"]}, key="test-key-2")

    assert other.status_code == 404
    assert_matches_schema("ErrorResponse", other.json())
    assert chained.status_code == 400


def test_store_false_not_kept(openai_client, relay, fake_onemin):
    response = openai_client.responses.create(model=MODEL, input="forget me", store=False)

    assert response.store is False
    assert _get(relay, response.id).status_code == 404
    with pytest.raises(openai.BadRequestError):
        openai_client.responses.create(model=MODEL, input="x", previous_response_id=response.id)


def test_stored_response_expires(relay_factory, fake_onemin):
    relay = relay_factory(MEMCACHED_HOST="", RESPONSES_TTL_SECONDS="1")
    created = _create(relay, {"input": "short-lived"}).json()
    assert _get(relay, created["id"]).status_code == 200

    time.sleep(1.2)

    assert _get(relay, created["id"]).status_code == 404


def test_unknown_response_is_404(openai_client):
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve("resp_does_not_exist")


def test_input_image_attached_upstream(relay, fake_onemin):
    import base64

    from tests.fake_onemin.media import png_image

    data_url = "data:image/png;base64," + base64.b64encode(png_image("cat")).decode()
    body = {
        "model": "gpt-4o-mini",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is in this picture?"},
                    {"type": "input_image", "image_url": data_url},
                ],
            }
        ],
    }

    response = _create(relay, body)

    assert response.status_code == 200
    assert_matches_schema("Response", response.json())
    sent = fake_onemin.requests_to("/api/chat-with-ai")[-1].json["promptObject"]
    assert len(sent["attachments"]["images"]) == 1
    assert sent["attachments"]["images"][0].startswith("images/")
    assert len(fake_onemin.requests_to("/api/assets")) == 1
