"""Tests for the OpenAI schema checker that the end-to-end tests rely on."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.openapi_check import (
    SPEC_PATH,
    SPEC_URI,
    assert_matches_schema,
    load_spec,
    spec_registry,
    to_draft202012,
    validator_for,
)

CHAT_COMPLETION = {
    "id": "chatcmpl-123",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
}

STREAM_CHUNK = {
    "id": "chatcmpl-123",
    "object": "chat.completion.chunk",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "delta": {"content": "Hel"}, "logprobs": None, "finish_reason": None}],
}

MODEL_LIST = {
    "object": "list",
    "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 1_700_000_000, "owned_by": "openai"}
    ],
}

ERROR_BODY = {
    "error": {
        "message": "Invalid value for 'model'.",
        "type": "invalid_request_error",
        "param": "model",
        "code": None,
    }
}


def _failure_message(schema_name: str, body: Any) -> str:
    with pytest.raises(AssertionError) as excinfo:
        assert_matches_schema(schema_name, body)
    return str(excinfo.value)


def test_chat_completion_valid_passes() -> None:
    assert_matches_schema("CreateChatCompletionResponse", CHAT_COMPLETION)


def test_chat_completion_bogus_finish_reason_fails() -> None:
    body = copy.deepcopy(CHAT_COMPLETION)
    body["choices"][0]["finish_reason"] = "bogus"

    message = _failure_message("CreateChatCompletionResponse", body)

    assert "$.choices[0].finish_reason" in message
    assert "'bogus' is not one of" in message


def test_chat_completion_null_finish_reason_fails() -> None:
    body = copy.deepcopy(CHAT_COMPLETION)
    body["choices"][0]["finish_reason"] = None

    message = _failure_message("CreateChatCompletionResponse", body)

    assert "$.choices[0].finish_reason" in message


def test_failure_lists_every_error() -> None:
    body = copy.deepcopy(CHAT_COMPLETION)
    del body["created"]
    body["object"] = "chat.completion.chunk"
    body["usage"]["total_tokens"] = "11"

    message = _failure_message("CreateChatCompletionResponse", body)

    assert "(3 errors)" in message
    assert "$: 'created' is a required property" in message
    assert "$.object: 'chat.completion.chunk' is not one of" in message
    assert "$.usage.total_tokens: '11' is not of type 'integer'" in message


def test_stream_chunk_null_finish_reason_passes() -> None:
    assert_matches_schema("CreateChatCompletionStreamResponse", STREAM_CHUNK)


def test_stream_chunk_null_usage_passes() -> None:
    body = copy.deepcopy(STREAM_CHUNK)
    body["usage"] = None

    assert_matches_schema("CreateChatCompletionStreamResponse", body)


def test_stream_chunk_final_usage_passes() -> None:
    body = copy.deepcopy(STREAM_CHUNK)
    body["choices"] = []
    body["usage"] = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}

    assert_matches_schema("CreateChatCompletionStreamResponse", body)


def test_stream_chunk_string_usage_fails() -> None:
    body = copy.deepcopy(STREAM_CHUNK)
    body["usage"] = "11 tokens"

    message = _failure_message("CreateChatCompletionStreamResponse", body)

    assert "$.usage" in message
    assert "closest branch" in message


def test_stream_chunk_bogus_finish_reason_fails() -> None:
    body = copy.deepcopy(STREAM_CHUNK)
    body["choices"][0]["finish_reason"] = "bogus"

    message = _failure_message("CreateChatCompletionStreamResponse", body)

    assert "$.choices[0].finish_reason" in message


def test_error_response_passes() -> None:
    assert_matches_schema("ErrorResponse", ERROR_BODY)
    assert_matches_schema("Error", ERROR_BODY["error"])


def test_error_missing_param_fails() -> None:
    body = copy.deepcopy(ERROR_BODY)
    del body["error"]["param"]

    message = _failure_message("ErrorResponse", body)

    assert "$.error: 'param' is a required property" in message


def test_error_response_bare_string_fails() -> None:
    message = _failure_message("ErrorResponse", {"error": "Unknown error"})

    assert "$.error: 'Unknown error' is not of type 'object'" in message


def test_model_list_valid_passes() -> None:
    assert_matches_schema("ListModelsResponse", MODEL_LIST)


def test_model_list_missing_object_fails() -> None:
    body = copy.deepcopy(MODEL_LIST)
    del body["object"]

    message = _failure_message("ListModelsResponse", body)

    assert "$: 'object' is a required property" in message


def test_model_list_model_without_owner_fails() -> None:
    body = copy.deepcopy(MODEL_LIST)
    del body["data"][0]["owned_by"]

    message = _failure_message("ListModelsResponse", body)

    assert "$.data[0]: 'owned_by' is a required property" in message


def test_body_of_wrong_type_fails() -> None:
    message = _failure_message("ListModelsResponse", [])

    assert "is not of type 'object'" in message


def test_unknown_schema_name_raises() -> None:
    with pytest.raises(ValueError, match="Close names: CreateChatCompletionResponse"):
        assert_matches_schema("CreateChatCompletionResponze", {})


def test_validator_is_cached() -> None:
    assert validator_for("ListModelsResponse") is validator_for("ListModelsResponse")


def test_exclusive_minimum_flag_converted() -> None:
    assert_matches_schema("FineTuneSupervisedHyperparameters", {"learning_rate_multiplier": 0.5})

    message = _failure_message("FineTuneSupervisedHyperparameters", {"learning_rate_multiplier": 0})

    assert "$.learning_rate_multiplier" in message


_COMPOSITE_KEYWORDS = {"$ref", "allOf", "anyOf", "oneOf", "not", "const"}


def _is_bare_nullable(node: Any) -> bool:
    return (
        isinstance(node, dict)
        and node.get("nullable") is True
        and not ({"type", "enum"} | _COMPOSITE_KEYWORDS) & node.keys()
    )


def _nullable_pointers(node: Any, pointer: str = "") -> Iterator[str]:
    """Yield where each schema that the raw spec marks nullable sits in the converted spec.

    A bare ``{"nullable": true}`` allOf member stands for its owner, which becomes nullable. A
    nullable schema with $ref or a combinator moves into ``anyOf/0`` of a wrapper, and so do the
    schemas nested in it.
    """
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _nullable_pointers(item, f"{pointer}/{index}")
        return
    if not isinstance(node, dict) or _is_bare_nullable(node):
        return

    members = node.get("allOf")
    owns_bare_member = isinstance(members, list) and any(map(_is_bare_nullable, members))
    nullable = node.get("nullable") is True or owns_bare_member
    if nullable:
        yield pointer

    child_pointer = pointer
    if nullable and _COMPOSITE_KEYWORDS & node.keys():
        child_pointer = f"{pointer}/anyOf/0"
    for key, value in node.items():
        if key in {"example", "examples", "default", "enum", "const"}:
            continue
        escaped = key.replace("~", "~0").replace("/", "~1")
        yield from _nullable_pointers(value, f"{child_pointer}/{escaped}")


def test_every_nullable_field_accepts_null() -> None:
    raw = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    pointers = sorted(set(_nullable_pointers(raw)))

    rejected = []
    for pointer in pointers:
        reference = {"$ref": f"{SPEC_URI}#{pointer}"}
        validator = Draft202012Validator(reference, registry=spec_registry())
        if not validator.is_valid(None):
            rejected.append(pointer)

    assert len(pointers) > 100
    assert rejected == []


def test_converted_spec_has_no_nullable_keyword() -> None:
    def count_nullable(node: Any) -> int:
        if isinstance(node, list):
            return sum(count_nullable(item) for item in node)
        if isinstance(node, dict):
            return ("nullable" in node) + sum(count_nullable(value) for value in node.values())
        return 0

    assert count_nullable(load_spec()) == 0


# Shared definitions stay at the root, outside the anyOf wrapper that a conversion may add.
STRING_DEFS = {"$defs": {"Text": {"type": "string"}}}

CONVERSION_CASES = [
    pytest.param({"type": "string", "nullable": True}, [None, "a"], [1], id="type"),
    pytest.param(
        {"type": ["string", "integer"], "nullable": True}, [None, 1], [[]], id="type-list"
    ),
    pytest.param(
        {"type": "string", "enum": ["a"], "nullable": True}, [None, "a"], ["b"], id="enum"
    ),
    pytest.param(
        {"$ref": "#/$defs/Text", "nullable": True}, [None, "a"], [1], id="ref"
    ),
    pytest.param(
        {"allOf": [{"$ref": "#/$defs/Text"}, {"nullable": True}]},
        [None, "a"],
        [1],
        id="allof-bare-member",
    ),
    pytest.param(
        {"anyOf": [{"type": "string"}, {"type": "integer"}], "nullable": True},
        [None, "a", 1],
        [[]],
        id="anyof",
    ),
    pytest.param(
        {"oneOf": [{"type": "string"}, {"type": "integer"}], "nullable": True},
        [None, "a"],
        [1.5],
        id="oneof",
    ),
    pytest.param({"type": "object", "nullable": False}, [{}], [None], id="nullable-false"),
    pytest.param(
        {"type": "object", "properties": {"example": {"type": "string", "nullable": True}}},
        [{"example": None}],
        [{"example": 1}],
        id="property-named-example",
    ),
    pytest.param(
        {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        [0.5, 2],
        [0],
        id="exclusive-min",
    ),
    pytest.param(
        {"type": "number", "maximum": 1, "exclusiveMaximum": False}, [1], [1.5], id="inclusive-max"
    ),
]


@pytest.mark.parametrize(("schema", "valid", "invalid"), CONVERSION_CASES)
def test_conversion_cases(schema: dict[str, Any], valid: list[Any], invalid: list[Any]) -> None:
    validator = Draft202012Validator({**STRING_DEFS, **to_draft202012(schema)})

    for instance in valid:
        assert validator.is_valid(instance), f"{instance!r} should be valid"
    for instance in invalid:
        assert not validator.is_valid(instance), f"{instance!r} should be invalid"


def test_conversion_leaves_examples_untouched() -> None:
    schema = {"type": "object", "example": {"nullable": True}, "default": {"nullable": True}}

    converted = to_draft202012(schema)

    assert converted["example"] == {"nullable": True}
    assert converted["default"] == {"nullable": True}


def test_conversion_does_not_mutate_input() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "nullable": True}}}
    original = copy.deepcopy(schema)

    to_draft202012(schema)

    assert schema == original
