"""The Responses API event stream: ``response.created`` through ``response.completed``.

Each event is sent as a named SSE event whose data carries the same ``type`` and a
``sequence_number`` that counts from 0 within the response.
"""

from __future__ import annotations

import json
import logging
from typing import Callable, Iterator

from routes.functions.answer_func import ChoiceFinished, TextDelta, ToolCallsReady
from routes.functions.chat_func import argument_pieces
from routes.functions.choices_func import ChoiceGroup
from routes.functions.responses_func import (
    ResponseObject,
    function_call_item,
    message_item,
    new_item_id,
    output_text_part,
)
from routes.functions.tool_func import ToolCall
from utils.errors import OpenAIError

logger = logging.getLogger(__name__)


class ResponseEventWriter:
    """Turn answer events into Responses stream events, keeping the output items built so far."""

    def __init__(self, response: ResponseObject) -> None:
        self._response = response
        self._sequence = 0
        self.output: list[dict] = []
        self._message_index: int | None = None
        self._text_parts: list[str] = []

    def _event(self, event_type: str, **fields: object) -> bytes:
        payload = {"type": event_type, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return f"event: {event_type}\ndata: {data}\n\n".encode("utf-8")

    def opening(self) -> list[bytes]:
        snapshot = self._response.snapshot("in_progress", [])
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def _open_message(self) -> list[bytes]:
        item = message_item(new_item_id("msg"), "", status="in_progress")
        self._message_index = len(self.output)
        self.output.append(item)
        location = {"item_id": item["id"], "output_index": self._message_index}
        return [
            self._event("response.output_item.added", output_index=self._message_index, item=item),
            self._event("response.content_part.added", **location, content_index=0, part=output_text_part("")),
        ]

    def text(self, delta: str) -> list[bytes]:
        events = self._open_message() if self._message_index is None else []
        self._text_parts.append(delta)
        item_id = self.output[self._message_index]["id"]
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=item_id,
                output_index=self._message_index,
                content_index=0,
                delta=delta,
                logprobs=[],
            )
        )
        return events

    def _close_message(self) -> list[bytes]:
        if self._message_index is None:
            return []
        index, text = self._message_index, "".join(self._text_parts)
        item = message_item(self.output[index]["id"], text)
        self.output[index] = item
        self._message_index = None
        location = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [
            self._event("response.output_text.done", **location, text=text, logprobs=[]),
            self._event("response.content_part.done", **location, part=output_text_part(text)),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _call_events(self, call: ToolCall) -> list[bytes]:
        item = function_call_item(new_item_id("fc"), call, status="in_progress")
        index = len(self.output)
        self.output.append(item)
        events = [self._event("response.output_item.added", output_index=index, item=item)]
        for piece in argument_pieces(call.arguments):
            events.append(
                self._event("response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=piece)
            )
        events.append(
            self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                name=call.name,
                output_index=index,
                arguments=call.arguments,
            )
        )
        self.output[index] = function_call_item(item["id"], call)
        events.append(self._event("response.output_item.done", output_index=index, item=self.output[index]))
        return events

    def tool_calls(self, calls: tuple[ToolCall, ...]) -> list[bytes]:
        events = self._close_message()
        for call in calls:
            events.extend(self._call_events(call))
        return events

    def close_output(self) -> list[bytes]:
        """Finish the open message; an answer with no output at all still gets an empty message."""
        events = self._open_message() if not self.output else []
        return events + self._close_message()

    def final_response(self, event: ChoiceFinished) -> dict:
        return self._response.finished(self.output, event.finish_reason, event.prompt_tokens, event.completion_tokens)

    def final_event(self, body: dict) -> bytes:
        event_type = "response.completed" if body["status"] == "completed" else "response.incomplete"
        return self._event(event_type, response=body)

    def failed(self, error: OpenAIError) -> bytes:
        return self._event("response.failed", response=self._response.failed(self.output, error.message))


def stream_response_events(
    group: ChoiceGroup, writer: ResponseEventWriter, on_done: Callable[[dict], None]
) -> Iterator[bytes]:
    """Yield the Responses stream of a started choice, closing upstream on exit.

    ``on_done`` receives the final object before the last event goes out, so a client that
    continues from this response at once finds it stored.
    """
    try:
        yield from writer.opening()
        try:
            for _, event in group.events():
                if isinstance(event, TextDelta):
                    yield from writer.text(event.text)
                elif isinstance(event, ToolCallsReady):
                    yield from writer.tool_calls(event.calls)
                elif isinstance(event, ChoiceFinished):
                    closing = writer.close_output()
                    body = writer.final_response(event)
                    on_done(body)
                    yield from closing
                    yield writer.final_event(body)
        except OpenAIError as error:
            logger.warning("upstream stream failed after the first event: %s", error.message)
            yield writer.failed(error)
    finally:
        group.close()
