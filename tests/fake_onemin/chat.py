"""Chat: `POST /api/chat-with-ai`, plain JSON or named SSE events with `?isStreaming=true`."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from . import catalog
from .assets import asset_by_path, asset_by_uuid
from .behaviour import Behaviour
from .errors import invalid_body, unsupported_model
from .records import build_record, chat_metadata, envelope, mark_failed
from .state import DOCUMENT, IMAGE
from .transport import Call, ClientGone
from .validation import (anything, boolean, check_object, integer, nested, string_list,
                         text)

if TYPE_CHECKING:
    from .server import FakeOneMin

_URL = re.compile(r"https?://[^\s<>\"']+")
_FILLER = " Привет 👋 lorem ipsum dolor sit amet."
_IMAGE_LIST_MESSAGE = ("imageList is not read by UNIFY_CHAT_WITH_AI: the real service ignores it "
                       "silently. Send asset paths in promptObject.attachments.images")

BODY_FIELDS = {"type": anything(), "model": anything(), "promptObject": anything()}
SETTINGS_FIELDS = {
    "webSearchSettings": nested({"webSearch": boolean(), "numOfSite": integer(1, 10**6),
                                 "maxWord": integer(1, 10**9)}),
    "historySettings": nested({"isMixed": boolean(),
                               "historyMessageLimit": integer(0, 10**6)}),
    "withMemories": boolean(),
}
PROMPT_FIELDS = {
    "prompt": text(),
    "conversationId": text(),
    "settings": nested(SETTINGS_FIELDS),
    "attachments": nested({"images": string_list(), "files": string_list()}),
}


def default_answer(model: str, prompt: str, reply_chars: int | None = None) -> str:
    """Return the deterministic chat answer, padded or cut to `reply_chars` when it is set."""
    if prompt.strip():
        answer = f"Hello from {model}! Привет 👋 You said: {prompt[-40:]}"
    else:
        answer = f"Hello from {model}! Привет 👋 How can I help you today?"
    if reply_chars is None:
        return answer
    repeats = reply_chars // len(_FILLER) + 1
    return (answer + _FILLER * repeats)[:reply_chars]


def create_chat(fake: FakeOneMin, call: Call, behaviour: Behaviour) -> None:
    """Respond to a chat call after checking the body as strictly as the contract allows."""
    streaming = call.query.get("isStreaming") == "true"
    body = call.json_object()
    if "imageList" in body:
        raise invalid_body(_IMAGE_LIST_MESSAGE)
    check_object(body, BODY_FIELDS, "body", required=("type", "model", "promptObject"))
    if body["type"] != catalog.CHAT:
        raise invalid_body(f"type must be {catalog.CHAT} on /api/chat-with-ai, "
                           f"got {body['type']!r}")
    if not isinstance(body["model"], str):
        raise invalid_body("model must be a string")
    prompt_object = _checked_prompt_object(fake, call, body["promptObject"])

    model = catalog.usable_model(body["model"], catalog.CHAT)
    if model is None or model.chat_rejects:
        if not streaming:
            raise unsupported_model(body["model"])
        with _counting_disconnects(fake):
            call.start_event_stream()
            _write_error_event(call, behaviour, f"Model {body['model']} is not supported")
        return

    prompt = prompt_object["prompt"]
    answer = fake.next_answer(model.model_id, prompt, behaviour)
    conversation_id = prompt_object.get("conversationId")
    record = build_record(model=model.model_id, feature_type=catalog.CHAT,
                          prompt_object=_echo(prompt_object), result=[answer],
                          behaviour=behaviour, conversation_id=conversation_id,
                          metadata=chat_metadata(model, prompt, answer, behaviour))
    fake.store.add_turn(conversation_id, prompt, answer)
    if streaming:
        with _counting_disconnects(fake):
            _stream_answer(fake, call, behaviour, record, answer)
        return
    if behaviour.record_status == "FAILED":
        mark_failed(record, behaviour.error_message)
    call.send_json(envelope(record, call.api_key or "", _charge(fake, call, record)))


def _checked_prompt_object(fake: FakeOneMin, call: Call, prompt_object: Any) -> dict[str, Any]:
    if isinstance(prompt_object, dict) and "imageList" in prompt_object:
        raise invalid_body(_IMAGE_LIST_MESSAGE)
    check_object(prompt_object, PROMPT_FIELDS, "promptObject")
    # An empty prompt is not rejected upstream (the model greets), but a missing one is.
    if not isinstance(prompt_object.get("prompt"), str):
        raise invalid_body("promptObject.prompt must be a string")

    attachments = prompt_object.get("attachments") or {}
    for index, path in enumerate(attachments.get("images") or []):
        asset_by_path(fake.store, path, call.api_key, IMAGE,
                      f"promptObject.attachments.images[{index}]")
    for index, file_id in enumerate(attachments.get("files") or []):
        asset_by_uuid(fake.store, file_id, call.api_key, DOCUMENT,
                      f"promptObject.attachments.files[{index}]")

    conversation_id = prompt_object.get("conversationId")
    if conversation_id is not None:
        conversation = fake.store.conversations.get(conversation_id)
        if conversation is None or conversation.owner != call.api_key:
            raise invalid_body(f"promptObject.conversationId: conversation "
                               f"{conversation_id!r} not found")
    return prompt_object


def _echo(prompt_object: dict[str, Any]) -> dict[str, Any]:
    """Copy the prompt object as the record echoes it, with the page lists URLs trigger."""
    echoed = dict(prompt_object)
    urls = _URL.findall(prompt_object["prompt"])
    if urls:
        echoed["linkContentList"] = [{"link": url, "content": ""} for url in urls]
        echoed["searchContentList"] = []
    return echoed


def _charge(fake: FakeOneMin, call: Call, record: dict[str, Any]) -> int:
    return fake.store.charge(call.api_key or "", int(record["metadata"].get("credit", 0)))


@contextmanager
def _counting_disconnects(fake: FakeOneMin) -> Iterator[None]:
    try:
        yield
    except ClientGone:
        fake.store.count_stream_disconnect()
        raise


def _stream_answer(fake: FakeOneMin, call: Call, behaviour: Behaviour,
                   record: dict[str, Any], answer: str) -> None:
    """Write content deltas, then result and done, injecting the configured stream faults."""
    call.split_bytes = behaviour.split_utf8
    call.start_event_stream()
    if behaviour.empty_first_delta:
        call.write_events(("content", {"content": ""}))
    size = behaviour.chunk_size
    pieces = [answer[start:start + size] for start in range(0, len(answer), size)]
    for index in range(len(pieces) + 1):
        if not _continue_stream(call, behaviour, index, len(pieces)):
            return
        if index == len(pieces):
            break
        if index and behaviour.chunk_delay and not call.wait(behaviour.chunk_delay):
            raise ClientGone()
        call.write_events(("content", {"content": pieces[index]}))

    result = envelope(record, call.api_key or "", _charge(fake, call, record))
    if behaviour.duplicate_full_text:
        call.write_events(("content", {"content": answer}), ("result", result))
    else:
        call.write_events(("result", result))
    call.write_events(("done", {"message": "Stream completed"}))
    call.end_stream()


def _continue_stream(call: Call, behaviour: Behaviour, index: int, total: int) -> bool:
    """Apply the error, drop and stall faults due before text chunk `index`."""
    if behaviour.error_event is not None and index == min(behaviour.error_after_chunks, total):
        _write_error_event(call, behaviour, behaviour.error_event)
        return False
    if behaviour.drop_after_chunks is not None and index == min(behaviour.drop_after_chunks,
                                                                  total):
        call.drop()
        return False
    if behaviour.stall_after_chunks is not None and index == min(behaviour.stall_after_chunks,
                                                                   total):
        if not call.wait(behaviour.stall_mid_stream_seconds):
            raise ClientGone()
    return True


def _write_error_event(call: Call, behaviour: Behaviour, message: str) -> None:
    shapes = {"string": {"error": message}, "object": {"error": {"message": message}},
              "message": {"message": message}}
    call.write_events(("error", shapes[behaviour.error_event_shape]))
    call.end_stream()
    call.close_after_response()
