"""Measure the relay's overhead against the fake 1min.ai: ``python -m bench.run``.

One run starts the fake and the relay as subprocesses on 127.0.0.1, measures both
directly and through the relay in several rounds, takes the median of each number
across rounds, prints a Markdown report and writes it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

from bench.client import build_request
from bench.patterns import (
    CpuMeter,
    RequestStats,
    StreamStats,
    Target,
    measure_requests,
    measure_stream_burst,
    measure_streams,
)
from bench.report import Rounds, cpu_model, load_average, number, table, write_section
from bench.servers import LOOPBACK, REPO_ROOT, ServerGroup, start_fake, start_relay
from tests.fake_onemin.chat import default_answer

MODEL = "gpt-4o-mini"
PROMPT = "Write one sentence about benchmarks."
API_KEY = "test-key-1"
CHUNK_DELAY = 0.01
CHUNK_SIZE = 4
REPLY_CHARS = 200
# Burst streams last 2.5 s at 10 ms per chunk, longer than it takes to start them all,
# so that they overlap.
BURST_REPLY_CHARS = 1000
REQUEST_CONCURRENCY = (1, 16, 64)
STREAM_CONCURRENCY = (1, 32)
BURST_STEPS = (50, 100, 200, 300)

TARGET_OVERHEAD_MS = 1.5
TARGET_RPS = 800
TARGET_FIRST_CHUNK_MS = 10.0
TARGET_STREAMS = 200
TARGET_RSS_MB = 150


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every measurement; medians are reported")
    parser.add_argument("--seconds", type=float, default=5.0, help="time limit of one non-streaming measurement")
    parser.add_argument("--max-requests", type=int, default=20000, help="request limit of one measurement")
    parser.add_argument("--stream-seconds", type=float, default=8.0, help="time limit of one streaming measurement")
    parser.add_argument("--burst-steps", default=",".join(map(str, BURST_STEPS)),
                        help="comma-separated counts of simultaneous streams, tried in order until one fails")
    parser.add_argument("--burst-timeout", type=float, default=60.0, help="seconds one burst step may take")
    parser.add_argument("--threads", type=int, default=400, help="WAITRESS_THREADS of the relay")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md",
                        help="Markdown page whose benchmark section is replaced")
    parser.add_argument("--no-write", action="store_true", help="print the report without writing the page")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.max_requests < 1 or args.stream_seconds <= 0:
        parser.error("--rounds, --seconds, --max-requests and --stream-seconds must be positive")
    try:
        args.burst_steps = sorted({int(step) for step in args.burst_steps.split(",") if step.strip()})
    except ValueError:
        parser.error(f"--burst-steps must be integers separated by commas, got {args.burst_steps!r}")
    return args


def make_targets(fake_port: int, relay_port: int) -> tuple[Target, Target]:
    """Build the direct and the relayed requests, which send the fake the same prompt."""
    upstream_body = {"type": "UNIFY_CHAT_WITH_AI", "model": MODEL, "promptObject": {"prompt": PROMPT}}
    direct_headers = {"API-KEY": API_KEY}
    direct = Target(
        "direct", LOOPBACK, fake_port,
        build_request(LOOPBACK, fake_port, "/api/chat-with-ai", direct_headers, upstream_body),
        build_request(LOOPBACK, fake_port, "/api/chat-with-ai?isStreaming=true",
                      {**direct_headers, "Accept": "text/event-stream"}, upstream_body),
        openai_events=False,
    )
    chat_body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
    relay_headers = {"Authorization": f"Bearer {API_KEY}"}
    relayed = Target(
        "relay", LOOPBACK, relay_port,
        build_request(LOOPBACK, relay_port, "/v1/chat/completions", relay_headers, chat_body),
        build_request(LOOPBACK, relay_port, "/v1/chat/completions", relay_headers, {**chat_body, "stream": True}),
        openai_events=True,
    )
    return direct, relayed


def record_requests(rounds: Rounds, errors: dict[str, int], direct: RequestStats, relayed: RequestStats) -> None:
    prefix = f"req.{direct.concurrency}"
    for name, stats in (("direct", direct), ("relay", relayed)):
        for label, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            rounds.add(f"{prefix}.{name}.{label}", stats.latency_ms(fraction))
        rounds.add(f"{prefix}.{name}.rps", stats.requests_per_second)
        rounds.add(f"{prefix}.{name}.client_cpu", stats.cpu["client"] / stats.elapsed * 100)
        errors[f"{prefix}.{name}"] = errors.get(f"{prefix}.{name}", 0) + stats.errors
        for sample in stats.error_samples[:1]:
            print(f"  error sample ({name}, concurrency {stats.concurrency}): {sample}", file=sys.stderr)
    rounds.add(f"{prefix}.added_p50", relayed.latency_ms(0.5) - direct.latency_ms(0.5))
    rounds.add(f"{prefix}.latency_ratio", relayed.latency_ms(0.5) / direct.latency_ms(0.5))
    rounds.add(f"{prefix}.rps_ratio", relayed.requests_per_second / direct.requests_per_second)
    rounds.add(f"{prefix}.relay_cpu_us", relayed.cpu_us_per_request("relay"))


def record_streams(rounds: Rounds, errors: dict[str, int], direct: StreamStats, relayed: StreamStats) -> None:
    prefix = f"stream.{direct.concurrency}"
    for name, stats in (("direct", direct), ("relay", relayed)):
        rounds.add(f"{prefix}.{name}.first_p50", stats.first_chunk_ms(0.5))
        rounds.add(f"{prefix}.{name}.first_p95", stats.first_chunk_ms(0.95))
        rounds.add(f"{prefix}.{name}.gap_p50", stats.chunk_gap_ms(0.5))
        rounds.add(f"{prefix}.{name}.gap_p95", stats.chunk_gap_ms(0.95))
        rounds.add(f"{prefix}.{name}.count", len(stats.results))
        errors[f"{prefix}.{name}"] = errors.get(f"{prefix}.{name}", 0) + len(stats.failures)
        if stats.failures:
            print(f"  stream failure ({name}, {stats.concurrency} streams): {stats.failure_sample()}", file=sys.stderr)
    rounds.add(f"{prefix}.first_overhead", relayed.first_chunk_ms(0.5) - direct.first_chunk_ms(0.5))


def run_round(args: argparse.Namespace, direct: Target, relayed: Target, probes: dict, rounds: Rounds,
              errors: dict[str, int]) -> None:
    for concurrency in REQUEST_CONCURRENCY:
        results = [measure_requests(target, concurrency, args.max_requests, args.seconds, CpuMeter(probes))
                   for target in (direct, relayed)]
        record_requests(rounds, errors, *results)
        print(f"  requests, concurrency {concurrency}: direct p50 {results[0].latency_ms(0.5):.2f} ms, "
              f"relay p50 {results[1].latency_ms(0.5):.2f} ms, relay {results[1].requests_per_second:.0f} req/s",
              file=sys.stderr)
    expected = default_answer(MODEL, PROMPT, REPLY_CHARS)
    stream_seconds = REPLY_CHARS / CHUNK_SIZE * CHUNK_DELAY
    for concurrency in STREAM_CONCURRENCY:
        per_connection = max(2, int(args.stream_seconds / stream_seconds / (1 if concurrency == 1 else 2)))
        results = [measure_streams(target, concurrency, per_connection, args.stream_seconds, expected)
                   for target in (direct, relayed)]
        record_streams(rounds, errors, *results)
        print(f"  streams, {concurrency} at once: first chunk direct {results[0].first_chunk_ms(0.5):.1f} ms, "
              f"relay {results[1].first_chunk_ms(0.5):.1f} ms", file=sys.stderr)


def run_bursts(args: argparse.Namespace, relayed: Target) -> list[StreamStats]:
    """Step up the number of simultaneous streams through the relay until a step fails."""
    expected = default_answer(MODEL, PROMPT, BURST_REPLY_CHARS)
    bursts = []
    for count in args.burst_steps:
        stats = measure_stream_burst(relayed, count, args.burst_timeout, expected)
        bursts.append(stats)
        print(f"  burst of {count} streams: {count - len(stats.failures)} ok", file=sys.stderr)
        if stats.failures:
            print(f"  first failure: {stats.failure_sample()}", file=sys.stderr)
            break
    return bursts


def render(args: argparse.Namespace, rounds: Rounds, errors: dict[str, int], bursts: list[StreamStats],
           rss_kib: dict[str, int], started: datetime, loads: tuple[str, str]) -> str:
    med = rounds.median
    request_rows = []
    for concurrency in REQUEST_CONCURRENCY:
        prefix = f"req.{concurrency}"
        request_rows.append([
            str(concurrency),
            " / ".join(number(med(f"{prefix}.direct.{label}")) for label in ("p50", "p95", "p99")),
            " / ".join(number(med(f"{prefix}.relay.{label}")) for label in ("p50", "p95", "p99")),
            number(med(f"{prefix}.added_p50")),
            number(med(f"{prefix}.latency_ratio"), 1) + "×",
            number(med(f"{prefix}.direct.rps"), 0),
            number(med(f"{prefix}.relay.rps"), 0),
            number(med(f"{prefix}.rps_ratio")),
            number(med(f"{prefix}.relay_cpu_us"), 0),
            str(errors.get(f"{prefix}.direct", 0) + errors.get(f"{prefix}.relay", 0)),
        ])
    stream_rows = []
    for concurrency in STREAM_CONCURRENCY:
        prefix = f"stream.{concurrency}"
        stream_rows.append([
            str(concurrency),
            f"{number(med(f'{prefix}.direct.first_p50'), 1)} / {number(med(f'{prefix}.direct.first_p95'), 1)}",
            f"{number(med(f'{prefix}.relay.first_p50'), 1)} / {number(med(f'{prefix}.relay.first_p95'), 1)}",
            number(med(f"{prefix}.first_overhead"), 1),
            f"{number(med(f'{prefix}.direct.gap_p50'), 1)} / {number(med(f'{prefix}.direct.gap_p95'), 1)}",
            f"{number(med(f'{prefix}.relay.gap_p50'), 1)} / {number(med(f'{prefix}.relay.gap_p95'), 1)}",
            number(med(f"{prefix}.relay.count"), 0),
            str(errors.get(f"{prefix}.direct", 0) + errors.get(f"{prefix}.relay", 0)),
        ])
    burst_rows = [[str(stats.concurrency), str(stats.concurrency - len(stats.failures)), str(stats.peak_concurrent()),
                   number(stats.first_chunk_ms(0.5), 0), number(stats.first_chunk_ms(0.95), 0),
                   number(stats.elapsed, 1)] for stats in bursts]
    served = max([stats.concurrency for stats in bursts if not stats.failures], default=0)
    tried_all = len(bursts) == len(args.burst_steps) and not bursts[-1].failures

    overhead = med("req.1.added_p50")
    rps = med("req.64.relay.rps")
    first = med("stream.32.first_overhead")
    gap_added = med("stream.32.relay.gap_p50") - med("stream.32.direct.gap_p50")
    rss_mb = max(rss_kib.values()) / 1024
    summary_rows = [
        ["added p50 latency, concurrency 1", f"≤ {TARGET_OVERHEAD_MS} ms", f"{number(overhead)} ms",
         rounds.spread("req.1.added_p50"), _verdict(overhead <= TARGET_OVERHEAD_MS)],
        ["relay requests/s, concurrency 64", f"≥ {TARGET_RPS}", number(rps, 0),
         rounds.spread("req.64.relay.rps"), _verdict(rps >= TARGET_RPS)],
        ["first-chunk overhead, 32 streams", f"≤ {TARGET_FIRST_CHUNK_MS:.0f} ms", f"{number(first, 1)} ms",
         rounds.spread("stream.32.first_overhead"), _verdict(first <= TARGET_FIRST_CHUNK_MS)],
        ["added p50 gap between chunks, 32 streams", "no buffering", f"{number(gap_added, 1)} ms", "",
         _verdict(abs(gap_added) < CHUNK_DELAY * 1000 / 2)],
        ["simultaneous streams without an error", f"≥ {TARGET_STREAMS}",
         f"{served}{'+' if tried_all else ''}", "", _verdict(served >= TARGET_STREAMS)],
        ["relay peak RSS (VmHWM)", f"< {TARGET_RSS_MB} MB", f"{rss_mb:.0f} MB",
         f"{rss_kib['rounds'] / 1024:.0f} MB after the rounds, {rss_kib['bursts'] / 1024:.0f} MB after the bursts",
         _verdict(rss_mb < TARGET_RSS_MB)],
    ]

    command = "python -m bench.run" + ("" if not sys.argv[1:] else " " + shlex.join(sys.argv[1:]))
    return "\n\n".join([
        f"## Latest run\n\n"
        f"- Command: `{command}` (`make bench` runs `python -m bench.run`)\n"
        f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}\n"
        f"- Machine: {_nproc()} CPUs, {cpu_model()}, Python {sys.version.split()[0]}; "
        f"load average {loads[0]} before and {loads[1]} after the run\n"
        f"- Relay: `python app.py` with RATE_LIMIT=off, LOG_LEVEL=WARNING, WAITRESS_THREADS={args.threads}, "
        f"in-memory storage; fake 1min.ai: `python -m tests.fake_onemin --chunk-delay {CHUNK_DELAY} "
        f"--chunk-size {CHUNK_SIZE} --reply-chars {REPLY_CHARS}`\n"
        f"- Every number is the median of {args.rounds} rounds, and ranges give the lowest and highest round. "
        f"The machine is shared with other engineers' test runs, so single rounds vary.",
        "### Against the targets\n\n" + table(["metric", "target", "median", "range", "met"], summary_rows),
        "### Non-streaming chat (`POST /api/chat-with-ai` direct vs `POST /v1/chat/completions`)\n\n" + table(
            ["concurrency", "direct p50 / p95 / p99 ms", "relay p50 / p95 / p99 ms", "added p50 ms",
             "latency ratio", "direct req/s", "relay req/s", "throughput ratio", "relay CPU µs/req", "errors"],
            request_rows)
        + f"\n\nEach measurement runs for {args.seconds:g} s or {args.max_requests} requests, after 5 warm-up "
        f"requests per connection. Relay CPU µs/req is the relay process's user plus system time divided by "
        f"the requests served. The client used {number(med('req.64.direct.client_cpu'), 0)} % of one core "
        f"while driving the fake directly at concurrency 64, so the client is not the limit.",
        f"### Streaming (fake sends a {CHUNK_SIZE}-character chunk every {CHUNK_DELAY * 1000:.0f} ms, "
        f"{REPLY_CHARS // CHUNK_SIZE} chunks)\n\n" + table(
            ["streams", "direct first chunk p50 / p95 ms", "relay first chunk p50 / p95 ms",
             "first-chunk overhead ms", "direct chunk gap p50 / p95 ms", "relay chunk gap p50 / p95 ms",
             "relay streams", "errors"],
            stream_rows)
        + "\n\nFirst chunk is the time from writing the request to reading the first non-empty content "
        "delta. Chunk gap is the time between consecutive content deltas of one stream; a buffering "
        "relay would show gaps near zero and multiples of the fake's interval.",
        "### Simultaneous streams through the relay\n\n" + table(
            ["streams started", "completed without an error", "peak streaming at once",
             "first chunk p50 ms", "first chunk p95 ms", "seconds"],
            burst_rows)
        + f"\n\nThis phase uses its own fake and relay, with {BURST_REPLY_CHARS}-character answers "
        f"({BURST_REPLY_CHARS // CHUNK_SIZE} chunks) so that the streams overlap. Each step opens all "
        "connections first, then starts every stream at once; a stream counts only when it ends with "
        "`[DONE]` and carries exactly the fake's answer. Peak streaming at once counts the streams "
        "between their first and last chunk at the same moment.",
    ]) + "\n"


def _verdict(met: bool) -> str:
    return "yes" if met else "**no**"


def _nproc() -> int:
    return len(os.sched_getaffinity(0))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(timezone.utc)
    load_before = load_average()
    rounds, errors = Rounds(), {}
    with ServerGroup() as servers:
        fake = servers.add(start_fake(CHUNK_DELAY, CHUNK_SIZE, REPLY_CHARS))
        relay = servers.add(start_relay(fake, args.threads))
        direct, relayed = make_targets(fake.port, relay.port)
        probes = {"fake": fake.cpu_seconds, "relay": relay.cpu_seconds}
        for index in range(args.rounds):
            print(f"round {index + 1} of {args.rounds}", file=sys.stderr)
            run_round(args, direct, relayed, probes, rounds, errors)
        rss_kib = {"rounds": relay.memory_kib("VmHWM")}
    # Simultaneous streams need longer replies, so they get a fake and a relay of their own.
    with ServerGroup() as servers:
        fake = servers.add(start_fake(CHUNK_DELAY, CHUNK_SIZE, BURST_REPLY_CHARS))
        relay = servers.add(start_relay(fake, args.threads))
        print("simultaneous streams", file=sys.stderr)
        bursts = run_bursts(args, make_targets(fake.port, relay.port)[1])
        rss_kib["bursts"] = relay.memory_kib("VmHWM")
    report = render(args, rounds, errors, bursts, rss_kib, started, (load_before, load_average()))
    print(report)
    if not args.no_write:
        write_section(args.output, report)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
