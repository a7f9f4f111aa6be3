"""Text endpoints: the model list and chat completions."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, stream_with_context

from routes.functions.audio_func import chat_with_speech_model
from routes.functions.img_func import chat_with_image_model

from routes.functions.shared_func import (
    new_object_id,
    parse_json_body,
    relay_state,
    unix_time,
    validate_auth,
)
from routes.functions.stream_func import SSE_HEADERS, ChunkWriter, UpstreamChatStream, stream_response
from routes.functions.txt_func import (
    ChatRequest,
    format_conversation_history,
    format_openai_response,
    parse_chat_request,
    prepare_chat_payload,
    transform_response,
)
from utils.catalog import CatalogModel
from utils.constants import (
    CHAT_PATH,
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
    model = relay_state().catalog.require(chat.model)
    if not (model.supports(FEATURE_CHAT) or model.supports(FEATURE_CODE)):
        return _chat_with_other_model(api_key, chat, model)

    prompt = format_conversation_history(chat.messages)
    path, payload = prepare_chat_payload(chat, prompt)
    if chat.stream and path == CHAT_PATH:
        return _stream_chat(api_key, chat, prompt, payload)

    client = relay_state().client
    result = transform_response(client.post_json(path, api_key, payload).json(), prompt)
    body = format_openai_response(result, chat.model)
    if chat.stream:
        return _replay_as_stream(body, chat, result.text)
    return jsonify(body)


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


def _stream_chat(api_key: str, chat: ChatRequest, prompt: str, payload: dict) -> Response:
    response = relay_state().client.post_json(
        CHAT_PATH, api_key, payload, stream=True, params={"isStreaming": "true"}
    )
    upstream = UpstreamChatStream(response, chat.model, relay_state().metrics)
    try:
        upstream.prefetch()
    except BaseException:
        upstream.close()
        raise
    writer = ChunkWriter(new_object_id("chatcmpl"), unix_time(), chat.model, chat.include_usage)
    events = stream_response(upstream, writer, prompt, chat.include_usage)
    return Response(stream_with_context(events), headers=SSE_HEADERS)


def _replay_as_stream(body: dict, chat: ChatRequest, text: str) -> Response:
    """Send a finished answer (from an endpoint that cannot stream) as an OpenAI stream."""
    writer = ChunkWriter(body["id"], body["created"], chat.model, chat.include_usage)
    choice = body["choices"][0]
    usage = body["usage"]

    def events():
        yield writer.chunk({"role": "assistant", "content": ""})
        if text:
            yield writer.chunk({"content": text})
        yield writer.chunk({}, finish_reason=choice["finish_reason"])
        if chat.include_usage:
            yield writer.usage_chunk(usage["prompt_tokens"], usage["completion_tokens"])
        yield b"data: [DONE]\n\n"

    return Response(events(), headers=SSE_HEADERS)
