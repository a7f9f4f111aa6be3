"""Speech to text, translation and text to speech: uploads, payloads and result formats."""

from __future__ import annotations

from flask import Response

from routes.functions.txt_func import ChatRequest
from utils.catalog import CatalogModel
from utils.errors import InvalidRequestError


def chat_with_speech_model(api_key: str, chat: ChatRequest, model: CatalogModel) -> Response:
    """Answer a chat request addressed to a text-to-speech model with a link to the spoken audio."""
    # TODO: synthesise the last user message and link to the audio.
    raise InvalidRequestError(
        f"'{model.id}' is a text-to-speech model; use POST /v1/audio/speech.", param="model"
    )
