"""Structured outputs (``response_format``): the prompt instructions, JSON extraction and checks.

1min.ai has no JSON mode, so the relay asks for JSON in the prompt, takes the JSON out of
the answer (models like to wrap it in a Markdown fence or a sentence), and checks it
against the requested JSON Schema with jsonschema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from jsonschema import exceptions as schema_errors
from jsonschema import validators
from jsonschema.exceptions import best_match

from routes.functions.shared_func import optional_field, required_field
from utils.errors import InvalidRequestError

FENCED_BLOCK = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)```", re.DOTALL)
SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Positions tried with raw_decode before giving up on an answer, so that a long
# answer full of braces cannot make the search quadratic.
MAX_JSON_CANDIDATES = 200
MAX_ERROR_CHARS = 500


class InvalidModelOutput(ValueError):
    """The model's answer does not follow the requested output format.

    The message is written for the model: the relay shows it in the retry prompt.
    """


@dataclass(frozen=True)
class ResponseFormat:
    """A ``json_object`` or ``json_schema`` response format; plain text needs none."""

    type: str
    name: str | None = None
    description: str | None = None
    schema: dict | None = None
    strict: bool = False


def check_json_schema(schema: Any, param: str) -> dict:
    """Return ``schema`` when it is a valid JSON Schema object, else raise a 400 naming ``param``."""
    if not isinstance(schema, dict):
        raise InvalidRequestError(f"Invalid type for '{param}': expected a JSON Schema object.", param=param)
    validator_class = validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except schema_errors.SchemaError as error:
        raise InvalidRequestError(
            f"Invalid JSON Schema in '{param}': {error.message}", param=param, code="invalid_value"
        ) from None
    return schema


def parse_response_format(body: dict) -> ResponseFormat | None:
    """Read ``response_format``; return None for plain text."""
    value = optional_field(body, "response_format", dict)
    if value is None:
        return None
    kind = required_field(value, "type", str, param="response_format.type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind != "json_schema":
        raise InvalidRequestError(
            f"Invalid value for 'response_format.type': {kind!r}. Expected text, json_object or json_schema.",
            param="response_format.type",
            code="invalid_value",
        )
    spec = required_field(value, "json_schema", dict, param="response_format.json_schema")
    return parse_json_schema_format(spec, "response_format.json_schema")


def parse_json_schema_format(spec: dict, param: str) -> ResponseFormat:
    """Read the ``name``, ``description``, ``schema`` and ``strict`` of a json_schema format."""
    name = required_field(spec, "name", str, param=f"{param}.name")
    if not SCHEMA_NAME.match(name):
        raise InvalidRequestError(
            f"Invalid value for '{param}.name': {name!r}. Use 1 to 64 letters, digits, underscores or dashes.",
            param=f"{param}.name",
            code="invalid_value",
        )
    schema = spec.get("schema")
    if schema is not None:
        check_json_schema(schema, f"{param}.schema")
    return ResponseFormat(
        "json_schema",
        name=name,
        description=optional_field(spec, "description", str, param=f"{param}.description"),
        schema=schema,
        strict=bool(optional_field(spec, "strict", bool, param=f"{param}.strict")),
    )


def format_instructions(response_format: ResponseFormat, tools_offered: bool = False) -> str:
    """Return the prompt text that asks the model for JSON in the requested shape."""
    reply = "When you do not call a function, reply" if tools_offered else "Reply"
    lines = [f"{reply} with a single JSON value only: no Markdown code fence, no text before or after it."]
    if response_format.schema is None:
        lines.append("The value must be a JSON object.")
    else:
        lines.append(
            f'The JSON must be valid under this JSON Schema (named "{response_format.name}"), '
            "with every required property present and no property the schema does not allow:"
        )
        lines.append(json.dumps(response_format.schema, ensure_ascii=False))
    if response_format.description:
        lines.append(f"What the JSON is for: {response_format.description}")
    return "\n".join(lines)


def _fenced_candidates(text: str) -> Iterator[tuple[int, int, Any]]:
    for match in FENCED_BLOCK.finditer(text):
        inner = match.group(1)
        try:
            value = json.loads(inner)
        except ValueError:
            continue
        start = match.start(1) + len(inner) - len(inner.lstrip())
        yield start, match.start(1) + len(inner.rstrip()), value


def _embedded_candidates(text: str) -> Iterator[tuple[int, int, Any]]:
    decoder = json.JSONDecoder()
    tried = 0
    for match in re.finditer(r"[{\[]", text):
        tried += 1
        if tried > MAX_JSON_CANDIDATES:
            return
        try:
            value, end = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        yield match.start(), end, value


def find_json_values(text: str) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(start, end, value)`` for the JSON values in an answer, the likeliest first.

    The order is the whole answer, then Markdown code fences, then any object or array
    embedded in prose.
    """
    stripped = text.strip()
    try:
        value = json.loads(stripped)
    except ValueError:
        pass
    else:
        start = text.find(stripped[:1])
        yield start, start + len(stripped), value
    yield from _fenced_candidates(text)
    yield from _embedded_candidates(text)


def extract_json(text: str, accept: Callable[[Any], bool]) -> tuple[str, Any] | None:
    """Return the text and value of the first JSON value in ``text`` that ``accept`` takes."""
    for start, end, value in find_json_values(text):
        if accept(value):
            return text[start:end], value
    return None


def _clip(message: str) -> str:
    return message if len(message) <= MAX_ERROR_CHARS else message[:MAX_ERROR_CHARS] + "…"


def schema_error(value: Any, schema: dict) -> str | None:
    """Return a one-line description of the first way ``value`` breaks ``schema``, or None."""
    validator = validators.validator_for(schema)(schema)
    error = best_match(validator.iter_errors(value))
    if error is None:
        return None
    location = error.json_path if error.path else "the top level"
    return _clip(f"at {location}: {error.message}")


def check_json_answer(text: str, response_format: ResponseFormat) -> str:
    """Return the JSON text from an answer, or raise `InvalidModelOutput` saying what is wrong."""
    wants_object = response_format.schema is None
    found = extract_json(text, lambda value: isinstance(value, dict) or not wants_object)
    if found is None:
        expected = "JSON object" if wants_object else "JSON value"
        raise InvalidModelOutput(f"The reply contains no valid {expected}.")
    json_text, value = found
    if response_format.schema is not None:
        problem = schema_error(value, response_format.schema)
        if problem is not None:
            raise InvalidModelOutput(f"The JSON does not match the schema {problem}.")
    return json_text


def best_json_text(text: str) -> str:
    """Return the first JSON object or array found in ``text``, or ``text`` itself when there is none."""
    found = extract_json(text, lambda value: isinstance(value, (dict, list)))
    return found[0] if found else text
