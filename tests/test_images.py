"""Image generation, variations and edits end to end: the openai SDK, the relay under waitress, the fake 1min.ai."""

from __future__ import annotations

import base64
import logging
import threading
import time

import openai
import pytest
import requests

from routes.functions.image_families import ImageJob, midjourney_aspect
from routes.functions.image_jobs import parse_prompt_flags
from tests.fake_onemin.media import png_image
from tests.openapi_check import assert_matches_schema
from utils.catalog import STORAGE_KEY, CatalogModel
from utils.constants import MODEL_ALIASES
from utils.errors import InvalidRequestError

# The SDK marks images.create_variation deprecated, but it is the call Open WebUI and others make.
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")

KEY = "test-key-1"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PHOENIX = MODEL_ALIASES["leonardo-phoenix"]


def _generate(relay, body: dict, key: str = KEY) -> requests.Response:
    return requests.post(
        relay.url("/v1/images/generations"), json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _post_form(relay, path: str, files, data: dict) -> requests.Response:
    return requests.post(
        relay.url(path), files=files, data=data, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    )


def _feature_calls(fake, feature: str) -> list[dict]:
    return [request.json for request in fake.requests_to("/api/features") if request.json["type"] == feature]


def _generations(fake) -> list[dict]:
    return _feature_calls(fake, "IMAGE_GENERATOR")


def _key_of(fake, url: str) -> str:
    assert url.startswith(fake.asset_url + "/")
    return url[len(fake.asset_url) + 1 :]


# Payloads per family.

FAMILY_CASES = [
    (
        {"model": "dall-e-2", "prompt": "a fox", "size": "512x512", "n": 2},
        "dall-e-2",
        {"prompt": "a fox", "size": "512x512", "n": 2},
    ),
    (
        {"model": "dall-e-3", "prompt": "a fox", "size": "1792x1024", "quality": "hd", "style": "natural"},
        "dall-e-3",
        {"prompt": "a fox", "size": "1792x1024", "quality": "hd", "style": "natural", "n": 1},
    ),
    (
        {"model": "dall-e-3", "prompt": "a fox", "quality": "high"},
        "dall-e-3",
        {"prompt": "a fox", "quality": "hd", "n": 1},
    ),
    (
        {"model": "gpt-image-1", "prompt": "a fox"},
        "gpt-image-1",
        {"prompt": "a fox", "quality": "medium", "n": 1},
    ),
    (
        {
            "model": "gpt-image-1-mini",
            "prompt": "a fox",
            "size": "1536x1024",
            "quality": "hd",
            "background": "transparent",
            "output_format": "webp",
            "output_compression": 60,
        },
        "gpt-image-1-mini",
        {
            "prompt": "a fox",
            "quality": "high",
            "size": "1536x1024",
            "background": "transparent",
            "output_format": "webp",
            "output_compression": 60,
            "n": 1,
        },
    ),
    (
        {"model": "black-forest-labs/flux-dev", "prompt": "a fox", "size": "1792x1024", "output_format": "jpeg"},
        "black-forest-labs/flux-dev",
        {"prompt": "a fox", "aspect_ratio": "16:9", "output_format": "jpg", "num_outputs": 1},
    ),
    (
        {"model": "flux-1.1-pro", "prompt": "a fox --ar 2:3"},
        "flux-1.1-pro",
        {"prompt": "a fox", "aspect_ratio": "2:3", "num_outputs": 1},
    ),
    (
        {"model": "midjourney", "prompt": "a fox --ar 16:9 --no dogs, cats --relax"},
        "midjourney",
        {
            "prompt": "a fox",
            "mode": "relax",
            "n": 4,
            "aspect_width": 16,
            "aspect_height": 9,
            "isNiji6": False,
            "maintainModeration": True,
            "negativePrompt": "dogs, cats",
        },
    ),
    (
        {"model": "magic-art", "prompt": "a fox", "size": "1024x1792"},
        "magic-art",
        {
            "prompt": "a fox",
            "mode": "fast",
            "n": 4,
            "aspect_width": 4,
            "aspect_height": 7,
            "isNiji6": False,
            "maintainModeration": True,
        },
    ),
    (
        {"model": "leonardo-phoenix", "prompt": "a fox --no blur", "size": "1024x768"},
        PHOENIX,
        {"prompt": "a fox", "size": "1024x768", "negativePrompt": "blur", "n": 1},
    ),
    (
        {"model": MODEL_ALIASES["leonardo-kino-xl"], "prompt": "a fox", "size": "1792x1024"},
        MODEL_ALIASES["leonardo-kino-xl"],
        {"prompt": "a fox", "size": "1024x768", "n": 1},
    ),
    (
        {"model": "stable-diffusion-xl-1024-v1-0", "prompt": "a fox", "size": "1792x1024"},
        "stable-diffusion-xl-1024-v1-0",
        {"prompt": "a fox", "size": "1344x768", "samples": 1},
    ),
    (
        {"model": "recraft", "prompt": "a fox", "size": "1024x1024"},
        "recraft",
        {"prompt": "a fox", "size": "1024x1024", "n": 1},
    ),
    (
        {"model": "gemini-2.5-flash-image", "prompt": "a fox --ar 4:3"},
        "gemini-2.5-flash-image",
        {"prompt": "a fox", "aspect_ratio": "4:3", "n": 1},
    ),
]


@pytest.mark.parametrize(("request_body", "upstream_model", "prompt_object"), FAMILY_CASES)
def test_family_payload_sent_upstream(relay, fake_onemin, request_body, upstream_model, prompt_object):
    response = _generate(relay, {**request_body, "response_format": "url"})

    assert response.status_code == 200, response.text
    assert_matches_schema("ImagesResponse", response.json())
    sent = _generations(fake_onemin)
    assert len(sent) == 1
    assert sent[0] == {"type": "IMAGE_GENERATOR", "model": upstream_model, "promptObject": prompt_object}
    assert len(response.json()["data"]) == request_body.get("n", 1)


def test_gpt_image_always_gets_quality(relay, fake_onemin):
    client = relay.openai_client()

    for quality in (None, "auto", "standard", "low"):
        options = {"quality": quality} if quality else {}
        client.images.generate(model="gpt-image-1", prompt="a fox", response_format="url", **options)

    sent = [call["promptObject"]["quality"] for call in _generations(fake_onemin)]
    assert sent == ["medium", "medium", "medium", "low"]


# Results: URLs, base64 and n.

def test_url_for_every_result(relay, fake_onemin):
    result = relay.openai_client().images.generate(model="dall-e-2", prompt="three foxes", n=3, size="256x256")

    assert len(result.data) == 3
    keys = [_key_of(fake_onemin, image.url) for image in result.data]
    assert len(set(keys)) == 3
    for key in keys:
        served = requests.get(f"{fake_onemin.asset_url}/{key}", timeout=10)
        assert served.status_code == 200
        assert served.content.startswith(PNG_SIGNATURE)
    assert all(image.b64_json is None for image in result.data)


def test_url_response_matches_spec_exactly(relay):
    body = _generate(relay, {"model": "dall-e-3", "prompt": "a fox"}).json()

    assert_matches_schema("ImagesResponse", body)
    assert set(body) == {"created", "data"}
    assert set(body["data"][0]) == {"url"}
    assert abs(body["created"] - time.time()) < 60


def test_b64_json_is_the_stored_image(relay, fake_onemin):
    response = _generate(relay, {"model": "dall-e-2", "prompt": "a fox", "n": 2, "response_format": "b64_json"})

    body = response.json()
    assert_matches_schema("ImagesResponse", body)
    assert [set(item) for item in body["data"]] == [{"b64_json"}, {"b64_json"}]
    decoded = [base64.b64decode(item["b64_json"]) for item in body["data"]]
    stored = {asset.data for path, asset in fake_onemin.assets.items() if path.startswith("images/")}
    assert all(image.startswith(PNG_SIGNATURE) for image in decoded)
    assert set(decoded) <= stored
    assert len(set(decoded)) == 2


def test_gpt_image_defaults_to_b64_json(relay):
    result = relay.openai_client().images.generate(model="gpt-image-1", prompt="a fox")

    assert result.data[0].url is None
    assert base64.b64decode(result.data[0].b64_json).startswith(PNG_SIGNATURE)


def test_missing_result_on_cdn_is_502(relay, fake_onemin):
    relay.app.extensions["relay"].client.asset_url = fake_onemin.asset_url + "/missing"

    response = _generate(relay, {"model": "dall-e-2", "prompt": "a fox", "response_format": "b64_json"})

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"


@pytest.mark.parametrize(
    ("model", "n", "calls", "count_field"),
    [
        ("dall-e-3", 3, [1, 1, 1], "n"),
        ("black-forest-labs/flux-dev", 5, [4, 1], "num_outputs"),
        ("midjourney", 6, [4, 4], "n"),
        ("midjourney", 1, [4], "n"),
    ],
)
def test_n_split_over_calls(relay, fake_onemin, model, n, calls, count_field):
    result = relay.openai_client().images.generate(model=model, prompt="foxes", n=n, response_format="url")

    assert len(result.data) == n
    assert len({image.url for image in result.data}) == n
    # The calls run in parallel, so they reach the fake in any order.
    assert sorted(call["promptObject"][count_field] for call in _generations(fake_onemin)) == sorted(calls)


def test_n_above_max_n_rejected(relay_factory, fake_onemin):
    relay = relay_factory(MAX_N="4")

    response = _generate(relay, {"model": "dall-e-2", "prompt": "a fox", "n": 5})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "n"
    assert _generations(fake_onemin) == []


# Prompt flags.

def test_prompt_flags_removed_and_revised_prompt(relay, fake_onemin):
    result = relay.openai_client().images.generate(
        model="midjourney", prompt="a quiet lake --ar 3:2 --no boats --fast", response_format="url"
    )

    assert result.data[0].revised_prompt == "a quiet lake"
    prompt_object = _generations(fake_onemin)[0]["promptObject"]
    assert prompt_object["prompt"] == "a quiet lake"
    assert prompt_object["negativePrompt"] == "boats"
    assert prompt_object["mode"] == "fast"
    assert (prompt_object["aspect_width"], prompt_object["aspect_height"]) == (3, 2)


def test_prompt_without_flags_has_no_revised_prompt(relay):
    body = _generate(relay, {"model": "dall-e-2", "prompt": "a quiet lake"}).json()

    assert "revised_prompt" not in body["data"][0]


@pytest.mark.parametrize(
    ("text", "prompt", "aspect", "negative", "mode"),
    [
        ("a cat", "a cat", None, None, None),
        ("a cat --ar 16:9", "a cat", (16, 9), None, None),
        ("--aspect 2:3 a cat", "a cat", (2, 3), None, None),
        ("a cat --no dogs, birds --relax", "a cat", None, "dogs, birds", "relax"),
        ("a cat --no dogs --ar 1:2 --no hats", "a cat", (1, 2), "dogs, hats", None),
        ("a cat --FAST --relax", "a cat", None, None, "relax"),
        ("a cat --normal --v 6", "a cat --normal --v 6", None, None, None),
        ("a cat--ar 16:9", "a cat--ar 16:9", None, None, None),
    ],
)
def test_prompt_flags_parsed(text, prompt, aspect, negative, mode):
    flags = parse_prompt_flags(text)

    assert flags.prompt == prompt
    assert flags.aspect == aspect
    assert flags.negative_prompt == negative
    assert flags.mode == mode


@pytest.mark.parametrize("text", ["a cat --ar wide", "a cat --ar", "a cat --ar 0:3", "a cat --ar 16/9"])
def test_bad_aspect_flag_rejected(text):
    with pytest.raises(InvalidRequestError, match="--ar"):
        parse_prompt_flags(text)


def test_prompt_of_only_flags_rejected(relay, fake_onemin):
    response = _generate(relay, {"model": "dall-e-2", "prompt": "--ar 1:1 --fast"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"
    assert _generations(fake_onemin) == []


@pytest.mark.parametrize(
    ("aspect", "expected"),
    [
        ((16, 9), (16, 9)),
        ((1792, 1024), (7, 4)),
        ((1000, 301), (93, 28)),
        ((10000, 10), (100, 1)),
        ((10, 9999), (1, 100)),
    ],
)
def test_midjourney_aspect_terms_at_most_100(aspect, expected):
    assert midjourney_aspect(ImageJob(aspect=aspect), "midjourney") == expected


# Sizes: rejected for OpenAI models, mapped to the nearest value elsewhere.

@pytest.mark.parametrize(
    ("model", "size", "allowed"),
    [
        ("dall-e-3", "512x512", "1024x1024, 1792x1024, 1024x1792"),
        ("dall-e-2", "1792x1024", "256x256, 512x512, 1024x1024"),
        ("gpt-image-1", "800x600", "auto, 1024x1024, 1536x1024, 1024x1536"),
    ],
)
def test_unsupported_openai_size_is_400(relay, fake_onemin, model, size, allowed):
    response = _generate(relay, {"model": model, "prompt": "a fox", "size": size})

    assert response.status_code == 400
    error = response.json()["error"]
    assert_matches_schema("ErrorResponse", response.json())
    assert error["param"] == "size"
    assert size in error["message"]
    assert allowed in error["message"]
    assert _generations(fake_onemin) == []


@pytest.mark.parametrize("size", ["big", "1024", "1024x", "0x1024", "1024X1024", "123456x1"])
def test_malformed_size_is_400(relay, size):
    response = _generate(relay, {"model": "recraft", "prompt": "a fox", "size": size})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "size"


def test_nearest_aspect_ratio_is_logged(relay, fake_onemin, caplog):
    caplog.set_level(logging.INFO, logger="routes.functions.image_families")

    response = _generate(relay, {"model": "black-forest-labs/flux-dev", "prompt": "a fox", "size": "1000x300"})

    assert response.status_code == 200
    assert _generations(fake_onemin)[0]["promptObject"]["aspect_ratio"] == "16:9"
    messages = [record.getMessage() for record in caplog.records if record.name == "routes.functions.image_families"]
    assert messages == ["black-forest-labs/flux-dev does not offer size 1000x300; sent aspect ratio 16:9 instead"]


def test_aspect_flag_maps_to_nearest_openai_size(relay, fake_onemin):
    _generate(relay, {"model": "dall-e-3", "prompt": "a fox --ar 9:16"})

    assert _generations(fake_onemin)[0]["promptObject"]["size"] == "1024x1792"


# Request checks and models.

@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "dall-e-2"}, "prompt"),
        ({"model": "dall-e-2", "prompt": 5}, "prompt"),
        ({"model": "dall-e-2", "prompt": "x", "n": 0}, "n"),
        ({"model": "dall-e-2", "prompt": "x", "n": "2"}, "n"),
        ({"model": "dall-e-2", "prompt": "x", "response_format": "png"}, "response_format"),
        ({"model": "dall-e-2", "prompt": "x", "quality": "ultra"}, "quality"),
        ({"model": "dall-e-3", "prompt": "x", "style": "dark"}, "style"),
        ({"model": "gpt-image-1", "prompt": "x", "background": "red"}, "background"),
        ({"model": "gpt-image-1", "prompt": "x", "output_format": "gif"}, "output_format"),
        ({"model": "gpt-image-1", "prompt": "x", "output_compression": 101}, "output_compression"),
        ({"model": "gpt-image-1", "prompt": "x", "moderation": "none"}, "moderation"),
        ({"model": "gpt-image-1", "prompt": "x", "stream": True}, "stream"),
    ],
)
def test_invalid_generation_body_rejected(relay, fake_onemin, body, param):
    response = _generate(relay, body)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert _generations(fake_onemin) == []


def test_unknown_image_model_is_404(relay):
    with pytest.raises(openai.NotFoundError) as raised:
        relay.openai_client().images.generate(model="dall-e-9", prompt="a fox")

    assert raised.value.body["code"] == "model_not_found"


def test_disabled_model_is_404_before_upstream(relay, fake_onemin):
    response = _generate(relay, {"model": "black-forest-labs/flux-schnell", "prompt": "a fox"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert _generations(fake_onemin) == []


def test_upstream_unsupported_model_is_404(relay, fake_onemin):
    # The cached catalog still lists a model that 1min.ai has since disabled.
    state = relay.app.extensions["relay"]
    stale = [model.to_dict() for model in state.catalog.list()]
    stale.append(
        CatalogModel(
            "black-forest-labs/flux-schnell", "Flux Schnell", "black-forest-labs", frozenset({"IMAGE_GENERATOR"})
        ).to_dict()
    )
    state.storage.set(STORAGE_KEY, stale, 600)
    state.catalog._local = None

    response = _generate(relay, {"model": "black-forest-labs/flux-schnell", "prompt": "a fox"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert len(_generations(fake_onemin)) == 1


def test_chat_model_cannot_generate_images(relay, fake_onemin):
    response = _generate(relay, {"model": "gpt-4o-mini", "prompt": "a fox"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "model"
    assert "dall-e-3" in error["message"]
    assert "midjourney" in error["message"]


def test_upstream_failure_is_502(relay, fake_onemin):
    fake_onemin.set(fail_status=500)

    response = _generate(relay, {"model": "dall-e-2", "prompt": "a fox"})

    assert response.status_code == 502


def test_missing_key_is_401(relay):
    response = requests.post(relay.url("/v1/images/generations"), json={"prompt": "x"}, timeout=10)

    assert response.status_code == 401


# Long jobs.

def test_image_job_timeout_separate_from_read_timeout(relay_factory, fake_onemin):
    relay = relay_factory(UPSTREAM_READ_TIMEOUT="0.3", IMAGE_JOB_TIMEOUT="5")
    assert requests.get(relay.url("/v1/models"), timeout=10).status_code == 200
    fake_onemin.set(stall_seconds=0.6)

    response = _generate(relay, {"model": "midjourney", "prompt": "a slow fox"})

    assert response.status_code == 200, response.text


def test_image_job_timeout_is_504(relay_factory, fake_onemin):
    relay = relay_factory(IMAGE_JOB_TIMEOUT="1")
    assert requests.get(relay.url("/v1/models"), timeout=10).status_code == 200
    fake_onemin.set(stall_seconds=3)

    response = _generate(relay, {"model": "midjourney", "prompt": "a slow fox"})

    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


def test_slow_image_does_not_block_chat(relay, fake_onemin):
    assert requests.get(relay.url("/v1/models"), timeout=10).status_code == 200
    fake_onemin.set(stall_seconds=1.5)
    image_done = threading.Event()
    image_status: list[int] = []

    def slow_image() -> None:
        image_status.append(_generate(relay, {"model": "midjourney", "prompt": "a slow fox"}).status_code)
        image_done.set()

    worker = threading.Thread(target=slow_image)
    worker.start()
    deadline = time.monotonic() + 5
    while not _generations(fake_onemin) and time.monotonic() < deadline:
        time.sleep(0.02)
    # The fake reads its behaviour when a request arrives, so the chat below is not stalled.
    fake_onemin.set(stall_seconds=0)

    chat = requests.post(
        relay.url("/v1/chat/completions"),
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )

    assert chat.status_code == 200
    assert not image_done.is_set()
    worker.join(10)
    assert image_status == [200]


# Variations.

def test_variation_through_sdk(relay, fake_onemin):
    source = png_image("source")

    result = relay.openai_client().images.create_variation(
        image=("fox.png", source, "image/png"), model="dall-e-2", n=2, size="256x256"
    )

    assert len(result.data) == 2
    upload = fake_onemin.requests_to("/api/assets")
    assert len(upload) == 1
    filename, content_type, data = upload[0].files["asset"]
    assert (filename, content_type, data) == ("image.png", "image/png", source)
    calls = _feature_calls(fake_onemin, "IMAGE_VARIATOR")
    assert len(calls) == 1
    uploaded_path = calls[0]["promptObject"]["imageUrl"]
    assert fake_onemin.assets[uploaded_path].data == source
    assert calls[0] == {
        "type": "IMAGE_VARIATOR",
        "model": "dall-e-2",
        "promptObject": {"imageUrl": uploaded_path, "size": "256x256", "n": 2},
    }


def test_variation_response_matches_spec(relay, fake_onemin):
    response = _post_form(
        relay,
        "/v1/images/variations",
        {"image": ("fox.png", png_image("x"), "image/png")},
        {"model": "midjourney", "n": "2", "response_format": "b64_json"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert_matches_schema("ImagesResponse", body)
    assert len(body["data"]) == 2
    assert base64.b64decode(body["data"][0]["b64_json"]).startswith(PNG_SIGNATURE)
    prompt_object = _feature_calls(fake_onemin, "IMAGE_VARIATOR")[0]["promptObject"]
    assert prompt_object["mode"] == "fast"
    assert (prompt_object["aspect_width"], prompt_object["aspect_height"]) == (1, 1)


def test_variation_with_flux_redux(relay, fake_onemin):
    relay.openai_client().images.create_variation(
        image=("fox.jpg", b"\xff\xd8\xff\xe0" + bytes(64), "image/jpeg"), model="flux-redux-dev", size="1024x1024"
    )

    call = _feature_calls(fake_onemin, "IMAGE_VARIATOR")[0]
    assert call["promptObject"]["aspect_ratio"] == "1:1"
    assert call["promptObject"]["num_outputs"] == 1
    assert call["promptObject"]["imageUrl"].endswith(".jpg")


def test_variation_unsupported_model_names_capable_ones(relay, fake_onemin):
    with pytest.raises(openai.BadRequestError) as raised:
        relay.openai_client().images.create_variation(image=("fox.png", png_image("x"), "image/png"), model="dall-e-3")

    message = raised.value.body["message"]
    assert "'dall-e-3' cannot make image variations" in message
    for capable in ("dall-e-2", "midjourney", "magic-art", "flux-redux-dev", "recraft"):
        assert capable in message
    assert "gpt-image-1" not in message
    assert fake_onemin.requests_to("/api/assets") == []


def test_variation_without_image_is_400(relay):
    response = _post_form(
        relay,
        "/v1/images/variations",
        {"other": ("x.png", png_image("x"), "image/png")},
        {"model": "dall-e-2"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "image"


def test_variation_json_body_is_400(relay):
    response = requests.post(
        relay.url("/v1/images/variations"),
        json={"model": "dall-e-2", "image": "x"},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )

    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]["message"]


def test_non_image_upload_is_400(relay, fake_onemin):
    with pytest.raises(openai.BadRequestError) as raised:
        relay.openai_client().images.create_variation(image=("fox.png", b"not an image", "image/png"))

    assert raised.value.body["param"] == "image"
    assert fake_onemin.requests_to("/api/assets") == []


def test_upload_larger_than_limit_is_413(relay_factory, fake_onemin):
    relay = relay_factory(MAX_IMAGE_BYTES="2048")
    oversized = PNG_SIGNATURE + bytes(4096)

    response = _post_form(
        relay,
        "/v1/images/variations",
        {"image": ("big.png", oversized, "image/png")},
        {"model": "dall-e-2"},
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert fake_onemin.requests_to("/api/assets") == []


def test_body_far_over_limit_is_413(relay_factory, fake_onemin):
    relay = relay_factory(MAX_IMAGE_BYTES="2048")

    response = _post_form(
        relay,
        "/v1/images/edits",
        {"image": ("big.png", PNG_SIGNATURE + bytes(2 * 1024 * 1024), "image/png")},
        {"model": "gpt-image-1", "prompt": "x"},
    )

    assert response.status_code == 413
    assert fake_onemin.requests_to("/api/assets") == []


def test_form_n_must_be_integer(relay):
    response = _post_form(
        relay,
        "/v1/images/variations",
        {"image": ("x.png", png_image("x"), "image/png")},
        {"model": "dall-e-2", "n": "two"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "n"


# Edits.

def test_edit_through_sdk_with_mask(relay, fake_onemin):
    source, mask = png_image("photo"), png_image("mask")

    result = relay.openai_client().images.edit(
        image=("photo.png", source, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="add a hat --ar 3:2",
        model="gpt-image-1",
        size="1024x1024",
        response_format="url",
    )

    assert len(result.data) == 1
    assert result.data[0].url.startswith(fake_onemin.asset_url + "/images/")
    assert result.data[0].revised_prompt == "add a hat"
    calls = _feature_calls(fake_onemin, "IMAGE_EDITOR")
    assert len(calls) == 1
    prompt_object = calls[0]["promptObject"]
    assert fake_onemin.assets[prompt_object["imageUrl"]].data == source
    assert fake_onemin.assets[prompt_object["mask"]].data == mask
    assert prompt_object == {
        "imageUrl": prompt_object["imageUrl"],
        "prompt": "add a hat",
        "mask": prompt_object["mask"],
        "quality": "medium",
        "size": "1536x1024",
        "n": 1,
    }


def test_edit_defaults_to_b64_json_for_gpt_image(relay, fake_onemin):
    response = _post_form(
        relay,
        "/v1/images/edits",
        {"image[]": ("photo.png", png_image("photo"), "image/png")},
        {"prompt": "add a hat"},
    )

    assert response.status_code == 200, response.text
    assert_matches_schema("ImagesResponse", response.json())
    assert set(response.json()["data"][0]) == {"b64_json"}
    assert _feature_calls(fake_onemin, "IMAGE_EDITOR")[0]["model"] == "gpt-image-1"


def test_edit_with_flux_kontext(relay, fake_onemin):
    relay.openai_client().images.edit(
        image=("photo.png", png_image("photo"), "image/png"), prompt="make it night", model="flux-kontext-pro", n=2
    )

    calls = _feature_calls(fake_onemin, "IMAGE_EDITOR")
    assert len(calls) == 2
    assert set(calls[0]["promptObject"]) == {"imageUrl", "prompt"}


def test_flux_kontext_rejects_mask(relay, fake_onemin):
    with pytest.raises(openai.BadRequestError) as raised:
        relay.openai_client().images.edit(
            image=("photo.png", png_image("photo"), "image/png"),
            mask=("mask.png", png_image("mask"), "image/png"),
            prompt="make it night",
            model="flux-kontext-pro",
        )

    assert raised.value.body["param"] == "mask"
    assert _feature_calls(fake_onemin, "IMAGE_EDITOR") == []


def test_edit_needs_prompt(relay):
    response = _post_form(
        relay,
        "/v1/images/edits",
        {"image": ("photo.png", png_image("photo"), "image/png")},
        {"model": "gpt-image-1"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"


def test_edit_unsupported_model_names_capable_ones(relay, fake_onemin):
    with pytest.raises(openai.BadRequestError) as raised:
        relay.openai_client().images.edit(
            image=("photo.png", png_image("photo"), "image/png"), prompt="x", model="dall-e-2"
        )

    message = raised.value.body["message"]
    assert "gpt-image-1" in message
    assert "flux-kontext-pro" in message
    assert "qwen-image-edit-plus" in message


def test_edit_takes_one_image(relay):
    response = _post_form(
        relay,
        "/v1/images/edits",
        [("image[]", ("a.png", png_image("a"), "image/png")), ("image[]", ("b.png", png_image("b"), "image/png"))],
        {"model": "gpt-image-1", "prompt": "x"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "image"
