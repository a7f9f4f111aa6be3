"""1min-relay: an OpenAI-compatible API server in front of 1min.ai.

``create_app()`` builds the Flask application; ``python app.py`` serves it with waitress.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from typing import Any, Mapping

from dotenv import load_dotenv
from flask import Flask, Response, current_app, g, jsonify, request
from flask_cors import CORS
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from routes import audio, completions, files, images, responses, service, text
from routes.functions.shared_func import RelayState, key_id, random_hex_id
from utils.capacity import RequestSlots, slots_for_threads
from utils.catalog import ModelCatalog
from utils.common import OneMinClient, token_encoding
from utils.config import ConfigError, Settings
from utils.errors import (
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    OpenAIError,
    RateLimitError,
    RequestTooLargeError,
)
from utils.logger import configure_logging
from utils.memcached import create_storage, limiter_memcached_client
from utils.metrics import RelayMetrics
from utils.readiness import ReadinessProbe
from utils.server import serve_until_stopped

logger = logging.getLogger("relay")

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
BLUEPRINTS = (service.bp, text.bp, completions.bp, responses.bp, images.bp, audio.bp, files.bp)


def rate_limit_key() -> str:
    """Count requests per API key (hashed), or per client address when no key is sent."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "key:" + key_id(token.strip())
    return "ip:" + (request.remote_addr or "unknown")


def _create_limiter(app: Flask, settings: Settings) -> Limiter:
    storage_uri = "memory://"
    storage_options: dict[str, Any] = {}
    if settings.memcached_host:
        storage_uri = f"memcached://{settings.memcached_host}:{settings.memcached_port}"
        storage_options = {"client_getter": limiter_memcached_client}
    limiter = Limiter(
        rate_limit_key,
        app=app,
        # A disabled limiter registers no request hooks, which saves their cost on
        # every request when no limit is configured.
        enabled=bool(settings.rate_limit),
        default_limits=[settings.rate_limit] if settings.rate_limit else [],
        storage_uri=storage_uri,
        storage_options=storage_options,
        # Its own headers would put Retry-After on every response and overwrite the
        # value passed on from an upstream 429, so only our 429 gets one (below).
        headers_enabled=False,
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        key_prefix="1minrelay",
    )
    limiter.request_filter(lambda: request.method == "OPTIONS")
    limiter.exempt(service.bp)
    return limiter


def _error_response(error: OpenAIError) -> Response:
    response = jsonify(error.to_dict())
    response.status_code = error.status_code
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def _http_error(error: HTTPException) -> Response:
    """Render Flask's own errors (routing, body size, limiter) in OpenAI's shape."""
    if isinstance(error, RateLimitExceeded):
        converted: OpenAIError = RateLimitError(
            f"Rate limit exceeded: {error.description}. Retry after the time given in the Retry-After header.",
            headers={"Retry-After": str(_seconds_until_limit_resets())},
        )
    elif error.code == 404:
        converted = NotFoundError(
            f"Unknown request URL: {request.method} {request.path}. Check the URL and the method.",
            code="unknown_url",
        )
    elif error.code == 405:
        converted = MethodNotAllowedError(
            f"Method {request.method} is not allowed for {request.path}. Allowed: "
            f"{', '.join(error.valid_methods or [])}."
        )
        converted.headers["Allow"] = ", ".join(error.valid_methods or [])
    elif error.code == 413:
        limit = request.max_content_length
        converted = RequestTooLargeError(
            f"The request body is larger than this endpoint's limit of {limit} bytes."
        )
    elif error.code is not None and error.code >= 500:
        # Flask's own 500, for an exception raised while another error was being handled.
        converted = OpenAIError(
            f"The relay failed to process the request (request id {g.get('request_id', '-')})."
        )
        converted.status_code = error.code
    else:
        converted = InvalidRequestError(error.description or error.name)
        converted.status_code = error.code or 400
    return _error_response(converted)


def _seconds_until_limit_resets() -> int:
    limit = current_app.extensions["relay_limiter"].current_limit
    if limit is None:
        return 1
    return max(1, math.ceil(limit.reset_at - time.time()))


def _unexpected_error(error: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return _error_response(
        OpenAIError(f"The relay failed to process the request (request id {g.get('request_id', '-')}).")
    )


def _start_request() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else random_hex_id()


def _finish_request(response: Response) -> Response:
    request_id = g.get("request_id", "-")
    response.headers["X-Request-ID"] = request_id
    started = g.get("started", time.perf_counter())
    method, path, model = request.method, request.path, g.get("model", "-")
    status = response.status_code

    def log_access() -> None:
        duration_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "%s %s model=%s status=%s duration_ms=%.1f",
            method,
            path,
            model,
            status,
            duration_ms,
            extra={"request_id": request_id},
        )

    response.call_on_close(log_access)
    return response


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the relay: settings, logging, storage, upstream client, limiter and blueprints.

    ``config`` maps environment variable names to values and overrides the environment;
    without it, an optional ``.env`` file is loaded first.
    """
    if config is None:
        load_dotenv()
    settings = Settings.from_environment(config)
    configure_logging(settings.log_level)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    # Werkzeug would redirect a path containing "//" to the merged path with an HTML page. A
    # client of a JSON API gets an OpenAI 404 for it instead.
    app.url_map.merge_slashes = False

    storage = create_storage(
        settings.memcached_host, settings.memcached_port, settings.waitress_threads, settings.memory_storage_max_items
    )
    metrics = RelayMetrics()
    metrics.watch_storage(storage)
    client = OneMinClient(
        settings.one_min_api_url,
        settings.one_min_asset_url,
        pool_size=settings.waitress_threads,
        connect_timeout=settings.upstream_connect_timeout,
        read_timeout=settings.upstream_read_timeout,
        metrics=metrics,
    )
    catalog = ModelCatalog(
        client,
        storage,
        settings.models_cache_seconds,
        settings.subset_of_one_min_permitted_models,
        settings.permit_models_from_subset_only,
    )
    readiness = ReadinessProbe(client, storage)
    app.extensions["relay"] = RelayState(settings, storage, client, catalog, metrics, readiness)

    CORS(app, origins=list(settings.cors_origins), expose_headers=["X-Request-ID", "Retry-After"])
    app.before_request(_start_request)
    app.after_request(_finish_request)
    metrics.init_app(app, lambda model: catalog.get(model) is not None)
    # Before the limiter, so a request turned away for capacity does not count against a key's rate.
    slots = RequestSlots(slots_for_threads(settings.waitress_threads), metrics)
    slots.init_app(app)
    app.extensions["relay_slots"] = slots
    app.register_error_handler(OpenAIError, _error_response)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.extensions["relay_limiter"] = _create_limiter(app, settings)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)

    token_encoding()
    return app


def main() -> int:
    """Serve the relay with waitress until SIGTERM or SIGINT, then shut down gracefully."""
    try:
        app = create_app()
        return serve_until_stopped(app)
    except ConfigError as error:
        print(f"1min-relay: invalid configuration: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
