"""Image generation, variations and edits: payloads per model family and result URLs."""

from __future__ import annotations

from flask import Response

from routes.functions.txt_func import ChatRequest
from utils.catalog import CatalogModel
from utils.errors import InvalidRequestError


def chat_with_image_model(api_key: str, chat: ChatRequest, model: CatalogModel) -> Response:
    """Answer a chat request addressed to an image model with generated images."""
    # TODO: generate images and answer with Markdown image links.
    raise InvalidRequestError(
        f"'{model.id}' is an image model; use POST /v1/images/generations.", param="model"
    )
