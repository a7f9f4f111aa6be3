"""Load patterns: closed-loop requests, repeated streams, and one burst of simultaneous streams.

Every loop stops at a request count or a deadline, whichever comes first.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Callable

from bench.client import Connection, ProtocolError, StreamResult, post, stream

WARMUP_REQUESTS_PER_CONNECTION = 5
MAX_ERROR_SAMPLES = 3


def percentile(values: list[float], fraction: float) -> float:
    """Return the value at ``fraction`` (0..1) of the sorted values, interpolating linearly."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass(frozen=True)
class Target:
    """One server to load, with the requests it is sent."""

    name: str
    host: str
    port: int
    plain_request: bytes
    stream_request: bytes
    openai_events: bool


@dataclass
class CpuMeter:
    """CPU seconds used by the client and by each server process during one measurement."""

    probes: dict[str, Callable[[], float]]
    used: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> "CpuMeter":
        self._start = {name: probe() for name, probe in self.probes.items()}
        self._client_start = time.process_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.used = {name: probe() - self._start[name] for name, probe in self.probes.items()}
        self.used["client"] = time.process_time() - self._client_start


@dataclass
class RequestStats:
    concurrency: int
    latencies: list[float]
    elapsed: float
    errors: int
    error_samples: list[str]
    cpu: dict[str, float]

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else math.nan

    def latency_ms(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) * 1000

    def cpu_us_per_request(self, process: str) -> float:
        return self.cpu.get(process, math.nan) / max(1, len(self.latencies)) * 1e6


@dataclass
class StreamStats:
    concurrency: int
    results: list[StreamResult]
    expected_text: str
    elapsed: float

    @property
    def failures(self) -> list[StreamResult]:
        return [result for result in self.results if not result.ok or result.text != self.expected_text]

    def first_chunk_ms(self, fraction: float) -> float:
        times = [result.first_content for result in self.results if result.first_content is not None]
        return percentile(times, fraction) * 1000

    def chunk_gap_ms(self, fraction: float) -> float:
        gaps = [later - earlier for result in self.results
                for earlier, later in zip(result.content_times, result.content_times[1:])]
        return percentile(gaps, fraction) * 1000

    def peak_concurrent(self) -> int:
        """Return the most streams that were between their first content and their end at once."""
        edges = []
        for result in self.results:
            if result.first_content is not None:
                edges.append((result.started + result.first_content, 1))
                edges.append((result.started + result.ended, -1))
        open_streams = peak = 0
        for _, change in sorted(edges):
            open_streams += change
            peak = max(peak, open_streams)
        return peak

    def failure_sample(self) -> str:
        for result in self.failures:
            if result.error:
                return result.error[:200]
            if not result.finished:
                return "stream ended without its final event"
            return f"text differs from the fake's answer ({len(result.text)} characters)"
        return ""


async def _run_requests(target: Target, concurrency: int, max_requests: int, max_seconds: float,
                        meter: CpuMeter) -> RequestStats:
    connections = [Connection(target.host, target.port) for _ in range(concurrency)]

    async def warm_up(connection: Connection) -> None:
        for _ in range(WARMUP_REQUESTS_PER_CONNECTION):
            await post(connection, target.plain_request)

    await asyncio.gather(*(warm_up(connection) for connection in connections))

    latencies: list[float] = []
    error_samples: list[str] = []
    errors = 0
    remaining = max_requests
    deadline = time.perf_counter() + max_seconds

    async def worker(connection: Connection) -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            started = time.perf_counter()
            try:
                status, body = await post(connection, target.plain_request)
            except (ProtocolError, OSError) as error:
                status, body = 0, str(error).encode()
            if status == 200:
                latencies.append(time.perf_counter() - started)
                continue
            errors += 1
            if len(error_samples) < MAX_ERROR_SAMPLES:
                error_samples.append(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")

    with meter:
        started = time.perf_counter()
        await asyncio.gather(*(worker(connection) for connection in connections))
        elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    return RequestStats(concurrency, latencies, elapsed, errors, error_samples, meter.used)


def measure_requests(target: Target, concurrency: int, max_requests: int, max_seconds: float,
                     meter: CpuMeter) -> RequestStats:
    """Send non-streaming requests from ``concurrency`` connections, each waiting for its response."""
    return asyncio.run(_run_requests(target, concurrency, max_requests, max_seconds, meter))


async def _run_streams(target: Target, concurrency: int, streams_per_connection: int,
                       max_seconds: float, expected_text: str) -> StreamStats:
    results: list[StreamResult] = []
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        connection = Connection(target.host, target.port)
        try:
            for _ in range(streams_per_connection):
                if time.perf_counter() >= deadline:
                    return
                try:
                    results.append(await stream(connection, target.stream_request, target.openai_events))
                except (ProtocolError, OSError) as error:
                    results.append(StreamResult(error=str(error)))
                    connection.close()
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return StreamStats(concurrency, results, expected_text, time.perf_counter() - started)


def measure_streams(target: Target, concurrency: int, streams_per_connection: int, max_seconds: float,
                    expected_text: str) -> StreamStats:
    """Run ``concurrency`` connections that each run streaming requests one after another."""
    return asyncio.run(_run_streams(target, concurrency, streams_per_connection, max_seconds, expected_text))


async def _run_stream_burst(target: Target, count: int, timeout: float, expected_text: str) -> StreamStats:
    connections = [Connection(target.host, target.port) for _ in range(count)]
    # A connection that fails here is opened again, and its failure recorded, by stream().
    await asyncio.gather(*(connection.connect() for connection in connections), return_exceptions=True)

    async def one(connection: Connection) -> StreamResult:
        try:
            return await stream(connection, target.stream_request, target.openai_events)
        except (ProtocolError, OSError) as error:
            return StreamResult(error=str(error))
        finally:
            connection.close()

    started = time.perf_counter()
    tasks = [asyncio.create_task(one(connection)) for connection in connections]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    results = [task.result() for task in done]
    results += [StreamResult(error=f"not finished within {timeout:.0f} s") for _ in pending]
    for connection in connections:
        connection.close()
    return StreamStats(count, results, expected_text, time.perf_counter() - started)


def measure_stream_burst(target: Target, count: int, timeout: float, expected_text: str) -> StreamStats:
    """Open ``count`` connections, then start one stream on each at the same moment."""
    return asyncio.run(_run_stream_burst(target, count, timeout, expected_text))
