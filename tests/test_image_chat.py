"""Image models in chat: Markdown replies with [_Vn_] tags, and variations on request."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.fake_onemin.media import png_image
from tests.openapi_check import assert_matches_schema

KEY = "test-key-1"
IMAGE_LINE = re.compile(r"^!\[Image (\d+)\]\((\S+)\) `\[_V(\d+)_\]`$")
SOURCE_IMAGE = png_image("remote source")


def _chat(relay, model: str, messages: list[dict], key: str = KEY, **extra) -> requests.Response:
    return requests.post(
        relay.url("/v1/chat/completions"),
        json={"model": model, "messages": messages, **extra},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _feature_calls(fake, feature: str) -> list[dict]:
    return [request.json for request in fake.requests_to("/api/features") if request.json["type"] == feature]


def _image_urls(content: str) -> list[str]:
    """Return the image URLs of a reply, checking that each line is tagged with its number."""
    urls = []
    for line in content.split("\n"):
        match = IMAGE_LINE.match(line)
        if match:
            assert match.group(1) == match.group(3)
            assert int(match.group(1)) == len(urls) + 1
            urls.append(match.group(2))
    return urls


def _hint(content: str) -> str:
    return content.rstrip("\n").split("\n")[-1]


@pytest.fixture
def image_server() -> Iterator[str]:
    """Serve SOURCE_IMAGE at /fox.png on an ephemeral loopback port; yield the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/fox.png":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(SOURCE_IMAGE)))
            self.end_headers()
            self.wfile.write(SOURCE_IMAGE)

        def log_message(self, format: str, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# Generation.

def test_chat_generates_tagged_images(any_relay, fake_onemin):
    response = _chat(any_relay, "dall-e-3", [{"role": "user", "content": "a red fox --ar 16:9"}])

    assert response.status_code == 200, response.text
    body = response.json()
    assert_matches_schema("CreateChatCompletionResponse", body)
    content = body["choices"][0]["message"]["content"]
    urls = _image_urls(content)
    assert len(urls) == 1
    assert urls[0].startswith(fake_onemin.asset_url + "/images/")
    assert "dall-e-3 cannot make variations" in _hint(content)
    assert body["model"] == "dall-e-3"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] > 0
    calls = _feature_calls(fake_onemin, "IMAGE_GENERATOR")
    assert calls == [
        {
            "type": "IMAGE_GENERATOR",
            "model": "dall-e-3",
            "promptObject": {"prompt": "a red fox", "size": "1792x1024", "n": 1},
        }
    ]
    assert fake_onemin.requests_to("/api/chat-with-ai") == []


def test_chat_midjourney_shows_all_four(relay, fake_onemin):
    content = _chat(relay, "midjourney", [{"role": "user", "content": "a red fox"}]).json()["choices"][0]["message"][
        "content"
    ]

    assert len(_image_urls(content)) == 4
    assert _hint(content) == "To get variations of an image, send its tag, for example `[_V1_]`, or `/v1 <image URL>`."


def test_chat_uses_last_user_message_as_prompt(relay, fake_onemin):
    messages = [
        {"role": "system", "content": "You draw."},
        {"role": "user", "content": "a cat"},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": [{"type": "text", "text": "a dog"}]},
    ]

    assert _chat(relay, "dall-e-2", messages).status_code == 200

    assert _feature_calls(fake_onemin, "IMAGE_GENERATOR")[0]["promptObject"]["prompt"] == "a dog"


def test_chat_image_stream(relay, fake_onemin):
    response = _chat(
        relay,
        "dall-e-2",
        [{"role": "user", "content": "a red fox"}],
        stream=True,
        stream_options={"include_usage": True},
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    payloads = [line[len("data: ") :] for line in response.text.split("\n") if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    for chunk in chunks:
        assert_matches_schema("CreateChatCompletionStreamResponse", chunk)
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    assert len(_image_urls(text)) == 1
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_chat_image_stream_through_sdk(relay):
    stream = relay.openai_client().chat.completions.create(
        model="midjourney", messages=[{"role": "user", "content": "a red fox"}], stream=True
    )

    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert len(_image_urls(text)) == 4


def test_chat_with_leonardo_alias(relay, fake_onemin):
    response = _chat(relay, "leonardo-phoenix", [{"role": "user", "content": "a red fox --no blur"}])

    assert response.status_code == 200
    call = _feature_calls(fake_onemin, "IMAGE_GENERATOR")[0]
    assert call["model"] == "6b645e3a-d64f-4341-a6d8-7a3690fbf042"
    assert call["promptObject"]["negativePrompt"] == "blur"


def test_chat_empty_prompt_rejected(relay, fake_onemin):
    response = _chat(relay, "dall-e-2", [{"role": "user", "content": "--fast"}])

    assert response.status_code == 400
    assert _feature_calls(fake_onemin, "IMAGE_GENERATOR") == []


# Variations.

def _generated_history(relay, model: str, prompt: str) -> tuple[list[dict], list[str]]:
    answer = _chat(relay, model, [{"role": "user", "content": prompt}]).json()["choices"][0]["message"]
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer["content"]}], _image_urls(
        answer["content"]
    )


@pytest.mark.parametrize("request_text", ["[_V2_]", "`[_V2_]`", "please vary `[_V2_]` thanks"])
def test_tag_asks_for_variations_with_saved_params(any_relay, fake_onemin, request_text):
    history, urls = _generated_history(any_relay, "midjourney", "a red fox --ar 3:2 --relax")

    response = _chat(any_relay, "midjourney", history + [{"role": "user", "content": request_text}])

    assert response.status_code == 200, response.text
    assert_matches_schema("CreateChatCompletionResponse", response.json())
    variations = _feature_calls(fake_onemin, "IMAGE_VARIATOR")
    assert len(variations) == 1
    assert variations[0]["promptObject"] == {
        "imageUrl": urls[1][len(fake_onemin.asset_url) + 1 :],
        "mode": "relax",
        "n": 4,
        "aspect_width": 3,
        "aspect_height": 2,
        "isNiji6": False,
        "maintainModeration": True,
    }
    assert len(_feature_calls(fake_onemin, "IMAGE_GENERATOR")) == 1
    new_urls = _image_urls(response.json()["choices"][0]["message"]["content"])
    assert len(new_urls) == 4
    assert set(new_urls).isdisjoint(urls)


def test_tag_found_in_newest_message_that_has_it(relay, fake_onemin):
    first, first_urls = _generated_history(relay, "midjourney", "a red fox")
    second_answer = _chat(relay, "dall-e-2", [{"role": "user", "content": "a blue fox"}]).json()
    second_content = second_answer["choices"][0]["message"]["content"]
    history = first + [{"role": "user", "content": "a blue fox"}, {"role": "assistant", "content": second_content}]

    _chat(relay, "midjourney", history + [{"role": "user", "content": "[_V1_]"}])
    _chat(relay, "midjourney", history + [{"role": "user", "content": "[_V3_]"}])

    image_urls = [call["promptObject"]["imageUrl"] for call in _feature_calls(fake_onemin, "IMAGE_VARIATOR")]
    assert image_urls == [
        _image_urls(second_content)[0][len(fake_onemin.asset_url) + 1 :],
        first_urls[2][len(fake_onemin.asset_url) + 1 :],
    ]


def test_variation_stream(relay, fake_onemin):
    history, _ = _generated_history(relay, "dall-e-2", "a red fox")

    stream = relay.openai_client().chat.completions.create(
        model="dall-e-2", messages=history + [{"role": "user", "content": "[_V1_]"}], stream=True
    )

    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert len(_image_urls(text)) == 1
    assert len(_feature_calls(fake_onemin, "IMAGE_VARIATOR")) == 1


def test_variation_command_with_asset_url(relay, fake_onemin):
    _, urls = _generated_history(relay, "dall-e-2", "a red fox")

    response = _chat(relay, "dall-e-2", [{"role": "user", "content": f"/v1 {urls[0]}"}])

    assert response.status_code == 200
    call = _feature_calls(fake_onemin, "IMAGE_VARIATOR")[0]
    assert call["promptObject"] == {"imageUrl": urls[0][len(fake_onemin.asset_url) + 1 :], "n": 1}
    assert fake_onemin.requests_to("/api/assets") == []


def test_variation_of_outside_url_is_fetched_and_uploaded(relay_factory, fake_onemin, image_server):
    relay = relay_factory(IMAGE_FETCH_ALLOWED_HOSTS="127.0.0.1")

    response = _chat(relay, "midjourney", [{"role": "user", "content": f"/v2 {image_server}/fox.png --ar 2:3"}])

    assert response.status_code == 200, response.text
    uploads = fake_onemin.requests_to("/api/assets")
    assert len(uploads) == 1
    assert uploads[0].files["asset"][2] == SOURCE_IMAGE
    call = _feature_calls(fake_onemin, "IMAGE_VARIATOR")[0]
    assert fake_onemin.assets[call["promptObject"]["imageUrl"]].data == SOURCE_IMAGE
    assert (call["promptObject"]["aspect_width"], call["promptObject"]["aspect_height"]) == (2, 3)


def test_outside_url_goes_through_fetch_guard(relay, fake_onemin, image_server):
    response = _chat(relay, "midjourney", [{"role": "user", "content": f"/v1 {image_server}/fox.png"}])

    assert response.status_code == 400
    assert "non-public address" in response.json()["error"]["message"]
    assert fake_onemin.requests_to("/api/assets") == []
    assert _feature_calls(fake_onemin, "IMAGE_VARIATOR") == []


def test_model_without_variations_gets_clear_message(relay, fake_onemin):
    history, _ = _generated_history(relay, "dall-e-3", "a red fox")

    response = _chat(relay, "dall-e-3", history + [{"role": "user", "content": "[_V1_]"}])

    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "'dall-e-3' cannot make variations" in message
    assert "midjourney" in message
    assert "dall-e-2" in message
    assert len(_feature_calls(fake_onemin, "IMAGE_GENERATOR")) == 1
    assert _feature_calls(fake_onemin, "IMAGE_VARIATOR") == []


def test_unknown_tag_is_400(relay, fake_onemin):
    history, _ = _generated_history(relay, "dall-e-2", "a red fox")

    response = _chat(relay, "dall-e-2", history + [{"role": "user", "content": "[_V7_]"}])

    assert response.status_code == 400
    assert "[_V7_]" in response.json()["error"]["message"]
    assert _feature_calls(fake_onemin, "IMAGE_VARIATOR") == []


def test_params_stored_per_api_key(relay, fake_onemin):
    history, _ = _generated_history(relay, "midjourney", "a red fox --ar 3:2 --relax")

    response = _chat(relay, "midjourney", history + [{"role": "user", "content": "[_V1_]"}], key="test-key-2")

    # The other key cannot read the saved parameters, so its payload has the defaults.
    # The fake then rejects the first key's asset, because it never shares assets between keys.
    assert response.status_code == 400
    call = _feature_calls(fake_onemin, "IMAGE_VARIATOR")[0]
    assert call["promptObject"]["mode"] == "fast"
    assert (call["promptObject"]["aspect_width"], call["promptObject"]["aspect_height"]) == (1, 1)
