"""Chat completions: request validation, history flattening, the upstream payload and the answer.

1min.ai takes the whole conversation as one ``prompt`` string, so the OpenAI message
list is flattened into ``System:`` / ``User:`` / ``Assistant:`` lines here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from routes.functions.output_func import OutputSpec, parse_output_spec
from routes.functions.shared_func import (
    new_object_id,
    number_in_range,
    optional_field,
    required_field,
    unix_time,
)
from utils.common import calculate_token
from utils.constants import CHAT_PATH, CHAT_ROLES, FEATURE_CHAT, FEATURE_CODE, FEATURES_PATH, FINISH_REASONS
from utils.errors import InvalidRequestError, UpstreamError

DEFAULT_SEARCH_SITES = 3
DEFAULT_SEARCH_WORDS = 1000
ROLE_LABELS = {"system": "System", "developer": "System", "user": "User", "assistant": "Assistant"}
WEB_SEARCH_TOOL_TYPES = {"retrieval", "web_search", "web_search_preview"}


@dataclass
class ChatRequest:
    """A validated ``POST /v1/chat/completions`` body, reduced to what the relay uses."""

    model: str
    messages: list[dict]
    stream: bool = False
    include_usage: bool = False
    web_search: bool = False
    search_sites: int = DEFAULT_SEARCH_SITES
    search_words: int = DEFAULT_SEARCH_WORDS
    code_interpreter: bool = False
    n: int = 1
    output: OutputSpec = field(default_factory=OutputSpec)
    body: dict = field(default_factory=dict)
    # Filled in by attachment_func.prepare_attachments: 1min.ai asset paths of images,
    # asset uuids of documents, and the conversation of a named assistant.
    images: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    conversation_id: str | None = None


@dataclass
class ChatResult:
    """One finished upstream answer."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _validate_part(part: Any, param: str) -> None:
    if not isinstance(part, dict):
        raise InvalidRequestError(
            f"Invalid content part at '{param}': expected an object with a 'type'.", param=param
        )
    part_type = part.get("type")
    if part_type in ("text", "refusal"):
        required_field(part, part_type, str, param=f"{param}.{part_type}")
        return
    if part_type == "image_url":
        image = required_field(part, "image_url", dict, param=f"{param}.image_url")
        required_field(image, "url", str, param=f"{param}.image_url.url")
        if optional_field(image, "detail", str, param=f"{param}.image_url.detail") not in (None, "auto", "low", "high"):
            raise InvalidRequestError(
                f"Invalid value for '{param}.image_url.detail': expected 'auto', 'low' or 'high'.",
                param=f"{param}.image_url.detail",
            )
        return
    if part_type == "file":
        _validate_file_part(required_field(part, "file", dict, param=f"{param}.file"), f"{param}.file")
        return
    if part_type == "input_audio":
        raise InvalidRequestError(
            f"Content parts of type '{part_type}' are not supported by this relay yet ('{param}'). "
            "Send the message as text.",
            param=param,
            code="unsupported_content",
        )
    raise InvalidRequestError(
        f"Invalid content part type {part_type!r} at '{param}'. "
        "Expected one of: text, image_url, input_audio, file, refusal.",
        param=f"{param}.type",
    )


def _validate_file_part(file: dict, param: str) -> None:
    file_id = optional_field(file, "file_id", str, param=f"{param}.file_id")
    file_data = optional_field(file, "file_data", str, param=f"{param}.file_data")
    optional_field(file, "filename", str, param=f"{param}.filename")
    if (file_id is None) == (file_data is None):
        raise InvalidRequestError(
            f"Invalid '{param}': give exactly one of 'file_id' (an uploaded file) or 'file_data' (base64).",
            param=param,
        )


def _validate_message(message: Any, index: int) -> None:
    param = f"messages.[{index}]"
    if not isinstance(message, dict):
        raise InvalidRequestError(f"Invalid type for '{param}': expected an object.", param=param)
    role = required_field(message, "role", str, param=f"{param}.role")
    if role not in CHAT_ROLES:
        raise InvalidRequestError(
            f"Invalid value for '{param}.role': {role!r}. "
            "Supported roles: system, developer, user, assistant, tool.",
            param=f"{param}.role",
        )

    content = message.get("content")
    tool_calls = optional_field(message, "tool_calls", list, param=f"{param}.tool_calls")
    if content is None:
        if not (role == "assistant" and (tool_calls or message.get("function_call"))):
            raise InvalidRequestError(
                f"Missing content in '{param}': only an assistant message with tool_calls may have null content.",
                param=f"{param}.content",
            )
    elif isinstance(content, list):
        for part_index, part in enumerate(content):
            _validate_part(part, f"{param}.content.[{part_index}]")
    elif not isinstance(content, str):
        raise InvalidRequestError(
            f"Invalid type for '{param}.content': expected a string or an array of content parts.",
            param=f"{param}.content",
            code="invalid_type",
        )

    if role == "tool":
        required_field(message, "tool_call_id", str, param=f"{param}.tool_call_id")
    optional_field(message, "name", str, param=f"{param}.name")


def _web_search_settings(body: dict) -> tuple[bool, int, int]:
    enabled = bool(optional_field(body, "web_search", bool))
    if optional_field(body, "web_search_options", dict) is not None:
        enabled = True
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") in WEB_SEARCH_TOOL_TYPES:
            enabled = True
    sites = number_in_range(body, "num_of_site", 1, 10, integer=True) or DEFAULT_SEARCH_SITES
    words = number_in_range(body, "max_word", 1, 100000, integer=True) or DEFAULT_SEARCH_WORDS
    return enabled, sites, words


def _validate_sampling(body: dict) -> None:
    """Check the types of OpenAI fields that 1min.ai has no slot for; they are not forwarded."""
    number_in_range(body, "temperature", 0, 2)
    number_in_range(body, "top_p", 0, 1)
    number_in_range(body, "presence_penalty", -2, 2)
    number_in_range(body, "frequency_penalty", -2, 2)
    optional_field(body, "seed", int)
    optional_field(body, "user", str)
    optional_field(body, "logit_bias", dict)
    optional_field(body, "metadata", dict)


def parse_chat_request(body: dict) -> ChatRequest:
    """Validate a chat completion body; raise a 400 naming the first bad field."""
    model = required_field(body, "model", str)
    messages = required_field(body, "messages", list)
    if not messages:
        raise InvalidRequestError("'messages' must contain at least one message.", param="messages")
    for index, message in enumerate(messages):
        _validate_message(message, index)

    stream = bool(optional_field(body, "stream", bool))
    stream_options = optional_field(body, "stream_options", dict) or {}
    if stream_options and not stream:
        raise InvalidRequestError(
            "'stream_options' is only allowed when 'stream' is true.", param="stream_options"
        )
    include_usage = bool(optional_field(stream_options, "include_usage", bool, param="stream_options.include_usage"))

    n = number_in_range(body, "n", 1, 128, integer=True) or 1
    _validate_sampling(body)

    tools = optional_field(body, "tools", list) or []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise InvalidRequestError(
                f"Invalid tool at 'tools.[{index}]': expected an object with a 'type'.", param=f"tools.[{index}]"
            )
    web_search, sites, words = _web_search_settings(body)

    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        web_search=web_search,
        search_sites=sites,
        search_words=words,
        code_interpreter=any(tool.get("type") == "code_interpreter" for tool in tools),
        n=n,
        output=parse_output_spec(body),
        body=body,
    )


def content_text(content: Any) -> str:
    """Return the text of a message's content: a string, or the text parts of a list joined by newlines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = [part.get("text") or part.get("refusal") or "" for part in content if isinstance(part, dict)]
    return "\n".join(text for text in texts if text)


def _tool_call_line(call: dict) -> str:
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    arguments = function.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return f"Assistant called tool {function.get('name', '?')} (call id {call.get('id', '?')}) with arguments: {arguments}"


def _message_lines(message: dict) -> list[str]:
    role = message["role"]
    text = content_text(message.get("content"))
    if role == "tool":
        return [f"Tool result (call id {message.get('tool_call_id')}): {text}"]
    if role == "function":
        return [f"Function {message.get('name', '?')} returned: {text}"]

    lines = [f"{ROLE_LABELS[role]}: {text}"] if text else []
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict):
            lines.append(_tool_call_line(call))
    legacy_call = message.get("function_call")
    if isinstance(legacy_call, dict):
        lines.append(_tool_call_line({"function": legacy_call}))
    return lines


def format_conversation_history(messages: list[dict]) -> str:
    """Flatten the messages into one prompt; a lone user message is sent as its plain text."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return content_text(messages[0].get("content"))
    lines: list[str] = []
    for message in messages:
        lines.extend(_message_lines(message))
    return "\n".join(lines)


def prepare_chat_payload(chat: ChatRequest, prompt: str) -> tuple[str, dict]:
    """Return the upstream path and JSON body for a chat request."""
    if not prompt.strip():
        raise InvalidRequestError(
            "The conversation contains no text. Send at least one message with non-empty content.",
            param="messages",
        )
    search = {"webSearch": chat.web_search, "numOfSite": chat.search_sites, "maxWord": chat.search_words}
    attachments = {name: items for name, items in (("images", chat.images), ("files", chat.files)) if items}
    if chat.code_interpreter and (attachments or chat.conversation_id):
        raise InvalidRequestError(
            "The code_interpreter tool runs on 1min.ai's code generator, which takes no images, files or "
            "assistant. Remove the tool or the attachments.",
            param="tools",
        )
    if chat.code_interpreter:
        prompt_object: dict[str, Any] = {"prompt": prompt}
        if chat.web_search:
            prompt_object.update(search)
        return FEATURES_PATH, {
            "type": FEATURE_CODE,
            "model": chat.model,
            "conversationId": FEATURE_CODE,
            "promptObject": prompt_object,
        }

    prompt_object = {"prompt": prompt}
    if chat.conversation_id:
        prompt_object["conversationId"] = chat.conversation_id
    if chat.web_search:
        prompt_object["settings"] = {"webSearchSettings": search}
    if attachments:
        prompt_object["attachments"] = attachments
    return CHAT_PATH, {"type": FEATURE_CHAT, "model": chat.model, "promptObject": prompt_object}


def map_finish_reason(reason: Any) -> str:
    if not isinstance(reason, str):
        return "stop"
    return FINISH_REASONS.get(reason.strip().lower(), "stop")


def _result_text(record: dict) -> str:
    detail = record.get("aiRecordDetail") if isinstance(record.get("aiRecordDetail"), dict) else {}
    result = detail.get("resultObject", record.get("resultObject"))
    if isinstance(result, list):
        result = result[0] if result else ""
    if isinstance(result, str):
        return result
    if result is None:
        raise UpstreamError("1min.ai returned a chat record without a result.")
    return json.dumps(result, ensure_ascii=False)


def record_usage(record: dict, prompt: str, text: str) -> tuple[int, int]:
    """Return (prompt, completion) tokens from the record, counted locally when upstream gives zeros."""
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    prompt_tokens = metadata.get("inputToken")
    completion_tokens = metadata.get("outputToken")
    if not isinstance(prompt_tokens, int) or prompt_tokens <= 0:
        prompt_tokens = calculate_token(prompt)
    if not isinstance(completion_tokens, int) or (completion_tokens <= 0 and text):
        completion_tokens = calculate_token(text)
    return prompt_tokens, completion_tokens


def check_record(body: Any) -> dict:
    """Return ``aiRecord`` from an upstream answer, raising a 502 for a failed or malformed one."""
    if isinstance(body, dict) and body.get("success") is False:
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        raise UpstreamError(f"1min.ai reported a failure: {error.get('message') or 'no message'}")
    record = body.get("aiRecord") if isinstance(body, dict) else None
    if not isinstance(record, dict):
        raise UpstreamError("1min.ai returned no aiRecord.")
    if record.get("status") == "FAILED":
        detail = record.get("aiRecordDetail") if isinstance(record.get("aiRecordDetail"), dict) else {}
        raise UpstreamError(f"1min.ai could not complete the request: {detail.get('errorMessage') or 'no message'}")
    return record


def transform_response(body: Any, prompt: str) -> ChatResult:
    """Turn a non-streaming upstream answer into a ``ChatResult``."""
    record = check_record(body)
    text = _result_text(record)
    prompt_tokens, completion_tokens = record_usage(record, prompt, text)
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    return ChatResult(text, map_finish_reason(metadata.get("finishReason")), prompt_tokens, completion_tokens)


def usage_object(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_completion_object(choices: list[dict], model: str, prompt_tokens: int, completion_tokens: int) -> dict:
    """Build a ``chat.completion`` object around finished ``choices`` entries."""
    return {
        "id": new_object_id("chatcmpl"),
        "object": "chat.completion",
        "created": unix_time(),
        "model": model,
        "choices": choices,
        "usage": usage_object(prompt_tokens, completion_tokens),
    }


def format_openai_response(result: ChatResult, model: str) -> dict:
    """Build the ``chat.completion`` object for one finished answer."""
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": result.text, "refusal": None},
        "logprobs": None,
        "finish_reason": result.finish_reason,
    }
    return chat_completion_object([choice], model, result.prompt_tokens, result.completion_tokens)
