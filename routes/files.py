"""The Files API and the assistants built on uploaded files."""

from __future__ import annotations

from typing import Iterator
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, request, stream_with_context
from werkzeug.datastructures import MultiDict

from routes.functions.assistant_func import (
    assistant_object,
    assistant_store,
    create_assistant_record,
    delete_assistant_record,
    load_assistant,
)
from routes.functions.file_func import (
    FILE_PURPOSES,
    create_file_record,
    file_object,
    file_store,
    find_file,
    open_file_content,
    receive_multipart,
)
from routes.functions.object_store import Page
from routes.functions.shared_func import key_id, parse_json_body, relay_state, validate_auth
from utils.errors import InvalidRequestError, NotFoundError

bp = Blueprint("files", __name__)

DOWNLOAD_CHUNK = 64 * 1024
MIN_EXPIRY_SECONDS = 3600


def _query_int(name: str, minimum: int, maximum: int, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequestError(f"Invalid '{name}': expected an integer, got {raw!r}.", param=name) from None
    if not minimum <= value <= maximum:
        raise InvalidRequestError(
            f"Invalid '{name}': {value} is outside the range {minimum} to {maximum}.", param=name
        )
    return value


def _query_order() -> str:
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError(f"Invalid 'order': {order!r}. Expected 'asc' or 'desc'.", param="order")
    return order


def _list_object(data: list[dict], page: Page) -> dict:
    # An empty list has no first or last id, so both are null there, although OpenAI's
    # spec types them as plain strings.
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": page.has_more,
    }


def _purpose(form: MultiDict) -> str:
    purpose = form.get("purpose")
    if not purpose:
        raise InvalidRequestError("Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter")
    if purpose not in FILE_PURPOSES:
        raise InvalidRequestError(
            f"Invalid value for 'purpose': {purpose!r}. Expected one of: {', '.join(FILE_PURPOSES)}.",
            param="purpose",
        )
    return purpose


def _expiry_seconds(form: MultiDict) -> int | None:
    """Read ``expires_after[anchor]`` and ``expires_after[seconds]``, as the SDK encodes them in a form."""
    anchor = form.get("expires_after[anchor]")
    seconds = form.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise InvalidRequestError("Invalid 'expires_after.anchor': expected 'created_at'.", param="expires_after.anchor")
    maximum = relay_state().settings.files_ttl_seconds
    try:
        value = int(seconds or "")
    except ValueError:
        value = -1
    if not MIN_EXPIRY_SECONDS <= value <= maximum:
        raise InvalidRequestError(
            f"Invalid 'expires_after.seconds': expected an integer from {MIN_EXPIRY_SECONDS} to {maximum} "
            f"(FILES_TTL_SECONDS), got {seconds!r}.",
            param="expires_after.seconds",
        )
    return value


@bp.post("/v1/files")
def create_file() -> Response:
    api_key = validate_auth()

    with receive_multipart(relay_state().settings.max_file_bytes) as (form, files):
        purpose = _purpose(form)
        expiry = _expiry_seconds(form)
        upload = files.get("file")
        if upload is None:
            raise InvalidRequestError(
                "Missing required parameter: 'file' (a multipart file part).", param="file", code="missing_required_parameter"
            )
        record = create_file_record(api_key, upload, purpose, expiry)

    return jsonify(file_object(record))


@bp.get("/v1/files")
def list_files() -> Response:
    api_key = validate_auth()
    limit = _query_int("limit", 1, 10000, 10000)
    order = _query_order()

    page = file_store().page(
        key_id(api_key), limit=limit, order=order, after=request.args.get("after"), label=request.args.get("purpose")
    )
    return jsonify(_list_object([file_object(record) for record in page.records], page))


@bp.get("/v1/files/<file_id>")
def retrieve_file(file_id: str) -> Response:
    api_key = validate_auth()
    return jsonify(file_object(find_file(api_key, file_id)))


@bp.delete("/v1/files/<file_id>")
def delete_file(file_id: str) -> Response:
    api_key = validate_auth()
    # NOTE: the bytes stay on 1min.ai, which documents no call to delete an asset.
    if file_store().remove(key_id(api_key), file_id) is None:
        raise NotFoundError(f"No such File object: {file_id}", param="file_id")
    return jsonify({"id": file_id, "object": "file", "deleted": True})


@bp.get("/v1/files/<file_id>/content")
def retrieve_file_content(file_id: str) -> Response:
    api_key = validate_auth()
    record = find_file(api_key, file_id)
    upstream = open_file_content(record)

    def body() -> Iterator[bytes]:
        try:
            yield from upstream.iter_content(DOWNLOAD_CHUNK)
        finally:
            upstream.close()

    content_type = record["content_type"]
    if content_type.startswith("text/"):
        content_type += "; charset=utf-8"
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(record['filename'])}"}
    if upstream.headers.get("Content-Length", "").isdigit():
        headers["Content-Length"] = upstream.headers["Content-Length"]
    return Response(stream_with_context(body()), content_type=content_type, headers=headers)


@bp.post("/v1/assistants")
def create_assistant() -> Response:
    api_key = validate_auth()
    record = create_assistant_record(api_key, parse_json_body())
    return jsonify(assistant_object(record))


@bp.get("/v1/assistants")
def list_assistants() -> Response:
    api_key = validate_auth()
    limit = _query_int("limit", 1, 100, 20)
    order = _query_order()

    page = assistant_store().page(
        key_id(api_key), limit=limit, order=order, after=request.args.get("after"), before=request.args.get("before")
    )
    return jsonify(_list_object([assistant_object(record) for record in page.records], page))


@bp.get("/v1/assistants/<assistant_id>")
def retrieve_assistant(assistant_id: str) -> Response:
    api_key = validate_auth()
    return jsonify(assistant_object(load_assistant(api_key, assistant_id)))


@bp.delete("/v1/assistants/<assistant_id>")
def delete_assistant(assistant_id: str) -> Response:
    api_key = validate_auth()
    delete_assistant_record(api_key, assistant_id)
    return jsonify({"id": assistant_id, "object": "assistant.deleted", "deleted": True})
