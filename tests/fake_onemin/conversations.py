"""Conversations: `POST /api/conversations` and `DELETE /api/conversations/<uuid>`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import catalog
from .assets import asset_by_uuid
from .behaviour import Behaviour
from .errors import invalid_body, not_found
from .state import DOCUMENT, Conversation, new_uuid
from .transport import Call
from .validation import check_object, string_list, text

if TYPE_CHECKING:
    from .server import FakeOneMin

CONVERSATION_FIELDS = {"type": text(), "title": text(90), "model": text(),
                       "fileList": string_list()}


def create_conversation(fake: FakeOneMin, call: Call, behaviour: Behaviour) -> None:
    body = call.json_object()
    if body.get("model") is None:
        raise invalid_body("model is required")
    check_object(body, CONVERSATION_FIELDS, "body")
    if catalog.find_model(body["model"]) is None:
        raise invalid_body(f"model {body['model']!r} not found")
    file_list = body.get("fileList") or []
    for index, file_id in enumerate(file_list):
        asset_by_uuid(fake.store, file_id, call.api_key, DOCUMENT, f"fileList[{index}]")

    conversation = Conversation(uuid=new_uuid(), title=body.get("title") or "New conversation",
                                type=body.get("type") or catalog.CHAT, model=body["model"],
                                file_list=list(file_list), owner=call.api_key or "")
    fake.store.add_conversation(conversation)
    call.send_json({"conversation": {"uuid": conversation.uuid, "title": conversation.title,
                                     "type": conversation.type, "model": conversation.model,
                                     "fileList": conversation.file_list}})


def delete_conversation(fake: FakeOneMin, call: Call, behaviour: Behaviour) -> None:
    conversation_id = call.path.rsplit("/", 1)[-1]
    if not fake.store.remove_conversation(conversation_id, call.api_key or ""):
        raise not_found(f"Conversation {conversation_id} not found")
    call.send_json({"message": "Conversation deleted"})
