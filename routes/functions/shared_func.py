"""Helpers every blueprint uses: the relay's state, authentication, request bodies and field checks."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app, g, request

from utils.catalog import ModelCatalog
from utils.common import OneMinClient
from utils.config import Settings
from utils.errors import AuthenticationError, InvalidRequestError
from utils.memcached import Storage, hash_secret
from utils.metrics import RelayMetrics
from utils.readiness import ReadinessProbe


@dataclass
class RelayState:
    """Shared objects that ``create_app`` builds once for all requests."""

    settings: Settings
    storage: Storage
    client: OneMinClient
    catalog: ModelCatalog
    metrics: RelayMetrics
    readiness: ReadinessProbe


def relay_state() -> RelayState:
    return current_app.extensions["relay"]


def validate_auth() -> str:
    """Return the caller's 1min.ai key from ``Authorization: Bearer``, or raise a 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if not header:
        raise AuthenticationError(
            "Missing API key. Send your 1min.ai API key in the header 'Authorization: Bearer <key>'.",
            code=None,
        )
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError(
            "Malformed Authorization header. Use 'Authorization: Bearer <your 1min.ai API key>'."
        )
    g.api_key = token
    return token


def key_id(api_key: str) -> str:
    """Return the id under which per-key data is stored; the key itself is never stored."""
    return hash_secret(api_key)


# An escape of half a UTF-16 surrogate pair; json.loads joins whole pairs into one character.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json_body() -> dict:
    """Decode the request body as a JSON object, or raise a 400 that says what is wrong.

    The Content-Type is not enforced, because curl users often omit it. The body must be
    UTF-8 (a leading byte order mark is allowed), as JSON between systems is.
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise InvalidRequestError(
            "The request body is empty. Send a JSON object with Content-Type: application/json."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidRequestError(
            f"The request body is not valid UTF-8 (byte {error.start}). Send JSON encoded as UTF-8."
        ) from None
    try:
        body = json.loads(text)
    except ValueError as error:
        hint = ""
        if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            hint = f" This endpoint takes JSON with Content-Type: application/json, not {request.mimetype}."
        raise InvalidRequestError(f"The request body is not valid JSON ({error}).{hint} Send a JSON object.") from None
    except RecursionError:
        raise InvalidRequestError("The request body is nested too deeply to parse. Send a flatter JSON object.") from None
    if not isinstance(body, dict):
        raise InvalidRequestError(
            f"The request body must be a JSON object, got a JSON {type(body).__name__}."
        )
    if SURROGATE_ESCAPE.search(text) and _contains_surrogate(body):
        raise InvalidRequestError(
            "The request body contains a \\u escape of an unpaired UTF-16 surrogate, which is not a character. "
            "Escape characters outside the Basic Multilingual Plane as a surrogate pair."
        )
    return body


def _contains_surrogate(value: Any) -> bool:
    """Search strings and keys without recursion, since the JSON may be nested deeply."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    list: "an array",
    dict: "an object",
}


def _describe(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)


def _matches(value: Any, expected: type | tuple[type, ...]) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def optional_field(body: dict, name: str, expected: type | tuple[type, ...], param: str | None = None) -> Any:
    """Return ``body[name]`` (None when absent or null), checking its JSON type."""
    value = body.get(name)
    if value is None:
        return None
    if not _matches(value, expected):
        raise InvalidRequestError(
            f"Invalid type for '{param or name}': expected {_describe(expected)}, "
            f"but got a JSON {_json_type(value)}.",
            param=param or name,
            code="invalid_type",
        )
    return value


def required_field(body: dict, name: str, expected: type | tuple[type, ...], param: str | None = None) -> Any:
    value = optional_field(body, name, expected, param)
    if value is None:
        raise InvalidRequestError(
            f"Missing required parameter: '{param or name}'.",
            param=param or name,
            code="missing_required_parameter",
        )
    return value


def number_in_range(body: dict, name: str, minimum: float, maximum: float, integer: bool = False) -> Any:
    """Return an optional number field, checking its type and range."""
    value = optional_field(body, name, int if integer else float)
    if value is not None and not minimum <= value <= maximum:
        raise InvalidRequestError(
            f"Invalid value for '{name}': {value} is outside the range {minimum} to {maximum}.",
            param=name,
            code="invalid_value",
        )
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _IdGenerator:
    """A keyed BLAKE2b of a counter: unique ids, unpredictable without the per-process key.

    Unlike uuid4 it needs no os.urandom call per id. That call releases the GIL, and each
    release costs a thread switch when many requests run at once.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._key = os.urandom(32)
        self._counter = itertools.count()

    def __call__(self) -> str:
        counter = next(self._counter).to_bytes(8, "little")
        return hashlib.blake2b(counter, key=self._key, digest_size=16).hexdigest()


_new_hex_id = _IdGenerator()
# A forked worker would otherwise repeat its parent's ids.
os.register_at_fork(after_in_child=_new_hex_id.reset)


def random_hex_id() -> str:
    """Return 32 hex digits that no other call returns and no client can predict."""
    return _new_hex_id()


def new_object_id(prefix: str) -> str:
    """Return an OpenAI-style object id such as ``chatcmpl-…``."""
    return f"{prefix}-{random_hex_id()}"


def unix_time() -> int:
    return int(time.time())
