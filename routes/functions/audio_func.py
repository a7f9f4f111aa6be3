"""Text to speech: request checks, per-model payloads, and the audio streamed back to the client.

1min.ai returns ``TEXT_TO_SPEECH`` results as an ``aiRecord`` whose result is a storage key
(``audios/….mp3``) plus a signed ``temporaryUrl``. An older documented form returns the
audio bytes directly. The relay handles both and passes the audio on as it arrives.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator

import requests
from flask import Response, jsonify
from urllib3.exceptions import HTTPError as Urllib3Error

from routes.functions.shared_func import number_in_range, optional_field, relay_state
from routes.functions.stream_func import replay_as_stream
from routes.functions.txt_func import (
    ChatRequest,
    ChatResult,
    check_record,
    content_text,
    format_openai_response,
)
from utils.catalog import CatalogModel
from utils.common import OneMinClient, calculate_token
from utils.constants import FEATURE_TEXT_TO_SPEECH, FEATURES_PATH, SPEECH_CONTENT_TYPES
from utils.errors import InvalidRequestError, OpenAIError, UpstreamError, UpstreamTimeoutError

logger = logging.getLogger(__name__)

DEFAULT_SPEECH_MODEL = "tts-1"
DEFAULT_VOICE = "alloy"
MAX_SPEECH_INPUT_CHARS = 4096
ELEVENLABS_OUTPUT_FORMAT = "mp3_44100_128"
READ_SIZE = 65536
# Enough leading bytes to recognise every container below.
SNIFF_BYTES = 12

# OpenAI's response_format -> the container its bytes must start with. Raw PCM has no header.
SPEECH_CONTAINERS = {"mp3": "mp3", "opus": "ogg", "aac": "aac", "flac": "flac", "wav": "wav", "pcm": None}
# Formats a chat response can link to. The older raw-bytes response must be uploaded to get a
# link, and 1min.ai's asset upload takes no .aac or .pcm file.
CHAT_SPEECH_UPLOADS = {"mp3": ("mp3", "audio/mpeg"), "wav": ("wav", "audio/wav"),
                       "flac": ("flac", "audio/flac"), "opus": ("ogg", "audio/ogg")}


def sniff_audio_container(head: bytes) -> str | None:
    """Name the audio container that ``head`` (the first bytes of a file) starts, or None."""
    if head.startswith(b"ID3"):
        return "mp3"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"OggS"):
        return "ogg"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG frame sync. ADTS (AAC) uses the same sync with the layer bits set to zero.
        return "aac" if head[1] & 0x06 == 0 else "mp3"
    return None


@dataclass(frozen=True)
class SpeechProfile:
    """Request fields and output formats of a family of text-to-speech models."""

    family: str
    formats: tuple[str, ...]
    takes_speed: bool = True
    takes_instructions: bool = False


_ALL_FORMATS = tuple(SPEECH_CONTENT_TYPES)
OPENAI_SPEECH = SpeechProfile("openai", _ALL_FORMATS)
# Model-id prefix -> profile. The first match wins, and OPENAI_SPEECH covers the rest.
SPEECH_PROFILES: tuple[tuple[str, SpeechProfile], ...] = (
    ("gpt-4o-mini-tts", SpeechProfile("openai", _ALL_FORMATS, takes_instructions=True)),
    ("elevenlabs", SpeechProfile("elevenlabs", ("mp3",), takes_speed=False)),
    # Qwen returns WAV whatever format is requested.
    ("qwen", SpeechProfile("qwen", ("wav",), takes_speed=False)),
    ("google", SpeechProfile("google", ("mp3", "wav"))),
)


def speech_profile(model_id: str) -> SpeechProfile:
    for prefix, profile in SPEECH_PROFILES:
        if model_id.startswith(prefix):
            return profile
    return OPENAI_SPEECH


@dataclass
class SpeechRequest:
    """A validated ``POST /v1/audio/speech`` body."""

    model: str
    input: str
    voice: str | None = None
    response_format: str | None = None
    speed: float | None = None
    instructions: str | None = None
    voice_id: str | None = None
    output_format: str | None = None
    language: str | None = None


def _voice(body: dict, param: str = "voice") -> str | None:
    """Return the voice name, or the id of OpenAI's custom voice object ``{"id": …}``."""
    voice = body.get("voice")
    if isinstance(voice, dict):
        voice = optional_field(voice, "id", str, param=f"{param}.id")
        if voice is None:
            raise InvalidRequestError(f"A custom '{param}' object needs an 'id'.", param=f"{param}.id")
        return voice
    return optional_field(body, "voice", str, param=param)


def parse_speech_request(body: dict) -> SpeechRequest:
    """Validate a speech body and raise a 400 naming the first invalid field."""
    model = optional_field(body, "model", str) or DEFAULT_SPEECH_MODEL
    text = optional_field(body, "input", str)
    if not text or not text.strip():
        raise InvalidRequestError(
            "Missing required parameter: 'input'. Send the text to speak (1 to 4096 characters).",
            param="input",
            code="missing_required_parameter",
        )
    if len(text) > MAX_SPEECH_INPUT_CHARS:
        raise InvalidRequestError(
            f"'input' is too long: {len(text)} characters, the maximum is {MAX_SPEECH_INPUT_CHARS}.",
            param="input",
            code="string_above_max_length",
        )
    response_format = optional_field(body, "response_format", str)
    if response_format is not None and response_format not in SPEECH_CONTENT_TYPES:
        raise InvalidRequestError(
            f"Invalid value for 'response_format': {response_format!r}. "
            f"Supported values: {', '.join(SPEECH_CONTENT_TYPES)}.",
            param="response_format",
            code="invalid_value",
        )
    stream_format = optional_field(body, "stream_format", str)
    if stream_format not in (None, "audio"):
        raise InvalidRequestError(
            f"Invalid value for 'stream_format': {stream_format!r}. This relay streams raw audio only, "
            "so use 'audio' or omit it.",
            param="stream_format",
            code="invalid_value",
        )
    instructions = optional_field(body, "instructions", str)
    if instructions is not None and len(instructions) > MAX_SPEECH_INPUT_CHARS:
        raise InvalidRequestError(
            f"'instructions' is too long: {len(instructions)} characters, the maximum is {MAX_SPEECH_INPUT_CHARS}.",
            param="instructions",
            code="string_above_max_length",
        )

    return SpeechRequest(
        model=model,
        input=text,
        voice=_voice(body),
        response_format=response_format,
        speed=number_in_range(body, "speed", 0.25, 4.0),
        instructions=instructions or None,
        voice_id=optional_field(body, "voice_id", str),
        output_format=optional_field(body, "output_format", str),
        language=optional_field(body, "language", str),
    )


def _speech_format(speech: SpeechRequest, model: CatalogModel, profile: SpeechProfile) -> str:
    if speech.response_format is None:
        return "mp3" if "mp3" in profile.formats else profile.formats[0]
    if speech.response_format not in profile.formats:
        raise InvalidRequestError(
            f"'{model.id}' cannot produce {speech.response_format} audio. "
            f"Set 'response_format' to one of: {', '.join(profile.formats)}.",
            param="response_format",
            code="unsupported_value",
        )
    return speech.response_format


def _check_options(speech: SpeechRequest, model: CatalogModel, profile: SpeechProfile) -> None:
    if speech.speed is not None and speech.speed != 1.0 and not profile.takes_speed:
        raise InvalidRequestError(
            f"'{model.id}' has no speed setting. Omit 'speed' or set it to 1.0.",
            param="speed",
            code="unsupported_parameter",
        )
    if speech.instructions and not profile.takes_instructions:
        raise InvalidRequestError(
            f"'{model.id}' does not take 'instructions'. Omit the field.",
            param="instructions",
            code="unsupported_parameter",
        )


def prepare_speech_payload(speech: SpeechRequest, model: CatalogModel) -> tuple[dict, str]:
    """Return the ``/api/features`` body and the response format that the audio will have."""
    profile = speech_profile(model.id)
    response_format = _speech_format(speech, model, profile)
    _check_options(speech, model, profile)

    prompt_object: dict[str, Any] = {"text": speech.input}
    if profile.family == "elevenlabs":
        voice_id = speech.voice_id or speech.voice
        if not voice_id:
            raise InvalidRequestError(
                f"'{model.id}' needs an ElevenLabs voice id in 'voice' or 'voice_id'.",
                param="voice",
                code="missing_required_parameter",
            )
        output_format = speech.output_format or ELEVENLABS_OUTPUT_FORMAT
        if not output_format.startswith("mp3"):
            raise InvalidRequestError(
                f"Invalid value for 'output_format': {output_format!r}. '{model.id}' produces mp3 only, "
                f"such as {ELEVENLABS_OUTPUT_FORMAT!r}.",
                param="output_format",
                code="invalid_value",
            )
        prompt_object.update({"voice_id": voice_id, "output_format": output_format})
    else:
        voice = speech.voice or (DEFAULT_VOICE if profile.family == "openai" else None)
        if voice:
            prompt_object["voice"] = voice
        prompt_object["response_format"] = response_format
        if speech.speed is not None and profile.takes_speed:
            prompt_object["speed"] = speech.speed
        if speech.instructions:
            prompt_object["instructions"] = speech.instructions
        if speech.language and profile.family == "google":
            prompt_object["language"] = speech.language
    return {"type": FEATURE_TEXT_TO_SPEECH, "model": model.id, "promptObject": prompt_object}, response_format


@dataclass
class SpeechResult:
    """The upstream result: a record pointing at stored audio, or the audio bytes themselves."""

    record: dict | None = None
    audio: bytes | None = None

    @property
    def storage_key(self) -> str | None:
        if self.record is None:
            return None
        detail = self.record.get("aiRecordDetail") if isinstance(self.record.get("aiRecordDetail"), dict) else {}
        result = detail.get("resultObject", self.record.get("resultObject"))
        if isinstance(result, list):
            result = result[0] if result else None
        return result if isinstance(result, str) and result else None

    @property
    def temporary_url(self) -> str | None:
        url = self.record.get("temporaryUrl") if self.record else None
        return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


def synthesize(client: OneMinClient, api_key: str, payload: dict) -> SpeechResult:
    """Run ``TEXT_TO_SPEECH`` and return where the audio is, or the audio itself."""
    response = client.post_json(FEATURES_PATH, api_key, payload)
    if "json" not in response.headers.get("Content-Type", "").lower():
        if not response.content:
            raise UpstreamError("1min.ai returned an empty body for the speech request.")
        return SpeechResult(audio=response.content)
    try:
        body = response.json()
    except ValueError:
        raise UpstreamError("1min.ai returned invalid JSON for the speech request.") from None
    result = SpeechResult(record=check_record(body))
    if result.storage_key is None and result.temporary_url is None:
        raise UpstreamError("1min.ai returned a speech record without an audio location.")
    return result


def _check_container(head: bytes, response_format: str) -> None:
    expected = SPEECH_CONTAINERS[response_format]
    if not head:
        raise UpstreamError("1min.ai returned an empty audio file.")
    actual = sniff_audio_container(head)
    if expected is not None and actual != expected:
        raise UpstreamError(
            f"1min.ai returned {actual or 'unrecognised'} data for a {response_format} request, "
            "so the relay did not send it on."
        )


def _open_stored_audio(client: OneMinClient, result: SpeechResult) -> requests.Response:
    """Open the audio at the signed link, falling back to the CDN when that link fails."""
    urls = [result.temporary_url, client.asset_link(result.storage_key) if result.storage_key else None]
    urls = [url for url in dict.fromkeys(urls) if url]
    for index, url in enumerate(urls):
        try:
            return client.download(url)
        except UpstreamTimeoutError:
            raise
        except UpstreamError as error:
            if index == len(urls) - 1:
                raise
            logger.warning("speech audio link failed, trying the asset CDN: %s", error.message)
    raise UpstreamError("1min.ai returned no audio location.")


def _read_head(response: requests.Response) -> bytes:
    head = b""
    while len(head) < SNIFF_BYTES:
        chunk = response.raw.read1(READ_SIZE, decode_content=True)
        if not chunk:
            break
        head += chunk
    return head


def _relay_download(response: requests.Response, head: bytes) -> Iterator[bytes]:
    """Yield the audio as it arrives. A failed download re-raises, so the client's response breaks off too."""
    try:
        yield head
        while chunk := response.raw.read1(READ_SIZE, decode_content=True):
            yield chunk
    except (Urllib3Error, requests.RequestException, OSError) as error:
        logger.warning("speech audio download failed mid-stream: %s", type(error).__name__)
        raise
    finally:
        response.close()


def _relay_bytes(audio: bytes) -> Iterator[bytes]:
    for offset in range(0, len(audio), READ_SIZE):
        yield audio[offset : offset + READ_SIZE]


def speech_response(client: OneMinClient, result: SpeechResult, response_format: str) -> Response:
    """Return a response that streams the audio with the Content-Type of ``response_format``."""
    content_type = SPEECH_CONTENT_TYPES[response_format]
    if result.audio is not None:
        _check_container(result.audio[:SNIFF_BYTES], response_format)
        return Response(_relay_bytes(result.audio), content_type=content_type,
                        headers={"Content-Length": str(len(result.audio))})

    download = _open_stored_audio(client, result)
    try:
        head = _read_head(download)
        _check_container(head, response_format)
    except (OpenAIError, Urllib3Error, requests.RequestException, OSError) as error:
        download.close()
        if isinstance(error, OpenAIError):
            raise
        raise UpstreamError(f"Could not download the speech audio from 1min.ai ({type(error).__name__}).") from None

    headers = {}
    length = download.headers.get("Content-Length")
    if length and length.isdigit() and not download.headers.get("Content-Encoding"):
        headers["Content-Length"] = length
    response = Response(_relay_download(download, head), content_type=content_type, headers=headers)
    # A generator that never started skips its finally block, so close the download here too.
    response.call_on_close(download.close)
    return response


def _last_user_text(chat: ChatRequest) -> str:
    for message in reversed(chat.messages):
        if message["role"] == "user":
            return content_text(message.get("content")).strip()
    return ""


def _chat_speech_request(chat: ChatRequest, model: CatalogModel) -> SpeechRequest:
    text = _last_user_text(chat)
    if not text:
        raise InvalidRequestError(
            f"'{model.id}' speaks the last user message, and there is no user message with text.",
            param="messages",
        )
    if len(text) > MAX_SPEECH_INPUT_CHARS:
        raise InvalidRequestError(
            f"The last user message has {len(text)} characters; '{model.id}' speaks at most {MAX_SPEECH_INPUT_CHARS}.",
            param="messages",
            code="string_above_max_length",
        )
    audio = optional_field(chat.body, "audio", dict) or {}
    voice = _voice(audio, param="audio.voice")
    response_format = optional_field(audio, "format", str, param="audio.format")
    if response_format is not None and response_format not in CHAT_SPEECH_UPLOADS:
        raise InvalidRequestError(
            f"Invalid value for 'audio.format': {response_format!r}. "
            f"Chat with a speech model supports: {', '.join(CHAT_SPEECH_UPLOADS)}.",
            param="audio.format",
            code="invalid_value",
        )
    return SpeechRequest(model=model.id, input=text, voice=voice, response_format=response_format)


def _speech_link(client: OneMinClient, api_key: str, result: SpeechResult, response_format: str) -> str:
    """Return a public link to the audio, uploading the older raw-bytes response to assets first."""
    if result.audio is None:
        # The CDN link stays valid, unlike the signed temporaryUrl.
        return client.asset_link(result.storage_key) if result.storage_key else str(result.temporary_url)
    _check_container(result.audio[:SNIFF_BYTES], response_format)
    extension, content_type = CHAT_SPEECH_UPLOADS[response_format]
    body = client.upload_asset(api_key, f"speech.{extension}", result.audio, content_type)
    file_content = body.get("fileContent") if isinstance(body.get("fileContent"), dict) else {}
    path = file_content.get("path")
    if not isinstance(path, str) or not path:
        raise UpstreamError("1min.ai returned no asset path for the uploaded speech audio.")
    return client.asset_link(path)


def chat_with_speech_model(api_key: str, chat: ChatRequest, model: CatalogModel) -> Response:
    """Answer a chat request addressed to a text-to-speech model with a link to the spoken audio.

    The last user message is spoken. OpenAI's ``audio`` field sets ``voice`` and ``format``.
    """
    speech = _chat_speech_request(chat, model)
    payload, response_format = prepare_speech_payload(speech, model)
    client = relay_state().client
    result = synthesize(client, api_key, payload)
    link = _speech_link(client, api_key, result, response_format)

    content = f"[Listen to the spoken text ({response_format})]({link})"
    answer = ChatResult(content, "stop", calculate_token(speech.input), calculate_token(content))
    body = format_openai_response(answer, chat.model)
    if chat.stream:
        return replay_as_stream(body, chat.include_usage)
    return jsonify(body)
