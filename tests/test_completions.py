"""Legacy completions and the embeddings endpoint, end to end with the openai SDK."""

from __future__ import annotations

import json

import openai
import pytest
import requests

from tests.openapi_check import assert_matches_schema
from utils.common import calculate_token

KEY = "test-key-1"
MODEL = "gpt-4o-mini"


def _complete(relay, body: dict, **kwargs) -> requests.Response:
    return requests.post(
        relay.url("/v1/completions"),
        json={"model": MODEL, **body},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
        **kwargs,
    )


def _chunks(response: requests.Response) -> list[dict]:
    """Parse a legacy completion stream and check every chunk against CreateCompletionResponse.

    The spec has no separate stream schema for legacy completions, and its finish_reason
    enum has no null. OpenAI streams null until a choice's last chunk, so such chunks are
    checked with the finish reason they will end with ("stop") in its place.
    """
    payloads = [line[len("data: "):] for line in response.text.split("\n") if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    for chunk in chunks:
        checked = json.loads(json.dumps(chunk))
        for choice in checked["choices"]:
            if choice["finish_reason"] is None:
                choice["finish_reason"] = "stop"
        assert_matches_schema("CreateCompletionResponse", checked)
    return chunks


def _text(chunks: list[dict], index: int) -> str:
    return "".join(choice["text"] for chunk in chunks for choice in chunk["choices"] if choice["index"] == index)


def test_completion_body_matches_spec(relay, fake_onemin):
    body = _complete(relay, {"prompt": "Once upon a time"}).json()

    assert_matches_schema("CreateCompletionResponse", body)
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["choices"][0]["text"] == fake_onemin.default_answer(MODEL, "Once upon a time")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["logprobs"] is None
    assert fake_onemin.requests_to("/api/chat-with-ai")[0].json["promptObject"] == {"prompt": "Once upon a time"}


def test_completion_through_sdk(openai_client, fake_onemin):
    fake_onemin.script("there was a relay.")

    completion = openai_client.completions.create(model=MODEL, prompt="Once upon a time")

    assert completion.choices[0].text == "there was a relay."
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_prompt_list_and_n_indexes(relay, fake_onemin):
    body = _complete(relay, {"prompt": ["first", "second"], "n": 2}).json()

    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2, 3]
    texts = [choice["text"] for choice in body["choices"]]
    assert texts[:2] == [fake_onemin.default_answer(MODEL, "first")] * 2
    assert texts[2:] == [fake_onemin.default_answer(MODEL, "second")] * 2
    assert len(fake_onemin.requests_to("/api/chat-with-ai")) == 4


def test_echo_prepends_prompt(relay, fake_onemin):
    fake_onemin.script(" and more")

    body = _complete(relay, {"prompt": "Start", "echo": True}).json()

    assert body["choices"][0]["text"] == "Start and more"


def test_stop_and_max_tokens(relay, fake_onemin):
    fake_onemin.script("alpha beta STOP gamma")
    stopped = _complete(relay, {"prompt": "x", "stop": ["STOP"]}).json()
    fake_onemin.set(reply_chars=2000)

    cut = _complete(relay, {"prompt": "x", "max_tokens": 7}).json()

    assert stopped["choices"][0]["text"] == "alpha beta "
    assert stopped["choices"][0]["finish_reason"] == "stop"
    assert cut["choices"][0]["finish_reason"] == "length"
    assert calculate_token(cut["choices"][0]["text"]) == 7


def test_stream_chunks(relay, fake_onemin):
    fake_onemin.script("streamed legacy text")

    chunks = _chunks(
        _complete(relay, {"prompt": "go", "stream": True, "echo": True, "stream_options": {"include_usage": True}})
    )

    assert _text(chunks, 0) == "gostreamed legacy text"
    finishing = [chunk for chunk in chunks if chunk["choices"] and chunk["choices"][0]["finish_reason"]]
    assert [chunk["choices"][0]["finish_reason"] for chunk in finishing] == ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert len({chunk["id"] for chunk in chunks}) == 1


def test_stream_through_sdk_with_n(openai_client, fake_onemin):
    fake_onemin.script("one", "two")

    stream = openai_client.completions.create(model=MODEL, prompt="count", n=2, stream=True)
    texts: dict[int, str] = {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text

    assert sorted(texts.values()) == ["one", "two"]


def test_stream_stop_across_events(relay, fake_onemin):
    fake_onemin.set(chunk_size=3)
    fake_onemin.script("abc###def")

    chunks = _chunks(_complete(relay, {"prompt": "x", "stop": "###", "stream": True}))

    assert _text(chunks, 0) == "abc"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"prompt": "x", "suffix": "end"}, "suffix"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x", "logprobs": 2}, "logprobs"),
        ({"prompt": "x", "best_of": 3}, "best_of"),
        ({"prompt": "x", "n": 9}, "n"),
        ({"prompt": ["a", "b", "c"], "n": 3}, "n"),
        ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"prompt": "x", "model": "dall-e-3"}, "model"),
    ],
)
def test_invalid_completion_rejected(relay, fake_onemin, extra, param):
    response = _complete(relay, extra)

    assert response.status_code == 400
    assert_matches_schema("ErrorResponse", response.json())
    assert response.json()["error"]["param"] == param
    assert fake_onemin.requests_to("/api/chat-with-ai") == []


def test_suffix_error_through_sdk(openai_client):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.completions.create(model=MODEL, prompt="x", suffix="y")

    assert "suffix" in caught.value.message


# Embeddings.

def test_embeddings_not_offered(openai_client, fake_onemin):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.embeddings.create(model="text-embedding-3-small", input="hello")

    assert caught.value.status_code == 400
    assert caught.value.body["code"] == "unsupported_endpoint"
    assert "1min.ai offers no embedding models" in caught.value.body["message"]
    assert fake_onemin.received == []


def test_embeddings_error_differs_from_unknown_url(relay):
    embeddings = requests.post(relay.url("/v1/embeddings"), json={"input": "x"}, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    unknown = requests.post(relay.url("/v1/embedding"), json={"input": "x"}, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)

    assert_matches_schema("ErrorResponse", embeddings.json())
    assert embeddings.status_code == 400
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_url"
