"""Streaming chat: 1min.ai's named SSE events in, OpenAI ``chat.completion.chunk`` events out.

`UpstreamChatStream` reads the upstream until the first real content before the
relay commits to a 200 stream, so an early failure still becomes an ordinary HTTP
error. After that, failures travel inside the stream as a final ``error`` event.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from typing import Any, Iterator

import requests
from flask import Response
from urllib3.exceptions import HTTPError as Urllib3Error

from routes.functions.txt_func import check_record, map_finish_reason, record_usage, usage_object
from utils.errors import ModelNotFoundError, OpenAIError, UpstreamError, UpstreamTimeoutError
from utils.metrics import CONNECTION, ERROR_EVENT, TIMEOUT, RelayMetrics
from utils.sse import ServerSentEvent, SSEParser

READ_SIZE = 65536
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
UNSUPPORTED_MODEL_PATTERN = re.compile(r"model\b.*\bnot supported|unsupported model", re.IGNORECASE)


def _event_json(event: ServerSentEvent) -> Any:
    try:
        return json.loads(event.data)
    except ValueError:
        return event.data


def error_event_message(payload: Any) -> str:
    """Read the text of an upstream ``error`` event in any of its three shapes."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if error:
            return str(error)
        if payload.get("message"):
            return str(payload["message"])
    return str(payload) if payload else "unknown error"


def error_from_event(message: str, model: str) -> OpenAIError:
    if UNSUPPORTED_MODEL_PATTERN.search(message):
        return ModelNotFoundError(model, message=f"1min.ai rejected the model '{model}' for this request: {message}")
    return UpstreamError(f"1min.ai reported an error: {message}")


class UpstreamChatStream:
    """Iterate the text deltas of one upstream chat stream.

    After the iteration ends, ``finish_reason`` and ``record`` hold what the ``result``
    event carried. A failure after the first delta raises `OpenAIError` from the iterator.
    Failures and the stream's duration are recorded in ``metrics`` when it is given.
    """

    def __init__(self, response: requests.Response, model: str, metrics: RelayMetrics | None = None) -> None:
        self._response = response
        self._model = model
        self._metrics = metrics
        # The call was sent ``elapsed`` before its headers arrived, which was just now.
        self._started = time.perf_counter() - response.elapsed.total_seconds()
        self._closed = False
        self._parser = SSEParser()
        self._events: deque[ServerSentEvent] = deque()
        self._ready: deque[str] = deque()
        self._done = False
        self.text_parts: list[str] = []
        self.record: dict = {}
        self.finish_reason = "stop"

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def _read_events(self) -> bool:
        """Read one network chunk into the event queue; return False at end of stream."""
        try:
            chunk = self._response.raw.read1(READ_SIZE)
        except (Urllib3Error, requests.RequestException, OSError) as error:
            if "timed out" in str(error).lower():
                self._count_error(TIMEOUT)
                raise UpstreamTimeoutError("1min.ai stopped sending the answer (read timed out).") from None
            self._count_error(CONNECTION)
            raise UpstreamError(f"The connection to 1min.ai was lost ({type(error).__name__}).") from None
        if not chunk:
            return False
        events = self._parser.feed(chunk)
        self._events.extend(self._without_repeated_full_text(events))
        return True

    def _without_repeated_full_text(self, events: list[ServerSentEvent]) -> list[ServerSentEvent]:
        """Drop a content event that repeats the whole answer in the same read as ``result``/``done``.

        Some models resent the accumulated text as a last delta right before ``result``.
        Ordinary repeated deltas arrive in earlier reads and are kept.
        """
        if not any(event.event in ("result", "done") for event in events):
            return events
        so_far = self.text
        kept = []
        for event in events:
            if event.event == "content" and so_far:
                payload = _event_json(event)
                if isinstance(payload, dict) and payload.get("content") == so_far:
                    continue
            kept.append(event)
        return kept

    def _next_delta(self) -> str | None:
        """Return the next non-empty delta, or None once the stream completed."""
        while not self._ready:
            if self._done:
                return None
            if not self._events and not self._read_events():
                self._done = True
                self._count_error(CONNECTION)
                raise UpstreamError("The connection to 1min.ai closed before the answer was complete.")
            while self._events and not self._ready:
                self._handle(self._events.popleft())
        delta = self._ready.popleft()
        self.text_parts.append(delta)
        return delta

    def _handle(self, event: ServerSentEvent) -> None:
        payload = _event_json(event)
        if event.event == "content":
            content = payload.get("content") if isinstance(payload, dict) else None
            if isinstance(content, str) and content:
                self._ready.append(content)
        elif event.event == "result":
            self._read_result(payload)
        elif event.event == "done":
            self._done = True
            self._events.clear()
        elif event.event == "error":
            self._done = True
            self._count_error(ERROR_EVENT)
            raise error_from_event(error_event_message(payload), self._model)

    def _read_result(self, payload: Any) -> None:
        try:
            self.record = check_record(payload)
        except OpenAIError:
            self._done = True
            raise
        metadata = self.record.get("metadata") if isinstance(self.record.get("metadata"), dict) else {}
        self.finish_reason = map_finish_reason(metadata.get("finishReason"))

    def prefetch(self) -> None:
        """Read until the first delta (kept for iteration) or the end; raise an early failure."""
        delta = self._next_delta()
        if delta is not None:
            self.text_parts.pop()
            self._ready.appendleft(delta)

    def __iter__(self) -> Iterator[str]:
        while True:
            delta = self._next_delta()
            if delta is None:
                return
            yield delta

    def usage(self, prompt: str) -> tuple[int, int]:
        return record_usage(self.record, prompt, self.text)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._response.close()
        if self._metrics is not None:
            self._metrics.upstream_stream_duration.observe(time.perf_counter() - self._started)

    def _count_error(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.count_upstream_error(kind)


def sse_data(payload: dict | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {text}\n\n".encode("utf-8")


class ChunkWriter:
    """Build ``chat.completion.chunk`` events that share one id and ``created``."""

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool) -> None:
        self._base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        self._include_usage = include_usage

    def chunk(self, delta: dict, finish_reason: str | None = None, index: int = 0) -> bytes:
        body: dict[str, Any] = {
            **self._base,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self._include_usage:
            body["usage"] = None
        return sse_data(body)

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        return sse_data({**self._base, "choices": [], "usage": usage_object(prompt_tokens, completion_tokens)})


def stream_error_event(error: OpenAIError) -> bytes:
    return sse_data(error.to_dict())


def replay_as_stream(body: dict, include_usage: bool) -> Response:
    """Send a finished ``chat.completion`` (from an endpoint that cannot stream) as an OpenAI stream."""
    writer = ChunkWriter(body["id"], body["created"], body["model"], include_usage)
    choice = body["choices"][0]
    text = choice["message"]["content"]
    usage = body["usage"]

    def events() -> Iterator[bytes]:
        yield writer.chunk({"role": "assistant", "content": ""})
        if text:
            yield writer.chunk({"content": text})
        yield writer.chunk({}, finish_reason=choice["finish_reason"])
        if include_usage:
            yield writer.usage_chunk(usage["prompt_tokens"], usage["completion_tokens"])
        yield b"data: [DONE]\n\n"

    return Response(events(), headers=SSE_HEADERS)
