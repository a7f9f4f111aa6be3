"""Logging set-up: one format, the request id on every line, API keys scrubbed."""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from typing import TextIO

from flask import g, has_request_context

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
REDACTED = "[redacted]"


class RequestContextFilter(logging.Filter):
    """Add ``request_id`` to each record and remove the caller's API key from its text.

    Code never passes a key to the logger on purpose. The scrub is a second line of
    defence against an upstream message or exception that echoes the key back.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = "-"
        api_key = None
        if has_request_context():
            request_id = g.get("request_id", "-")
            api_key = g.get("api_key")
        if not hasattr(record, "request_id") or record.request_id in (None, "-"):
            record.request_id = request_id
        if api_key:
            message = record.getMessage()
            if api_key in message:
                record.msg = message.replace(api_key, REDACTED)
                record.args = None
        return True


class BackgroundLineWriter:
    """Write text lines to a stream from one thread, joining the lines that wait into one write.

    Callers only append to a queue, so a log line costs a request thread neither a write
    system call nor a wait for the stream. Under load each of those was a thread switch.
    NOTE: lines still queued when a signal ends the process without Python's exit handlers
    (SIGKILL, or SIGTERM while the relay installs no handler for it) are lost.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._closed = False
        self._start()
        # The writer thread does not survive a fork, so a forked child starts its own.
        os.register_at_fork(after_in_child=self._start)

    def _start(self) -> None:
        if self._closed:
            return
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def write_line(self, line: str) -> None:
        self._lines.put(line)

    def _run(self) -> None:
        while True:
            line = self._lines.get()
            batch: list[str] = []
            while line is not None:
                batch.append(line)
                try:
                    line = self._lines.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self._stream.write("\n".join(batch) + "\n")
                    self._stream.flush()
                except (OSError, ValueError):
                    pass  # stderr is closed, so there is nowhere left to report it
            if line is None:
                return

    def close(self, timeout: float = 5.0) -> None:
        """Write the lines still queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._lines.put(None)
        self._thread.join(timeout)


class BackgroundStreamHandler(logging.Handler):
    """A logging handler that formats in the caller's thread and writes in a background one."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._writer = BackgroundLineWriter(stream)

    def handle(self, record: logging.LogRecord) -> bool:
        # Unlike Handler.handle, this takes no handler lock: emit() is thread-safe, and the
        # lock made concurrent requests wait for each other.
        passed = self.filter(record)
        if passed:
            self.emit(record)
        return bool(passed)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.write_line(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)

    def close(self) -> None:
        self._writer.close()
        super().close()


def configure_logging(level: str) -> None:
    """Install one stderr handler on the root logger; repeated calls replace it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "relay_handler", False):
            root.removeHandler(handler)
            handler.close()
    handler = BackgroundStreamHandler(sys.stderr)
    handler.relay_handler = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs every upstream URL at DEBUG; keep it quiet unless asked for.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, logging.getLevelName(level)))
