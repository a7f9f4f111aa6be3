"""Images and documents in chat: uploads, attachments, the URL guard and the per-key upload cache."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import openai
import pytest
import requests

from tests.fake_onemin.media import png_image
from tests.image_server import ImageServer, image, redirect
from tests.openapi_check import assert_matches_schema

KEY = "test-key-1"
OTHER_KEY = "test-key-2"
CAT = png_image("cat")
DOG = png_image("dog")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _data_url(content: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(content).decode()}"


def _image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def _chat(relay, messages: list, key: str = KEY, model: str = "gpt-4o-mini", **extra) -> requests.Response:
    return requests.post(
        relay.url("/v1/chat/completions"),
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": messages, **extra},
        timeout=30,
    )


def _chat_calls(fake) -> list:
    return fake.requests_to("/api/chat-with-ai")


def _asset_uploads(fake) -> list:
    return fake.requests_to("/api/assets")


def _prompt_object(fake) -> dict:
    return _chat_calls(fake)[-1].json["promptObject"]


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    server = ImageServer("127.0.0.1")
    yield server
    server.stop()


@pytest.fixture
def private_server() -> Iterator[ImageServer]:
    """A live server on 127.0.0.2, outside the allow list, that must never be fetched from."""
    server = ImageServer("127.0.0.2")
    server.route("/cat.png", image(CAT))
    yield server
    server.stop()


@pytest.fixture
def url_relay(relay_factory):
    return relay_factory(MEMCACHED_HOST="", IMAGE_FETCH_ALLOWED_HOSTS="127.0.0.1", IMAGE_FETCH_TIMEOUT=5)


def test_data_url_image_through_sdk(relay, fake_onemin):
    client = relay.openai_client()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is this?"}, _image_part(_data_url(CAT))]}],
    )

    assert_matches_schema("CreateChatCompletionResponse", raw.http_response.json())
    upload = _asset_uploads(fake_onemin)[-1]
    assert upload.files["asset"] == ("image.png", "image/png", CAT)
    prompt_object = _prompt_object(fake_onemin)
    [path] = prompt_object["attachments"]["images"]
    assert fake_onemin.assets[path].data == CAT
    assert "files" not in prompt_object["attachments"]
    assert prompt_object["prompt"] == "What is this?\n[image 1]"
    client.close()


def test_allowed_loopback_url_image(url_relay, fake_onemin, image_server):
    url = image_server.route("/cat.png", image(CAT))
    client = url_relay.openai_client()

    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": [_image_part(url), {"type": "text", "text": "Describe"}]}],
    )

    assert completion.choices[0].message.content
    assert image_server.hits == ["/cat.png"]
    [path] = _prompt_object(fake_onemin)["attachments"]["images"]
    assert fake_onemin.assets[path].data == CAT
    assert _prompt_object(fake_onemin)["prompt"] == "[image 1]\nDescribe"
    client.close()


def test_private_url_rejected(url_relay, fake_onemin, private_server):
    client = url_relay.openai_client()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Look"}, _image_part(private_server.url("/cat.png"))]},
    ]

    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    error = raised.value.body
    assert error["param"] == "messages.[1].content.[1]"
    assert "non-public address" in error["message"]
    assert error["code"] == "invalid_image_url"
    assert private_server.hits == []
    assert _asset_uploads(fake_onemin) == []
    assert _chat_calls(fake_onemin) == []
    client.close()


def test_redirect_to_private_url_rejected(url_relay, fake_onemin, image_server, private_server):
    url = image_server.route("/hop", redirect(private_server.url("/cat.png")))

    response = _chat(url_relay, [{"role": "user", "content": [_image_part(url)]}])

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages.[0].content.[0]"
    assert private_server.hits == []
    assert _chat_calls(fake_onemin) == []


def test_loopback_rejected_by_default(relay, fake_onemin, image_server):
    url = image_server.route("/cat.png", image(CAT))

    response = _chat(relay, [{"role": "user", "content": [_image_part(url)]}])

    assert response.status_code == 400
    assert "non-public address" in response.json()["error"]["message"]
    assert image_server.hits == []


def test_oversized_image_rejected(relay_factory, fake_onemin, image_server):
    small = relay_factory(MEMCACHED_HOST="", MAX_IMAGE_BYTES=2048, IMAGE_FETCH_ALLOWED_HOSTS="127.0.0.1")
    client = small.openai_client()
    big = png_image("big") + bytes(4096)
    url = image_server.route("/big.png", image(big))

    with pytest.raises(openai.BadRequestError) as from_data:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}, _image_part(_data_url(big))]}],
        )
    with pytest.raises(openai.BadRequestError) as from_url:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": [_image_part(url)]}])

    assert from_data.value.body["param"] == "messages.[0].content.[1]"
    assert "limit of 2048 bytes" in from_data.value.body["message"]
    assert from_url.value.body["param"] == "messages.[0].content.[0]"
    assert "limit of 2048 bytes" in from_url.value.body["message"]
    assert _asset_uploads(fake_onemin) == []
    client.close()


def test_text_only_model_rejects_image(relay, fake_onemin):
    client = relay.openai_client()

    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="deepseek-chat",
            messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}, _image_part(_data_url(CAT))]}],
        )

    error = raised.value.body
    assert error["code"] == "image_input_not_supported"
    assert error["param"] == "messages.[0].content.[1]"
    assert "deepseek-chat" in error["message"]
    assert _asset_uploads(fake_onemin) == []
    assert _chat_calls(fake_onemin) == []
    client.close()


def test_same_image_uploaded_once(any_relay, fake_onemin):
    client = any_relay.openai_client()
    first_turn = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, _image_part(_data_url(CAT))]}]
    client.chat.completions.create(model="gpt-4o-mini", messages=first_turn)
    [cat_path] = _prompt_object(fake_onemin)["attachments"]["images"]

    second_turn = first_turn + [
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": [{"type": "text", "text": "And this?"}, _image_part(_data_url(DOG))]},
    ]
    client.chat.completions.create(model="gpt-4o-mini", messages=second_turn)

    assert len(_asset_uploads(fake_onemin)) == 2
    images = _prompt_object(fake_onemin)["attachments"]["images"]
    assert images[0] == cat_path
    assert fake_onemin.assets[images[1]].data == DOG
    assert _prompt_object(fake_onemin)["prompt"] == (
        "User: What is this?\n[image 1]\nAssistant: A cat.\nUser: And this?\n[image 2]"
    )
    client.close()


def test_repeated_image_in_one_request(relay, fake_onemin):
    messages = [{"role": "user", "content": [_image_part(_data_url(CAT)), _image_part(_data_url(CAT, "image/jpeg"))]}]

    response = _chat(relay, messages)

    assert response.status_code == 200
    assert len(_asset_uploads(fake_onemin)) == 1
    assert len(_prompt_object(fake_onemin)["attachments"]["images"]) == 1
    assert _prompt_object(fake_onemin)["prompt"] == "[image 1]\n[image 1]"


def test_upload_cache_is_per_key(relay, fake_onemin):
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}, _image_part(_data_url(CAT))]}]

    first = _chat(relay, messages, key=KEY)
    second = _chat(relay, messages, key=OTHER_KEY)

    # The fake rejects an asset uploaded with another key, so a shared cache entry would fail here.
    assert first.status_code == 200
    assert second.status_code == 200, second.text
    uploads = _asset_uploads(fake_onemin)
    assert [upload.headers["api-key"] for upload in uploads] == [KEY, OTHER_KEY]
    first_path = _chat_calls(fake_onemin)[0].json["promptObject"]["attachments"]["images"][0]
    second_path = _chat_calls(fake_onemin)[1].json["promptObject"]["attachments"]["images"][0]
    assert first_path != second_path
    assert fake_onemin.assets[second_path].owner == OTHER_KEY


def test_streamed_chat_with_image(relay, fake_onemin):
    client = relay.openai_client()
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}, _image_part(_data_url(CAT))]}],
        stream=True,
    )

    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    assert text
    assert _chat_calls(fake_onemin)[-1].query == {"isStreaming": "true"}
    assert len(_prompt_object(fake_onemin)["attachments"]["images"]) == 1
    client.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (_data_url(b"just some text"), "does not contain a PNG, JPEG, GIF or WebP image"),
        ("data:image/png;base64,@@notbase64@@", "Invalid base64"),
        ("data:image/png,rawbytes", "Invalid data URL"),
        ("ftp://127.0.0.1/cat.png", "use an http(s) URL or a base64 data: URL"),
        (_data_url(b"BM" + bytes(40), "image/bmp"), "is image/bmp, which this relay does not upload"),
    ],
)
def test_unusable_image_rejected(relay, fake_onemin, url, message):
    response = _chat(relay, [{"role": "user", "content": [{"type": "text", "text": "hi"}, _image_part(url)]}])

    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error["message"]
    assert error["param"] == "messages.[0].content.[1]"
    assert _chat_calls(fake_onemin) == []


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "image_url"}, "messages.[0].content.[0].image_url"),
        ({"type": "image_url", "image_url": {"url": 5}}, "messages.[0].content.[0].image_url.url"),
        ({"type": "image_url", "image_url": {"url": "x", "detail": "max"}}, "messages.[0].content.[0].image_url.detail"),
        ({"type": "file", "file": {}}, "messages.[0].content.[0].file"),
        ({"type": "file", "file": {"file_id": "file-a", "file_data": "YQ=="}}, "messages.[0].content.[0].file"),
        ({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}, "messages.[0].content.[0]"),
    ],
)
def test_malformed_part_rejected(relay, part, param):
    response = _chat(relay, [{"role": "user", "content": [part]}])

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_upstream_upload_failure_names_part(relay, fake_onemin):
    fake_onemin.set(fail_status=400, error_code="UNSUPPORTED_FILE_TYPE", error_message="File type isn't supported")

    response = _chat(relay, [{"role": "user", "content": [_image_part(_data_url(CAT))]}])

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages.[0].content.[0]"
    assert "UNSUPPORTED_FILE_TYPE" in response.json()["error"]["message"]


# --- documents -----------------------------------------------------------------------------------


def test_document_chat_by_file_id(relay, fake_onemin):
    client = relay.openai_client()
    file = client.files.create(file=("report.pdf", PDF), purpose="user_data")

    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": [{"type": "file", "file": {"file_id": file.id}},
                                                {"type": "text", "text": "Summarise it"}]}],
    )

    prompt_object = _prompt_object(fake_onemin)
    [file_uuid] = prompt_object["attachments"]["files"]
    assert fake_onemin.store.assets_by_uuid[file_uuid].data == PDF
    assert "images" not in prompt_object["attachments"]
    assert prompt_object["prompt"] == "[file 1: report.pdf]\nSummarise it"
    client.close()


def test_file_ids_extension(relay, fake_onemin):
    client = relay.openai_client()
    first = client.files.create(file=("a.txt", b"alpha"), purpose="assistants")
    second = client.files.create(file=("b.md", b"# beta"), purpose="assistants")

    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Compare the files"}],
        extra_body={"file_ids": [first.id, second.id]},
    )

    files = _prompt_object(fake_onemin)["attachments"]["files"]
    assert [fake_onemin.store.assets_by_uuid[uuid].data for uuid in files] == [b"alpha", b"# beta"]
    assert _prompt_object(fake_onemin)["prompt"] == "Compare the files"
    client.close()


def test_inline_file_data(relay, fake_onemin):
    part = {"type": "file", "file": {"filename": "notes.md", "file_data": _data_url(b"# Notes\n", "text/markdown")}}

    response = _chat(relay, [{"role": "user", "content": [part, {"type": "text", "text": "Read"}]}])

    assert response.status_code == 200, response.text
    assert _asset_uploads(fake_onemin)[-1].files["asset"] == ("notes.md.txt", "text/plain", b"# Notes\n")
    [file_uuid] = _prompt_object(fake_onemin)["attachments"]["files"]
    assert fake_onemin.store.assets_by_uuid[file_uuid].data == b"# Notes\n"


def test_image_file_goes_to_images(relay, fake_onemin):
    client = relay.openai_client()
    file = client.files.create(file=("photo.png", CAT), purpose="vision")

    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": [{"type": "text", "text": "What?"},
                                                {"type": "file", "file": {"file_id": file.id}}]}],
    )

    attachments = _prompt_object(fake_onemin)["attachments"]
    assert "files" not in attachments
    assert fake_onemin.assets[attachments["images"][0]].data == CAT
    assert _prompt_object(fake_onemin)["prompt"] == "What?\n[image 1]"
    client.close()


def test_image_file_rejected_for_text_model(relay, fake_onemin):
    file_id = relay.openai_client().files.create(file=("photo.png", CAT), purpose="vision").id

    response = _chat(relay, [{"role": "user", "content": "hi"}], model="deepseek-chat", file_ids=[file_id])

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "image_input_not_supported"
    assert response.json()["error"]["param"] == "file_ids.[0]"
    assert _chat_calls(fake_onemin) == []


def test_unknown_file_id_not_found(relay, fake_onemin):
    response = _chat(relay, [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-nope"}}]}])

    assert response.status_code == 404
    assert response.json()["error"]["param"] == "messages.[0].content.[0].file.file_id"
    assert _chat_calls(fake_onemin) == []


def test_other_keys_file_not_found(relay, fake_onemin):
    file_id = relay.openai_client(KEY).files.create(file=("a.txt", b"mine"), purpose="assistants").id

    response = _chat(relay, [{"role": "user", "content": "read it"}], key=OTHER_KEY, file_ids=[file_id])

    assert response.status_code == 404
    assert response.json()["error"]["param"] == "file_ids.[0]"
    assert _chat_calls(fake_onemin) == []


def test_code_interpreter_with_image_rejected(relay, fake_onemin):
    response = _chat(
        relay,
        [{"role": "user", "content": [{"type": "text", "text": "plot"}, _image_part(_data_url(CAT))]}],
        tools=[{"type": "code_interpreter"}],
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tools"
    assert _chat_calls(fake_onemin) == []
