"""Assistants: OpenAI assistant objects backed by 1min.ai conversations.

Creating an assistant creates a 1min.ai conversation (``POST /api/conversations``) that
contains the assistant's documents. A chat request with ``assistant_id`` then runs in that
conversation, with the assistant's instructions as a system message and its documents
attached. The assistant record itself lives in storage per key, like uploaded files.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from routes.functions.file_func import find_file
from routes.functions.file_types import DOCUMENT
from routes.functions.object_store import OwnedObjects
from routes.functions.shared_func import (
    key_id,
    number_in_range,
    optional_field,
    relay_state,
    required_field,
    unix_time,
)
from utils.constants import CONVERSATIONS_PATH, FEATURE_CHAT
from utils.errors import InvalidRequestError, NotFoundError, OpenAIError, UpstreamError

logger = logging.getLogger(__name__)

TOOL_TYPES = ("code_interpreter", "file_search", "function")
MAX_TOOLS = 128
MAX_FILES = 20
MAX_METADATA_PAIRS = 16
MAX_TITLE_CHARS = 90
# memcached refuses items above 1 MB by default; instructions may be 256,000 characters of
# escaped JSON, so larger records are rejected before they reach storage.
MAX_RECORD_BYTES = 900 * 1024
TEXT_LIMITS = {"name": 256, "description": 512, "instructions": 256_000}


def assistant_store() -> OwnedObjects:
    state = relay_state()
    return OwnedObjects(state.storage, "assistant", state.settings.assistants_ttl_seconds)


def _text_field(body: dict, name: str) -> str | None:
    value = optional_field(body, name, str)
    if value is not None and len(value) > TEXT_LIMITS[name]:
        raise InvalidRequestError(
            f"Invalid '{name}': at most {TEXT_LIMITS[name]} characters are allowed, got {len(value)}.",
            param=name,
            code="string_above_max_length",
        )
    return value


def _tools(body: dict) -> list[dict]:
    tools = optional_field(body, "tools", list) or []
    if len(tools) > MAX_TOOLS:
        raise InvalidRequestError(f"Invalid 'tools': at most {MAX_TOOLS} tools are allowed.", param="tools")
    for index, tool in enumerate(tools):
        param = f"tools.[{index}]"
        if not isinstance(tool, dict) or tool.get("type") not in TOOL_TYPES:
            raise InvalidRequestError(
                f"Invalid tool at '{param}': expected an object whose 'type' is one of {', '.join(TOOL_TYPES)}.",
                param=f"{param}.type",
            )
        if tool["type"] == "function":
            function = required_field(tool, "function", dict, param=f"{param}.function")
            required_field(function, "name", str, param=f"{param}.function.name")
    return tools


def _file_ids(body: dict) -> list[str]:
    """Collect file ids from ``tool_resources.code_interpreter.file_ids`` and the ``file_ids`` extension."""
    resources = optional_field(body, "tool_resources", dict) or {}
    file_search = optional_field(resources, "file_search", dict, param="tool_resources.file_search") or {}
    if file_search.get("vector_store_ids") or file_search.get("vector_stores"):
        raise InvalidRequestError(
            "Vector stores are not supported by this relay. Pass uploaded file ids in "
            "'tool_resources.code_interpreter.file_ids' instead.",
            param="tool_resources.file_search",
        )
    interpreter = optional_field(resources, "code_interpreter", dict, param="tool_resources.code_interpreter") or {}
    candidates = [
        ("tool_resources.code_interpreter.file_ids", optional_field(interpreter, "file_ids", list, param="tool_resources.code_interpreter.file_ids")),
        ("file_ids", optional_field(body, "file_ids", list)),
    ]
    file_ids: list[str] = []
    for param, values in candidates:
        for index, file_id in enumerate(values or []):
            if not isinstance(file_id, str):
                raise InvalidRequestError(f"Invalid '{param}.[{index}]': expected a file id string.", param=f"{param}.[{index}]")
            if file_id not in file_ids:
                file_ids.append(file_id)
    if len(file_ids) > MAX_FILES:
        raise InvalidRequestError(f"An assistant can have at most {MAX_FILES} files.", param="tool_resources")
    return file_ids


def _metadata(body: dict) -> dict:
    metadata = optional_field(body, "metadata", dict) or {}
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidRequestError(f"Invalid 'metadata': at most {MAX_METADATA_PAIRS} pairs are allowed.", param="metadata")
    for name, value in metadata.items():
        if len(name) > 64 or not isinstance(value, str) or len(value) > 512:
            raise InvalidRequestError(
                "Invalid 'metadata': keys must be at most 64 characters and values strings of at most 512.",
                param=f"metadata.{name}",
            )
    return metadata


def _document_uuids(api_key: str, file_ids: list[str]) -> list[str]:
    uuids = []
    for index, file_id in enumerate(file_ids):
        record = find_file(api_key, file_id, param=f"file_ids.[{index}]")
        if record["kind"] != DOCUMENT:
            raise InvalidRequestError(
                f"The file {file_id} ({record['filename']}) is not a document, and 1min.ai conversations contain "
                "documents only. Send images in the chat messages instead.",
                param=f"file_ids.[{index}]",
            )
        uuids.append(record["asset_uuid"])
    return uuids


def _create_conversation(api_key: str, model: str, title: str, file_uuids: list[str]) -> str:
    body = {"type": FEATURE_CHAT, "title": title[:MAX_TITLE_CHARS], "model": model, "fileList": file_uuids}
    answer = relay_state().client.post_json(CONVERSATIONS_PATH, api_key, body).json()
    conversation = answer.get("conversation") if isinstance(answer, dict) else None
    conversation_id = (conversation or {}).get("uuid") or (answer.get("uuid") if isinstance(answer, dict) else None)
    if not isinstance(conversation_id, str) or not conversation_id:
        raise UpstreamError("1min.ai created the conversation but returned no uuid.")
    return conversation_id


def create_assistant_record(api_key: str, body: dict) -> dict:
    """Validate an assistant request, create its 1min.ai conversation, store and return the record."""
    model_id = required_field(body, "model", str)
    model = relay_state().catalog.require(model_id)
    if not model.supports(FEATURE_CHAT):
        raise InvalidRequestError(f"'{model_id}' is not a chat model, so it cannot back an assistant.", param="model")
    name = _text_field(body, "name")
    record: dict[str, Any] = {
        "id": f"asst_{uuid.uuid4().hex}",
        "created_at": unix_time(),
        "name": name,
        "description": _text_field(body, "description"),
        "model": model_id,
        "instructions": _text_field(body, "instructions"),
        "tools": _tools(body),
        "metadata": _metadata(body),
        "temperature": number_in_range(body, "temperature", 0, 2),
        "top_p": number_in_range(body, "top_p", 0, 1),
        "response_format": optional_field(body, "response_format", (str, dict)) or "auto",
        "file_ids": _file_ids(body),
    }
    if len(json.dumps(record)) > MAX_RECORD_BYTES:
        raise InvalidRequestError(
            "The assistant is too large to store; shorten its instructions.", param="instructions"
        )
    record["file_uuids"] = _document_uuids(api_key, record["file_ids"])
    record["conversation_id"] = _create_conversation(api_key, model_id, name or "Assistant", record["file_uuids"])
    assistant_store().add(key_id(api_key), record)
    return record


def load_assistant(api_key: str, assistant_id: str, param: str = "assistant_id") -> dict:
    """Return the key's assistant, or raise a 404 (the same for another key's assistant and an unknown id)."""
    record = assistant_store().get(key_id(api_key), assistant_id)
    if record is None:
        raise NotFoundError(f"No assistant found with id '{assistant_id}'.", param=param)
    return record


def delete_assistant_record(api_key: str, assistant_id: str) -> None:
    """Delete the assistant and, as far as 1min.ai allows, its conversation."""
    record = assistant_store().remove(key_id(api_key), assistant_id)
    if record is None:
        raise NotFoundError(f"No assistant found with id '{assistant_id}'.", param="assistant_id")
    try:
        relay_state().client.delete(f"{CONVERSATIONS_PATH}/{record['conversation_id']}", api_key).close()
    except OpenAIError as error:
        # The assistant is gone either way; a leftover conversation costs nothing.
        logger.warning("deleting the conversation of assistant %s failed: %s", assistant_id, error.message)


def assistant_object(record: dict) -> dict:
    """Build the OpenAI ``assistant`` object for a stored record."""
    tool_resources = {"code_interpreter": {"file_ids": record["file_ids"]}} if record["file_ids"] else {}
    return {
        "id": record["id"],
        "object": "assistant",
        "created_at": record["created_at"],
        "name": record["name"],
        "description": record["description"],
        "model": record["model"],
        "instructions": record["instructions"],
        "tools": record["tools"],
        "tool_resources": tool_resources,
        "metadata": record["metadata"],
        "temperature": record["temperature"],
        "top_p": record["top_p"],
        "response_format": record["response_format"],
    }
