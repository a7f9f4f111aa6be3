"""Unit tests for the pure parts of the answer pipeline: cuts, token counting, call and JSON parsing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routes.functions.output_func import LimitedText, TokenBudget
from routes.functions.structured_func import InvalidModelOutput, ResponseFormat, check_json_answer, extract_json
from routes.functions.tool_func import FunctionTool, ToolCallDetector, ToolSpec, classify_call_start, parse_tool_calls
from utils.common import token_encoding

SPEC = ToolSpec((FunctionTool("f", "", {"type": "object", "properties": {"x": {"type": "integer"}}}),))


def _run(
    deltas: list[str], stop: tuple[str, ...] = (), max_tokens: int | None = None
) -> tuple[list[str], LimitedText, list[bool]]:
    closed: list[bool] = []
    limited = LimitedText(deltas, stop, max_tokens, on_cut=lambda: closed.append(True))
    return list(limited), limited, closed


def _splits(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(len(text), cut) for cut in cuts} | {0, len(text)})
    return [text[start:end] for start, end in zip(points, points[1:]) if end > start]


TEXTS = st.text(alphabet=st.sampled_from(list("ab xyz.,\n{}ÿ€😀中")), max_size=120)


@settings(max_examples=150, deadline=None)
@given(TEXTS, st.lists(st.integers(0, 120), max_size=12), st.sampled_from(["x", "yz", "a b", "😀"]))
def test_stop_cut_same_for_any_split(text, cuts, stop):
    deltas, limited, closed = _run(_splits(text, cuts), stop=(stop,))

    expected = text.split(stop)[0]
    assert "".join(deltas) == expected
    assert limited.text == expected
    assert limited.finish_reason == ("stop" if stop in text else None)
    assert closed == ([True] if stop in text else [])


@settings(max_examples=150, deadline=None)
@given(TEXTS, st.lists(st.integers(0, 120), max_size=12), st.integers(1, 40))
def test_token_cut_same_for_any_split(text, cuts, limit):
    whole_deltas, whole, _ = _run([text] if text else [], max_tokens=limit)

    deltas, limited, _ = _run(_splits(text, cuts), max_tokens=limit)

    assert "".join(deltas) == "".join(whole_deltas)
    assert limited.finish_reason == whole.finish_reason
    assert len(token_encoding().encode(limited.text, disallowed_special=())) <= limit


def test_token_budget_counts_long_text_incrementally():
    text = "The quick brown fox jumps over the lazy dog. " * 200
    budget = TokenBudget(10_000)

    for end in range(0, len(text), 7):
        assert budget.cut_index(text[:end]) is None

    assert TokenBudget(5).cut_index(text) == len("The quick brown fox jumps")


def test_stop_holds_back_one_less_than_longest():
    deltas, _, _ = _run(list("abcdef"), stop=("xyz", "q"))

    assert deltas == ["a", "b", "c", "d", "ef"]


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("{", "undecided"),
        ('{ "tool', "undecided"),
        ('{"tool_calls"', "call"),
        ('{"answer"', "text"),
        ("`", "undecided"),
        ("``", "undecided"),
        ("`x", "text"),
        ("```", "undecided"),
        ("```json", "undecided"),
        ('```json\n{"tool_calls": [', "call"),
        ("```python\nprint()", "text"),
    ],
)
def test_classify_call_start(text, verdict):
    assert classify_call_start(text) == verdict


def test_detector_releases_text_before_call():
    detector = ToolCallDetector()

    released = [detector.feed(piece) for piece in ["Sure. ", "{", '"tool_', 'calls": []}', " bye"]]

    assert released == ["Sure. ", "", "", "", ""]
    assert detector.call_started
    assert detector.held_text == '{"tool_calls": []} bye'


def test_detector_releases_braces_that_open_no_call():
    detector = ToolCallDetector()

    released = "".join(detector.feed(piece) for piece in ["a {", '"b": 1} `c` ', "d"])

    assert released == 'a {"b": 1} `c` d'
    assert not detector.call_started


def test_parse_tool_calls_accepts_string_arguments():
    [call] = parse_tool_calls('{"tool_calls": [{"name": "f", "arguments": "{\\"x\\": 1}"}]}', SPEC)

    assert json.loads(call.arguments) == {"x": 1}


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ('{"tool_calls": [{"name": "f", "arguments": {"x": "one"}}]}', "'one' is not of type 'integer'"),
        ('{"tool_calls": []}', "non-empty array"),
        ('{"tool_calls": [{"name": "f", "arguments": [1]}]}', "must be a JSON object"),
        ('{"tool_calls": [{"name": "f", "arguments": {"x": 1}}', "not valid JSON"),
        ('{"tool_calls": ["f"]}', 'must be an object with a "name"'),
    ],
)
def test_parse_tool_calls_problems(answer, problem):
    with pytest.raises(InvalidModelOutput) as caught:
        parse_tool_calls(answer, SPEC)

    assert problem in str(caught.value)


def test_extract_json_prefers_fence_over_prose():
    text = 'Example {"a": 1} but the answer is:\n```json\n{"b": 2}\n```'

    assert extract_json(text, lambda value: isinstance(value, dict)) == ('{"b": 2}', {"b": 2})


def test_check_json_answer_rejects_array_for_json_object():
    with pytest.raises(InvalidModelOutput) as caught:
        check_json_answer("[1, 2]", ResponseFormat("json_object"))

    assert str(caught.value) == "The reply contains no valid JSON object."
