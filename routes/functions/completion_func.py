"""Legacy text completions (``text_completion`` objects) on top of the chat answer pipeline.

Each prompt is sent to the chat model as a single user message. Choices are numbered
prompt by prompt: with ``n`` choices per prompt, prompt ``p`` owns indexes ``p * n`` to
``p * n + n - 1``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

from routes.functions.answer_func import ChoiceFinished, ChoiceResult, ChoiceRun, TextDelta
from routes.functions.chat_func import new_generation
from routes.functions.choices_func import ChoiceGroup
from routes.functions.output_func import OutputSpec, parse_max_tokens, parse_stop
from routes.functions.shared_func import (
    new_object_id,
    number_in_range,
    optional_field,
    required_field,
    unix_time,
)
from routes.functions.stream_func import sse_data, stream_error_event
from routes.functions.txt_func import ChatRequest, prepare_chat_payload, usage_object
from utils.errors import InvalidRequestError, OpenAIError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompletionRequest:
    """A validated ``POST /v1/completions`` body."""

    model: str
    prompts: tuple[str, ...]
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    echo: bool = False
    output: OutputSpec = OutputSpec()

    def prompt_of(self, index: int) -> str:
        return self.prompts[index // self.n]


def _prompts(body: dict) -> tuple[str, ...]:
    prompt = body.get("prompt")
    if prompt is None:
        raise InvalidRequestError(
            "Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter"
        )
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts:
        raise InvalidRequestError("Invalid 'prompt': expected a string or a non-empty array of strings.", param="prompt")
    if not all(isinstance(item, str) for item in prompts):
        raise InvalidRequestError(
            "Invalid 'prompt': token arrays are not supported by this relay, because 1min.ai models take text. "
            "Send the prompt as a string or an array of strings.",
            param="prompt",
        )
    for index, item in enumerate(prompts):
        if not item.strip():
            raise InvalidRequestError(f"'prompt' item {index} is empty. Send some text.", param="prompt")
    return tuple(prompts)


def _reject_unsupported(body: dict, n: int) -> None:
    if body.get("suffix"):
        raise InvalidRequestError(
            "'suffix' is not supported by this relay: 1min.ai models cannot insert text between a prompt "
            "and a suffix. Send the request without 'suffix'.",
            param="suffix",
            code="unsupported_parameter",
        )
    if body.get("logprobs"):
        raise InvalidRequestError(
            "'logprobs' is not supported by this relay: 1min.ai returns no token probabilities.",
            param="logprobs",
            code="unsupported_parameter",
        )
    best_of = number_in_range(body, "best_of", 0, 20, integer=True)
    if best_of is not None and best_of > n:
        raise InvalidRequestError(
            "'best_of' greater than 'n' is not supported by this relay: ranking needs token probabilities, "
            "which 1min.ai does not return.",
            param="best_of",
            code="unsupported_parameter",
        )


def parse_completion_request(body: dict) -> CompletionRequest:
    """Validate a legacy completion body; raise a 400 naming the first bad field."""
    model = required_field(body, "model", str)
    prompts = _prompts(body)
    n = number_in_range(body, "n", 1, 128, integer=True) or 1
    _reject_unsupported(body, n)
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1), ("presence_penalty", -2, 2), ("frequency_penalty", -2, 2)):
        number_in_range(body, name, low, high)
    optional_field(body, "seed", int)
    optional_field(body, "user", str)
    stream_options = optional_field(body, "stream_options", dict) or {}
    return CompletionRequest(
        model=model,
        prompts=prompts,
        n=n,
        stream=bool(optional_field(body, "stream", bool)),
        include_usage=bool(
            optional_field(stream_options, "include_usage", bool, param="stream_options.include_usage")
        ),
        echo=bool(optional_field(body, "echo", bool)),
        output=OutputSpec(stop=parse_stop(body), max_tokens=parse_max_tokens(body, "max_tokens")),
    )


def completion_choice_group(api_key: str, request: CompletionRequest) -> ChoiceGroup:
    """Return ``n`` choices per prompt, each prompt sent as one user message."""
    runs = []
    for prompt_index, prompt in enumerate(request.prompts):
        chat = ChatRequest(model=request.model, messages=[{"role": "user", "content": prompt}])
        path, payload = prepare_chat_payload(chat, prompt)
        generation = new_generation(api_key, request.model, path, payload, prompt, request.output, request.stream)
        runs.extend(ChoiceRun(generation, prompt_index * request.n + offset) for offset in range(request.n))
    return ChoiceGroup(runs)


def completion_choice(index: int, text: str, finish_reason: str | None) -> dict:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}


def format_completion(request: CompletionRequest, results: list[ChoiceResult]) -> dict:
    """Build the ``text_completion`` object; usage is summed over every upstream call."""
    choices = []
    for index, result in enumerate(results):
        text = request.prompt_of(index) + result.text if request.echo else result.text
        choices.append(completion_choice(index, text, result.finish_reason))
    return {
        "id": new_object_id("cmpl"),
        "object": "text_completion",
        "created": unix_time(),
        "model": request.model,
        "choices": choices,
        "usage": usage_object(
            sum(result.prompt_tokens for result in results), sum(result.completion_tokens for result in results)
        ),
    }


class CompletionChunkWriter:
    """Build streamed ``text_completion`` chunks that share one id and ``created``."""

    def __init__(self, model: str) -> None:
        self._base = {"id": new_object_id("cmpl"), "object": "text_completion", "created": unix_time(), "model": model}

    def chunk(self, index: int, text: str, finish_reason: str | None = None) -> bytes:
        return sse_data({**self._base, "choices": [completion_choice(index, text, finish_reason)]})

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        return sse_data({**self._base, "choices": [], "usage": usage_object(prompt_tokens, completion_tokens)})


def stream_completion(group: ChoiceGroup, request: CompletionRequest) -> Iterator[bytes]:
    """Yield the legacy completion stream of started choices, closing upstream on exit."""
    writer = CompletionChunkWriter(request.model)
    try:
        if request.echo:
            for run in group.runs:
                yield writer.chunk(run.index, request.prompt_of(run.index))
        prompt_tokens = completion_tokens = 0
        try:
            for index, event in group.events():
                if isinstance(event, TextDelta):
                    yield writer.chunk(index, event.text)
                elif isinstance(event, ChoiceFinished):
                    prompt_tokens += event.prompt_tokens
                    completion_tokens += event.completion_tokens
                    yield writer.chunk(index, "", event.finish_reason)
        except OpenAIError as error:
            logger.warning("upstream stream failed after the first chunk: %s", error.message)
            yield stream_error_event(error)
            return
        if request.include_usage:
            yield writer.usage_chunk(prompt_tokens, completion_tokens)
        yield b"data: [DONE]\n\n"
    finally:
        group.close()
