"""Files API helpers: uploads to 1min.ai, capped multipart bodies, per-key file records.

Where the bytes live: every uploaded file goes to 1min.ai's ``/api/assets`` and is read
back from the public asset CDN at ``{ONE_MIN_ASSET_URL}/{fileContent.path}``. The relay
keeps only metadata (in storage, per key), so any replica can serve any file's content
and nothing large sits in memcached or on local disk. The relay serves that content only
to the key that uploaded the file. The CDN itself needs no key, so the storage path is
never shown to clients.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Iterator

import requests
from flask import request
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.formparser import FormDataParser

from routes.functions.file_types import DOCUMENT, FileType, detect_file_type, upstream_filename
from routes.functions.object_store import OwnedObjects
from routes.functions.shared_func import key_id, new_object_id, relay_state, unix_time
from utils.errors import InvalidRequestError, NotFoundError, RequestTooLargeError, UpstreamError, UpstreamTimeoutError

logger = logging.getLogger(__name__)

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
# The multipart body around the file part (boundaries, headers, the purpose field) fits in this.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
MAX_FORM_FIELD_BYTES = 64 * 1024
MAX_FORM_PARTS = 16


@dataclass(frozen=True)
class StoredAsset:
    """An uploaded 1min.ai asset: images and audio are referenced by path, documents by uuid."""

    kind: str
    path: str
    uuid: str


# --- uploads to 1min.ai --------------------------------------------------------------------------


def upload_to_onemin(api_key: str, filename: str, content: bytes, file_type: FileType) -> StoredAsset:
    """Upload bytes to ``/api/assets`` and return how 1min.ai refers to them."""
    body = relay_state().client.upload_asset(
        api_key, upstream_filename(filename, file_type), content, file_type.upstream_content_type
    )
    details = body.get("fileContent") if isinstance(body.get("fileContent"), dict) else {}
    asset = body.get("asset") if isinstance(body.get("asset"), dict) else {}
    path = details.get("path") or asset.get("key")
    uuid = details.get("uuid")
    if not isinstance(path, str) or not path or (file_type.kind == DOCUMENT and not isinstance(uuid, str)):
        raise UpstreamError("1min.ai returned no asset path or uuid for the upload.")
    return StoredAsset(file_type.kind, path, uuid if isinstance(uuid, str) else "")


def upload_cached(api_key: str, filename: str, content: bytes, file_type: FileType) -> StoredAsset:
    """Upload bytes once per key: the same bytes sent again by the same key reuse the asset.

    Chat clients resend every earlier image on every turn. The cache key joins the hashed
    API key and the SHA-256 of the bytes, so one key's asset is never handed to another.
    """
    state = relay_state()
    cache_key = f"uploads:{key_id(api_key)}:{hashlib.sha256(content).hexdigest()}"
    cached = state.storage.get(cache_key)
    if isinstance(cached, dict) and cached.get("kind") == file_type.kind:
        return StoredAsset(cached["kind"], cached["path"], cached.get("uuid", ""))
    asset = upload_to_onemin(api_key, filename, content, file_type)
    state.storage.set(
        cache_key, {"kind": asset.kind, "path": asset.path, "uuid": asset.uuid}, state.settings.upload_cache_seconds
    )
    return asset


# --- multipart uploads ---------------------------------------------------------------------------


class _CappedSpool:
    """A temporary file for one multipart file part that raises once the part exceeds the limit.

    On POSIX systems the file is unlinked when created, so it disappears when closed or when
    the process dies.
    """

    def __init__(self, max_bytes: int) -> None:
        self._file = tempfile.TemporaryFile(prefix="1minrelay-upload-")
        self._max_bytes = max_bytes
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self._max_bytes:
            raise RequestTooLargeError(
                f"The file is larger than this relay's limit of {self._max_bytes} bytes (MAX_FILE_BYTES).",
                param="file",
            )
        return self._file.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


@contextmanager
def receive_multipart(max_file_bytes: int) -> Iterator[tuple[MultiDict, MultiDict]]:
    """Parse a multipart body, spooling file parts to temporary files capped at ``max_file_bytes``.

    Yields ``(form, files)``. A Content-Length above the limit is rejected before the body is
    read, and a file part stops being read as soon as it passes the limit. The temporary
    files are closed (and so deleted) when the block ends, whether it succeeds or raises.
    """
    if request.mimetype != "multipart/form-data":
        raise InvalidRequestError(
            "Send the file as multipart/form-data with the fields 'file' and 'purpose'.", param="file"
        )
    spools: list[_CappedSpool] = []

    def create_spool(*args: Any, **kwargs: Any) -> IO[bytes]:
        spool = _CappedSpool(max_file_bytes)
        spools.append(spool)
        return spool  # type: ignore[return-value]

    request.max_content_length = max_file_bytes + MULTIPART_OVERHEAD_BYTES
    try:
        parser = FormDataParser(
            stream_factory=create_spool,
            max_form_memory_size=MAX_FORM_FIELD_BYTES,
            max_content_length=request.max_content_length,
            silent=False,
            max_form_parts=MAX_FORM_PARTS,
        )
        try:
            _, form, files = parser.parse(
                request.stream, request.mimetype, request.content_length, request.mimetype_params
            )
        except ValueError as error:
            raise InvalidRequestError(f"The multipart body is invalid: {error}.", param="file") from None
        yield form, files
    finally:
        for spool in spools:
            spool.close()


# --- file records --------------------------------------------------------------------------------


def file_store() -> OwnedObjects:
    state = relay_state()
    return OwnedObjects(state.storage, "file", state.settings.files_ttl_seconds)


def create_file_record(api_key: str, upload: FileStorage, purpose: str, ttl_seconds: int | None) -> dict:
    """Upload a received file to 1min.ai and store its metadata for the key; return the record."""
    filename = upload.filename or "file"
    stream: IO[bytes] = upload.stream
    file_type = detect_file_type(filename, stream)
    # NOTE: requests encodes the multipart body in memory, so an upload briefly needs about
    # twice the file size in RAM; MAX_FILE_BYTES bounds it.
    content = stream.read()
    asset = upload_to_onemin(api_key, filename, content, file_type)

    record = {
        "id": new_object_id("file"),
        "created_at": unix_time(),
        "bytes": len(content),
        "filename": filename,
        "purpose": purpose,
        "content_type": file_type.content_type,
        "kind": asset.kind,
        "asset_path": asset.path,
        "asset_uuid": asset.uuid,
    }
    store = file_store()
    ttl = ttl_seconds or store.ttl_seconds
    record["expires_at"] = record["created_at"] + ttl
    store.add(key_id(api_key), record, label=purpose, ttl_seconds=ttl)
    return record


def find_file(api_key: str, file_id: str, param: str = "file_id") -> dict:
    """Return the key's file record, or raise a 404 (the same for another key's file and an unknown id)."""
    record = file_store().get(key_id(api_key), file_id)
    if record is None:
        raise NotFoundError(f"No such File object: {file_id}", param=param)
    return record


def file_object(record: dict) -> dict:
    """Build the OpenAI ``file`` object for a stored record."""
    return {
        "id": record["id"],
        "object": "file",
        "bytes": record["bytes"],
        "created_at": record["created_at"],
        "expires_at": record["expires_at"],
        "filename": record["filename"],
        "purpose": record["purpose"],
        "status": "processed",
    }


def open_file_content(record: dict) -> requests.Response:
    """Open a streaming download of a file's bytes from the 1min.ai asset CDN."""
    client = relay_state().client
    url = client.asset_link(record["asset_path"])
    try:
        response = client.session.get(url, stream=True, timeout=client.timeout)
    except requests.Timeout:
        raise UpstreamTimeoutError("The 1min.ai asset CDN timed out. Try again later.") from None
    except requests.RequestException as error:
        logger.warning("asset download of %s failed: %s", record["id"], type(error).__name__)
        raise UpstreamError(f"Could not reach the 1min.ai asset CDN ({type(error).__name__}).") from None
    if response.status_code != 200:
        response.close()
        logger.warning("asset CDN returned HTTP %s for file %s", response.status_code, record["id"])
        raise UpstreamError(
            f"The 1min.ai asset CDN returned HTTP {response.status_code} for the content of {record['id']}, "
            "so the stored bytes may have expired there."
        )
    return response


def decode_base64_payload(value: str, param: str, max_bytes: int) -> bytes:
    """Decode base64, optionally inside a ``data:`` URL, checking the size before decoding."""
    payload = value
    if value.startswith("data:"):
        header, separator, payload = value.partition(",")
        if not separator or not header.lower().endswith(";base64"):
            raise InvalidRequestError(
                f"Invalid data URL at '{param}': expected 'data:<type>;base64,<data>'.", param=param
            )
    payload = "".join(payload.split())
    if len(payload) * 3 // 4 > max_bytes + 2:
        raise InvalidRequestError(f"The data at '{param}' is larger than the limit of {max_bytes} bytes.", param=param)
    try:
        content = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"Invalid base64 data at '{param}'.", param=param) from None
    if len(content) > max_bytes:
        raise InvalidRequestError(f"The data at '{param}' is larger than the limit of {max_bytes} bytes.", param=param)
    if not content:
        raise InvalidRequestError(f"The data at '{param}' is empty.", param=param)
    return content
