"""Collect per-round numbers, take their medians, and render the Markdown report."""

from __future__ import annotations

import math
import platform
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

BEGIN_MARKER = "<!-- bench:begin (written by python -m bench.run; text outside the markers is kept) -->"
END_MARKER = "<!-- bench:end -->"

DEFAULT_PAGE_HEAD = """# Benchmarks

`python -m bench.run` (or `make bench`) starts the fake 1min.ai and the relay as subprocesses on
127.0.0.1, loads both with the same asyncio client, and writes the section below. The relay's
overhead is the difference between calling the fake directly and calling it through the relay.
"""


def median(values: list[float]) -> float:
    clean = [value for value in values if not math.isnan(value)]
    return statistics.median(clean) if clean else math.nan


@dataclass
class Rounds:
    """Numbers keyed by name, one value per round."""

    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, key: str, value: float) -> None:
        self.values[key].append(value)

    def median(self, key: str) -> float:
        return median(self.values.get(key, []))

    def spread(self, key: str) -> str:
        values = [value for value in self.values.get(key, []) if not math.isnan(value)]
        if len(values) < 2:
            return ""
        return f"{min(values):.{_digits(values)}f}–{max(values):.{_digits(values)}f}"


def _digits(values: list[float]) -> int:
    largest = max(abs(value) for value in values)
    if largest >= 100:
        return 0
    return 2 if largest < 10 else 1


def number(value: float, digits: int = 2) -> str:
    if math.isnan(value):
        return "n/a"
    # Adding 0.0 turns a rounded -0.0 into 0.0.
    return f"{round(value, digits) + 0.0:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def write_section(path: Path, section: str) -> None:
    """Replace the text between the markers in ``path``, creating the page when it is missing."""
    block = f"{BEGIN_MARKER}\n{section.rstrip()}\n{END_MARKER}"
    if path.exists():
        text = path.read_text()
        start, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
        if start != -1 and end > start:
            path.write_text(text[:start] + block + text[end + len(END_MARKER):])
            return
        path.write_text(text.rstrip() + "\n\n" + block + "\n")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEFAULT_PAGE_HEAD + "\n" + block + "\n")
