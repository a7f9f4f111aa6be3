"""Upload types: what a file's bytes contain and the name and MIME type it goes to 1min.ai with.

1min.ai rejects an upload whose file name has no extension or a MIME type it does not
take (it rejected text/markdown), so the relay identifies every upload by its leading
bytes and chooses both itself.
"""

from __future__ import annotations

import codecs
import io
import mimetypes
import posixpath
import re
import zipfile
from dataclasses import dataclass
from typing import IO

from utils.errors import InvalidRequestError
from utils.safe_fetch import sniff_image_type

IMAGE = "image"
DOCUMENT = "document"
AUDIO = "audio"

SNIFF_BYTES = 4096
READ_CHUNK = 1024 * 1024
MAX_UPSTREAM_NAME_CHARS = 120
UNSAFE_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")

# Image types uploaded as they are. BMP is sniffed by the URL guard but not sent upstream.
IMAGE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}
OFFICE_TYPES = {
    "word/": ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "ppt/": ("pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    "xl/": ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Text formats 1min.ai takes under their own extension. Other text (Markdown, code, JSON
# Lines) goes up as text/plain with ".txt" appended, because 1min.ai rejected text/markdown.
TEXT_TYPES = {"txt": "text/plain", "csv": "text/csv", "json": "application/json"}
SUPPORTED_TYPES_TEXT = (
    "PDF, DOCX, PPTX, XLSX, DOC, UTF-8 text (TXT, CSV, JSON, Markdown, code), "
    "PNG, JPEG, GIF, WebP, MP3, WAV, FLAC, OGG, M4A, MP4 or WebM"
)


@dataclass(frozen=True)
class FileType:
    """The detected type of an upload, and the extension and MIME type it is sent to 1min.ai with."""

    kind: str
    extension: str
    upstream_content_type: str
    # The type served back on download. It differs for text sent as text/plain, such as Markdown.
    content_type: str


def _audio_type(head: bytes, extension: str) -> FileType | None:
    # An MPEG audio frame starts with 11 set sync bits; layer bits 00 would be AAC (ADTS) instead.
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
        return FileType(AUDIO, "mp3", "audio/mpeg", "audio/mpeg")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return FileType(AUDIO, "wav", "audio/wav", "audio/wav")
    if head.startswith(b"fLaC"):
        return FileType(AUDIO, "flac", "audio/flac", "audio/flac")
    if head.startswith(b"OggS"):
        return FileType(AUDIO, "ogg", "audio/ogg", "audio/ogg")
    if head[4:8] == b"ftyp":
        if extension == "mp4":
            return FileType(AUDIO, "mp4", "video/mp4", "video/mp4")
        return FileType(AUDIO, "m4a", "audio/mp4", "audio/mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return FileType(AUDIO, "webm", "audio/webm", "audio/webm")
    return None


def _office_type(stream: IO[bytes]) -> FileType | None:
    try:
        with zipfile.ZipFile(stream) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return None
    for prefix, (extension, content_type) in OFFICE_TYPES.items():
        if any(name.startswith(prefix) for name in names):
            return FileType(DOCUMENT, extension, content_type, content_type)
    return None


def _is_utf8_text(stream: IO[bytes]) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    stream.seek(0)
    try:
        while chunk := stream.read(READ_CHUNK):
            if b"\x00" in chunk:
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _text_type(filename: str, extension: str) -> FileType:
    content_type = mimetypes.guess_type(filename)[0] or "text/plain"
    if extension in TEXT_TYPES:
        return FileType(DOCUMENT, extension, TEXT_TYPES[extension], TEXT_TYPES[extension])
    if extension in ("md", "markdown"):
        content_type = "text/markdown"
    return FileType(DOCUMENT, "txt", "text/plain", content_type)


def detect_file_type(filename: str, stream: IO[bytes]) -> FileType:
    """Identify an upload by its bytes (the name only breaks ties), or raise a 400 for an unsupported type."""
    extension = posixpath.splitext(filename)[1].lower().lstrip(".")
    stream.seek(0)
    head = stream.read(SNIFF_BYTES)
    if not head:
        raise InvalidRequestError(f"The file {filename!r} is empty.", param="file")

    detected = _binary_type(head, extension, stream)
    if detected is None and _is_utf8_text(stream):
        detected = _text_type(filename, extension)
    stream.seek(0)
    if detected is None:
        raise InvalidRequestError(
            f"The file type of {filename!r} is not supported. Supported types: {SUPPORTED_TYPES_TEXT}.",
            param="file",
            code="unsupported_file",
        )
    return detected


def _binary_type(head: bytes, extension: str, stream: IO[bytes]) -> FileType | None:
    image_type = sniff_image_type(head)
    if image_type in IMAGE_EXTENSIONS:
        return FileType(IMAGE, IMAGE_EXTENSIONS[image_type], image_type, image_type)
    if head.startswith(b"%PDF-"):
        return FileType(DOCUMENT, "pdf", "application/pdf", "application/pdf")
    if head.startswith(b"PK\x03\x04"):
        stream.seek(0)
        return _office_type(stream)
    if head.startswith(OLE_SIGNATURE):
        # Word, Excel and PowerPoint 97-2003 share this container; only .doc is taken upstream.
        if extension == "doc":
            return FileType(DOCUMENT, "doc", "application/msword", "application/msword")
        return None
    return _audio_type(head, extension)


def upstream_filename(filename: str, file_type: FileType) -> str:
    """Return a safe file name whose extension matches the content, as 1min.ai requires.

    Text sent as plain text keeps its own extension in the name: ``notes.md`` goes up as
    ``notes.md.txt``.
    """
    name = UNSAFE_NAME_CHARS.sub("_", posixpath.basename(filename.replace("\\", "/"))).strip(" ._") or "file"
    stem, extension = posixpath.splitext(name)
    if file_type.extension == "txt" and extension.lower() != ".txt":
        stem = name
    stem = stem[: MAX_UPSTREAM_NAME_CHARS - len(file_type.extension) - 1] or "file"
    return f"{stem}.{file_type.extension}"


def describe_bytes(filename: str, content: bytes, param: str) -> FileType:
    """Identify in-memory bytes like an upload, naming ``param`` in the error."""
    try:
        return detect_file_type(filename, io.BytesIO(content))
    except InvalidRequestError as error:
        error.param = param
        raise
