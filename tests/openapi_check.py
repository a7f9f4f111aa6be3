"""Check JSON bodies against the schemas in OpenAI's published OpenAPI description.

``openai_spec/openapi.json`` is openai/openai-openapi at spec version 2.3.0, under the MIT license
in ``openai_spec/LICENSE``. It declares OpenAPI 3.1, whose schemas are JSON Schema Draft 2020-12,
but some of them still use OpenAPI 3.0 keywords that a Draft 2020-12 validator ignores or misreads:

* ``nullable: true`` marks null as allowed. Ignored, it makes valid nulls (such as ``finish_reason:
  null`` in a stream chunk) fail validation.
* ``exclusiveMinimum: true`` next to ``minimum`` is a 3.0 boolean flag. Draft 2020-12 expects a
  number there, and jsonschema compares ``True`` as 1, which moves the bound.

:func:`load_spec` rewrites both into their Draft 2020-12 form before anything is validated.

Usage in a test::

    from tests.openapi_check import assert_matches_schema

    assert_matches_schema("CreateChatCompletionResponse", response.json())

Pass the decoded JSON from the wire. An SDK object's ``model_dump()`` fills unset optional fields
with None and would hide or invent mismatches.
"""

from __future__ import annotations

import difflib
import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).parent / "openai_spec" / "openapi.json"

# The spec has no $id, so it is registered under this URI and every "#/components/..." reference
# inside it resolves against the whole document.
SPEC_URI = "urn:openai:openapi.json"

# Keywords whose values are instance data, not schemas: a "nullable" key inside them is data.
_DATA_KEYWORDS = frozenset({"example", "examples", "default", "const", "enum"})

# Keywords whose values map arbitrary names to schemas, so a property named "example" is a schema.
_NAME_MAP_KEYWORDS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})

# A schema with any of these constrains its instance through more than "type" and "enum", so null is
# admitted by wrapping it in anyOf instead of editing "type".
_COMPOSITE_KEYWORDS = frozenset({"$ref", "allOf", "anyOf", "oneOf", "not", "const"})

_TYPE_KEYWORDS = frozenset({"type", "enum"}) | _COMPOSITE_KEYWORDS

# Maximum characters kept of each error message, because jsonschema repeats the whole failing
# instance in it.
_MAX_MESSAGE_CHARS = 300


def _is_bare_nullable(member: Any) -> bool:
    """Tell whether an allOf member only marks its parent nullable and constrains nothing."""
    return (
        isinstance(member, dict)
        and member.get("nullable") is True
        and not _TYPE_KEYWORDS.intersection(member)
    )


def _allow_null(schema: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of a ``nullable: true`` schema that also accepts null."""
    schema = {key: value for key, value in schema.items() if key != "nullable"}

    if _COMPOSITE_KEYWORDS.intersection(schema):
        return {"anyOf": [schema, {"type": "null"}]}

    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if "null" not in types:
            schema["type"] = [*types, "null"]
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _convert_exclusive_bounds(schema: dict[str, Any]) -> None:
    """Turn OpenAPI 3.0 boolean exclusiveMinimum/exclusiveMaximum into 2020-12 numbers, in place."""
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        flag = schema.get(exclusive)
        if not isinstance(flag, bool):
            continue
        del schema[exclusive]
        if flag and inclusive in schema:
            schema[exclusive] = schema.pop(inclusive)


def to_draft202012(node: Any, *, names_to_schemas: bool = False) -> Any:
    """Return a copy of an OpenAPI 3.1 document or schema with its 3.0 keywords rewritten.

    ``names_to_schemas`` marks ``node`` as the value of a keyword such as ``properties``.
    """
    if isinstance(node, list):
        return [to_draft202012(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names_to_schemas:
        return {name: to_draft202012(value) for name, value in node.items()}

    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DATA_KEYWORDS:
            converted[key] = value
        else:
            converted[key] = to_draft202012(value, names_to_schemas=key in _NAME_MAP_KEYWORDS)

    # OpenAPI 3.0 could not put "nullable" beside "$ref", so the spec writes
    # allOf: [{$ref: X}, {nullable: true}]. That member makes the whole allOf nullable.
    # The recursion above already dropped the keyword from that member.
    members = node.get("allOf")
    if isinstance(members, list) and any(_is_bare_nullable(member) for member in members):
        converted["nullable"] = True

    _convert_exclusive_bounds(converted)

    nullable = converted.get("nullable")
    if nullable is True:
        return _allow_null(converted)
    if nullable is False:
        del converted["nullable"]
    return converted


@functools.cache
def load_spec() -> dict[str, Any]:
    """Load the OpenAI spec with its OpenAPI 3.0 keywords rewritten for Draft 2020-12."""
    with SPEC_PATH.open(encoding="utf-8") as spec_file:
        raw = json.load(spec_file)
    return to_draft202012(raw)


@functools.cache
def spec_registry() -> Registry:
    """Return a registry that contains the converted spec under ``SPEC_URI``."""
    resource = Resource(contents=load_spec(), specification=DRAFT202012)
    return Registry().with_resource(SPEC_URI, resource)


@functools.cache
def validator_for(schema_name: str) -> Draft202012Validator:
    """Return a cached validator for ``components.schemas[schema_name]``.

    Raises ValueError if the spec has no schema of that name.
    """
    schemas = load_spec()["components"]["schemas"]
    if schema_name not in schemas:
        suggestions = difflib.get_close_matches(schema_name, schemas, n=5)
        raise ValueError(
            f"schema {schema_name!r} not found in components.schemas of {SPEC_PATH.name}. "
            f"Close names: {', '.join(suggestions) or 'none'}"
        )
    reference = {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}
    return Draft202012Validator(reference, registry=spec_registry())


def _shorten(text: str) -> str:
    if len(text) <= _MAX_MESSAGE_CHARS:
        return text
    return text[: _MAX_MESSAGE_CHARS - 3] + "..."


def _describe(error: ValidationError) -> str:
    line = f"{error.json_path}: {_shorten(error.message)}"
    if error.context:
        # anyOf/oneOf report one error for the whole group, so name the branch that came closest.
        closest = best_match(error.context)
        line += f" (closest branch: {closest.json_path}: {_shorten(closest.message)})"
    return line


def assert_matches_schema(schema_name: str, body: Any) -> None:
    """Assert that a decoded JSON body is valid under ``components.schemas[schema_name]``.

    The AssertionError lists every validation error with the JSON path of the failing value.
    Raises ValueError if the schema name is unknown.
    """
    errors = sorted(validator_for(schema_name).iter_errors(body), key=lambda error: error.json_path)
    if not errors:
        return

    lines = [f"body does not match OpenAI schema {schema_name} ({len(errors)} errors):"]
    lines.extend(f"  {_describe(error)}" for error in errors)
    raise AssertionError("\n".join(lines))
