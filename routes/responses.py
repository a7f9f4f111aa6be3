"""The Responses API: create, retrieve and delete responses."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, stream_with_context

from routes.functions.answer_func import ChoiceResult
from routes.functions.attachment_func import prepare_attachments
from routes.functions.chat_func import chat_choice_group, require_chat_model
from routes.functions.response_events_func import ResponseEventWriter, stream_response_events
from routes.functions.responses_func import (
    ResponseObject,
    delete_response,
    load_history,
    load_response,
    output_items,
    output_messages,
    parse_responses_request,
    save_response,
)
from routes.functions.shared_func import parse_json_body, relay_state, validate_auth
from routes.functions.stream_func import SSE_HEADERS
from routes.functions.txt_func import format_conversation_history, parse_chat_request, prepare_chat_payload

bp = Blueprint("responses", __name__)


@bp.post("/v1/responses")
def create_response() -> Response:
    api_key = validate_auth()
    params = parse_responses_request(parse_json_body())
    g.model = params.model
    storage = relay_state().storage
    history = load_history(storage, api_key, params.previous_response_id) if params.previous_response_id else []
    chat = parse_chat_request(params.chat_body(history))
    model = require_chat_model(chat.model)

    prepare_attachments(api_key, chat, model)
    prompt = format_conversation_history(chat.messages)
    path, payload = prepare_chat_payload(chat, prompt)
    group = chat_choice_group(api_key, chat, path, payload, prompt)
    response = ResponseObject(params)

    def finish(body: dict) -> None:
        if params.store:
            conversation = history + params.input_messages + output_messages(body["output"])
            save_response(storage, api_key, body, conversation, relay_state().settings.responses_ttl_seconds)

    if params.stream:
        group.start()
        events = stream_response_events(group, ResponseEventWriter(response), finish)
        return Response(stream_with_context(events), headers=SSE_HEADERS)

    [result] = group.collect()
    body = _final_body(response, result)
    finish(body)
    return jsonify(body)


def _final_body(response: ResponseObject, result: ChoiceResult) -> dict:
    return response.finished(output_items(result), result.finish_reason, result.prompt_tokens, result.completion_tokens)


@bp.get("/v1/responses/<response_id>")
def retrieve_response(response_id: str) -> Response:
    api_key = validate_auth()
    return jsonify(load_response(relay_state().storage, api_key, response_id)["response"])


@bp.delete("/v1/responses/<response_id>")
def remove_response(response_id: str) -> Response:
    api_key = validate_auth()
    return jsonify(delete_response(relay_state().storage, api_key, response_id))
