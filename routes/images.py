"""Image endpoints: generation, variations and edits."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("images", __name__)
