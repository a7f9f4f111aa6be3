"""Audio features on `/api/features`: TEXT_TO_SPEECH, SPEECH_TO_TEXT and AUDIO_TRANSLATOR."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Mapping

from . import catalog
from .assets import asset_by_path
from .errors import provider_error
from .media import AUDIO_MIMETYPES, speech_audio
from .records import FeatureOutput, FeatureRequest, signed_url
from .state import AUDIO, Asset, new_uuid, storage_key
from .validation import Validator, anything, check_object, number, one_of, text

if TYPE_CHECKING:
    from .server import FakeOneMin

_SPEECH_TEXT = text(4096)
_OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage",
                  "shimmer", "verse")
_SPEECH_FORMATS = tuple(AUDIO_MIMETYPES)
_TRANSCRIPT_FORMATS = one_of("json", "text", "srt", "verbose_json", "vtt")
_GOOGLE_LANGUAGE = re.compile(r"^[a-z]{2,3}-[A-Z]{2}$")
_ISO_LANGUAGE = re.compile(r"^[a-z]{2}$")


def _elevenlabs_format(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.startswith("mp3"):
        raise provider_error(f"{name}={value!r} is invalid; elevenlabs-tts produces mp3 only")


def _language(pattern: re.Pattern[str], example: str) -> Validator:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, str) or not pattern.match(value):
            raise provider_error(f"{name}={value!r} is not a language code this model "
                                 f"accepts, such as {example!r}")
    return check


# Family -> (fields, required fields).
SPEECH_FAMILIES: dict[str, tuple[Mapping[str, Validator], tuple[str, ...]]] = {
    "openai": ({"text": _SPEECH_TEXT, "voice": one_of(*_OPENAI_VOICES),
                "response_format": one_of(*_SPEECH_FORMATS), "speed": number(0.25, 4.0)},
               ("text", "voice")),
    # ElevenLabs takes a voice id and an output format, and has no speed setting.
    "elevenlabs": ({"text": _SPEECH_TEXT, "voice_id": text(), "output_format": _elevenlabs_format},
                   ("text", "voice_id")),
    # Qwen accepts response_format but always returns WAV.
    "qwen": ({"text": _SPEECH_TEXT, "voice": text(),
              "response_format": one_of(*_SPEECH_FORMATS)}, ("text",)),
    "google": ({"text": _SPEECH_TEXT, "voice": text(), "language": text(),
                "response_format": one_of("mp3", "wav"), "speed": number(0.25, 4.0)},
               ("text",)),
}

TRANSCRIPTION_FAMILIES: dict[str, Mapping[str, Validator]] = {
    "whisper": {"audioUrl": anything(), "response_format": _TRANSCRIPT_FORMATS,
                "language": _language(_ISO_LANGUAGE, "en"), "temperature": number(0, 1)},
    "google": {"audioUrl": anything(), "response_format": _TRANSCRIPT_FORMATS,
               "language": _language(_GOOGLE_LANGUAGE, "en-US"), "temperature": number(0, 1)},
}
_TRANSLATION_FIELDS = {"audioUrl": anything(), "response_format": _TRANSCRIPT_FORMATS,
                       "temperature": number(0, 1)}


def transcript_text(filename: str) -> str:
    """Return the text the fake hears in any upload: fixed, naming the file."""
    return f"Transcript of {filename}: the quick brown fox jumps over the lazy dog. Привет!"


def translation_text(filename: str) -> str:
    return f"Translation of {filename}: the quick brown fox jumps over the lazy dog."


def create_speech(fake: FakeOneMin, request: FeatureRequest) -> FeatureOutput:
    """Store a short clip in the requested container and return its `audios/...` key."""
    fields, required = SPEECH_FAMILIES[request.model.family]
    prompt_object = check_object(request.prompt_object, fields, "promptObject", required)
    audio_format = prompt_object.get("response_format") or "mp3"
    if request.model.family == "qwen":
        audio_format = "wav"
    elif request.model.family == "elevenlabs":
        audio_format = "mp3"

    data = speech_audio(audio_format)
    key = storage_key("audios", f"speech.{audio_format}")
    fake.store.add_asset(Asset(uuid=new_uuid(), path=key, kind=AUDIO,
                               mimetype=AUDIO_MIMETYPES[audio_format], name=key.split("/")[-1],
                               data=data, owner=request.api_key))
    url_mode = request.behaviour.tts_temporary_url
    temporary_url = None
    if url_mode != "missing":
        temporary_url = signed_url(fake.asset_url, key, 0 if url_mode == "expired" else 3600)
    return FeatureOutput([key], {}, temporary_url=temporary_url,
                         raw_audio=(data, AUDIO_MIMETYPES[audio_format]))


def create_transcription(fake: FakeOneMin, request: FeatureRequest) -> FeatureOutput:
    """Return the fixed transcript of an uploaded audio asset."""
    if request.feature == catalog.AUDIO_TRANSLATOR:
        fields = _TRANSLATION_FIELDS
    else:
        fields = TRANSCRIPTION_FAMILIES.get(request.model.family, TRANSCRIPTION_FAMILIES["whisper"])
    prompt_object = check_object(request.prompt_object, fields, "promptObject", ("audioUrl",))
    asset = asset_by_path(fake.store, prompt_object["audioUrl"], request.api_key, AUDIO,
                          "promptObject.audioUrl")

    if request.feature == catalog.AUDIO_TRANSLATOR:
        result = translation_text(asset.name)
    else:
        result = transcript_text(asset.name)
    if request.behaviour.stt_json_text:
        result = json.dumps({"text": result}, ensure_ascii=False)
    return FeatureOutput([result], {})
