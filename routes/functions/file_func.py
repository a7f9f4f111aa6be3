"""Files API helpers: per-key file metadata in storage and asset uploads."""

from __future__ import annotations
