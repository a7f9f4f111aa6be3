"""Chat completion objects built from answer events: the ``chat.completion`` body and its stream."""

from __future__ import annotations

import logging
from typing import Iterator

from routes.functions.answer_func import (
    AnswerEvent,
    ChoiceFinished,
    ChoiceResult,
    ChoiceRun,
    Generation,
    TextDelta,
    ToolCallsReady,
)
from routes.functions.choices_func import ChoiceGroup
from routes.functions.output_func import OutputSpec
from routes.functions.shared_func import relay_state
from routes.functions.stream_func import ChunkWriter, stream_error_event
from routes.functions.tool_func import ToolCall
from routes.functions.txt_func import ChatRequest, chat_completion_object
from utils.catalog import CatalogModel
from utils.constants import FEATURE_CHAT, FEATURE_CODE
from utils.errors import InvalidRequestError, OpenAIError

logger = logging.getLogger(__name__)

# OpenAI streams arguments token by token; pieces of this many characters look the same to clients.
ARGUMENT_PIECE_CHARS = 32


def tool_call_object(call: ToolCall) -> dict:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def chat_choice(index: int, result: ChoiceResult) -> dict:
    """Return one entry of ``choices``; a tool call answer without prose has null content."""
    message: dict = {"role": "assistant", "content": result.text, "refusal": None}
    if result.tool_calls:
        message["content"] = result.text or None
        message["tool_calls"] = [tool_call_object(call) for call in result.tool_calls]
    return {"index": index, "message": message, "logprobs": None, "finish_reason": result.finish_reason}


def format_chat_completion(results: list[ChoiceResult], model: str) -> dict:
    """Build the ``chat.completion`` object; usage is summed over every upstream call."""
    choices = [chat_choice(index, result) for index, result in enumerate(results)]
    prompt_tokens = sum(result.prompt_tokens for result in results)
    completion_tokens = sum(result.completion_tokens for result in results)
    return chat_completion_object(choices, model, prompt_tokens, completion_tokens)


def argument_pieces(arguments: str) -> list[str]:
    return [arguments[start : start + ARGUMENT_PIECE_CHARS] for start in range(0, len(arguments), ARGUMENT_PIECE_CHARS)]


def tool_call_chunks(writer: ChunkWriter, index: int, calls: tuple[ToolCall, ...]) -> Iterator[bytes]:
    """Yield the chunks of a choice's calls: per call a header with id and name, then argument pieces."""
    for position, call in enumerate(calls):
        header = {
            "index": position,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        yield writer.chunk({"tool_calls": [header]}, index=index)
        for piece in argument_pieces(call.arguments):
            yield writer.chunk({"tool_calls": [{"index": position, "function": {"arguments": piece}}]}, index=index)


def event_chunks(writer: ChunkWriter, index: int, event: AnswerEvent) -> Iterator[bytes]:
    if isinstance(event, TextDelta):
        yield writer.chunk({"content": event.text}, index=index)
    elif isinstance(event, ToolCallsReady):
        yield from tool_call_chunks(writer, index, event.calls)
    else:
        yield writer.chunk({}, finish_reason=event.finish_reason, index=index)


def stream_chat_completion(group: ChoiceGroup, writer: ChunkWriter, include_usage: bool) -> Iterator[bytes]:
    """Yield the chunk stream of started choices, closing every upstream request on exit.

    Each choice gets its own role chunk and finish chunk. A failure after the first chunk
    ends the stream with an error event and no ``[DONE]``. A client that disconnects makes
    the WSGI server close this generator, which closes the upstream requests.
    """
    chunks = 0
    try:
        for run in group.runs:
            yield writer.chunk({"role": "assistant", "content": ""}, index=run.index)
        prompt_tokens = completion_tokens = 0
        try:
            for index, event in group.events():
                if isinstance(event, ChoiceFinished):
                    prompt_tokens += event.prompt_tokens
                    completion_tokens += event.completion_tokens
                for chunk in event_chunks(writer, index, event):
                    chunks += 1
                    yield chunk
        except OpenAIError as error:
            logger.warning("upstream stream failed after the first chunk: %s", error.message)
            yield stream_error_event(error)
            return
        if include_usage:
            yield writer.usage_chunk(prompt_tokens, completion_tokens)
        yield b"data: [DONE]\n\n"
    except GeneratorExit:
        # The server closes the generator when the client disconnects, or at the end of a shutdown.
        logger.info("stream closed after %d chunks, before its end; closing the upstream requests", chunks)
        raise
    finally:
        group.close()


def new_generation(
    api_key: str, model: str, path: str, payload: dict, prompt: str, spec: OutputSpec, stream: bool
) -> Generation:
    """Return a ``Generation`` wired to the relay's client, retry setting and metrics."""
    state = relay_state()
    return Generation(
        client=state.client,
        api_key=api_key,
        model=model,
        path=path,
        payload=payload,
        prompt=prompt,
        spec=spec,
        stream=stream,
        retries=state.settings.invalid_output_retries,
        metrics=state.metrics,
    )


def chat_choice_group(api_key: str, chat: ChatRequest, path: str, payload: dict, prompt: str) -> ChoiceGroup:
    """Return the ``chat.n`` choices of a chat request, ready to start or collect."""
    generation = new_generation(api_key, chat.model, path, payload, prompt, chat.output, chat.stream)
    return ChoiceGroup([ChoiceRun(generation, index) for index in range(chat.n)])


def require_chat_model(model_id: str) -> CatalogModel:
    """Return a model that can chat, or raise 404 for an unknown one and 400 for another kind."""
    model = relay_state().catalog.require(model_id)
    if not (model.supports(FEATURE_CHAT) or model.supports(FEATURE_CODE)):
        raise InvalidRequestError(
            f"'{model.id}' is not a chat model, and this endpoint needs one. GET /v1/models lists the models.",
            param="model",
        )
    return model
