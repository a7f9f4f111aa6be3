"""Transcript output in OpenAI's response formats: json, text, srt, vtt and verbose_json."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from flask import Response, jsonify

PLAIN_TEXT = "text/plain; charset=utf-8"
_BLANK_LINES = re.compile(r"\n\s*\n+")


@dataclass
class Segment:
    """A stretch of the transcript with its start and end in seconds."""

    start: float
    end: float
    text: str


@dataclass
class Transcript:
    """A finished transcription or translation, ready to be rendered in any response format."""

    task: str
    language: str
    duration: float
    text: str
    segments: list[Segment] = field(default_factory=list)
    temperature: float = 0.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def segments_from_upstream(value: Any, temperature: float) -> list[Segment]:
    """Read Whisper-style segments from an upstream result, skipping entries without valid times."""
    if not isinstance(value, list):
        return []
    segments = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            continue
        start, end = _number(entry.get("start")), _number(entry.get("end"))
        if start is None or end is None or start < 0 or end < start:
            continue
        segments.append(Segment(start, end, entry["text"].strip()))
    return segments


def _timestamp(seconds: float, decimal_mark: str) -> str:
    milliseconds = round(seconds * 1000)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    whole_seconds, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole_seconds:02d}{decimal_mark}{milliseconds:03d}"


def _cue_text(text: str) -> str:
    # A blank line ends a cue in both formats, and WebVTT reserves "-->" for the timing line.
    return _BLANK_LINES.sub("\n", text.strip()).replace("-->", "->")


def to_srt(segments: list[Segment]) -> str:
    """Render segments as a SubRip file: numbered cues with ``HH:MM:SS,mmm`` times."""
    cues = [
        f"{number}\n{_timestamp(segment.start, ',')} --> {_timestamp(segment.end, ',')}\n{_cue_text(segment.text)}\n"
        for number, segment in enumerate(segments, start=1)
    ]
    return "\n".join(cues)


def to_vtt(segments: list[Segment]) -> str:
    """Render segments as a WebVTT file with ``HH:MM:SS.mmm`` times."""
    cues = [
        f"{_timestamp(segment.start, '.')} --> {_timestamp(segment.end, '.')}\n{_cue_text(segment.text)}\n"
        for segment in segments
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def verbose_json(transcript: Transcript) -> dict:
    """Build the ``verbose_json`` body.

    1min.ai reports no token ids or decoding statistics, so ``tokens`` is empty and
    ``avg_logprob``, ``compression_ratio`` and ``no_speech_prob`` hold neutral values.
    """
    segments = [
        {
            "id": index,
            "seek": 0,
            "start": segment.start,
            "end": segment.end,
            "text": segment.text,
            "tokens": [],
            "temperature": transcript.temperature,
            "avg_logprob": 0.0,
            "compression_ratio": 1.0,
            "no_speech_prob": 0.0,
        }
        for index, segment in enumerate(transcript.segments)
    ]
    body: dict[str, Any] = {
        "task": transcript.task,
        "language": transcript.language,
        "duration": transcript.duration,
        "text": transcript.text,
        "segments": segments,
    }
    if transcript.task == "transcribe":
        body["usage"] = {"type": "duration", "seconds": math.ceil(transcript.duration)}
    return body


def render_transcript(transcript: Transcript, response_format: str) -> Response:
    """Return the HTTP response for ``response_format``. The text, srt and vtt formats are ``text/plain``."""
    if response_format == "json":
        return jsonify({"text": transcript.text})
    if response_format == "verbose_json":
        return jsonify(verbose_json(transcript))
    if response_format == "srt":
        return Response(to_srt(transcript.segments), content_type=PLAIN_TEXT)
    if response_format == "vtt":
        return Response(to_vtt(transcript.segments), content_type=PLAIN_TEXT)
    return Response(transcript.text, content_type=PLAIN_TEXT)
