"""Output controls of a request: stop sequences, a token limit, tools and a JSON format.

1min.ai supports none of these. Stop sequences and the token limit are applied here by a
filter over the text deltas of an answer. The filter cuts the text and closes the upstream
request as soon as the cut is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from routes.functions.shared_func import number_in_range
from routes.functions.structured_func import ResponseFormat, parse_response_format
from routes.functions.tool_func import ToolSpec, parse_tool_spec
from utils.common import token_encoding
from utils.errors import InvalidRequestError

MAX_STOP_SEQUENCES = 4
MAX_TOKENS_LIMIT = 10_000_000
# Tokens at the end of a counted text that may still merge with text that follows.
UNSETTLED_TOKENS = 4
MAX_UTF8_BYTES_PER_CHAR = 4


@dataclass(frozen=True)
class OutputSpec:
    """The output controls of one request; the defaults mean a plain, uncut text answer."""

    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    tools: ToolSpec | None = None
    response_format: ResponseFormat | None = None

    @property
    def is_plain(self) -> bool:
        return self.tools is None and self.response_format is None


def parse_stop(body: dict, name: str = "stop") -> tuple[str, ...]:
    """Read a stop field: null, one string, or a list of up to four non-empty strings."""
    value = body.get(name)
    if value is None:
        return ()
    sequences = [value] if isinstance(value, str) else value
    if not isinstance(sequences, list) or not all(isinstance(item, str) for item in sequences):
        raise InvalidRequestError(
            f"Invalid type for '{name}': expected a string or an array of strings.", param=name, code="invalid_type"
        )
    if len(sequences) > MAX_STOP_SEQUENCES:
        raise InvalidRequestError(
            f"Invalid value for '{name}': at most {MAX_STOP_SEQUENCES} stop sequences are allowed, got {len(sequences)}.",
            param=name,
            code="invalid_value",
        )
    if any(not item for item in sequences):
        raise InvalidRequestError(
            f"Invalid value for '{name}': stop sequences must not be empty strings.", param=name, code="invalid_value"
        )
    return tuple(dict.fromkeys(sequences))


def parse_max_tokens(body: dict, *names: str) -> int | None:
    """Return the first of the named token-limit fields that is set."""
    for name in names:
        value = number_in_range(body, name, 1, MAX_TOKENS_LIMIT, integer=True)
        if value is not None:
            return value
    return None


def parse_output_spec(body: dict) -> OutputSpec:
    """Read the output controls of a chat completion body."""
    return OutputSpec(
        stop=parse_stop(body),
        max_tokens=parse_max_tokens(body, "max_completion_tokens", "max_tokens"),
        tools=parse_tool_spec(body),
        response_format=parse_response_format(body),
    )


class TokenBudget:
    """Find where a growing text passes a token limit, counting with cl100k_base.

    For models whose tokenizer is not cl100k_base (most non-OpenAI models, and newer OpenAI
    models on o200k_base) the count is an approximation of the model's own.
    The text is counted incrementally: tokens before the last few are treated as
    settled, so each call encodes only the new tail and counting stays linear.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._settled_tokens: list[int] = []
        self._settled_chars = 0

    def cut_index(self, text: str) -> int | None:
        """Return the length of the longest prefix within the limit, or None if all of ``text`` fits."""
        if len(text) * MAX_UTF8_BYTES_PER_CHAR <= self._limit:
            return None
        encoding = token_encoding()
        tokens = self._settled_tokens + encoding.encode(text[self._settled_chars:], disallowed_special=())
        if len(tokens) > self._limit:
            kept = encoding.decode_bytes(tokens[: self._limit])
            return len(kept.decode("utf-8", errors="ignore"))
        self._settle(tokens)
        return None

    def _settle(self, tokens: list[int]) -> None:
        encoding = token_encoding()
        settled = len(self._settled_tokens)
        for end in range(len(tokens) - UNSETTLED_TOKENS, settled, -1):
            try:
                chars = encoding.decode_bytes(tokens[settled:end]).decode("utf-8")
            except UnicodeDecodeError:
                continue
            self._settled_tokens = tokens[:end]
            self._settled_chars += len(chars)
            return


class LimitedText:
    """Iterate text deltas with stop sequences and a token limit applied.

    Only the characters that the longest stop sequence could still need are held back.
    When a cut is found, ``on_cut`` runs (it closes the upstream request), iteration ends,
    and ``finish_reason`` is ``"stop"`` or ``"length"``. It stays None for an uncut answer.
    Once iteration ends, ``text`` is the whole answer as cut.
    """

    def __init__(
        self, deltas: Iterable[str], stop: tuple[str, ...], max_tokens: int | None, on_cut: Callable[[], None]
    ) -> None:
        self._deltas = deltas
        self._stop = stop
        self._budget = TokenBudget(max_tokens) if max_tokens is not None else None
        self._on_cut = on_cut
        self._held_chars = max((len(sequence) for sequence in stop), default=1) - 1
        self.finish_reason: str | None = None
        self.text = ""

    def _first_stop(self, text: str, search_from: int) -> int | None:
        positions = [text.find(sequence, search_from) for sequence in self._stop]
        return min((position for position in positions if position >= 0), default=None)

    def _cut(self, text: str, search_from: int) -> tuple[int, str] | None:
        stop_at = self._first_stop(text, search_from) if self._stop else None
        length_at = self._budget.cut_index(text) if self._budget else None
        if length_at is not None and (stop_at is None or length_at < stop_at):
            return length_at, "length"
        if stop_at is not None:
            return stop_at, "stop"
        return None

    def __iter__(self) -> Iterator[str]:
        text = ""
        sent = 0
        for delta in self._deltas:
            search_from = max(0, len(text) - self._held_chars)
            text += delta
            cut = self._cut(text, search_from)
            if cut is not None:
                end, self.finish_reason = cut
                self.text = text[:end]
                self._on_cut()
                if end > sent:
                    yield text[sent:end]
                return
            safe = len(text) - self._held_chars
            if safe > sent:
                yield text[sent:safe]
                sent = safe
        self.text = text
        if len(text) > sent:
            yield text[sent:]

