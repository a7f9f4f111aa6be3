"""Audio endpoints: transcription, translation and speech."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("audio", __name__)
