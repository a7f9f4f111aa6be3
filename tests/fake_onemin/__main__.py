"""Run the fake 1min.ai alone: `python -m tests.fake_onemin --port 8100`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import DEFAULT_KEYS, FakeOneMin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_onemin",
                                     description="Serve a fake 1min.ai API on loopback.")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--chunk-delay", type=float, default=0.0,
                        help="seconds between streamed content events")
    parser.add_argument("--chunk-size", type=int, default=4,
                        help="characters per streamed content event")
    parser.add_argument("--reply-chars", type=int, default=None,
                        help="pad or cut the default chat answer to this many characters")
    parser.add_argument("--key", action="append", dest="keys",
                        help="accepted API key, repeatable (default: test-key-1, test-key-2)")
    args = parser.parse_args(argv)

    try:
        fake = FakeOneMin(host=args.host, port=args.port, keys=args.keys or DEFAULT_KEYS)
        fake.set(chunk_delay=args.chunk_delay, chunk_size=args.chunk_size,
                 reply_chars=args.reply_chars)
    except ValueError as error:
        parser.error(str(error))
    fake.start()
    print(fake.base_url, flush=True)

    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
