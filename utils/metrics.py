"""Prometheus metrics of one relay application, served at ``GET /metrics``.

Every app that ``create_app`` builds gets a `CollectorRegistry` of its own, so several
apps in one process (as in the tests) never share series. Labels take bounded values
only: the Flask URL rule (never the raw path), a known HTTP method, model ids that the
catalog lists, and upstream paths cut to their first two segments. Each replica keeps
its own counts, so Prometheus scrapes every replica rather than the load balancer.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
UNMATCHED_ROUTE = "unmatched"
# Label for a model id that the catalog does not list; client input never becomes a label value.
UNKNOWN_MODEL = "unknown"
OTHER = "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
EVENT_STREAM = "text/event-stream"

# Values of the ``kind`` label of relay_upstream_errors_total.
TIMEOUT = "timeout"
CONNECTION = "connection"
ERROR_EVENT = "error_event"


def http_error_kind(status: int) -> str:
    """Return the error kind of an upstream HTTP status, such as ``http_5xx``."""
    return f"http_{status // 100}xx"


def upstream_path_label(url: str, api_url: str) -> str:
    """Return the first two path segments of an upstream URL, which drops ids such as uuids."""
    if not url.startswith(api_url):
        return OTHER
    path = url[len(api_url):].split("?", 1)[0]
    segments = [segment for segment in path.split("/") if segment][:2]
    return "/" + "/".join(segments)


class RelayMetrics:
    """The relay's metrics and the helpers that record them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "relay_requests",
            "Requests answered, by Flask URL rule, method, HTTP status and model.",
            ["route", "method", "status", "model"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "relay_request_duration_seconds",
            "Time from the start of a request until its response was closed; for a stream, the whole stream.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_duration = Histogram(
            "relay_upstream_request_duration_seconds",
            "Time until 1min.ai answered: the whole body, or only the headers for a streamed call.",
            ["method", "path"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_stream_duration = Histogram(
            "relay_upstream_stream_duration_seconds",
            "Time from sending a streamed 1min.ai call until its response was closed.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "relay_upstream_errors",
            "Failed 1min.ai calls by kind: timeout, connection, http_4xx, http_5xx or error_event.",
            ["kind"],
            registry=self.registry,
        )
        self.open_streams = Gauge(
            "relay_open_streams", "Event streams open to clients now.", registry=self.registry
        )
        self.requests_in_progress = Gauge(
            "relay_requests_in_progress",
            "API requests holding a request slot now (service endpoints take none).",
            registry=self.registry,
        )
        self.request_slots = Gauge(
            "relay_request_slots",
            "API requests allowed in progress at once; beyond it the relay answers 503.",
            registry=self.registry,
        )
        self.rejected_requests = Counter(
            "relay_rejected_requests",
            "API requests answered 503 because every request slot was taken.",
            registry=self.registry,
        )

    def watch_storage(self, storage: Any) -> None:
        """Export the state of ``storage`` (read at scrape time)."""
        self.registry.register(StorageStateCollector(storage))

    def count_upstream_error(self, kind: str) -> None:
        self.upstream_errors.labels(kind).inc()

    def observe_upstream(self, method: str, path: str, seconds: float) -> None:
        self.upstream_duration.labels(_method_label(method), path).observe(seconds)

    def init_app(self, app: Flask, is_known_model: Callable[[str], bool]) -> None:
        """Record every request that ``app`` serves; ``is_known_model`` decides the model label."""
        app.before_request(_mark_start)

        def record(response: Response) -> Response:
            return self._record_request(response, is_known_model)

        app.after_request(record)

    def _record_request(self, response: Response, is_known_model: Callable[[str], bool]) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        labels = (route, _method_label(request.method), str(response.status_code), _model_label(is_known_model))
        started = g.get("metrics_started", time.perf_counter())
        streaming = response.mimetype == EVENT_STREAM
        if streaming:
            self.open_streams.inc()

        def finish() -> None:
            if streaming:
                self.open_streams.dec()
            self.requests.labels(*labels).inc()
            self.request_duration.labels(route).observe(time.perf_counter() - started)

        # Runs when the server closes the response, which for a stream is when it ends.
        response.call_on_close(finish)
        return response


def _mark_start() -> None:
    g.metrics_started = time.perf_counter()


def _method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else OTHER


def _model_label(is_known_model: Callable[[str], bool]) -> str:
    model = g.get("model")
    if not model:
        return ""
    return model if isinstance(model, str) and is_known_model(model) else UNKNOWN_MODEL


class StorageStateCollector(Collector):
    """Export which storage backend serves requests, read from the storage at scrape time.

    The state changes only when a storage call fails or a recovery probe succeeds, so
    during a quiet period it can lag behind memcached by the time until the next call.
    """

    def __init__(self, storage: Any) -> None:
        self._storage = storage

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        # Only FallbackStorage has ``degraded``; plain memory storage has no memcached to lose.
        degraded = getattr(self._storage, "degraded", None)
        backend = GaugeMetricFamily(
            "relay_storage_backend",
            "1 for the storage backend that serves requests now, 0 for a configured one that does not.",
            labels=["backend"],
        )
        if degraded is None:
            backend.add_metric(["memory"], 1)
        else:
            backend.add_metric(["memcached"], 0 if degraded else 1)
            backend.add_metric(["memory"], 1 if degraded else 0)
        yield backend
        yield GaugeMetricFamily(
            "relay_storage_degraded",
            "1 while memcached is configured but unreachable, so storage is served from memory.",
            value=1 if degraded else 0,
        )
