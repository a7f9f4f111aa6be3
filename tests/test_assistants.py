"""Assistants end to end: objects backed by 1min.ai conversations, and chats that name one."""

from __future__ import annotations

import openai
import pytest
import requests

from tests.fake_onemin.media import png_image
from tests.openapi_check import assert_matches_schema

KEY = "test-key-1"
OTHER_KEY = "test-key-2"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

# The openai SDK marks client.beta.assistants as deprecated, because OpenAI is retiring the API.
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")


def _headers(key: str = KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _create(relay, body: dict, key: str = KEY) -> requests.Response:
    return requests.post(relay.url("/v1/assistants"), headers=_headers(key), json=body, timeout=30)


def test_assistant_cycle_through_sdk(any_relay, fake_onemin):
    client = any_relay.openai_client()
    file = client.files.create(file=("handbook.pdf", PDF), purpose="assistants")

    created = client.beta.assistants.with_raw_response.create(
        model="gpt-4o-mini",
        name="Handbook helper",
        instructions="Answer from the handbook only.",
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [file.id]}},
        metadata={"team": "support"},
    )
    body = created.http_response.json()
    assert_matches_schema("AssistantObject", body)
    assistant = created.parse()
    assert assistant.id.startswith("asst_")
    assert assistant.name == "Handbook helper"
    assert assistant.instructions == "Answer from the handbook only."
    assert assistant.model == "gpt-4o-mini"
    assert assistant.metadata == {"team": "support"}
    assert body["tools"] == [{"type": "code_interpreter"}]
    assert body["tool_resources"] == {"code_interpreter": {"file_ids": [file.id]}}

    [conversation] = fake_onemin.conversations.values()
    assert conversation.title == "Handbook helper"
    assert conversation.model == "gpt-4o-mini"
    assert [fake_onemin.store.assets_by_uuid[uuid].data for uuid in conversation.file_list] == [PDF]

    assert client.beta.assistants.with_raw_response.retrieve(assistant.id).http_response.json() == body
    listed = client.beta.assistants.with_raw_response.list().http_response.json()
    assert_matches_schema("ListAssistantsResponse", listed)
    assert [item["id"] for item in listed["data"]] == [assistant.id]

    deleted = client.beta.assistants.with_raw_response.delete(assistant.id).http_response.json()
    assert_matches_schema("DeleteAssistantResponse", deleted)
    assert deleted == {"id": assistant.id, "object": "assistant.deleted", "deleted": True}
    assert fake_onemin.conversations == {}
    assert fake_onemin.requests_to(f"/api/conversations/{conversation.uuid}")[-1].method == "DELETE"
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(assistant.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.delete(assistant.id)
    client.close()


def test_minimal_assistant_shape(relay, fake_onemin):
    response = _create(relay, {"model": "gpt-4o-mini"})

    assert response.status_code == 200
    body = response.json()
    assert_matches_schema("AssistantObject", body)
    assert body["name"] is None
    assert body["instructions"] is None
    assert body["tools"] == []
    assert body["tool_resources"] == {}
    assert body["response_format"] == "auto"
    sent = fake_onemin.requests_to("/api/conversations")[-1].json
    assert sent == {"type": "UNIFY_CHAT_WITH_AI", "title": "Assistant", "model": "gpt-4o-mini", "fileList": []}


def test_chat_with_assistant(relay, fake_onemin):
    client = relay.openai_client()
    file = client.files.create(file=("faq.txt", b"Q: hours? A: 9-5"), purpose="assistants")
    assistant = client.beta.assistants.create(
        model="gpt-4o-mini", instructions="Be terse.", extra_body={"file_ids": [file.id]}
    )
    [conversation] = fake_onemin.conversations.values()

    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "When are you open?"}],
        extra_body={"assistant_id": assistant.id},
    )

    assert completion.choices[0].message.content
    prompt_object = fake_onemin.requests_to("/api/chat-with-ai")[-1].json["promptObject"]
    assert prompt_object["conversationId"] == conversation.uuid
    assert prompt_object["attachments"] == {"files": conversation.file_list}
    assert prompt_object["prompt"] == "System: Be terse.\nUser: When are you open?"
    assert conversation.turns[-1][0] == prompt_object["prompt"]
    client.close()


def test_streamed_chat_with_assistant(relay, fake_onemin):
    assistant_id = _create(relay, {"model": "gpt-4o-mini"}).json()["id"]
    [conversation] = fake_onemin.conversations.values()
    client = relay.openai_client()

    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        extra_body={"assistant_id": assistant_id},
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    assert text
    prompt_object = fake_onemin.requests_to("/api/chat-with-ai")[-1].json["promptObject"]
    assert prompt_object["conversationId"] == conversation.uuid
    assert prompt_object["prompt"] == "Hi"
    client.close()


def test_other_keys_assistant_not_found(relay, fake_onemin):
    assistant_id = _create(relay, {"model": "gpt-4o-mini", "name": "private"}).json()["id"]
    stranger = relay.openai_client(OTHER_KEY)

    with pytest.raises(openai.NotFoundError):
        stranger.beta.assistants.retrieve(assistant_id)
    with pytest.raises(openai.NotFoundError):
        stranger.beta.assistants.delete(assistant_id)
    assert stranger.beta.assistants.list().data == []
    chat = requests.post(
        relay.url("/v1/chat/completions"),
        headers=_headers(OTHER_KEY),
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "assistant_id": assistant_id},
        timeout=30,
    )
    assert chat.status_code == 404
    assert chat.json()["error"]["param"] == "assistant_id"
    assert fake_onemin.requests_to("/api/chat-with-ai") == []
    assert len(fake_onemin.conversations) == 1
    stranger.close()


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({}, 400, "model"),
        ({"model": "no-such-model"}, 404, "model"),
        ({"model": "dall-e-3"}, 400, "model"),
        ({"model": "gpt-4o-mini", "name": "x" * 257}, 400, "name"),
        ({"model": "gpt-4o-mini", "tools": [{"type": "browser"}]}, 400, "tools.[0].type"),
        ({"model": "gpt-4o-mini", "tools": [{"type": "function"}]}, 400, "tools.[0].function"),
        ({"model": "gpt-4o-mini", "metadata": {"a": 1}}, 400, "metadata.a"),
        ({"model": "gpt-4o-mini", "temperature": 3}, 400, "temperature"),
        ({"model": "gpt-4o-mini", "file_ids": ["file-unknown"]}, 404, "file_ids.[0]"),
        (
            {"model": "gpt-4o-mini", "tool_resources": {"file_search": {"vector_store_ids": ["vs_1"]}}},
            400,
            "tool_resources.file_search",
        ),
    ],
)
def test_invalid_assistant_rejected(relay, fake_onemin, body, status, param):
    response = _create(relay, body)

    assert response.status_code == status
    assert response.json()["error"]["param"] == param
    assert fake_onemin.conversations == {}


def test_image_file_rejected_for_assistant(relay, fake_onemin):
    file_id = relay.openai_client().files.create(file=("photo.png", png_image("a")), purpose="vision").id

    response = _create(relay, {"model": "gpt-4o-mini", "file_ids": [file_id]})

    assert response.status_code == 400
    assert "not a document" in response.json()["error"]["message"]
    assert fake_onemin.conversations == {}


def test_list_pages_and_orders(relay):
    ids = [_create(relay, {"model": "gpt-4o-mini", "name": f"a{index}"}).json()["id"] for index in range(4)]
    client = relay.openai_client()

    assert [item.id for item in client.beta.assistants.list()] == list(reversed(ids))
    assert [item.id for item in client.beta.assistants.list(order="asc")] == ids
    page = client.beta.assistants.list(order="asc", limit=2)
    assert [item.id for item in page.data] == ids[:2]
    assert page.has_more is True
    assert [item.id for item in client.beta.assistants.list(order="asc", after=ids[1])] == ids[2:]
    assert [item.id for item in client.beta.assistants.list(order="asc", before=ids[2]).data] == ids[:2]
    assert [item.id for item in client.beta.assistants.list(order="asc", limit=1)] == ids
    client.close()


def test_upstream_conversation_delete_failure_tolerated(relay, fake_onemin):
    assistant_id = _create(relay, {"model": "gpt-4o-mini"}).json()["id"]
    fake_onemin.set(fail_status=500)

    response = requests.delete(relay.url(f"/v1/assistants/{assistant_id}"), headers=_headers(), timeout=30)

    assert response.status_code == 200
    assert requests.get(relay.url(f"/v1/assistants/{assistant_id}"), headers=_headers(), timeout=30).status_code == 404


def test_replicas_share_assistants(relay_factory, memcached_server, fake_onemin):
    from tests.conftest import flush_memcached

    host, port = memcached_server
    flush_memcached(host, port)
    first = relay_factory(MEMCACHED_HOST=host, MEMCACHED_PORT=port)
    second = relay_factory(MEMCACHED_HOST=host, MEMCACHED_PORT=port)

    assistant_id = _create(first, {"model": "gpt-4o-mini", "instructions": "Shared."}).json()["id"]
    chat = requests.post(
        second.url("/v1/chat/completions"),
        headers=_headers(),
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "assistant_id": assistant_id},
        timeout=30,
    )

    assert chat.status_code == 200
    assert fake_onemin.requests_to("/api/chat-with-ai")[-1].json["promptObject"]["prompt"] == "System: Shared.\nUser: hi"
    assert requests.delete(second.url(f"/v1/assistants/{assistant_id}"), headers=_headers(), timeout=30).status_code == 200
    assert requests.get(first.url(f"/v1/assistants/{assistant_id}"), headers=_headers(), timeout=30).status_code == 404
