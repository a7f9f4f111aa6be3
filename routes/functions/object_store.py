"""Objects that belong to one API key (uploaded files, assistants), kept in shared storage.

Each object is stored under the hash of its owner's key, never under the key itself,
so replicas that share memcached see the same objects, and a lookup with another key
misses exactly like an unknown id. A per-key index lists the ids for paging. The index
changes only through `Storage.update`, which is atomic on memcached (gets/cas), so two
replicas adding objects at the same moment both keep theirs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from utils.errors import InvalidRequestError
from utils.memcached import Storage

# An index entry is about 70 bytes of JSON, so this keeps the index far below memcached's
# default 1 MB item limit, past which every write of it would fail.
MAX_OBJECTS_PER_KEY = 5000

# Index entry fields, stored as a list to keep the index small.
ID, CREATED_AT, LABEL, EXPIRES_AT = range(4)


@dataclass(frozen=True)
class Page:
    records: list[dict]
    has_more: bool


@dataclass(frozen=True)
class OwnedObjects:
    """One kind of per-key object (``"file"``, ``"assistant"``) in storage."""

    storage: Storage
    kind: str
    ttl_seconds: int

    def _index_key(self, owner: str) -> str:
        return f"{self.kind}s:{owner}:index"

    def _object_key(self, owner: str, object_id: str) -> str:
        return f"{self.kind}s:{owner}:{object_id}"

    def add(self, owner: str, record: dict, label: str = "", ttl_seconds: int | None = None) -> None:
        """Store ``record`` (with ``id`` and ``created_at``) and list it in the owner's index.

        ``label`` is kept in the index so that listing can filter without reading every object.
        """
        ttl = ttl_seconds or self.ttl_seconds
        entry = [record["id"], record["created_at"], label, int(time.time()) + ttl]
        self._check_capacity(self.storage.get(self._index_key(owner)))
        self.storage.set(self._object_key(owner, record["id"]), record, ttl)

        def append(index: Any) -> list:
            entries = self._live_entries(index)
            self._check_capacity(entries)
            return entries + [entry]

        try:
            self.storage.update(self._index_key(owner), append, self.ttl_seconds)
        except InvalidRequestError:
            self.storage.delete(self._object_key(owner, record["id"]))
            raise

    def get(self, owner: str, object_id: str) -> dict | None:
        record = self.storage.get(self._object_key(owner, object_id))
        return record if isinstance(record, dict) else None

    def remove(self, owner: str, object_id: str) -> dict | None:
        """Delete the object and its index entry; return the record, or None when it did not exist."""
        record = self.get(owner, object_id)
        if record is None:
            return None
        self.storage.delete(self._object_key(owner, object_id))
        self._drop_entries(owner, {object_id})
        return record

    def page(
        self,
        owner: str,
        *,
        limit: int,
        order: str = "desc",
        after: str | None = None,
        before: str | None = None,
        label: str | None = None,
    ) -> Page:
        """Return up to ``limit`` records in ``created_at`` order, after or before a cursor id."""
        entries = self._live_entries(self.storage.get(self._index_key(owner)))
        if label is not None:
            entries = [entry for entry in entries if entry[LABEL] == label]
        entries.sort(key=lambda entry: entry[CREATED_AT])
        if order == "desc":
            entries.reverse()
        ids = [entry[ID] for entry in entries]
        if after is not None:
            ids = ids[ids.index(after) + 1:] if after in ids else []
        if before is not None:
            ids = ids[:ids.index(before)] if before in ids else []

        records: list[dict] = []
        missing: set[str] = set()
        position = 0
        while position < len(ids) and len(records) < limit:
            record = self.get(owner, ids[position])
            if record is None:
                missing.add(ids[position])
            else:
                records.append(record)
            position += 1
        if missing:
            # Objects that memcached evicted early leave entries behind; drop them now.
            self._drop_entries(owner, missing)
        return Page(records, has_more=position < len(ids))

    def _drop_entries(self, owner: str, object_ids: set[str]) -> None:
        def without(index: Any) -> list:
            return [entry for entry in self._live_entries(index) if entry[ID] not in object_ids]

        self.storage.update(self._index_key(owner), without, self.ttl_seconds)

    @staticmethod
    def _live_entries(index: Any) -> list:
        now = time.time()
        return [entry for entry in index or [] if isinstance(entry, list) and entry[EXPIRES_AT] > now]

    def _check_capacity(self, index: Any) -> None:
        if len(self._live_entries(index)) >= MAX_OBJECTS_PER_KEY:
            raise InvalidRequestError(
                f"This API key already has {MAX_OBJECTS_PER_KEY} {self.kind}s stored in the relay, "
                f"the maximum. Delete some {self.kind}s and try again.",
                code="limit_reached",
            )
