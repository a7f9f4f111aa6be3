"""`POST /api/features`: one-off feature calls, dispatched by `type`, and async results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from . import audio, catalog, images
from .behaviour import Behaviour
from .errors import invalid_body, not_found, unsupported_model
from .records import (FeatureOutput, FeatureRequest, build_record, chat_metadata, envelope,
                      mark_failed)
from .transport import Call
from .validation import anything, boolean, check_object, integer, text

if TYPE_CHECKING:
    from .server import FakeOneMin

BODY_FIELDS = {"type": anything(), "model": anything(), "promptObject": anything(),
               "conversationId": text(), "async": boolean()}
CODE_FIELDS = {"prompt": text(), "webSearch": boolean(), "numOfSite": integer(1, 10**6),
               "maxWord": integer(1, 10**9)}


def generate_code(fake: FakeOneMin, request: FeatureRequest) -> FeatureOutput:
    """Generate a CODE_GENERATOR result the way a non-streaming chat call does."""
    prompt_object = check_object(request.prompt_object, CODE_FIELDS, "promptObject", ("prompt",))
    prompt = prompt_object["prompt"]
    answer = fake.next_answer(request.model.model_id, prompt, request.behaviour)
    fake.store.add_turn(request.conversation_id, prompt, answer)
    return FeatureOutput([answer], chat_metadata(request.model, prompt, answer,
                                                  request.behaviour))


FEATURES: dict[str, Callable[[Any, FeatureRequest], FeatureOutput]] = {
    catalog.IMAGE_GENERATOR: images.create_images,
    catalog.IMAGE_VARIATOR: images.create_images,
    catalog.IMAGE_EDITOR: images.create_images,
    catalog.TEXT_TO_SPEECH: audio.create_speech,
    catalog.SPEECH_TO_TEXT: audio.create_transcription,
    catalog.AUDIO_TRANSLATOR: audio.create_transcription,
    catalog.CODE: generate_code,
}


def run_feature(fake: FakeOneMin, call: Call, behaviour: Behaviour) -> None:
    """Check the request body, run the feature, and respond with the `aiRecord` envelope."""
    if call.query.get("isStreaming") == "true":
        raise invalid_body("Streaming on /api/features no longer exists; stream chat with "
                           "POST /api/chat-with-ai?isStreaming=true")
    body = call.json_object()
    feature = body.get("type")
    # The deprecated chat types (CHAT_WITH_AI, CHAT_WITH_IMAGE, ...) land here too.
    if feature not in FEATURES:
        raise invalid_body("Unsupported feature type")
    check_object(body, BODY_FIELDS, "body", required=("type", "model", "promptObject"))
    model = catalog.usable_model(body["model"], feature)
    if model is None:
        raise unsupported_model(body["model"])
    request = FeatureRequest(feature, model, body["promptObject"],
                             _conversation_id(fake, call, body.get("conversationId"), feature),
                             call.api_key or "", behaviour)

    output = FEATURES[feature](fake, request)
    if output.raw_audio is not None and behaviour.tts_raw_bytes:
        call.send(200, *output.raw_audio)
        return
    extra = {"temporaryUrl": output.temporary_url} if output.temporary_url else {}
    record = build_record(model=model.model_id, feature_type=feature,
                          prompt_object=dict(request.prompt_object), result=output.result,
                          behaviour=behaviour, conversation_id=request.conversation_id,
                          metadata=output.metadata, **extra)
    if behaviour.record_status == "FAILED":
        mark_failed(record, behaviour.error_message)
    credit = int(output.metadata.get("credit", 0))
    answer = envelope(record, request.api_key, fake.store.charge(request.api_key, credit))
    if body.get("async") is True:
        fake.store.async_records[record["uuid"]] = {"owner": request.api_key, "answer": answer}
        answer = {"aiRecord": _processing(record)}
    call.send_json(answer)


def get_result(fake: FakeOneMin, call: Call, behaviour: Behaviour) -> None:
    """Respond to `GET /api/results/<uuid>` with the finished record of an async call."""
    record_id = call.path.rsplit("/", 1)[-1]
    stored = fake.store.async_records.get(record_id)
    if stored is None or stored["owner"] != call.api_key:
        raise not_found(f"Record {record_id} not found")
    call.send_json(stored["answer"])


def _conversation_id(fake: FakeOneMin, call: Call, value: str | None,
                     feature: str) -> str | None:
    """Accept no id, the feature type itself (one-off calls), or a conversation of this key."""
    if value is None or value == feature:
        return value
    conversation = fake.store.conversations.get(value)
    if conversation is None or conversation.owner != call.api_key:
        raise invalid_body(f"conversationId: conversation {value!r} not found")
    return value


def _processing(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("uuid", "model", "type", "conversationId", "createdAt")
    return {**{key: record[key] for key in keys}, "status": "PROCESSING",
            "aiRecordDetail": {"promptObject": record["aiRecordDetail"]["promptObject"]}}
