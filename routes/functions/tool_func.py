"""Function calling emulated in the prompt.

1min.ai has no tools, so the relay describes the functions in the prompt together with a
strict answer protocol: to call functions, the model replies with only
``{"tool_calls": [{"name": "...", "arguments": {...}}]}``. The parser also accepts that
object inside a Markdown code fence or with prose around it, and checks the arguments
against each function's JSON Schema.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

from routes.functions.shared_func import optional_field, required_field
from routes.functions.structured_func import InvalidModelOutput, check_json_schema, extract_json, schema_error
from utils.errors import InvalidRequestError

FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOOL_CHOICES = ("none", "auto", "required")
CALL_ID_ALPHABET = string.ascii_letters + string.digits
CALL_ID_LENGTH = 24
TOOL_CALLS_KEY = '"tool_calls"'
FENCE_OPENING = re.compile(r"```[A-Za-z]*")
POSSIBLE_CALL_START = re.compile(r"[{`]")


@dataclass(frozen=True)
class FunctionTool:
    name: str
    description: str
    parameters: dict


@dataclass(frozen=True)
class ToolSpec:
    """The functions offered to the model and how it may call them.

    ``choice`` is ``auto``, ``required`` or ``function``; for ``function`` the model must
    call ``forced_name``. ``tool_choice: none`` offers no tools, so it has no ToolSpec.
    """

    functions: tuple[FunctionTool, ...]
    choice: str = "auto"
    forced_name: str | None = None
    parallel: bool = True

    @property
    def call_required(self) -> bool:
        return self.choice != "auto"

    def function(self, name: str) -> FunctionTool | None:
        return next((function for function in self.functions if function.name == name), None)


@dataclass(frozen=True)
class ToolCall:
    """One function call; ``arguments`` is a JSON object as text, as OpenAI sends it."""

    id: str
    name: str
    arguments: str


def new_call_id() -> str:
    return "call_" + "".join(secrets.choice(CALL_ID_ALPHABET) for _ in range(CALL_ID_LENGTH))


def _parse_function(tool: dict, param: str) -> FunctionTool:
    function = required_field(tool, "function", dict, param=f"{param}.function")
    name = required_field(function, "name", str, param=f"{param}.function.name")
    if not FUNCTION_NAME.match(name):
        raise InvalidRequestError(
            f"Invalid value for '{param}.function.name': {name!r}. "
            "Use 1 to 64 letters, digits, underscores or dashes.",
            param=f"{param}.function.name",
            code="invalid_value",
        )
    description = optional_field(function, "description", str, param=f"{param}.function.description") or ""
    optional_field(function, "strict", bool, param=f"{param}.function.strict")
    parameters = function.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    check_json_schema(parameters, f"{param}.function.parameters")
    return FunctionTool(name, description, parameters)


def _parse_tool_choice(body: dict, names: set[str]) -> tuple[str, str | None]:
    choice = body.get("tool_choice")
    if choice is None:
        return "auto", None
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise InvalidRequestError(
                f"Invalid value for 'tool_choice': {choice!r}. Expected none, auto, required "
                'or {"type": "function", "function": {"name": "..."}}.',
                param="tool_choice",
                code="invalid_value",
            )
        if choice == "required" and not names:
            raise InvalidRequestError(
                "'tool_choice' is 'required' but 'tools' contains no function.", param="tool_choice"
            )
        return choice, None
    if not isinstance(choice, dict) or choice.get("type") != "function":
        raise InvalidRequestError(
            'Invalid \'tool_choice\': expected none, auto, required or {"type": "function", "function": {"name": "..."}}.',
            param="tool_choice",
        )
    function = required_field(choice, "function", dict, param="tool_choice.function")
    name = required_field(function, "name", str, param="tool_choice.function.name")
    if name not in names:
        raise InvalidRequestError(
            f"'tool_choice' names the function {name!r}, which is not in 'tools'.",
            param="tool_choice.function.name",
        )
    return "function", name


def parse_tool_spec(body: dict) -> ToolSpec | None:
    """Read ``tools``, ``tool_choice`` and ``parallel_tool_calls``; None when no function is offered.

    Tools of other types (web search, code interpreter) are handled by the chat request itself.
    """
    functions: list[FunctionTool] = []
    for index, tool in enumerate(body.get("tools") or []):
        if isinstance(tool, dict) and tool.get("type") == "function":
            function = _parse_function(tool, f"tools.[{index}]")
            if any(known.name == function.name for known in functions):
                raise InvalidRequestError(
                    f"Function name {function.name!r} appears more than once in 'tools'.",
                    param=f"tools.[{index}].function.name",
                )
            functions.append(function)
    parallel = optional_field(body, "parallel_tool_calls", bool)
    choice, forced_name = _parse_tool_choice(body, {function.name for function in functions})
    if choice == "none" or not functions:
        return None
    if choice == "function":
        functions = [function for function in functions if function.name == forced_name]
    return ToolSpec(tuple(functions), choice, forced_name, parallel is not False)


def _function_lines(function: FunctionTool) -> list[str]:
    lines = [f"- {function.name}: {function.description or '(no description)'}"]
    lines.append(f"  Arguments (JSON Schema): {json.dumps(function.parameters, ensure_ascii=False)}")
    return lines


def tool_instructions(spec: ToolSpec, json_answers: bool) -> str:
    """Return the prompt text that offers the functions and defines the call protocol.

    ``json_answers`` tells that an answer without a call must itself be JSON, so the
    usual rule that a text answer must not start with "{" is left out.
    """
    lines = ["You can call these functions:"]
    for function in spec.functions:
        lines.extend(_function_lines(function))
    lines.append("")
    lines.append("To call functions, reply with only this JSON object and nothing else:")
    lines.append('{"tool_calls": [{"name": "<function name>", "arguments": {<arguments as a JSON object>}}]}')
    lines.append("The arguments must be valid under the function's JSON Schema.")
    if spec.parallel:
        lines.append('To call several functions at once, put one entry per call in "tool_calls".')
    else:
        lines.append('Call one function at a time: "tool_calls" must contain exactly one entry.')
    if spec.choice == "required":
        lines.append("You must call at least one function in this reply.")
    elif spec.choice == "function":
        lines.append(f'You must call the function "{spec.forced_name}" in this reply.')
    elif not json_answers:
        lines.append('To answer without calling a function, reply with plain text that does not start with "{".')
    lines.append(
        'Earlier calls appear in the conversation as "Assistant called tool ..." and their results as '
        '"Tool result (call id ...)". Use the results instead of calling the same function again.'
    )
    return "\n".join(lines)


def _arguments_object(entry: dict, index: int) -> dict:
    arguments = entry.get("arguments", entry.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise InvalidModelOutput(f"tool_calls[{index}].arguments is not valid JSON.") from None
    if not isinstance(arguments, dict):
        raise InvalidModelOutput(f"tool_calls[{index}].arguments must be a JSON object.")
    return arguments


def _checked_call(entry: Any, index: int, spec: ToolSpec) -> ToolCall:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise InvalidModelOutput(f'tool_calls[{index}] must be an object with a "name" and "arguments".')
    name = entry["name"]
    function = spec.function(name)
    if function is None:
        offered = ", ".join(function.name for function in spec.functions)
        raise InvalidModelOutput(f"tool_calls[{index}] names the unknown function {name!r}. Available: {offered}.")
    arguments = _arguments_object(entry, index)
    problem = schema_error(arguments, function.parameters)
    if problem is not None:
        raise InvalidModelOutput(f"The arguments of tool_calls[{index}] ({name}) are invalid {problem}.")
    return ToolCall(new_call_id(), name, json.dumps(arguments, ensure_ascii=False))


def parse_tool_calls(text: str, spec: ToolSpec) -> list[ToolCall]:
    """Return the calls in an answer, [] when it is a text answer.

    Raises `InvalidModelOutput` for a call the model got wrong: broken JSON, an unknown
    function, arguments that break the schema, or no call where one is required.
    """
    found = extract_json(text, lambda value: isinstance(value, dict) and "tool_calls" in value)
    if found is None:
        if TOOL_CALLS_KEY in text:
            raise InvalidModelOutput('The "tool_calls" object is not valid JSON.')
        if spec.call_required:
            target = f'the function "{spec.forced_name}"' if spec.forced_name else "at least one function"
            raise InvalidModelOutput(f"The reply calls no function, but it must call {target}.")
        return []
    entries = found[1]["tool_calls"]
    if not isinstance(entries, list) or not entries:
        raise InvalidModelOutput('"tool_calls" must be a non-empty array.')
    if not spec.parallel:
        entries = entries[:1]
    return [_checked_call(entry, index, spec) for index, entry in enumerate(entries)]


def classify_call_start(text: str) -> str:
    """Tell whether text starting with "{" or "`" opens a tool call object.

    Returns ``"call"``, ``"text"``, or ``"undecided"`` while the text is too short to tell.
    A Markdown fence with an optional language tag may come before the object.
    """
    body = text
    if body.startswith("`"):
        if len(body) < 3:
            return "undecided" if "```".startswith(body) else "text"
        if not body.startswith("```"):
            return "text"
        after_tag = body[FENCE_OPENING.match(body).end():]
        body = after_tag.lstrip()
        if not body:
            return "undecided"
    if not body.startswith("{"):
        return "text"
    key = body[1:].lstrip()
    if len(key) < len(TOOL_CALLS_KEY):
        return "undecided" if TOOL_CALLS_KEY.startswith(key) else "text"
    return "call" if key.startswith(TOOL_CALLS_KEY) else "text"


class ToolCallDetector:
    """Split a streamed answer into text that can be sent at once and a tool call held back.

    Text streams until a "{" or "`" could open a tool call object. From there the detector
    waits until it can tell; once a call has begun, it holds the rest of the answer.
    """

    def __init__(self) -> None:
        self._pending = ""
        self.released_text = ""
        self.call_started = False

    def feed(self, delta: str) -> str:
        """Add a delta and return the text that is now known not to be part of a call."""
        self._pending += delta
        if self.call_started:
            return ""
        released: list[str] = []
        scan_from = 0
        while True:
            match = POSSIBLE_CALL_START.search(self._pending, scan_from)
            if match is None:
                released.append(self._pending)
                self._pending = ""
                break
            verdict = classify_call_start(self._pending[match.start():])
            if verdict == "text":
                scan_from = match.start() + 1
                continue
            released.append(self._pending[: match.start()])
            self._pending = self._pending[match.start():]
            self.call_started = verdict == "call"
            break
        text = "".join(released)
        self.released_text += text
        return text

    @property
    def held_text(self) -> str:
        """Return the text not released yet: the call, or a tail that may still open one."""
        return self._pending
