"""What the fake remembers between requests: recorded requests, assets and conversations."""

from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

IMAGE = "image"
AUDIO = "audio"
DOCUMENT = "document"

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it. Header names are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    form: dict[str, str]
    files: dict[str, tuple[str, str, bytes]]


@dataclass
class Asset:
    """A stored file: an upload or a generated result, served from the fake CDN by `path`."""

    uuid: str
    path: str
    kind: str
    mimetype: str
    name: str
    data: bytes
    owner: str | None


@dataclass
class Conversation:
    uuid: str
    title: str
    type: str
    model: str
    file_list: list[str]
    owner: str
    # (prompt, answer) pairs of the chat calls made in this conversation.
    turns: list[tuple[str, str]] = field(default_factory=list)


def storage_key(folder: str, name: str) -> str:
    """Build a key shaped like the real ones: `images/2026_12_04_<random>_<name>`."""
    safe_name = _UNSAFE_NAME_CHARS.sub("_", name).strip("_") or "file"
    return f"{folder}/{time.strftime('%Y_%m_%d')}_{secrets.token_hex(6)}_{safe_name}"


def new_uuid() -> str:
    return str(uuid.uuid4())


class Store:
    """Thread-safe state of one fake server, emptied by `clear()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: list[RecordedRequest] = []
        self.assets_by_path: dict[str, Asset] = {}
        self.assets_by_uuid: dict[str, Asset] = {}
        self.conversations: dict[str, Conversation] = {}
        self.async_records: dict[str, dict[str, Any]] = {}
        self.replies: deque[str] = deque()
        self.stream_disconnects = 0
        self.catalog_requests = 0
        self.used_credit: dict[str, int] = {}
        self._request_times: dict[str, deque[float]] = {}

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self.assets_by_path.clear()
            self.assets_by_uuid.clear()
            self.conversations.clear()
            self.async_records.clear()
            self.replies.clear()
            self.stream_disconnects = 0
            self.catalog_requests = 0
            self.used_credit.clear()
            self._request_times.clear()

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.received.append(request)

    def count_stream_disconnect(self) -> None:
        with self._lock:
            self.stream_disconnects += 1

    def count_catalog_request(self) -> None:
        with self._lock:
            self.catalog_requests += 1

    def add_asset(self, asset: Asset) -> None:
        with self._lock:
            self.assets_by_path[asset.path] = asset
            self.assets_by_uuid[asset.uuid] = asset

    def add_conversation(self, conversation: Conversation) -> None:
        with self._lock:
            self.conversations[conversation.uuid] = conversation

    def remove_conversation(self, conversation_id: str, owner: str) -> bool:
        with self._lock:
            conversation = self.conversations.get(conversation_id)
            if conversation is None or conversation.owner != owner:
                return False
            del self.conversations[conversation_id]
            return True

    def add_turn(self, conversation_id: str | None, prompt: str, answer: str) -> None:
        with self._lock:
            conversation = self.conversations.get(conversation_id or "")
            if conversation is not None:
                conversation.turns.append((prompt, answer))

    def queue_replies(self, replies: tuple[str, ...]) -> None:
        with self._lock:
            self.replies.extend(replies)

    def next_reply(self) -> str | None:
        with self._lock:
            return self.replies.popleft() if self.replies else None

    def charge(self, api_key: str, credit: int) -> int:
        """Add `credit` to the key's total and return the total before it, as the real one lags."""
        with self._lock:
            before = self.used_credit.get(api_key, 0)
            self.used_credit[api_key] = before + credit
            return before

    def seconds_until_allowed(self, api_key: str, per_minute: int) -> float:
        """Count one request in a sliding one-minute window and return the seconds to wait.

        0 means the request is allowed."""
        now = time.monotonic()
        with self._lock:
            times = self._request_times.setdefault(api_key, deque())
            while times and now - times[0] >= 60.0:
                times.popleft()
            if len(times) >= per_minute:
                return 60.0 - (now - times[0]) if times else 60.0
            times.append(now)
            return 0.0
