"""Behaviour fields: the switches a test flips to make the fake misbehave like 1min.ai does."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

FAIL_STATUSES = frozenset({400, 401, 403, 429, 500, 502, 522})
ERROR_EVENT_SHAPES = frozenset({"string", "object", "message"})
RESULT_LOCATIONS = frozenset({"detail", "top"})
RECORD_STATUSES = frozenset({"SUCCESS", "FAILED"})
TEMPORARY_URL_MODES = frozenset({"valid", "missing", "expired"})


@dataclass(frozen=True)
class Behaviour:
    """All switchable behaviour of the fake. The defaults describe a healthy service."""

    # Streaming shape.
    chunk_size: int = 4
    chunk_delay: float = 0.0
    empty_first_delta: bool = True
    split_utf8: bool = False
    duplicate_full_text: bool = False

    # Stream failures. Chunk counts below count content events that carry text,
    # not the empty first delta.
    error_event: str | None = None
    error_after_chunks: int = 0
    error_event_shape: str = "string"
    drop_after_chunks: int | None = None
    stall_after_chunks: int | None = None
    stall_mid_stream_seconds: float = 0.0

    # Record shape.
    zero_tokens: bool = False
    result_location: str = "detail"
    finish_reason: str | None = "stop"
    record_status: str = "SUCCESS"
    reply_chars: int | None = None
    tts_raw_bytes: bool = False
    tts_temporary_url: str = "valid"
    stt_json_text: bool = False

    # HTTP failures of API calls.
    fail_status: int | None = None
    fail_count: int | None = None
    fail_catalog: bool = False
    retry_after: str | None = "7"
    error_code: str = "UNKNOWN_ERROR"
    error_message: str = "The service is a bit busy right now. Please try again later."
    error_details: Any = None
    stall_seconds: float = 0.0
    rate_limit_per_minute: int | None = None
    block_plain_clients: bool = False

    def updated(self, **fields: Any) -> Behaviour:
        """Return a copy with `fields` replaced.

        An unknown name raises TypeError and an invalid value raises ValueError.
        """
        known = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise TypeError(f"unknown behaviour field(s): {', '.join(unknown)}")
        candidate = dataclasses.replace(self, **fields)
        candidate.validate()
        return candidate

    def validate(self) -> None:
        """Raise ValueError when a field contains a value the fake cannot act on."""
        _check_choice("fail_status", self.fail_status, FAIL_STATUSES, allow_none=True)
        _check_choice("error_event_shape", self.error_event_shape, ERROR_EVENT_SHAPES)
        _check_choice("result_location", self.result_location, RESULT_LOCATIONS)
        _check_choice("record_status", self.record_status, RECORD_STATUSES)
        _check_choice("tts_temporary_url", self.tts_temporary_url, TEMPORARY_URL_MODES)
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {self.chunk_size}")
        for name in ("chunk_delay", "stall_seconds", "stall_mid_stream_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("error_after_chunks", "drop_after_chunks", "stall_after_chunks",
                     "fail_count", "reply_chars", "rate_limit_per_minute"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")


def _check_choice(name: str, value: Any, allowed: frozenset, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value not in allowed:
        choices = ", ".join(sorted(map(str, allowed)))
        raise ValueError(f"{name}={value!r} is invalid; expected one of: {choices}")
