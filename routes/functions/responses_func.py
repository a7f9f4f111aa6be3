"""The Responses API on top of chat: input items to chat messages, ``response`` objects, storage.

A Responses request is translated into a chat completion body, so validation, the prompt
and the answer pipeline are the chat ones. Stored responses keep the conversation as chat
messages, which is what ``previous_response_id`` continues from.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from routes.functions.answer_func import ChoiceResult
from routes.functions.shared_func import key_id, optional_field, required_field, unix_time
from routes.functions.tool_func import ToolCall
from utils.errors import InvalidRequestError, NotFoundError
from utils.memcached import Storage

logger = logging.getLogger(__name__)

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
WEB_SEARCH_TOOL_TYPES = ("web_search", "web_search_preview", "web_search_preview_2025_03_11")
# memcached rejects items above 1 MB by default, so a larger response is returned but not stored.
MAX_STORED_BYTES = 900_000
UNSUPPORTED_FIELDS = {
    "background": "Background responses are not supported by this relay; send the request without 'background'.",
    "conversation": "Conversations are not supported by this relay; chain responses with 'previous_response_id'.",
    "prompt": "Prompt templates are not supported by this relay; send the text in 'input'.",
}


def new_item_id(prefix: str) -> str:
    """Return an id in the Responses API style, such as ``resp_…`` or ``msg_…``."""
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class ResponsesRequest:
    """A validated ``POST /v1/responses`` body and its chat completion equivalent."""

    model: str
    input_messages: list[dict]
    instructions: str | None
    previous_response_id: str | None
    store: bool
    stream: bool
    chat_fields: dict
    echo: dict = field(default_factory=dict)

    def chat_body(self, history: list[dict]) -> dict:
        """Return the chat completion body for this request after the stored ``history``."""
        messages = [{"role": "system", "content": self.instructions}] if self.instructions else []
        return {**self.chat_fields, "model": self.model, "messages": messages + history + self.input_messages}


def _text_part(part: dict, param: str) -> dict:
    return {"type": "text", "text": required_field(part, "text", str, param=f"{param}.text")}


def _image_part(part: dict, param: str) -> dict:
    image_url = optional_field(part, "image_url", str, param=f"{param}.image_url")
    file_id = optional_field(part, "file_id", str, param=f"{param}.file_id")
    if image_url:
        return {"type": "image_url", "image_url": {"url": image_url, "detail": part.get("detail") or "auto"}}
    if file_id:
        return {"type": "file", "file": {"file_id": file_id}}
    raise InvalidRequestError(f"'{param}' needs an 'image_url' or a 'file_id'.", param=param)


def _file_part(part: dict, param: str) -> dict:
    if part.get("file_url") is not None:
        raise InvalidRequestError(
            f"'{param}.file_url' is not supported by this relay; send 'file_id' or 'file_data' instead.",
            param=f"{param}.file_url",
        )
    file: dict[str, str] = {}
    for name in ("file_id", "file_data", "filename"):
        value = optional_field(part, name, str, param=f"{param}.{name}")
        if value is not None:
            file[name] = value
    if "file_id" not in file and "file_data" not in file:
        raise InvalidRequestError(f"'{param}' needs a 'file_id' or 'file_data'.", param=param)
    return {"type": "file", "file": file}


CONTENT_PARTS = {
    "input_text": _text_part,
    "output_text": _text_part,
    "input_image": _image_part,
    "input_file": _file_part,
}


def _content(content: Any, param: str) -> str | list[dict]:
    """Convert Responses content (a string or a list of parts) into chat content."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"Invalid type for '{param}': expected a string or an array of content parts.",
            param=param,
            code="invalid_type",
        )
    parts = []
    for index, part in enumerate(content):
        part_param = f"{param}.[{index}]"
        if not isinstance(part, dict):
            raise InvalidRequestError(f"Invalid content part at '{part_param}': expected an object.", param=part_param)
        part_type = part.get("type")
        if part_type == "refusal":
            parts.append({"type": "refusal", "refusal": required_field(part, "refusal", str, param=f"{part_param}.refusal")})
            continue
        convert = CONTENT_PARTS.get(part_type)
        if convert is None:
            raise InvalidRequestError(
                f"Invalid content part type {part_type!r} at '{part_param}'. "
                "Expected one of: input_text, input_image, input_file, output_text, refusal.",
                param=f"{part_param}.type",
            )
        parts.append(convert(part, part_param))
    return parts


def _message_item(item: dict, param: str) -> dict:
    role = required_field(item, "role", str, param=f"{param}.role")
    if role not in MESSAGE_ROLES:
        raise InvalidRequestError(
            f"Invalid value for '{param}.role': {role!r}. Supported roles: user, assistant, system, developer.",
            param=f"{param}.role",
        )
    if item.get("content") is None:
        raise InvalidRequestError(f"Missing required parameter: '{param}.content'.", param=f"{param}.content")
    return {"role": role, "content": _content(item["content"], f"{param}.content")}


def _function_call_item(item: dict, param: str) -> dict:
    call = {
        "id": required_field(item, "call_id", str, param=f"{param}.call_id"),
        "type": "function",
        "function": {
            "name": required_field(item, "name", str, param=f"{param}.name"),
            "arguments": required_field(item, "arguments", str, param=f"{param}.arguments"),
        },
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _function_output_item(item: dict, param: str) -> dict:
    call_id = required_field(item, "call_id", str, param=f"{param}.call_id")
    if item.get("output") is None:
        raise InvalidRequestError(f"Missing required parameter: '{param}.output'.", param=f"{param}.output")
    return {"role": "tool", "tool_call_id": call_id, "content": _content(item["output"], f"{param}.output")}


def input_messages(value: Any) -> list[dict]:
    """Convert ``input`` (a string or a list of items) into chat messages, in order.

    Reasoning items carry nothing the relay can pass on, so they are skipped.
    """
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(
            "Invalid 'input': expected a string or a non-empty array of input items.", param="input"
        )
    messages = []
    for index, item in enumerate(value):
        param = f"input.[{index}]"
        if not isinstance(item, dict):
            raise InvalidRequestError(f"Invalid input item at '{param}': expected an object.", param=param)
        item_type = item.get("type", "message")
        if item_type == "message":
            messages.append(_message_item(item, param))
        elif item_type == "function_call":
            messages.append(_function_call_item(item, param))
        elif item_type == "function_call_output":
            messages.append(_function_output_item(item, param))
        elif item_type != "reasoning":
            raise InvalidRequestError(
                f"Input items of type {item_type!r} are not supported by this relay ('{param}'). "
                "Supported: message, function_call, function_call_output.",
                param=f"{param}.type",
            )
    return messages


def _chat_tool(tool: Any, index: int) -> dict:
    param = f"tools.[{index}]"
    if not isinstance(tool, dict):
        raise InvalidRequestError(f"Invalid tool at '{param}': expected an object with a 'type'.", param=param)
    tool_type = tool.get("type")
    if tool_type in WEB_SEARCH_TOOL_TYPES:
        return {"type": "web_search"}
    if tool_type != "function":
        raise InvalidRequestError(
            f"Tools of type {tool_type!r} are not supported by this relay ('{param}'). "
            "Supported: function, web_search, web_search_preview.",
            param=f"{param}.type",
        )
    function = {"name": tool.get("name")}
    for name in ("description", "parameters", "strict"):
        if tool.get(name) is not None:
            function[name] = tool[name]
    return {"type": "function", "function": function}


def _chat_tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise InvalidRequestError(
        'Invalid \'tool_choice\': expected none, auto, required or {"type": "function", "name": "..."}.',
        param="tool_choice",
    )


def _chat_response_format(text: dict | None) -> dict | None:
    text_format = optional_field(text or {}, "format", dict, param="text.format")
    if text_format is None or text_format.get("type") != "json_schema":
        return text_format
    spec = {key: value for key, value in text_format.items() if key != "type"}
    return {"type": "json_schema", "json_schema": spec}


def _echoed_tools(tools: list) -> list[dict]:
    echoed = []
    for tool in tools:
        if tool.get("type") == "function":
            echoed.append(
                {
                    "type": "function",
                    "name": tool.get("name"),
                    "description": tool.get("description"),
                    "parameters": tool.get("parameters"),
                    "strict": tool.get("strict"),
                }
            )
        else:
            echoed.append({"type": tool["type"]})
    return echoed


def parse_responses_request(body: dict) -> ResponsesRequest:
    """Validate a Responses body; fields the chat pipeline checks are checked there."""
    for name, message in UNSUPPORTED_FIELDS.items():
        if body.get(name) not in (None, False):
            raise InvalidRequestError(message, param=name, code="unsupported_parameter")
    model = required_field(body, "model", str)
    if body.get("input") is None:
        raise InvalidRequestError("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    tools = optional_field(body, "tools", list) or []
    text = optional_field(body, "text", dict)
    chat_fields = {
        "stream": optional_field(body, "stream", bool),
        "tools": [_chat_tool(tool, index) for index, tool in enumerate(tools)],
        "tool_choice": _chat_tool_choice(body.get("tool_choice")),
        "parallel_tool_calls": body.get("parallel_tool_calls"),
        "response_format": _chat_response_format(text),
        "max_completion_tokens": body.get("max_output_tokens"),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "metadata": optional_field(body, "metadata", dict),
        "user": body.get("user"),
    }
    echo = {
        "tools": _echoed_tools(tools),
        "tool_choice": body.get("tool_choice") or "auto",
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "text": {"format": (text or {}).get("format") or {"type": "text"}},
        "max_output_tokens": body.get("max_output_tokens"),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "metadata": body.get("metadata") or {},
    }
    store = optional_field(body, "store", bool)
    return ResponsesRequest(
        model=model,
        input_messages=input_messages(body["input"]),
        instructions=optional_field(body, "instructions", str),
        previous_response_id=optional_field(body, "previous_response_id", str),
        store=store is not False,
        stream=bool(chat_fields["stream"]),
        chat_fields={name: value for name, value in chat_fields.items() if value is not None},
        echo=echo,
    )


def message_item(item_id: str, text: str, status: str = "completed") -> dict:
    content = [] if status == "in_progress" else [output_text_part(text)]
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def output_text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call_item(item_id: str, call: ToolCall, status: str = "completed") -> dict:
    arguments = "" if status == "in_progress" else call.arguments
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call.id,
        "name": call.name,
        "arguments": arguments,
        "status": status,
    }


def output_items(result: ChoiceResult) -> list[dict]:
    """Return the output items of a finished answer: its text as a message, then its calls."""
    items = []
    if result.text or not result.tool_calls:
        items.append(message_item(new_item_id("msg"), result.text))
    for call in result.tool_calls:
        items.append(function_call_item(new_item_id("fc"), call))
    return items


def response_usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + completion_tokens,
    }


INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


class ResponseObject:
    """Build the ``response`` object of one request at each stage: in progress, final or failed."""

    def __init__(self, request: ResponsesRequest) -> None:
        self.id = new_item_id("resp")
        self.created_at = unix_time()
        self._request = request

    def snapshot(self, status: str, output: list[dict], usage: dict | None = None, **fields: Any) -> dict:
        request = self._request
        body = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "completed_at": unix_time() if status == "completed" else None,
            "error": fields.get("error"),
            "incomplete_details": fields.get("incomplete_details"),
            "instructions": request.instructions,
            "model": request.model,
            "output": output,
            "previous_response_id": request.previous_response_id,
            "reasoning": None,
            "store": request.store,
            "truncation": "disabled",
            **request.echo,
        }
        # The schema has no null usage: a response in progress has none yet.
        if usage is not None:
            body["usage"] = usage
        return body

    def finished(self, output: list[dict], finish_reason: str, prompt_tokens: int, completion_tokens: int) -> dict:
        """Return the final object: ``incomplete`` when the answer was cut by length or a filter."""
        usage = response_usage(prompt_tokens, completion_tokens)
        reason = INCOMPLETE_REASONS.get(finish_reason)
        if reason is None:
            return self.snapshot("completed", output, usage)
        return self.snapshot("incomplete", output, usage, incomplete_details={"reason": reason})

    def failed(self, output: list[dict], message: str) -> dict:
        return self.snapshot("failed", output, error={"code": "server_error", "message": message})


def output_messages(output: list[dict]) -> list[dict]:
    """Convert output items back into one assistant chat message, for the next turn."""
    text = "".join(
        part["text"] for item in output if item["type"] == "message" for part in item["content"] if part.get("text")
    )
    calls = [
        {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": item["arguments"]}}
        for item in output
        if item["type"] == "function_call"
    ]
    message: dict = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _storage_key(api_key: str, response_id: str) -> str:
    return f"response:{key_id(api_key)}:{response_id}"


def save_response(storage: Storage, api_key: str, body: dict, messages: list[dict], ttl: int) -> None:
    """Store a response and the conversation it ends, unless it is too large for memcached."""
    entry = {"response": body, "messages": messages}
    size = len(json.dumps(entry, ensure_ascii=False).encode("utf-8"))
    if size > MAX_STORED_BYTES:
        # NOTE: such a response cannot be retrieved or continued with previous_response_id.
        logger.warning("response %s not stored: %d bytes exceed the %d byte limit", body["id"], size, MAX_STORED_BYTES)
        return
    storage.set(_storage_key(api_key, body["id"]), entry, ttl)


def load_response(storage: Storage, api_key: str, response_id: str) -> dict:
    """Return the stored entry of a response, or raise a 404."""
    entry = storage.get(_storage_key(api_key, response_id))
    if entry is None:
        raise NotFoundError(
            f"No response with id '{response_id}' found. Responses are kept only when 'store' is true, "
            "for a limited time, and only for the API key that created them.",
            param="response_id",
        )
    return entry


def load_history(storage: Storage, api_key: str, response_id: str) -> list[dict]:
    """Return the conversation that ``previous_response_id`` ended, or raise a 400."""
    entry = storage.get(_storage_key(api_key, response_id))
    if entry is None:
        raise InvalidRequestError(
            f"Previous response with id '{response_id}' not found. It may have expired, been deleted, "
            "been created with 'store': false, or belong to another API key.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return entry["messages"]


def delete_response(storage: Storage, api_key: str, response_id: str) -> dict:
    load_response(storage, api_key, response_id)
    storage.delete(_storage_key(api_key, response_id))
    return {"id": response_id, "object": "response", "deleted": True}
