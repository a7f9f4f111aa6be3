"""Load test: streaming and plain chat completions through the relay, checked byte for byte.

Starts the fake 1min.ai (``python -m tests.fake_onemin``) and the relay (``python app.py``) as
separate processes on 127.0.0.1, then for ``--duration`` seconds keeps ``--streams`` streaming
clients busy (each starts its next stream when one ends) and sends ``--rps`` plain requests per
second. Every answer is compared with the text the fake sent, which is deterministic for a
prompt. All traffic goes to 127.0.0.1, every request has a timeout, and the run stops by itself
after the duration plus a bounded drain.

Run from the repository root::

    python -m bench.load                      # 200 streams + 50 requests/s for 60 s
    python -m bench.load --duration 10 --streams 50 --rps 10 --json result.json

Exits 0 when every response was complete and exact, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fake_onemin import default_answer
from tests.processes import LOOPBACK, Process, start_fake, start_relay

MODEL = "gpt-4o-mini"
API_KEY = "test-key-1"
CHUNK_SIZE = 4
REQUEST_TIMEOUT = 60.0
# In-flight requests get this long after the duration ends; then the run stops regardless.
DRAIN_TIMEOUT = 90.0
SAMPLE_INTERVAL = 0.5


@dataclass
class Tally:
    """Outcomes and timings of one kind of request."""

    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    first_byte_seconds: list[float] = field(default_factory=list)
    total_seconds: list[float] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def summary(self) -> dict:
        return {
            "ok": self.ok,
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
            "first_byte_ms": _percentiles(self.first_byte_seconds),
            "total_ms": _percentiles(self.total_seconds),
        }


@dataclass
class Peaks:
    """The relay process's resource use, sampled every SAMPLE_INTERVAL seconds."""

    rss_kib: int = 0
    threads: int = 0
    requests_in_progress: float = 0
    open_streams: float = 0


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 1)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1.0), "mean": round(statistics.mean(ordered) * 1000, 1)}


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, first_byte: float) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.first_byte = first_byte


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()


async def post(port: int, path: str, payload: dict) -> Response:
    """POST JSON over a new connection and read the whole response (HTTP/1.1, Connection: close)."""
    body = json.dumps(payload).encode()
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        status_line = await reader.readline()
        first_byte = time.perf_counter() - started
        headers = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        return Response(status, headers, await _read_body(reader, headers), first_byte)
    finally:
        writer.close()


def check_stream(response: Response, expected: str) -> str | None:
    """Return what is wrong with a streamed response, or None when it is complete and exact."""
    if response.status != 200:
        return f"http_{response.status}"
    events = [event for event in response.body.decode("utf-8").split("\n\n") if event]
    if not events or events[-1] != "data: [DONE]":
        return "no_done"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    if len({chunk["id"] for chunk in chunks}) != 1:
        return "mixed_ids"
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    if text.encode("utf-8") != expected.encode("utf-8"):
        return "text_mismatch"
    if chunks[-1]["choices"][0]["finish_reason"] != "stop":
        return "finish_reason"
    return None


def check_plain(response: Response, expected: str) -> str | None:
    if response.status != 200:
        return f"http_{response.status}"
    choice = json.loads(response.body)["choices"][0]
    if choice["message"]["content"].encode("utf-8") != expected.encode("utf-8"):
        return "text_mismatch"
    if choice["finish_reason"] != "stop":
        return "finish_reason"
    return None


async def timed_request(port: int, prompt: str, stream: bool, reply_chars: int, tally: Tally) -> None:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    started = time.perf_counter()
    try:
        response = await asyncio.wait_for(post(port, "/v1/chat/completions", payload), REQUEST_TIMEOUT)
    except asyncio.TimeoutError:
        tally.fail("timeout")
        return
    except (OSError, asyncio.IncompleteReadError, ValueError) as error:
        tally.fail(type(error).__name__)
        return
    expected = default_answer(MODEL, prompt, reply_chars)
    problem = (check_stream if stream else check_plain)(response, expected)
    if problem:
        tally.fail(problem)
        return
    tally.ok += 1
    tally.first_byte_seconds.append(response.first_byte)
    tally.total_seconds.append(time.perf_counter() - started)


async def stream_client(port: int, number: int, deadline: float, reply_chars: int, tally: Tally) -> None:
    sequence = 0
    while time.monotonic() < deadline:
        sequence += 1
        await timed_request(port, f"stream client {number} request {sequence}", True, reply_chars, tally)


async def plain_sender(port: int, rps: float, deadline: float, reply_chars: int, tally: Tally) -> None:
    """Send plain requests at a fixed rate whatever the latency (an open-loop arrival process)."""
    tasks = []
    sequence = 0
    started = time.monotonic()
    while time.monotonic() < deadline:
        sequence += 1
        tasks.append(asyncio.create_task(timed_request(port, f"plain request {sequence}", False, reply_chars, tally)))
        await asyncio.sleep(max(0.0, started + sequence / rps - time.monotonic()))
    await asyncio.gather(*tasks)


def read_proc_status(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "Threads"):
            values[name] = int(value.split()[0])
    return values


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def scrape_gauges(port: int) -> dict[str, float]:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(f"GET /metrics HTTP/1.1\r\nHost: {LOOPBACK}\r\nConnection: close\r\n\r\n".encode())
        text = (await reader.read()).decode()
    finally:
        writer.close()
    gauges = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("relay_requests_in_progress", "relay_open_streams", "relay_rejected_requests_total"):
            gauges[name] = float(value)
    return gauges


async def monitor(relay: Process, port: int, peaks: Peaks, stop: asyncio.Event) -> None:
    while not stop.is_set():
        status = read_proc_status(relay.pid)
        peaks.rss_kib = max(peaks.rss_kib, status["VmHWM"])
        peaks.threads = max(peaks.threads, status["Threads"])
        gauges = await scrape_gauges(port)
        peaks.requests_in_progress = max(peaks.requests_in_progress, gauges.get("relay_requests_in_progress", 0))
        peaks.open_streams = max(peaks.open_streams, gauges.get("relay_open_streams", 0))
        try:
            await asyncio.wait_for(stop.wait(), SAMPLE_INTERVAL)
        except asyncio.TimeoutError:
            pass


async def run_load(relay: Process, fake: Process, options: argparse.Namespace) -> dict:
    port = int(relay.base_url.rsplit(":", 1)[1])
    reply_chars = options.chunks * CHUNK_SIZE
    streams, plain, peaks = Tally(), Tally(), Peaks()
    stop_monitor = asyncio.Event()
    monitor_task = asyncio.create_task(monitor(relay, port, peaks, stop_monitor))

    cpu_before = {"relay": cpu_seconds(relay.pid), "fake": cpu_seconds(fake.pid), "load": time.process_time()}
    load_average_before = os.getloadavg()[0]
    started = time.monotonic()
    deadline = started + options.duration
    clients = [stream_client(port, number, deadline, reply_chars, streams) for number in range(options.streams)]
    load = asyncio.gather(plain_sender(port, options.rps, deadline, reply_chars, plain), *clients)

    try:
        await asyncio.wait_for(load, options.duration + DRAIN_TIMEOUT)
    except asyncio.TimeoutError:
        streams.fail("run_did_not_drain")
    elapsed = time.monotonic() - started
    stop_monitor.set()
    await monitor_task
    final = await scrape_gauges(port)

    return {
        "elapsed_seconds": round(elapsed, 1),
        "streams": streams.summary(),
        "plain": plain.summary(),
        "streams_per_second": round(streams.ok / elapsed, 1),
        "plain_per_second": round(plain.ok / elapsed, 1),
        "relay_peak_rss_mib": round(peaks.rss_kib / 1024, 1),
        "relay_os_threads": peaks.threads,
        "relay_peak_requests_in_progress": peaks.requests_in_progress,
        "relay_peak_open_streams": peaks.open_streams,
        "relay_rejected_requests": final.get("relay_rejected_requests_total", 0),
        "cpu_seconds": {
            "relay": round(cpu_seconds(relay.pid) - cpu_before["relay"], 1),
            "fake": round(cpu_seconds(fake.pid) - cpu_before["fake"], 1),
            "load_generator": round(time.process_time() - cpu_before["load"], 1),
        },
        # Other processes on the machine compete for the same cores; the 1-minute load average shows it.
        "load_average_before": load_average_before,
        "load_average_after": os.getloadavg()[0],
    }


def machine() -> dict:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--streams", type=int, default=200, help="concurrent streaming clients (default 200)")
    parser.add_argument("--rps", type=float, default=50.0, help="plain requests per second (default 50)")
    parser.add_argument("--chunks", type=int, default=50, help="content chunks per response (default 50)")
    parser.add_argument("--chunk-delay", type=float, default=0.02, help="seconds between chunks (default 0.02)")
    parser.add_argument("--threads", type=int, default=256, help="the relay's WAITRESS_THREADS (default 256)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    options = parser.parse_args(argv)
    if options.duration <= 0 or options.duration > 600:
        parser.error("--duration must be between 0 and 600 seconds")
    if not 0 < options.streams <= 2000 or not 0 < options.rps <= 1000:
        parser.error("--streams must be 1 to 2000 and --rps greater than 0 and at most 1000")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    fake = start_fake(
        "--chunk-delay", str(options.chunk_delay),
        "--chunk-size", str(CHUNK_SIZE),
        "--reply-chars", str(options.chunks * CHUNK_SIZE),
    )
    try:
        relay = start_relay(fake.base_url, WAITRESS_THREADS=str(options.threads), RATE_LIMIT="off")
        try:
            results = asyncio.run(run_load(relay, fake, options))
        finally:
            results_exit = relay.terminate(timeout=60)
    finally:
        fake.terminate()

    report = {
        "command": "python -m bench.load " + " ".join(argv if argv is not None else sys.argv[1:]),
        "options": {key: str(value) for key, value in vars(options).items()},
        "machine": machine(),
        "results": results,
        "relay_exit_code": results_exit,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if options.json:
        options.json.write_text(text + "\n")
    errors = results["streams"]["errors"] + results["plain"]["errors"]
    return 0 if errors == 0 and results_exit == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
