"""One choice of a text generation: the upstream call, cuts, tool calls, JSON checks and the retry.

Chat completions, the Responses API and legacy completions all produce their answers
here. A `ChoiceRun` yields events (`TextDelta`, `ToolCallsReady`, `ChoiceFinished`) that
each endpoint renders in its own format, streamed or not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Generator, Iterator, Protocol, Union

from routes.functions.output_func import LimitedText, OutputSpec
from routes.functions.stream_func import UpstreamChatStream
from routes.functions.structured_func import InvalidModelOutput, best_json_text, check_json_answer, format_instructions
from routes.functions.tool_func import ToolCall, ToolCallDetector, parse_tool_calls, tool_instructions
from routes.functions.txt_func import ChatResult, transform_response
from utils.common import OneMinClient, calculate_token
from utils.constants import CHAT_PATH
from utils.metrics import RelayMetrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallsReady:
    calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class ChoiceFinished:
    """The last event of a choice; the token counts include every retry."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


AnswerEvent = Union[TextDelta, ToolCallsReady, ChoiceFinished]


@dataclass
class ChoiceResult:
    """A whole choice, collected from its events."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0


def collect_choice(events: Iterator[AnswerEvent]) -> ChoiceResult:
    result = ChoiceResult()
    parts: list[str] = []
    for event in events:
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, ToolCallsReady):
            result.tool_calls = event.calls
        else:
            result.finish_reason = event.finish_reason
            result.prompt_tokens = event.prompt_tokens
            result.completion_tokens = event.completion_tokens
    result.text = "".join(parts)
    return result


@dataclass(frozen=True)
class Generation:
    """Everything a choice needs to call 1min.ai.

    ``payload`` is the upstream body from ``prepare_chat_payload``; each attempt replaces
    its ``promptObject.prompt``. ``prompt`` is the flattened conversation without the
    relay's own instructions.
    """

    client: OneMinClient
    api_key: str
    model: str
    path: str
    payload: dict
    prompt: str
    spec: OutputSpec = field(default_factory=OutputSpec)
    stream: bool = False
    retries: int = 1
    metrics: RelayMetrics | None = None


class AnswerSource(Protocol):
    """The text deltas of one upstream answer, with what its record says at the end."""

    finish_reason: str

    def __iter__(self) -> Iterator[str]: ...

    def usage(self, prompt: str) -> tuple[int, int]: ...

    def close(self) -> None: ...


class FinishedAnswer:
    """A non-streamed upstream answer, iterated as one delta."""

    def __init__(self, result: ChatResult) -> None:
        self._result = result
        self.finish_reason = result.finish_reason

    def __iter__(self) -> Iterator[str]:
        if self._result.text:
            yield self._result.text

    def usage(self, prompt: str) -> tuple[int, int]:
        return self._result.prompt_tokens, self._result.completion_tokens

    def close(self) -> None:
        pass


def open_answer(generation: Generation, prompt: str, stream: bool) -> AnswerSource:
    """Send ``prompt`` upstream; a stream is read up to its first delta before this returns."""
    payload = dict(generation.payload)
    payload["promptObject"] = {**payload["promptObject"], "prompt": prompt}
    client = generation.client
    if stream and generation.path == CHAT_PATH:
        response = client.post_json(
            CHAT_PATH, generation.api_key, payload, stream=True, params={"isStreaming": "true"}
        )
        upstream = UpstreamChatStream(response, generation.model, generation.metrics)
        try:
            upstream.prefetch()
        except BaseException:
            upstream.close()
            raise
        return upstream
    body = client.post_json(generation.path, generation.api_key, payload).json()
    return FinishedAnswer(transform_response(body, prompt))


def instructed_prompt(prompt: str, spec: OutputSpec) -> str:
    """Put the relay's tool and JSON instructions in front of the conversation."""
    blocks = []
    if spec.tools is not None:
        blocks.append(tool_instructions(spec.tools, json_answers=spec.response_format is not None))
    if spec.response_format is not None:
        blocks.append(format_instructions(spec.response_format, tools_offered=spec.tools is not None))
    if not blocks:
        return prompt
    return "System: " + "\n\n".join(blocks) + "\n\n" + prompt


def retry_prompt(prompt: str, answer: str, problem: str) -> str:
    """Return the prompt for a second try, which shows the model its rejected reply and why."""
    return (
        f"{prompt}\n\nAssistant: {answer}\n\n"
        f"System: Your previous reply was rejected: {problem} "
        "Reply again and follow the instructions above exactly."
    )


@dataclass
class Interpretation:
    """What an attempt's answer turned out to be, once it is complete."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    problem: str | None = None
    # Text already sent to the client rules out a retry, which would contradict it.
    retryable: bool = True


class AnswerInterpreter:
    """Read an attempt's (already cut) text and decide what the client receives.

    Plain answers stream through. With tools offered and a free choice, text streams until
    a tool call may begin. Everything else (JSON formats, a required call, any
    non-streamed answer) is held until the answer is complete and checked.
    """

    def __init__(self, spec: OutputSpec, streaming: bool) -> None:
        self._spec = spec
        self._pass_through = streaming and spec.is_plain
        self._detector = (
            ToolCallDetector()
            if streaming and spec.tools is not None and not spec.tools.call_required and spec.response_format is None
            else None
        )
        self._held: list[str] = []

    def feed(self, delta: str) -> str:
        if self._pass_through:
            return delta
        if self._detector is not None:
            return self._detector.feed(delta)
        self._held.append(delta)
        return ""

    def finish(self, truncated: bool) -> Interpretation:
        """Interpret the text not sent yet; a truncated answer is passed on unchecked."""
        if self._pass_through:
            return Interpretation()
        sent = self._detector.released_text if self._detector is not None else ""
        held = self._detector.held_text if self._detector is not None else "".join(self._held)
        spec = self._spec
        if truncated or spec.is_plain:
            return Interpretation(text=held)
        try:
            if spec.tools is not None:
                answer = self._tool_answer(held)
                if answer is not None:
                    return answer
            if spec.response_format is not None:
                return Interpretation(text=check_json_answer(held, spec.response_format))
            return Interpretation(text=held)
        except InvalidModelOutput as problem:
            return Interpretation(text=held, problem=str(problem), retryable=not sent.strip())

    def _tool_answer(self, held: str) -> Interpretation | None:
        """Return the calls in ``held`` with any prose before them as content, or None for text."""
        calls = parse_tool_calls(held, self._spec.tools)
        if not calls:
            return None
        splitter = ToolCallDetector()
        prose = splitter.feed(held)
        return Interpretation(text=prose.strip() if splitter.call_started else "", tool_calls=tuple(calls))

    def fallback_text(self, interpretation: Interpretation) -> str:
        """Return what to send when the final attempt is still invalid."""
        if self._spec.response_format is not None and not interpretation.tool_calls:
            return best_json_text(interpretation.text)
        return interpretation.text


class ChoiceRun:
    """One choice: ``start()`` sends the first upstream request, ``events()`` yields the answer.

    An answer with an invalid tool call or invalid JSON is retried ``generation.retries``
    times with the problem shown to the model. If the last attempt is still invalid, its
    text is returned as a normal answer (for JSON formats, the JSON found in it, if any).
    A failure raises `OpenAIError` from ``start()`` or from the iterator.
    """

    def __init__(self, generation: Generation, index: int = 0) -> None:
        self.generation = generation
        self.index = index
        self._prompt = instructed_prompt(generation.prompt, generation.spec)
        self._source: AnswerSource | None = None

    @property
    def _stream_upstream(self) -> bool:
        """Tell whether to read 1min.ai's stream: to stream to the client, or to close it at a cut."""
        spec = self.generation.spec
        return self.generation.stream or bool(spec.stop) or spec.max_tokens is not None

    def start(self) -> None:
        self._source = open_answer(self.generation, self._prompt, self._stream_upstream)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()

    def events(self) -> Iterator[AnswerEvent]:
        if self._source is None:
            self.start()
        prompt, source = self._prompt, self._source
        retries_left = self.generation.retries
        prompt_tokens = completion_tokens = 0
        while True:
            interpreter = AnswerInterpreter(self.generation.spec, self.generation.stream)
            limited = yield from self._read(source, interpreter)
            used_prompt, used_completion = self._usage(source, prompt, limited)
            prompt_tokens += used_prompt
            completion_tokens += used_completion
            outcome = interpreter.finish(truncated=limited.finish_reason == "length")
            if not (outcome.problem and outcome.retryable and retries_left > 0):
                break
            retries_left -= 1
            logger.info("choice %d: the answer was invalid, retrying: %s", self.index, outcome.problem)
            prompt = retry_prompt(prompt, limited.text, outcome.problem)
            source = self._source = open_answer(self.generation, prompt, self._stream_upstream)

        yield from self._final_events(interpreter, outcome)
        finish_reason = "tool_calls" if outcome.tool_calls else (limited.finish_reason or source.finish_reason)
        yield ChoiceFinished(finish_reason, prompt_tokens, completion_tokens)

    def _read(self, source: AnswerSource, interpreter: AnswerInterpreter) -> Generator[TextDelta, None, LimitedText]:
        """Yield the text of one attempt that can be sent at once; return the cut answer."""
        spec = self.generation.spec
        limited = LimitedText(source, spec.stop, spec.max_tokens, on_cut=source.close)
        try:
            for delta in limited:
                text = interpreter.feed(delta)
                if text:
                    yield TextDelta(text)
        finally:
            source.close()
        return limited

    def _final_events(self, interpreter: AnswerInterpreter, outcome: Interpretation) -> Iterator[AnswerEvent]:
        text = outcome.text
        if outcome.problem:
            logger.warning("choice %d: the answer is still invalid, returned as text: %s", self.index, outcome.problem)
            text = interpreter.fallback_text(outcome)
        if text:
            yield TextDelta(text)
        if outcome.tool_calls:
            yield ToolCallsReady(outcome.tool_calls)

    @staticmethod
    def _usage(source: AnswerSource, prompt: str, limited: LimitedText) -> tuple[int, int]:
        """Return the attempt's token counts; a cut answer has no upstream record, so count locally."""
        if limited.finish_reason is None:
            return source.usage(prompt)
        return calculate_token(prompt), calculate_token(limited.text)
