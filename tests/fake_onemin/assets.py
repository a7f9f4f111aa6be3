"""Asset uploads (`POST /api/assets`), the CDN that serves stored bytes, and asset look-ups."""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING
from urllib.parse import unquote

from .behaviour import Behaviour
from .errors import UNSUPPORTED_FILE_TYPE, bad_request, invalid_body
from .state import AUDIO, DOCUMENT, IMAGE, Asset, Store, new_uuid, storage_key
from .transport import Call

if TYPE_CHECKING:
    from .server import FakeOneMin

_WORD = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_POWERPOINT = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
_EXCEL = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# Extension -> (kind, accepted part Content-Types). The first type is the one the CDN serves.
FILE_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "jpg": (IMAGE, ("image/jpeg",)),
    "jpeg": (IMAGE, ("image/jpeg",)),
    "png": (IMAGE, ("image/png",)),
    "gif": (IMAGE, ("image/gif",)),
    "webp": (IMAGE, ("image/webp",)),
    "pdf": (DOCUMENT, ("application/pdf",)),
    "txt": (DOCUMENT, ("text/plain",)),
    # Markdown passes only when sent as text/plain, because text/markdown is rejected below.
    "md": (DOCUMENT, ("text/plain",)),
    "csv": (DOCUMENT, ("text/csv", "text/plain")),
    "json": (DOCUMENT, ("application/json",)),
    "doc": (DOCUMENT, ("application/msword",)),
    "docx": (DOCUMENT, (_WORD,)),
    "pptx": (DOCUMENT, (_POWERPOINT,)),
    "xlsx": (DOCUMENT, (_EXCEL,)),
    "mp3": (AUDIO, ("audio/mpeg", "audio/mp3")),
    "wav": (AUDIO, ("audio/wav", "audio/x-wav", "audio/wave")),
    "m4a": (AUDIO, ("audio/mp4", "audio/x-m4a", "audio/m4a")),
    "flac": (AUDIO, ("audio/flac", "audio/x-flac")),
    "mp4": (AUDIO, ("audio/mp4", "video/mp4")),
    "webm": (AUDIO, ("audio/webm", "video/webm")),
    "ogg": (AUDIO, ("audio/ogg",)),
}
_FOLDERS = {IMAGE: "images", AUDIO: "audio", DOCUMENT: "documents"}
_MARKDOWN_TYPES = ("text/markdown", "text/x-markdown")


def upload_asset(fake: FakeOneMin, call: Call, behaviour: Behaviour) -> None:
    """Store the single `asset` file part and describe it the way the real service does."""
    filename, content_type, data = _single_asset_part(call)
    extension = posixpath.splitext(filename)[1].lower().lstrip(".")
    mimetype = content_type.split(";")[0].strip().lower()
    if mimetype in _MARKDOWN_TYPES:
        raise bad_request(UNSUPPORTED_FILE_TYPE,
                          f"File type {mimetype} isn't supported; upload Markdown as text/plain")
    if extension not in FILE_TYPES:
        raise bad_request(UNSUPPORTED_FILE_TYPE,
                          f"File type isn't supported: {filename!r} needs one of the extensions "
                          f"{', '.join(sorted(FILE_TYPES))}")
    kind, accepted_types = FILE_TYPES[extension]
    if mimetype not in accepted_types:
        raise bad_request(UNSUPPORTED_FILE_TYPE,
                          f"File type isn't supported: part Content-Type {mimetype or 'missing'!r} "
                          f"does not match .{extension}; send {accepted_types[0]}")

    asset = Asset(uuid=new_uuid(), path=storage_key(_FOLDERS[kind], filename), kind=kind,
                  mimetype=mimetype, name=filename, data=data, owner=call.api_key)
    fake.store.add_asset(asset)
    call.send_json({
        "asset": {"originalname": filename, "mimetype": mimetype, "size": len(data),
                  "bucket": "asset.1min.ai", "key": asset.path,
                  "location": f"{fake.asset_url}/{asset.path}"},
        "fileContent": {"uuid": asset.uuid, "path": asset.path, "type": extension,
                        "name": filename, "status": "ACTIVE"},
    })


def serve_asset(fake: FakeOneMin, call: Call, behaviour: Behaviour) -> None:
    """Serve stored bytes at `/cdn/<key>` without auth, like the public asset CDN."""
    key = unquote(call.path[len("/cdn/"):])
    if call.query.get("X-Amz-Expires") == "0":
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>"
                "<Message>Request has expired</Message></Error>")
        call.send(403, body.encode(), "application/xml")
        return
    asset = fake.store.assets_by_path.get(key)
    if asset is None:
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
                f"<Message>The specified key does not exist.</Message><Key>{key}</Key></Error>")
        call.send(404, body.encode(), "application/xml")
        return
    call.send(200, asset.data, asset.mimetype)


def _single_asset_part(call: Call) -> tuple[str, str, bytes]:
    if not call.content_type.startswith("multipart/form-data"):
        raise invalid_body("Content-Type must be multipart/form-data with one file part "
                           "named 'asset'")
    if call.multipart_error:
        raise invalid_body(f"Invalid multipart body: {call.multipart_error}")
    if set(call.files) != {"asset"}:
        sent = ", ".join(sorted(call.files)) or "none"
        raise invalid_body(f"Expected exactly one file part named 'asset', got file parts: {sent}")
    filename, content_type, data = call.files["asset"]
    if not filename:
        raise bad_request(UNSUPPORTED_FILE_TYPE, "File type isn't supported: empty filename")
    return filename, content_type, data


def asset_by_path(store: Store, value: object, api_key: str | None, kind: str,
                  where: str) -> Asset:
    """Find the asset a path field names, rejecting URLs, uuids, other keys' and wrong kinds."""
    if not isinstance(value, str):
        raise invalid_body(f"{where} must be an asset path string")
    if value.startswith(("http://", "https://", "data:")):
        raise invalid_body(f"{where} takes an asset path (fileContent.path, such as "
                           f"images/2026_..._photo.jpg), not a URL: {value[:80]!r}")
    asset = store.assets_by_path.get(value)
    if asset is None and value in store.assets_by_uuid:
        raise invalid_body(f"{where}: {value!r} is an asset uuid, but this field takes the "
                           f"asset path (fileContent.path)")
    return _checked(asset, value, api_key, kind, where)


def asset_by_uuid(store: Store, value: object, api_key: str | None, kind: str,
                  where: str) -> Asset:
    """Find the asset a uuid field names. The real service silently ignores a path here."""
    if not isinstance(value, str):
        raise invalid_body(f"{where} must be an asset uuid string")
    asset = store.assets_by_uuid.get(value)
    if asset is None and (value in store.assets_by_path or "/" in value):
        raise invalid_body(f"{where} takes asset uuids (fileContent.uuid), got the path "
                           f"{value!r}; the real service accepts a path here and silently "
                           f"ignores the file")
    return _checked(asset, value, api_key, kind, where)


def _checked(asset: Asset | None, value: str, api_key: str | None, kind: str,
             where: str) -> Asset:
    if asset is None:
        raise invalid_body(f"{where}: asset {value!r} not found; upload it with "
                           f"POST /api/assets first")
    # Stricter than observed upstream on purpose: sharing assets between keys is a relay bug.
    if asset.owner != api_key:
        raise invalid_body(f"{where}: asset {value!r} was uploaded with a different API key")
    if asset.kind != kind:
        raise invalid_body(f"{where}: asset {value!r} is {asset.kind} data, expected {kind}")
    return asset
