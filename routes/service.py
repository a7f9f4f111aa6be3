"""Service endpoints: what this server is, and whether it is healthy."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

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
