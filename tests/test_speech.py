"""Text to speech end to end, and chat with speech models: the openai SDK, the relay under waitress, the fake 1min.ai."""

from __future__ import annotations

import re

import openai
import pytest
import requests

from routes.functions.audio_func import SpeechResult, sniff_audio_container, speech_response
from tests.openapi_check import assert_matches_schema
from utils.errors import UpstreamError

KEY = "test-key-1"
SPEECH = "/v1/audio/speech"
# response_format -> (Content-Type, leading bytes of the container).
FORMATS = {
    "mp3": ("audio/mpeg", b"ID3"),
    "opus": ("audio/ogg", b"OggS"),
    "aac": ("audio/aac", b"\xff\xf1"),
    "flac": ("audio/flac", b"fLaC"),
    "wav": ("audio/wav", b"RIFF"),
    "pcm": ("audio/pcm", b"\x00\x00\x00\x00"),
}
LINK = re.compile(r"^\[Listen to the spoken text \((\w+)\)\]\((\S+)\)$")


def _client(relay) -> openai.OpenAI:
    return openai.OpenAI(base_url=relay.base_url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def _post_speech(relay, body: dict, **kwargs) -> requests.Response:
    return requests.post(relay.url(SPEECH), json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=30, **kwargs)


def _speech_calls(fake) -> list[dict]:
    return [request.json for request in fake.requests_to("/api/features") if request.json["type"] == "TEXT_TO_SPEECH"]


def _cdn_requests(fake) -> list:
    return [request for request in fake.received if request.path.startswith("/cdn/")]


def _error(response: requests.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


@pytest.mark.parametrize("response_format", list(FORMATS))
def test_speech_format_through_sdk(relay, fake_onemin, response_format):
    content_type, signature = FORMATS[response_format]

    response = _client(relay).audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input="Hello there", response_format=response_format
    )

    assert response.headers["Content-Type"] == content_type
    assert response.content.startswith(signature)
    assert _speech_calls(fake_onemin) == [
        {
            "type": "TEXT_TO_SPEECH",
            "model": "tts-1",
            "promptObject": {"text": "Hello there", "voice": "alloy", "response_format": response_format},
        }
    ]


def test_speech_streams_with_sdk(relay, fake_onemin):
    with _client(relay).audio.speech.with_streaming_response.create(
        model="tts-1-hd", voice="nova", input="Stream this", response_format="flac", speed=1.5
    ) as response:
        content_type = response.headers["Content-Type"]
        audio = b"".join(response.iter_bytes())

    assert content_type == "audio/flac"
    assert audio.startswith(b"fLaC")
    stored = next(asset for asset in fake_onemin.store.assets_by_path.values() if asset.path.startswith("audios/"))
    assert audio == stored.data
    assert _speech_calls(fake_onemin)[0]["promptObject"]["speed"] == 1.5


def test_speech_fetched_from_temporary_url(relay, fake_onemin):
    _client(relay).audio.speech.create(model="tts-1", voice="alloy", input="hi")

    fetched = _cdn_requests(fake_onemin)
    assert len(fetched) == 1
    assert "X-Amz-Signature" in fetched[0].query


def test_speech_from_cdn_without_temporary_url(relay, fake_onemin):
    fake_onemin.set(tts_temporary_url="missing")

    audio = _client(relay).audio.speech.create(model="tts-1", voice="alloy", input="hi").content

    assert audio.startswith(b"ID3")
    fetched = _cdn_requests(fake_onemin)
    assert len(fetched) == 1
    assert fetched[0].query == {}


def test_expired_temporary_url_falls_back_to_cdn(relay, fake_onemin):
    fake_onemin.set(tts_temporary_url="expired")

    audio = _client(relay).audio.speech.create(model="tts-1", voice="alloy", input="hi", response_format="wav").content

    assert audio.startswith(b"RIFF")
    assert [request.query.get("X-Amz-Expires") for request in _cdn_requests(fake_onemin)] == ["0", None]


def test_speech_raw_bytes_answer(relay, fake_onemin):
    fake_onemin.set(tts_raw_bytes=True)

    response = _post_speech(relay, {"model": "tts-1", "voice": "alloy", "input": "hi", "response_format": "opus"})

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/ogg"
    assert response.content.startswith(b"OggS")
    assert response.headers["Content-Length"] == str(len(response.content))
    assert _cdn_requests(fake_onemin) == []


def test_speech_defaults(relay, fake_onemin):
    response = _post_speech(relay, {"input": "Defaults"})

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/mpeg"
    assert _speech_calls(fake_onemin)[0] == {
        "type": "TEXT_TO_SPEECH",
        "model": "tts-1",
        "promptObject": {"text": "Defaults", "voice": "alloy", "response_format": "mp3"},
    }


def test_custom_voice_object(relay, fake_onemin):
    response = _post_speech(relay, {"model": "tts-1", "voice": {"id": "echo"}, "input": "hi"})

    assert response.status_code == 200
    assert _speech_calls(fake_onemin)[0]["promptObject"]["voice"] == "echo"


def test_elevenlabs_payload(relay, fake_onemin):
    audio = _client(relay).audio.speech.create(model="elevenlabs-tts", voice="21m00Tcm4TlvDq8ikWAM", input="hi").content

    assert audio.startswith(b"ID3")
    assert _speech_calls(fake_onemin)[0]["promptObject"] == {
        "text": "hi",
        "voice_id": "21m00Tcm4TlvDq8ikWAM",
        "output_format": "mp3_44100_128",
    }


def test_elevenlabs_voice_id_field(relay, fake_onemin):
    response = _post_speech(
        relay, {"model": "elevenlabs-tts", "voice_id": "v-1", "output_format": "mp3_22050_32", "input": "hi"}
    )

    assert response.status_code == 200
    assert _speech_calls(fake_onemin)[0]["promptObject"] == {
        "text": "hi",
        "voice_id": "v-1",
        "output_format": "mp3_22050_32",
    }


def test_qwen_defaults_to_wav(relay, fake_onemin):
    response = _post_speech(relay, {"model": "qwen3-tts-flash", "voice": "Cherry", "input": "hi"})

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.content.startswith(b"RIFF")
    assert _speech_calls(fake_onemin)[0]["promptObject"] == {"text": "hi", "voice": "Cherry", "response_format": "wav"}


def test_google_speech_takes_language(relay, fake_onemin):
    response = _post_speech(
        relay, {"model": "google-tts", "voice": "en-US-Neural2-A", "input": "hi", "language": "en-US", "speed": 0.5}
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/mpeg"
    assert _speech_calls(fake_onemin)[0]["promptObject"] == {
        "text": "hi",
        "voice": "en-US-Neural2-A",
        "response_format": "mp3",
        "speed": 0.5,
        "language": "en-US",
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "qwen3-tts-flash", "input": "hi", "response_format": "mp3"}, "response_format"),
        ({"model": "elevenlabs-tts", "voice": "v", "input": "hi", "response_format": "wav"}, "response_format"),
        ({"model": "google-tts", "input": "hi", "response_format": "opus"}, "response_format"),
        ({"model": "elevenlabs-tts", "voice": "v", "input": "hi", "speed": 1.5}, "speed"),
        ({"model": "elevenlabs-tts", "voice": "v", "input": "hi", "output_format": "pcm_16000"}, "output_format"),
        ({"model": "tts-1", "voice": "alloy", "input": "hi", "instructions": "whisper"}, "instructions"),
        ({"model": "tts-1", "voice": "alloy", "input": ""}, "input"),
        ({"model": "tts-1", "voice": "alloy", "input": "x" * 4097}, "input"),
        ({"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 4.5}, "speed"),
        ({"model": "tts-1", "voice": "alloy", "input": "hi", "response_format": "ogg"}, "response_format"),
        ({"model": "tts-1", "voice": "alloy", "input": "hi", "stream_format": "sse"}, "stream_format"),
        ({"model": "tts-1", "voice": {"name": "x"}, "input": "hi"}, "voice.id"),
        ({"model": "whisper-1", "voice": "alloy", "input": "hi"}, "model"),
    ],
)
def test_invalid_speech_rejected_before_upstream(relay, fake_onemin, body, param):
    response = _post_speech(relay, body)

    assert response.status_code == 400, response.text
    assert _error(response)["param"] == param
    assert _speech_calls(fake_onemin) == []


def test_unproducible_format_message(relay):
    response = _post_speech(relay, {"model": "qwen3-tts-flash", "input": "hi", "response_format": "mp3"})

    assert _error(response)["message"] == (
        "'qwen3-tts-flash' cannot produce mp3 audio. Set 'response_format' to one of: wav."
    )


def test_speech_upstream_rejection_forwarded(relay, fake_onemin):
    response = _post_speech(relay, {"model": "tts-1", "voice": "marin", "input": "hi"})

    assert response.status_code == 400
    assert "voice" in _error(response)["message"]


def test_speech_unknown_model_not_found(relay):
    with pytest.raises(openai.NotFoundError):
        _client(relay).audio.speech.create(model="tts-9", voice="alloy", input="hi")


def test_wrong_container_is_bad_gateway(relay):
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt "

    with relay.app.app_context(), pytest.raises(UpstreamError) as raised:
        speech_response(relay.app.extensions["relay"].client, SpeechResult(audio=wav), "mp3")

    assert raised.value.status_code == 502
    assert "returned wav data for a mp3 request" in raised.value.message


@pytest.mark.parametrize(
    ("head", "container"),
    [
        (b"ID3\x04\x00", "mp3"),
        (b"\xff\xfb\x90\x64", "mp3"),
        (b"\xff\xf1\x58\x80", "aac"),
        (b"fLaC\x00", "flac"),
        (b"RIFF\x00\x00\x00\x00WAVE", "wav"),
        (b"RIFF\x00\x00\x00\x00AVI ", None),
        (b"OggS\x00", "ogg"),
        (b"\x00\x00\x00\x20ftypM4A ", "mp4"),
        (b"\x1a\x45\xdf\xa3\x01", "webm"),
        (b"<html>", None),
        (b"", None),
    ],
)
def test_container_sniffing(head, container):
    assert sniff_audio_container(head) == container


# --- chat with a text-to-speech model -------------------------------------------------------------


def _chat(relay, body: dict, **kwargs) -> requests.Response:
    return requests.post(
        relay.url("/v1/chat/completions"), json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=30, **kwargs
    )


def test_chat_with_speech_model_links_audio(relay, fake_onemin):
    response = _chat(
        relay,
        {
            "model": "tts-1",
            "messages": [
                {"role": "system", "content": "ignored"},
                {"role": "user", "content": "Say hello"},
            ],
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert_matches_schema("CreateChatCompletionResponse", body)
    content = body["choices"][0]["message"]["content"]
    audio_format, link = LINK.match(content).groups()
    assert audio_format == "mp3"
    assert link.startswith(fake_onemin.asset_url + "/audios/")
    assert requests.get(link, timeout=10).content.startswith(b"ID3")
    assert _speech_calls(fake_onemin)[0]["promptObject"] == {"text": "Say hello", "voice": "alloy", "response_format": "mp3"}
    assert body["usage"]["prompt_tokens"] > 0


def test_chat_with_speech_model_streams(relay, fake_onemin):
    stream = _client(relay).chat.completions.create(
        model="tts-1",
        messages=[{"role": "user", "content": "Stream the link"}],
        stream=True,
        extra_body={"audio": {"voice": "onyx", "format": "wav"}},
    )
    chunks = list(stream)

    content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    audio_format, link = LINK.match(content).groups()
    assert audio_format == "wav"
    assert requests.get(link, timeout=10).content.startswith(b"RIFF")
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert _speech_calls(fake_onemin)[0]["promptObject"]["voice"] == "onyx"


def test_chat_speech_raw_bytes_link(relay, fake_onemin):
    fake_onemin.set(tts_raw_bytes=True)

    completion = _client(relay).chat.completions.create(
        model="tts-1", messages=[{"role": "user", "content": "Raw please"}]
    )

    audio_format, link = LINK.match(completion.choices[0].message.content).groups()
    assert audio_format == "mp3"
    upload = fake_onemin.requests_to("/api/assets")[-1]
    assert upload.files["asset"][:2] == ("speech.mp3", "audio/mpeg")
    uploaded = next(asset for asset in fake_onemin.store.assets_by_path.values() if asset.name == "speech.mp3")
    assert link == f"{fake_onemin.asset_url}/{uploaded.path}"
    assert requests.get(link, timeout=10).content.startswith(b"ID3")


def test_chat_speech_rejects_unlinkable_format(relay, fake_onemin):
    response = _chat(
        relay, {"model": "tts-1", "messages": [{"role": "user", "content": "hi"}], "audio": {"format": "pcm16"}}
    )

    assert response.status_code == 400
    assert _error(response)["param"] == "audio.format"
    assert _speech_calls(fake_onemin) == []


def test_chat_speech_needs_user_text(relay, fake_onemin):
    response = _chat(relay, {"model": "tts-1", "messages": [{"role": "system", "content": "only system"}]})

    assert response.status_code == 400
    assert _error(response)["param"] == "messages"
    assert _speech_calls(fake_onemin) == []
