"""Logging set-up: one format, the request id on every line, API keys scrubbed."""

from __future__ import annotations

import logging
import sys

from flask import g, has_request_context

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
REDACTED = "[redacted]"


class RequestContextFilter(logging.Filter):
    """Add ``request_id`` to each record and remove the caller's API key from its text.

    Code never passes a key to the logger on purpose; the scrub is a second line of
    defence against an upstream message or exception that echoes it back.
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


def configure_logging(level: str) -> None:
    """Install one stderr handler on the root logger; repeated calls replace it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "relay_handler", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.relay_handler = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs every upstream URL at DEBUG; keep it quiet unless asked for.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, logging.getLevelName(level)))
