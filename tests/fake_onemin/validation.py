"""Field checks for request bodies, strict where the real service ignores mistakes silently."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .errors import MISSING_REQUIRED_FIELDS, bad_request, invalid_body, provider_error

# A validator receives the dotted field name and the value, and raises FakeError when invalid.
Validator = Callable[[str, Any], None]


def check_object(value: Any, fields: Mapping[str, Validator], where: str,
                 required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check a JSON object against `fields`, where a null value counts as absent.

    A required field that is null or an empty string counts as missing.
    """
    if not isinstance(value, dict):
        raise invalid_body(f"{where} must be an object")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        names = ", ".join(f"{where}.{name}" for name in unknown)
        raise invalid_body(f"{names}: not a field the real service reads, so it would be "
                           f"ignored silently. Fields read here: {', '.join(sorted(fields))}")
    missing = [name for name in required if value.get(name) in (None, "")]
    if missing:
        names = ", ".join(f"{where}.{name}" for name in missing)
        raise bad_request(MISSING_REQUIRED_FIELDS, f"Missing required fields: {names}")
    for name, field_value in value.items():
        if field_value is not None:
            fields[name](f"{where}.{name}", field_value)
    return value


def text(max_length: int | None = None) -> Validator:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, str):
            raise invalid_body(f"{name} must be a string")
        if max_length is not None and len(value) > max_length:
            raise invalid_body(f"{name} must be at most {max_length} characters, "
                               f"got {len(value)}")
    return check


def boolean() -> Validator:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, bool):
            raise invalid_body(f"{name} must be a boolean")
    return check


def integer(minimum: int, maximum: int) -> Validator:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_body(f"{name} must be an integer")
        if not minimum <= value <= maximum:
            raise invalid_body(f"{name} must be between {minimum} and {maximum}, got {value}")
    return check


def number(minimum: float, maximum: float) -> Validator:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid_body(f"{name} must be a number")
        if not minimum <= value <= maximum:
            raise invalid_body(f"{name} must be between {minimum} and {maximum}, got {value}")
    return check


def one_of(*choices: str, by_provider: bool = False) -> Validator:
    """Accept only `choices`. With `by_provider` the error looks like a provider's rejection."""
    def check(name: str, value: Any) -> None:
        if value not in choices:
            message = f"{name}={value!r} is invalid; expected one of: {', '.join(choices)}"
            raise provider_error(message) if by_provider else invalid_body(message)
    return check


def string_list() -> Validator:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise invalid_body(f"{name} must be a list of strings")
    return check


def anything() -> Validator:
    def check(name: str, value: Any) -> None:
        return None
    return check


def nested(fields: Mapping[str, Validator]) -> Validator:
    def check(name: str, value: Any) -> None:
        check_object(value, fields, name)
    return check

