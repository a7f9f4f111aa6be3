"""Transcriptions and translations end to end: the openai SDK, the relay under waitress, the fake 1min.ai.

The audio files are made here: WAV with the standard library's ``wave`` module, and MP3, FLAC and
WebM as bytes with real headers.
"""

from __future__ import annotations

import io
import json
import struct
import wave

import openai
import pytest
import requests

from routes.functions.subtitle_func import Segment, to_srt, to_vtt
from routes.functions.transcription_func import AudioUpload, TranscriptionRequest, read_transcript
from tests.fake_onemin.audio import transcript_text, translation_text
from tests.openapi_check import assert_matches_schema

KEY = "test-key-1"
TRANSCRIPTIONS = "/v1/audio/transcriptions"
TRANSLATIONS = "/v1/audio/translations"
# MPEG-1 Layer III, 128 kbit/s, 44.1 kHz: each frame is 417 bytes long and plays 1152 samples.
MP3_FRAME = b"\xff\xfb\x90\x64" + bytes(413)


def wav_audio(seconds: float = 1.5, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x00\x00" * int(rate * seconds))
    return buffer.getvalue()


def mp3_audio(frames: int = 38) -> bytes:
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + MP3_FRAME * frames


def flac_audio(seconds: float = 2.0, rate: int = 16000) -> bytes:
    """Return a FLAC stream that has only its STREAMINFO block, which is where the length is stored."""
    samples = int(seconds * rate)
    # Sample rate (20 bits), channels - 1 (3 bits), bits per sample - 1 (5 bits), total samples (36 bits).
    packed = (rate << 44) | (0 << 41) | (15 << 36) | samples
    stream_info = struct.pack(">HH", 4096, 4096) + bytes(6) + struct.pack(">Q", packed) + bytes(16)
    return b"fLaC" + bytes((0x80,)) + len(stream_info).to_bytes(3, "big") + stream_info


def webm_audio() -> bytes:
    """Return an EBML header for the webm doc type: a container whose length the relay cannot read."""
    doc_type = b"\x42\x82\x84webm"
    return b"\x1a\x45\xdf\xa3" + bytes((0x80 | len(doc_type),)) + doc_type + bytes(32)


def _client(relay) -> openai.OpenAI:
    return openai.OpenAI(base_url=relay.base_url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def _post_audio(relay, path: str, files: dict | None = None, data: dict | None = None, **kwargs) -> requests.Response:
    return requests.post(
        relay.url(path),
        files=files,
        data=data,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
        **kwargs,
    )


def _last_feature(fake) -> dict:
    return fake.requests_to("/api/features")[-1].json


def _error(response: requests.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


# --- transcriptions ------------------------------------------------------------------------------


def test_transcription_json_through_sdk(relay, fake_onemin):
    transcription = _client(relay).audio.transcriptions.create(model="whisper-1", file=("talk.wav", wav_audio()))

    assert transcription.text == transcript_text("talk.wav")
    upload = fake_onemin.requests_to("/api/assets")[-1]
    assert upload.files["asset"][0] == "talk.wav"
    assert upload.files["asset"][1] == "audio/wav"
    assert upload.files["asset"][2] == wav_audio()
    path = next(iter(fake_onemin.store.assets_by_path))
    assert _last_feature(fake_onemin) == {
        "type": "SPEECH_TO_TEXT",
        "model": "whisper-1",
        "promptObject": {"audioUrl": path, "response_format": "text"},
    }


def test_transcription_json_matches_spec(relay):
    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("talk.mp3", mp3_audio())}, data={"model": "whisper-1"})

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert_matches_schema("CreateTranscriptionResponseJson", response.json())
    assert response.json() == {"text": transcript_text("talk.mp3")}


def test_transcription_text_format(relay):
    text = _client(relay).audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", wav_audio()), response_format="text"
    )

    assert text == transcript_text("talk.wav")


def test_transcription_srt_format(relay):
    srt = _client(relay).audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", wav_audio(1.5)), response_format="srt"
    )

    assert srt == f"1\n00:00:00,000 --> 00:00:01,500\n{transcript_text('talk.wav')}\n"


def test_transcription_vtt_format(relay):
    vtt = _client(relay).audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", wav_audio(2.25)), response_format="vtt"
    )

    assert vtt == f"WEBVTT\n\n00:00:00.000 --> 00:00:02.250\n{transcript_text('talk.wav')}\n"


def test_transcription_verbose_json_format(relay, fake_onemin):
    verbose = _client(relay).audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", wav_audio(1.5)), response_format="verbose_json", language="en"
    )

    assert verbose.text == transcript_text("talk.wav")
    assert verbose.language == "english"
    assert verbose.duration == 1.5
    assert len(verbose.segments) == 1
    assert verbose.segments[0].start == 0.0
    assert verbose.segments[0].end == 1.5
    assert verbose.segments[0].text == transcript_text("talk.wav")
    assert _last_feature(fake_onemin)["promptObject"]["response_format"] == "verbose_json"
    assert _last_feature(fake_onemin)["promptObject"]["language"] == "en"


def test_transcription_verbose_json_matches_spec(relay):
    response = _post_audio(
        relay,
        TRANSCRIPTIONS,
        files={"file": ("long.flac", flac_audio(seconds=2.0))},
        data={"model": "whisper-1", "response_format": "verbose_json", "temperature": "0.2"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert_matches_schema("CreateTranscriptionResponseVerboseJson", body)
    assert body["task"] == "transcribe"
    assert body["language"] == "unknown"
    assert body["duration"] == 2.0
    assert body["segments"][0]["end"] == 2.0
    assert body["segments"][0]["temperature"] == 0.2
    assert body["usage"] == {"type": "duration", "seconds": 2}


@pytest.mark.parametrize("response_format", ["text", "srt", "vtt"])
def test_text_formats_are_plain_text(relay, response_format):
    response = _post_audio(
        relay, TRANSCRIPTIONS, files={"file": ("talk.wav", wav_audio())}, data={"response_format": response_format}
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert transcript_text("talk.wav") in response.text


def test_mp3_duration_from_frames(relay):
    verbose = _client(relay).audio.transcriptions.create(
        model="whisper-1", file=("talk.mp3", mp3_audio(frames=38)), response_format="verbose_json"
    )

    assert verbose.duration == pytest.approx(38 * 1152 / 44100, abs=0.01)
    assert verbose.segments[0].end == verbose.duration


def test_unreadable_duration_estimated(relay):
    srt = _client(relay).audio.transcriptions.create(
        model="whisper-1", file=("talk.webm", webm_audio()), response_format="srt"
    )

    seconds = len(transcript_text("talk.webm").split()) / 2.5
    assert srt.splitlines()[1] == "00:00:00,000 --> " + f"00:00:{seconds:06.3f}".replace(".", ",")


def test_json_result_is_unwrapped(relay, fake_onemin):
    fake_onemin.set(stt_json_text=True)
    client = _client(relay)

    plain = client.audio.transcriptions.create(model="whisper-1", file=("talk.wav", wav_audio()))
    srt = client.audio.transcriptions.create(model="whisper-1", file=("talk.wav", wav_audio()), response_format="srt")

    assert plain.text == transcript_text("talk.wav")
    assert srt.splitlines()[2] == transcript_text("talk.wav")


def test_upstream_segments_are_kept():
    job = TranscriptionRequest("SPEECH_TO_TEXT", "whisper-1", "verbose_json", None, 0.0, None)
    audio = AudioUpload("talk.wav", wav_audio(3.0), "wav", "talk.wav", "audio/wav")
    result = json.dumps(
        {
            "text": "One. Two.",
            "language": "german",
            "duration": 2.5,
            "segments": [
                {"start": 0.0, "end": 1.2, "text": " One."},
                {"start": 1.2, "end": 2.5, "text": " Two."},
                {"start": "late", "end": 3.0, "text": "skipped"},
            ],
        }
    )
    body = {"aiRecord": {"status": "SUCCESS", "aiRecordDetail": {"resultObject": [result]}}}

    transcript = read_transcript(body, job, audio)

    assert transcript.text == "One. Two."
    assert transcript.language == "german"
    assert transcript.duration == 2.5
    assert transcript.segments == [Segment(0.0, 1.2, "One."), Segment(1.2, 2.5, "Two.")]


def test_subtitles_number_and_escape_cues():
    segments = [Segment(0.0, 61.5, "first\n\nline"), Segment(3661.001, 3662.0, "a --> b")]

    assert to_srt(segments) == (
        "1\n00:00:00,000 --> 00:01:01,500\nfirst\nline\n\n2\n01:01:01,001 --> 01:01:02,000\na -> b\n"
    )
    assert to_vtt(segments) == (
        "WEBVTT\n\n00:00:00.000 --> 00:01:01.500\nfirst\nline\n\n01:01:01.001 --> 01:01:02.000\na -> b\n"
    )
    assert to_srt([]) == ""


@pytest.mark.parametrize(
    ("model", "language", "sent"),
    [
        ("latest_long", "en", "en-US"),
        ("latest_long", "pt", "pt-BR"),
        ("latest_long", "en_gb", "en-GB"),
        ("latest_long", "EN-au", "en-AU"),
        ("whisper-1", "en-US", "en"),
        ("gpt-4o-transcribe", "de", "de"),
    ],
)
def test_language_sent_in_model_style(relay, fake_onemin, model, language, sent):
    response = _post_audio(
        relay, TRANSCRIPTIONS, files={"file": ("talk.wav", wav_audio())}, data={"model": model, "language": language}
    )

    assert response.status_code == 200, response.text
    assert _last_feature(fake_onemin)["promptObject"]["language"] == sent


@pytest.mark.parametrize(("model", "language"), [("latest_long", "xx"), ("whisper-1", "english!")])
def test_unusable_language_rejected(relay, fake_onemin, model, language):
    response = _post_audio(
        relay, TRANSCRIPTIONS, files={"file": ("talk.wav", wav_audio())}, data={"model": model, "language": language}
    )

    assert response.status_code == 400
    assert _error(response)["param"] == "language"
    assert repr(language) in _error(response)["message"]
    assert fake_onemin.requests_to("/api/assets") == []


def test_mpga_uploaded_as_mp3(relay, fake_onemin):
    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("voice memo.mpga", mp3_audio())})

    assert response.status_code == 200, response.text
    assert fake_onemin.requests_to("/api/assets")[-1].files["asset"][:2] == ("voice_memo.mp3", "audio/mpeg")


def test_file_without_extension_named_by_content(relay, fake_onemin):
    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("recording", wav_audio())})

    assert response.status_code == 200, response.text
    assert fake_onemin.requests_to("/api/assets")[-1].files["asset"][:2] == ("recording.wav", "audio/wav")


def test_prompt_accepted_but_not_sent(relay, fake_onemin):
    response = _post_audio(
        relay, TRANSCRIPTIONS, files={"file": ("talk.wav", wav_audio())}, data={"prompt": "Names: Ada", "temperature": "0.3"}
    )

    assert response.status_code == 200, response.text
    assert _last_feature(fake_onemin)["promptObject"] == {
        "audioUrl": fake_onemin.requests_to("/api/features")[-1].json["promptObject"]["audioUrl"],
        "response_format": "text",
        "temperature": 0.3,
    }


# --- rejected uploads ----------------------------------------------------------------------------


def test_missing_file_rejected(relay, fake_onemin):
    response = _post_audio(relay, TRANSCRIPTIONS, files={"other": ("talk.wav", wav_audio())})

    assert response.status_code == 400
    error = _error(response)
    assert error["param"] == "file"
    assert "mp3, mpeg, mpga, wav, m4a, mp4, flac, webm, ogg" in error["message"]
    assert fake_onemin.requests_to("/api/assets") == []


def test_empty_file_rejected(relay, fake_onemin):
    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("silence.wav", b"")})

    assert response.status_code == 400
    assert "'silence.wav' is empty" in _error(response)["message"]
    assert "Accepted formats: mp3" in _error(response)["message"]
    assert fake_onemin.requests_to("/api/assets") == []


def test_unsupported_extension_rejected(relay):
    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("notes.txt", b"hello")})

    assert response.status_code == 400
    assert "Unsupported audio type 'txt'" in _error(response)["message"]
    assert "Accepted formats: mp3" in _error(response)["message"]


def test_content_must_match_extension(relay, fake_onemin):
    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("talk.mp3", wav_audio())})

    assert response.status_code == 400
    assert "extension .mp3, but its content is wav audio" in _error(response)["message"]
    assert fake_onemin.requests_to("/api/assets") == []


def test_content_that_is_not_audio_rejected(relay):
    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("talk.ogg", b"<html>not audio</html>")})

    assert response.status_code == 400
    assert "first bytes match none of them" in _error(response)["message"]


def test_file_over_limit_stops_while_reading(relay_factory, fake_onemin):
    relay = relay_factory(MEMCACHED_HOST="", MAX_AUDIO_BYTES=2048)

    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("talk.wav", wav_audio(seconds=0.5))})

    assert response.status_code == 413
    error = _error(response)
    assert error["param"] == "file"
    assert "limit of 2048 bytes" in error["message"]
    assert fake_onemin.requests_to("/api/assets") == []


def test_body_over_limit_rejected_before_reading(relay_factory, fake_onemin):
    relay = relay_factory(MEMCACHED_HOST="", MAX_AUDIO_BYTES=2048)

    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("talk.wav", wav_audio(seconds=80))})

    assert response.status_code == 413
    assert "limit of 2048 bytes" in _error(response)["message"]


def test_json_body_limit_not_applied_to_audio(relay_factory, fake_onemin):
    relay = relay_factory(MEMCACHED_HOST="", MAX_REQUEST_BYTES=2048)

    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("talk.wav", wav_audio(seconds=1))})

    assert response.status_code == 200
    assert len(fake_onemin.requests_to("/api/assets")) == 1


def test_oversized_text_field_rejected(relay, fake_onemin):
    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("talk.wav", wav_audio())}, data={"prompt": "x" * 70_000})

    assert response.status_code == 413
    assert "each text field at most 65536 bytes" in _error(response)["message"]
    assert fake_onemin.requests_to("/api/assets") == []


def test_json_body_rejected(relay):
    response = requests.post(
        relay.url(TRANSCRIPTIONS), json={"model": "whisper-1"}, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    )

    assert response.status_code == 400
    assert "multipart/form-data" in _error(response)["message"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "diarized_json"}, "response_format"),
        ({"temperature": "1.5"}, "temperature"),
        ({"temperature": "warm"}, "temperature"),
        ({"stream": "true"}, "stream"),
        ({"timestamp_granularities[]": "sentence"}, "timestamp_granularities"),
    ],
)
def test_invalid_fields_rejected(relay, fake_onemin, fields, param):
    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("talk.wav", wav_audio())}, data=fields)

    assert response.status_code == 400
    assert _error(response)["param"] == param
    assert fake_onemin.requests_to("/api/assets") == []


def test_model_without_feature_rejected(relay):
    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("talk.wav", wav_audio())}, data={"model": "tts-1"})

    assert response.status_code == 400
    error = _error(response)
    assert error["param"] == "model"
    assert "'tts-1' is not a speech-to-text model" in error["message"]
    assert "whisper-1" in error["message"]


def test_unknown_model_is_not_found(relay):
    response = _post_audio(relay, TRANSCRIPTIONS, files={"file": ("talk.wav", wav_audio())}, data={"model": "nope"})

    assert response.status_code == 404
    assert _error(response)["code"] == "model_not_found"


def test_missing_key_rejected(relay):
    response = requests.post(relay.url(TRANSCRIPTIONS), files={"file": ("talk.wav", wav_audio())}, timeout=30)

    assert response.status_code == 401


def test_upstream_failure_is_bad_gateway(relay, fake_onemin):
    fake_onemin.set(fail_status=500)

    with pytest.raises(openai.InternalServerError) as raised:
        _client(relay).audio.transcriptions.create(model="whisper-1", file=("talk.wav", wav_audio()))

    assert raised.value.status_code == 502


# --- translations --------------------------------------------------------------------------------

# The SDK marks audio.translations as deprecated, but clients still call it.
sdk_translations = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")


@sdk_translations
def test_translation_json_through_sdk(relay, fake_onemin):
    translation = _client(relay).audio.translations.create(model="whisper-1", file=("talk.ogg", _ogg_audio()))

    assert translation.text == translation_text("talk.ogg")
    assert _last_feature(fake_onemin)["type"] == "AUDIO_TRANSLATOR"
    assert set(_last_feature(fake_onemin)["promptObject"]) == {"audioUrl", "response_format"}


def test_translation_json_matches_spec(relay):
    response = _post_audio(relay, TRANSLATIONS, files={"file": ("talk.wav", wav_audio())})

    assert response.status_code == 200, response.text
    assert_matches_schema("CreateTranslationResponseJson", response.json())


def test_translation_verbose_json_matches_spec(relay):
    response = _post_audio(
        relay, TRANSLATIONS, files={"file": ("talk.wav", wav_audio(1.5))}, data={"response_format": "verbose_json"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert_matches_schema("CreateTranslationResponseVerboseJson", body)
    assert body["task"] == "translate"
    assert body["language"] == "english"
    assert body["duration"] == 1.5


@sdk_translations
@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ("text", "{text}"),
        ("srt", "1\n00:00:00,000 --> 00:00:01,000\n{text}\n"),
        ("vtt", "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n"),
    ],
)
def test_translation_text_formats(relay, response_format, expected):
    result = _client(relay).audio.translations.create(
        model="whisper-1", file=("talk.wav", wav_audio(1.0)), response_format=response_format
    )

    assert result == expected.format(text=translation_text("talk.wav"))


@sdk_translations
def test_translation_with_other_model(relay, fake_onemin):
    translation = _client(relay).audio.translations.create(
        model="qwen3-livetranslate-flash", file=("talk.wav", wav_audio()), response_format="verbose_json"
    )

    assert translation.text == translation_text("talk.wav")
    assert _last_feature(fake_onemin)["promptObject"]["response_format"] == "text"


def test_translation_model_must_translate(relay):
    response = _post_audio(relay, TRANSLATIONS, files={"file": ("talk.wav", wav_audio())}, data={"model": "latest_long"})

    assert response.status_code == 400
    assert "'latest_long' is not an audio translation model" in _error(response)["message"]


# --- chat ---------------------------------------------------------------------------------------


def test_chat_speech_to_text_rejected(relay, fake_onemin):
    response = requests.post(
        relay.url("/v1/chat/completions"),
        json={"model": "whisper-1", "messages": [{"role": "user", "content": "hello"}]},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    )

    assert response.status_code == 400
    error = _error(response)
    assert error["param"] == "model"
    assert "/v1/audio/transcriptions" in error["message"]
    assert fake_onemin.requests_to("/api/chat-with-ai") == []


def _ogg_audio() -> bytes:
    """Return one Ogg page holding an OpusHead packet (the page checksum is not checked by the relay)."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    header = b"OggS" + struct.pack("<BBqIII", 0, 2, 0, 1, 0, 0) + bytes((1, len(head)))
    return header + head
