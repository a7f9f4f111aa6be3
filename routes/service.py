"""Service endpoints: what this server is, whether it is alive and ready, and its metrics."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from routes.functions.shared_func import relay_state
from utils.constants import SERVICE_NAME, VERSION

bp = Blueprint("service", __name__)


@bp.get("/")
def index() -> Response:
    base_url = request.host_url.rstrip("/") + "/v1"
    return jsonify(
        {
            "service": SERVICE_NAME,
            "version": VERSION,
            "description": "OpenAI-compatible API in front of 1min.ai. Send your 1min.ai key as the Bearer token.",
            "base_url": base_url,
        }
    )


@bp.get("/health")
def health() -> Response:
    return jsonify({"status": "ok", "storage": relay_state().storage.backend_name})


@bp.get("/ready")
def ready() -> tuple[Response, int]:
    """Report 200 while 1min.ai's catalog responds and 503 while it does not."""
    report = relay_state().readiness.check()
    return jsonify(report), 200 if report["ready"] else 503


@bp.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(relay_state().metrics.registry), content_type=CONTENT_TYPE_LATEST)
