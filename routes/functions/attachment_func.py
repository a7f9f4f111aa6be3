"""Images and documents in chat requests, and chats that name an assistant.

1min.ai reads chat attachments only from ``promptObject.attachments``: images as asset
paths, documents as asset uuids. Every ``image_url`` and ``file`` part anywhere in the
history is uploaded, once per key and content (see `upload_cached`). In the flattened
prompt a marker such as ``[image 2]`` takes the part's place, so the model can tell
which image a turn refers to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from routes.functions.assistant_func import load_assistant
from routes.functions.file_func import StoredAsset, decode_base64_payload, find_file, upload_cached
from routes.functions.file_types import AUDIO, IMAGE, IMAGE_EXTENSIONS, FileType, describe_bytes
from routes.functions.shared_func import optional_field, relay_state
from routes.functions.txt_func import ChatRequest
from utils.catalog import CatalogModel
from utils.errors import InvalidRequestError
from utils.safe_fetch import FetchError, fetch_image, sniff_image_type


@dataclass
class _Attachments:
    """Asset references collected from one request, in the order they appear."""

    api_key: str
    model: CatalogModel
    images: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def require_vision(self, param: str) -> None:
        if not self.model.reads_images:
            raise InvalidRequestError(
                f"The model '{self.model.id}' does not accept image input, but '{param}' is an image. "
                "Choose a model that reads images (GET /v1/models) or remove the image.",
                param=param,
                code="image_input_not_supported",
            )

    def add(self, asset: StoredAsset, label: str, param: str) -> str:
        """Attach an uploaded asset and return the marker that stands for it in the prompt."""
        if asset.kind == IMAGE:
            self.require_vision(param)
            return f"[image {_position(self.images, asset.path)}]"
        if asset.kind == AUDIO:
            raise InvalidRequestError(
                f"'{param}' is an audio file, which chat cannot read. Send audio to POST /v1/audio/transcriptions.",
                param=param,
            )
        return f"[file {_position(self.files, asset.uuid)}: {label}]"


def _position(items: list[str], item: str) -> int:
    """Return the 1-based position of ``item``, appending it first when it is new."""
    if item not in items:
        items.append(item)
    return items.index(item) + 1


def _image_part_params(messages: list[dict]) -> list[str]:
    return [
        f"messages.[{message_index}].content.[{part_index}]"
        for message_index, message in enumerate(messages)
        if isinstance(message.get("content"), list)
        for part_index, part in enumerate(message["content"])
        if part.get("type") == "image_url"
    ]


def _image_bytes(url: str, param: str) -> tuple[bytes, str]:
    """Return the bytes and MIME type of an image part's URL: a data: URL or a guarded download."""
    settings = relay_state().settings
    if url.startswith("data:"):
        content = decode_base64_payload(url, param, settings.max_image_bytes)
        content_type = sniff_image_type(content)
        if content_type is None:
            raise InvalidRequestError(
                f"The data URL at '{param}' does not contain a PNG, JPEG, GIF or WebP image.",
                param=param,
                code="invalid_image",
            )
        return content, content_type
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidRequestError(
            f"Invalid image URL at '{param}': use an http(s) URL or a base64 data: URL.",
            param=param,
            code="invalid_image_url",
        )
    try:
        fetched = fetch_image(
            url, settings.max_image_bytes, settings.image_fetch_timeout, settings.image_fetch_allowed_hosts
        )
    except FetchError as error:
        raise InvalidRequestError(
            f"The image at '{param}' could not be used: {error}.", param=param, code="invalid_image_url"
        ) from None
    return fetched.content, fetched.content_type


def _upload(attachments: _Attachments, filename: str, content: bytes, file_type: FileType, param: str) -> StoredAsset:
    try:
        return upload_cached(attachments.api_key, filename, content, file_type)
    except InvalidRequestError as error:
        # 1min.ai rejected the upload; tell the client which part caused it.
        error.param = error.param or param
        raise


def _image_marker(attachments: _Attachments, part: dict, param: str) -> str:
    content, content_type = _image_bytes(part["image_url"]["url"], param)
    if content_type not in IMAGE_EXTENSIONS:
        raise InvalidRequestError(
            f"The image at '{param}' is {content_type}, which this relay does not upload. "
            "Convert it to PNG, JPEG, GIF or WebP.",
            param=param,
            code="invalid_image",
        )
    file_type = FileType(IMAGE, IMAGE_EXTENSIONS[content_type], content_type, content_type)
    asset = _upload(attachments, "image", content, file_type, param)
    return attachments.add(asset, "image", param)


def _file_marker(attachments: _Attachments, part: dict, param: str) -> str:
    file_part = part["file"]
    if file_part.get("file_id") is not None:
        record = find_file(attachments.api_key, file_part["file_id"], param=f"{param}.file.file_id")
        asset = StoredAsset(record["kind"], record["asset_path"], record["asset_uuid"])
        return attachments.add(asset, record["filename"], param)

    filename = file_part.get("filename") or "file"
    content = decode_base64_payload(file_part["file_data"], f"{param}.file.file_data", relay_state().settings.max_file_bytes)
    file_type = describe_bytes(filename, content, f"{param}.file.file_data")
    if file_type.kind == IMAGE:
        attachments.require_vision(param)
    asset = _upload(attachments, filename, content, file_type, param)
    return attachments.add(asset, filename, param)


def _replace_parts(attachments: _Attachments, message: dict, message_index: int) -> dict:
    """Return the message with image and file parts uploaded and replaced by text markers."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    parts: list[dict] = []
    for part_index, part in enumerate(content):
        param = f"messages.[{message_index}].content.[{part_index}]"
        if part.get("type") == "image_url":
            parts.append({"type": "text", "text": _image_marker(attachments, part, param)})
        elif part.get("type") == "file":
            parts.append({"type": "text", "text": _file_marker(attachments, part, param)})
        else:
            parts.append(part)
    return {**message, "content": parts}


def _file_ids(body: dict) -> list[str]:
    """Read the ``file_ids`` extension: uploaded files to attach to the whole conversation."""
    file_ids = optional_field(body, "file_ids", list) or []
    for index, file_id in enumerate(file_ids):
        if not isinstance(file_id, str):
            raise InvalidRequestError(
                f"Invalid type for 'file_ids.[{index}]': expected a file id string.", param=f"file_ids.[{index}]"
            )
    return file_ids


def _apply_assistant(api_key: str, chat: ChatRequest, assistant_id: str, attachments: _Attachments) -> list[dict]:
    """Use the assistant's conversation and files; return its instructions as a leading system message."""
    assistant = load_assistant(api_key, assistant_id)
    chat.conversation_id = assistant["conversation_id"]
    for file_uuid in assistant["file_uuids"]:
        _position(attachments.files, file_uuid)
    if not assistant.get("instructions"):
        return []
    return [{"role": "system", "content": assistant["instructions"]}]


def prepare_attachments(api_key: str, chat: ChatRequest, model: CatalogModel) -> None:
    """Upload the images and documents a chat request carries and point the request at them.

    Fills ``chat.images``, ``chat.files`` and ``chat.conversation_id`` and replaces the
    attachment parts in ``chat.messages`` with text markers. Raises a 400 naming the part
    for an image or file that cannot be used.
    """
    attachments = _Attachments(api_key, model)
    image_params = _image_part_params(chat.messages)
    if image_params:
        attachments.require_vision(image_params[0])

    messages = [_replace_parts(attachments, message, index) for index, message in enumerate(chat.messages)]
    for index, file_id in enumerate(_file_ids(chat.body)):
        record = find_file(api_key, file_id, param=f"file_ids.[{index}]")
        asset = StoredAsset(record["kind"], record["asset_path"], record["asset_uuid"])
        attachments.add(asset, record["filename"], f"file_ids.[{index}]")

    assistant_id = optional_field(chat.body, "assistant_id", str)
    if assistant_id is not None:
        messages = _apply_assistant(api_key, chat, assistant_id, attachments) + messages

    chat.messages = messages
    chat.images = attachments.images
    chat.files = attachments.files
