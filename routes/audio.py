"""Audio endpoints: transcription, translation and speech."""

from __future__ import annotations

from flask import Blueprint, Response, g

from routes.functions.audio_func import parse_speech_request, prepare_speech_payload, speech_response, synthesize
from routes.functions.shared_func import parse_json_body, relay_state, validate_auth
from routes.functions.subtitle_func import render_transcript
from routes.functions.transcription_func import (
    accept_audio_file,
    parse_transcription_request,
    prepare_transcription_payload,
    read_audio_form,
    read_transcript,
    request_transcript,
    upload_audio,
    upstream_language,
)
from utils.catalog import CatalogModel
from utils.constants import FEATURE_AUDIO_TRANSLATOR, FEATURE_SPEECH_TO_TEXT, FEATURE_TEXT_TO_SPEECH
from utils.errors import InvalidRequestError

bp = Blueprint("audio", __name__)

FEATURE_MODEL_KINDS = {
    FEATURE_SPEECH_TO_TEXT: "a speech-to-text model",
    FEATURE_AUDIO_TRANSLATOR: "an audio translation model",
    FEATURE_TEXT_TO_SPEECH: "a text-to-speech model",
}


def require_audio_model(model_id: str, feature: str) -> CatalogModel:
    """Return the catalog model, or raise a 400 listing the models that offer ``feature``."""
    model = relay_state().catalog.require(model_id)
    if not model.supports(feature):
        offered = ", ".join(sorted(m.id for m in relay_state().catalog.list(feature))) or "none"
        raise InvalidRequestError(
            f"'{model_id}' is not {FEATURE_MODEL_KINDS[feature]}. Models that are: {offered}.",
            param="model",
            code="unsupported_model",
        )
    return model


@bp.post("/v1/audio/transcriptions")
def create_transcription() -> Response:
    return _speech_to_text(FEATURE_SPEECH_TO_TEXT)


@bp.post("/v1/audio/translations")
def create_translation() -> Response:
    return _speech_to_text(FEATURE_AUDIO_TRANSLATOR)


def _speech_to_text(feature: str) -> Response:
    api_key = validate_auth()
    settings = relay_state().settings
    form, upload = read_audio_form(settings.max_audio_bytes)
    job = parse_transcription_request(form, feature)
    g.model = job.model
    model = require_audio_model(job.model, feature)
    language = upstream_language(job.language, model) if feature == FEATURE_SPEECH_TO_TEXT else None
    audio = accept_audio_file(upload)

    client = relay_state().client
    audio_path = upload_audio(client, api_key, audio)
    payload = prepare_transcription_payload(job, model, language, audio_path)
    body = request_transcript(client, api_key, payload)

    return render_transcript(read_transcript(body, job, audio), job.response_format)


@bp.post("/v1/audio/speech")
def create_speech() -> Response:
    api_key = validate_auth()
    speech = parse_speech_request(parse_json_body())
    g.model = speech.model
    model = require_audio_model(speech.model, FEATURE_TEXT_TO_SPEECH)
    payload, response_format = prepare_speech_payload(speech, model)

    client = relay_state().client
    result = synthesize(client, api_key, payload)
    return speech_response(client, result, response_format)
