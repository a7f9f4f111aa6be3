"""Speech to text and audio translation: the uploaded file, the upstream payload and the transcript.

The audio arrives as multipart ``file``. Its size is capped while the body is parsed, its
container is checked against both its extension and its first bytes, and it is uploaded to
1min.ai's assets, because ``SPEECH_TO_TEXT`` and ``AUDIO_TRANSLATOR`` take an asset path.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import re
import struct
import tempfile
from dataclasses import dataclass
from typing import IO, Any

import mutagen
from flask import request
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import parse_form_data
from werkzeug.utils import secure_filename

from routes.functions.audio_func import sniff_audio_container
from routes.functions.subtitle_func import Segment, Transcript, segments_from_upstream
from routes.functions.txt_func import check_record
from utils.catalog import CatalogModel
from utils.common import OneMinClient
from utils.constants import (
    FEATURE_AUDIO_TRANSLATOR,
    FEATURES_PATH,
    GOOGLE_SPEECH_MODELS,
    TIMESTAMPED_TRANSCRIPTION_MODELS,
)
from utils.errors import InvalidRequestError, RequestTooLargeError, UpstreamError

logger = logging.getLogger(__name__)

DEFAULT_TRANSCRIPTION_MODEL = "whisper-1"
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
TIMED_FORMATS = frozenset({"srt", "vtt", "verbose_json"})
# Room for the text fields and multipart boundaries next to the file itself.
FORM_OVERHEAD_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024
SPOOL_IN_MEMORY_BYTES = 1024 * 1024
# Estimated speaking rate (about 150 words a minute), used only when the container has no readable duration.
WORDS_PER_SECOND = 2.5

# Accepted extension -> (container, extension and Content-Type used for the upstream upload).
# MPEG audio arrives as .mpeg or .mpga too, but 1min.ai accepts it only as .mp3.
AUDIO_FORMATS: dict[str, tuple[str, str, str]] = {
    "mp3": ("mp3", "mp3", "audio/mpeg"),
    "mpeg": ("mp3", "mp3", "audio/mpeg"),
    "mpga": ("mp3", "mp3", "audio/mpeg"),
    "wav": ("wav", "wav", "audio/wav"),
    "m4a": ("mp4", "m4a", "audio/mp4"),
    "mp4": ("mp4", "mp4", "audio/mp4"),
    "flac": ("flac", "flac", "audio/flac"),
    "webm": ("webm", "webm", "audio/webm"),
    "ogg": ("ogg", "ogg", "audio/ogg"),
}
ACCEPTED_FORMATS_TEXT = ", ".join(AUDIO_FORMATS)

# ISO-639-1 code -> (the language's English name, as Whisper reports it, and a BCP-47 locale
# for models that need a region).
LANGUAGES: dict[str, tuple[str, str]] = {
    "af": ("afrikaans", "af-ZA"),
    "ar": ("arabic", "ar-SA"),
    "az": ("azerbaijani", "az-AZ"),
    "bg": ("bulgarian", "bg-BG"),
    "bn": ("bengali", "bn-IN"),
    "ca": ("catalan", "ca-ES"),
    "cs": ("czech", "cs-CZ"),
    "da": ("danish", "da-DK"),
    "de": ("german", "de-DE"),
    "el": ("greek", "el-GR"),
    "en": ("english", "en-US"),
    "es": ("spanish", "es-ES"),
    "et": ("estonian", "et-EE"),
    "eu": ("basque", "eu-ES"),
    "fa": ("persian", "fa-IR"),
    "fi": ("finnish", "fi-FI"),
    "fr": ("french", "fr-FR"),
    "gl": ("galician", "gl-ES"),
    "he": ("hebrew", "iw-IL"),
    "hi": ("hindi", "hi-IN"),
    "hr": ("croatian", "hr-HR"),
    "hu": ("hungarian", "hu-HU"),
    "hy": ("armenian", "hy-AM"),
    "id": ("indonesian", "id-ID"),
    "is": ("icelandic", "is-IS"),
    "it": ("italian", "it-IT"),
    "ja": ("japanese", "ja-JP"),
    "ka": ("georgian", "ka-GE"),
    "kk": ("kazakh", "kk-KZ"),
    "ko": ("korean", "ko-KR"),
    "lt": ("lithuanian", "lt-LT"),
    "lv": ("latvian", "lv-LV"),
    "mr": ("marathi", "mr-IN"),
    "ms": ("malay", "ms-MY"),
    "nb": ("norwegian", "nb-NO"),
    "nl": ("dutch", "nl-NL"),
    "no": ("norwegian", "nb-NO"),
    "pl": ("polish", "pl-PL"),
    "pt": ("portuguese", "pt-BR"),
    "ro": ("romanian", "ro-RO"),
    "ru": ("russian", "ru-RU"),
    "sk": ("slovak", "sk-SK"),
    "sl": ("slovenian", "sl-SI"),
    "sr": ("serbian", "sr-RS"),
    "sv": ("swedish", "sv-SE"),
    "sw": ("swahili", "sw-KE"),
    "ta": ("tamil", "ta-IN"),
    "te": ("telugu", "te-IN"),
    "th": ("thai", "th-TH"),
    "tl": ("tagalog", "fil-PH"),
    "tr": ("turkish", "tr-TR"),
    "uk": ("ukrainian", "uk-UA"),
    "ur": ("urdu", "ur-PK"),
    "vi": ("vietnamese", "vi-VN"),
    "zh": ("chinese", "cmn-Hans-CN"),
}
_LANGUAGE_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{4}))?(?:[-_]([A-Za-z]{2}|\d{3}))?$")


@dataclass
class AudioUpload:
    """An accepted audio file: the client's name, its bytes, and how it is uploaded upstream."""

    filename: str
    data: bytes
    container: str
    upload_name: str
    content_type: str


@dataclass
class TranscriptionRequest:
    """A validated transcription or translation request, file excluded."""

    feature: str
    model: str
    response_format: str
    language: str | None
    temperature: float | None
    prompt: str | None

    @property
    def task(self) -> str:
        return "translate" if self.feature == FEATURE_AUDIO_TRANSLATOR else "transcribe"


class _CappedSpool(tempfile.SpooledTemporaryFile):
    """A spooled file that raises a 413 as soon as more than ``limit`` bytes are written to it."""

    def __init__(self, limit: int) -> None:
        super().__init__(max_size=SPOOL_IN_MEMORY_BYTES)
        self._limit = limit
        self._written = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._written += len(data)
        if self._written > self._limit:
            raise _file_too_large(self._limit)
        return super().write(data)


def _file_too_large(limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"The audio file is larger than the limit of {limit} bytes ({limit / 1024 / 1024:g} MiB). "
        "Send a shorter recording or compress it.",
        param="file",
    )


def read_audio_form(max_audio_bytes: int) -> tuple[MultiDict, FileStorage | None]:
    """Parse the multipart body, stopping with a 413 once the file passes ``max_audio_bytes``.

    MAX_REQUEST_BYTES does not apply here: it limits JSON bodies, and audio has its own limit.
    """
    if request.mimetype != "multipart/form-data":
        raise InvalidRequestError(
            f"Content-Type must be multipart/form-data with the audio in a part named 'file', "
            f"got {request.mimetype or 'none'!r}."
        )
    body_limit = max_audio_bytes + FORM_OVERHEAD_BYTES
    if request.content_length is not None and request.content_length > body_limit:
        raise _file_too_large(max_audio_bytes)

    def stream_factory(*_args: Any, **_kwargs: Any) -> IO[bytes]:
        return _CappedSpool(max_audio_bytes)

    try:
        _, form, files = parse_form_data(
            request.environ,
            stream_factory=stream_factory,
            max_form_memory_size=MAX_FIELD_BYTES,
            max_content_length=body_limit,
            silent=False,
        )
    except RequestEntityTooLarge:
        # The spool raises its own error for the file, so this is the body or a text field.
        raise RequestTooLargeError(
            f"The request body is too large: the audio file may have at most {max_audio_bytes} bytes "
            f"and each text field at most {MAX_FIELD_BYTES} bytes."
        ) from None
    except ValueError as error:
        raise InvalidRequestError(f"The multipart body is invalid: {error}.") from None
    return form, files.get("file")


def _form_text(form: MultiDict, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    return value.strip() or None


def parse_transcription_request(form: MultiDict, feature: str) -> TranscriptionRequest:
    """Validate the text fields of a transcription or translation form and raise a 400 naming the first invalid one."""
    response_format = _form_text(form, "response_format") or "json"
    if response_format not in TRANSCRIPT_FORMATS:
        raise InvalidRequestError(
            f"Invalid value for 'response_format': {response_format!r}. "
            f"Supported values: {', '.join(TRANSCRIPT_FORMATS)}.",
            param="response_format",
            code="invalid_value",
        )

    temperature = None
    raw_temperature = _form_text(form, "temperature")
    if raw_temperature is not None:
        try:
            temperature = float(raw_temperature)
        except ValueError:
            temperature = float("nan")
        if not 0 <= temperature <= 1:
            raise InvalidRequestError(
                f"Invalid value for 'temperature': {raw_temperature!r}. Expected a number from 0 to 1.",
                param="temperature",
                code="invalid_value",
            )

    stream = _form_text(form, "stream")
    if stream is not None and stream.lower() not in ("false", "0"):
        raise InvalidRequestError(
            "Streamed transcriptions are not supported: 1min.ai returns the whole text at once. "
            "Omit 'stream' or set it to false.",
            param="stream",
        )
    for granularity in form.getlist("timestamp_granularities[]"):
        if granularity not in ("word", "segment"):
            raise InvalidRequestError(
                f"Invalid value for 'timestamp_granularities': {granularity!r}. Supported values: word, segment.",
                param="timestamp_granularities",
                code="invalid_value",
            )

    return TranscriptionRequest(
        feature=feature,
        model=_form_text(form, "model") or DEFAULT_TRANSCRIPTION_MODEL,
        response_format=response_format,
        language=_form_text(form, "language"),
        temperature=temperature,
        prompt=form.get("prompt"),
    )


def _no_audio_error(message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{message} Accepted formats: {ACCEPTED_FORMATS_TEXT}.", param="file")


def accept_audio_file(upload: FileStorage | None) -> AudioUpload:
    """Check that the uploaded file is non-empty audio in an accepted format, by extension and content."""
    if upload is None:
        raise _no_audio_error("Missing required parameter: 'file'. Send the audio as a multipart file part named 'file'.")
    filename = posixpath.basename((upload.filename or "").replace("\\", "/"))
    stem, dot_extension = posixpath.splitext(filename)
    extension = dot_extension.lstrip(".").lower()
    if extension and extension not in AUDIO_FORMATS:
        raise _no_audio_error(f"Unsupported audio type {extension!r} (file {filename!r}).")

    data = upload.stream.read()
    upload.close()
    if not data:
        raise _no_audio_error(f"The audio file {filename or '(unnamed)'!r} is empty.")

    detected = sniff_audio_container(data[:64])
    containers = {container for container, _, _ in AUDIO_FORMATS.values()}
    if detected not in containers:
        raise _no_audio_error(
            f"The file {filename or '(unnamed)'!r} is not audio in an accepted format: its first bytes match none of them."
        )
    if extension:
        expected = AUDIO_FORMATS[extension][0]
        if detected != expected:
            raise _no_audio_error(
                f"The file {filename!r} has the extension .{extension}, but its content is {detected} audio. "
                "Rename it to match its content."
            )
    else:
        # A name without an extension is accepted when the content identifies the format.
        extension = next(name for name, (container, _, _) in AUDIO_FORMATS.items() if container == detected)

    _, upload_extension, content_type = AUDIO_FORMATS[extension]
    upload_name = f"{secure_filename(stem) or 'audio'}.{upload_extension}"
    return AudioUpload(filename or upload_name, data, detected, upload_name, content_type)


def audio_duration(audio: AudioUpload) -> float | None:
    """Read the playing time in seconds from the container, or None when it cannot be read."""
    try:
        parsed = mutagen.File(io.BytesIO(audio.data))
    except (mutagen.MutagenError, ValueError, EOFError, struct.error, IndexError) as error:
        logger.debug("could not read the duration of %s: %s", audio.upload_name, error)
        return None
    length = getattr(getattr(parsed, "info", None), "length", None)
    if not isinstance(length, (int, float)) or length <= 0:
        return None
    return float(length)


def upstream_language(language: str | None, model: CatalogModel) -> str | None:
    """Convert the client's language to what the model takes: ISO-639-1, or a locale for Google models."""
    if language is None:
        return None
    match = _LANGUAGE_TAG.match(language)
    if match is None:
        raise InvalidRequestError(
            f"Invalid value for 'language': {language!r}. Use an ISO-639-1 code such as 'en'.",
            param="language",
            code="invalid_value",
        )
    primary, script, region = match.group(1).lower(), match.group(2), match.group(3)
    if model.id not in GOOGLE_SPEECH_MODELS:
        return primary
    if region:
        parts = [primary, script.title() if script else None, region.upper()]
        return "-".join(part for part in parts if part)
    if primary not in LANGUAGES:
        raise InvalidRequestError(
            f"'{model.id}' needs a language with a region, and the relay knows no default region for "
            f"{language!r}. Send a full code such as '{primary}-XX'.",
            param="language",
            code="invalid_value",
        )
    return LANGUAGES[primary][1]


def upload_audio(client: OneMinClient, api_key: str, audio: AudioUpload) -> str:
    """Upload the audio to 1min.ai's assets and return its asset path."""
    body = client.upload_asset(api_key, audio.upload_name, audio.data, audio.content_type)
    file_content = body.get("fileContent") if isinstance(body.get("fileContent"), dict) else {}
    asset = body.get("asset") if isinstance(body.get("asset"), dict) else {}
    path = file_content.get("path") or asset.get("key")
    if not isinstance(path, str) or not path:
        raise UpstreamError("1min.ai returned no asset path for the uploaded audio.")
    return path


def prepare_transcription_payload(
    job: TranscriptionRequest, model: CatalogModel, language: str | None, audio_path: str
) -> dict:
    """Build the ``/api/features`` body for a transcription or translation.

    ``language`` is the output of `upstream_language`. 1min.ai has no field for ``prompt``,
    so it is not sent.
    """
    prompt_object: dict[str, Any] = {"audioUrl": audio_path}
    # NOTE: only Whisper is known to return segment timestamps. Other models get "text", which every
    # speech-to-text model accepts, and the relay builds the subtitle timing itself.
    if job.response_format in TIMED_FORMATS and model.id in TIMESTAMPED_TRANSCRIPTION_MODELS:
        prompt_object["response_format"] = "verbose_json"
    else:
        prompt_object["response_format"] = "text"
    if language and job.feature != FEATURE_AUDIO_TRANSLATOR:
        prompt_object["language"] = language
    if job.temperature is not None:
        prompt_object["temperature"] = job.temperature
    return {"type": job.feature, "model": model.id, "promptObject": prompt_object}


def request_transcript(client: OneMinClient, api_key: str, payload: dict) -> Any:
    """Send the feature request and return the decoded JSON body."""
    response = client.post_json(FEATURES_PATH, api_key, payload)
    try:
        return response.json()
    except ValueError:
        raise UpstreamError("1min.ai returned invalid JSON for the speech-to-text request.") from None


def _first_result(record: dict) -> Any:
    detail = record.get("aiRecordDetail") if isinstance(record.get("aiRecordDetail"), dict) else {}
    result = detail.get("resultObject", record.get("resultObject"))
    if isinstance(result, list):
        result = result[0] if result else None
    return result


def _decoded_result(result: Any) -> Any:
    """Decode a result that is itself a JSON object with a "text" key, as some models return it.

    Any other result is returned unchanged.
    """
    if isinstance(result, str) and result.lstrip().startswith("{"):
        try:
            decoded = json.loads(result)
        except ValueError:
            return result
        if isinstance(decoded, dict) and isinstance(decoded.get("text"), str):
            return decoded
    return result


def _language_name(code: str | None) -> str | None:
    if not code:
        return None
    match = _LANGUAGE_TAG.match(code)
    primary = match.group(1).lower() if match else code.lower()
    return LANGUAGES[primary][0] if primary in LANGUAGES else code


def read_transcript(body: Any, job: TranscriptionRequest, audio: AudioUpload) -> Transcript:
    """Turn the upstream record into a `Transcript`, with segment timing from upstream or from the file."""
    result = _decoded_result(_first_result(check_record(body)))
    if isinstance(result, dict):
        text, details = result["text"], result
    elif isinstance(result, str):
        text, details = result, {}
    else:
        raise UpstreamError(f"1min.ai returned no text for the {job.task} request.")
    text = text.strip()

    if job.task == "translate":
        language = "english"
    else:
        language = _language_name(details.get("language") if isinstance(details.get("language"), str) else None)
        language = language or _language_name(job.language) or "unknown"

    upstream_duration = details.get("duration")
    duration = upstream_duration if isinstance(upstream_duration, (int, float)) and upstream_duration > 0 else None
    if duration is None and job.response_format in TIMED_FORMATS:
        duration = audio_duration(audio)
    segments = segments_from_upstream(details.get("segments"), job.temperature or 0.0)
    if not segments and text and job.response_format in TIMED_FORMATS:
        # NOTE: a container without a readable duration (WebM, for one) gets a guessed length.
        end = duration if duration is not None else max(1.0, len(text.split()) / WORDS_PER_SECOND)
        segments = [Segment(0.0, end, text)]
    if duration is None:
        duration = segments[-1].end if segments else 0.0
    return Transcript(job.task, language, float(duration), text, segments, job.temperature or 0.0)
