"""Text endpoints: the model list and chat completions."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, stream_with_context

from routes.functions.attachment_func import prepare_attachments
from routes.functions.audio_func import chat_with_speech_model
from routes.functions.chat_func import chat_choice_group, format_chat_completion, stream_chat_completion
from routes.functions.choices_func import ChoiceGroup, check_choice_count
from routes.functions.img_func import chat_with_image_model

from routes.functions.shared_func import (
    new_object_id,
    parse_json_body,
    relay_state,
    unix_time,
    validate_auth,
)
from routes.functions.stream_func import SSE_HEADERS, ChunkWriter
from routes.functions.txt_func import (
    ChatRequest,
    format_conversation_history,
    parse_chat_request,
    prepare_chat_payload,
)
from utils.catalog import CatalogModel
from utils.constants import (
    FEATURE_CHAT,
    FEATURE_CODE,
    FEATURE_IMAGE_GENERATOR,
    FEATURE_SPEECH_TO_TEXT,
    FEATURE_TEXT_TO_SPEECH,
)
from utils.errors import InvalidRequestError

bp = Blueprint("text", __name__)


def model_object(model: CatalogModel) -> dict:
    return {"id": model.id, "object": "model", "created": 0, "owned_by": model.provider}


@bp.get("/v1/models")
def list_models() -> Response:
    models = relay_state().catalog.list()
    return jsonify({"object": "list", "data": [model_object(model) for model in models]})


@bp.get("/v1/models/<path:model>")
def retrieve_model(model: str) -> Response:
    g.model = model
    return jsonify(model_object(relay_state().catalog.require(model)))


@bp.post("/v1/chat/completions")
def create_chat_completion() -> Response:
    api_key = validate_auth()
    chat = parse_chat_request(parse_json_body())
    g.model = chat.model
    check_choice_count(chat.n, relay_state().settings.max_n)
    model = relay_state().catalog.require(chat.model)
    if not (model.supports(FEATURE_CHAT) or model.supports(FEATURE_CODE)):
        return _chat_with_other_model(api_key, chat, model)

    prepare_attachments(api_key, chat, model)
    prompt = format_conversation_history(chat.messages)
    path, payload = prepare_chat_payload(chat, prompt)
    group = chat_choice_group(api_key, chat, path, payload, prompt)
    if chat.stream:
        return _stream_chat(group, chat)
    return jsonify(format_chat_completion(group.collect(), chat.model))


def _chat_with_other_model(api_key: str, chat: ChatRequest, model: CatalogModel) -> Response:
    """Serve chat requests addressed to image and speech models, as the original relay did."""
    if model.supports(FEATURE_IMAGE_GENERATOR):
        return chat_with_image_model(api_key, chat, model)
    if model.supports(FEATURE_TEXT_TO_SPEECH):
        return chat_with_speech_model(api_key, chat, model)
    if model.supports(FEATURE_SPEECH_TO_TEXT):
        raise InvalidRequestError(
            f"'{model.id}' is a speech-to-text model and cannot chat. "
            "Send audio to POST /v1/audio/transcriptions instead.",
            param="model",
        )
    raise InvalidRequestError(f"'{model.id}' is not a chat model.", param="model")


def _stream_chat(group: ChoiceGroup, chat: ChatRequest) -> Response:
    group.start()
    writer = ChunkWriter(new_object_id("chatcmpl"), unix_time(), chat.model, chat.include_usage)
    events = stream_chat_completion(group, writer, chat.include_usage)
    return Response(stream_with_context(events), headers=SSE_HEADERS)
