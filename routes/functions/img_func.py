"""Image models in chat: generated images as Markdown, and variations of them on request.

A chat response from an image model lists its images as Markdown, each followed by a tag
``[_V1_]`` … ``[_Vn_]``, plus a one-line hint. When the last user message contains such a
tag (with or without backticks) or ``/v2 <image URL>``, the relay makes variations of that
image instead of generating new ones. The tag is looked up in the newest assistant message
that carries it. The aspect ratio and mode an image was generated with are stored per API key
and image URL, so its variations keep them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from flask import Response, jsonify

from routes.functions.image_families import ImageJob
from routes.functions.image_jobs import parse_prompt_flags, run_image_job, upload_image
from routes.functions.shared_func import RelayState, relay_state
from routes.functions.stream_func import replay_as_stream
from routes.functions.txt_func import ChatRequest, ChatResult, content_text, format_openai_response
from utils.catalog import CatalogModel
from utils.common import calculate_token
from utils.constants import FEATURE_IMAGE_GENERATOR, FEATURE_IMAGE_VARIATOR
from utils.errors import InvalidRequestError
from utils.memcached import hash_secret
from utils.safe_fetch import FetchError, fetch_image

logger = logging.getLogger(__name__)

TAG_PATTERN = re.compile(r"`?\[_V(\d{1,2})_\]`?")
COMMAND_PATTERN = re.compile(r"(?:^|\s)/v(\d{1,2})\s+<?(https?://[^\s<>]+)>?", re.IGNORECASE)
TAGGED_IMAGE_PATTERN = re.compile(r"!\[[^\]]*\]\(<?([^)\s>]+)>?\)\s*`?\[_V(\d{1,2})_\]`?")
PARAMS_KEY_PREFIX = "imageparams:"


@dataclass(frozen=True)
class VariationRequest:
    """An image URL that the last user message requests variations of, and the tag that named it."""

    url: str
    tag: int
    extra_text: str


def chat_with_image_model(api_key: str, chat: ChatRequest, model: CatalogModel) -> Response:
    """Respond to a chat request for an image model with generated images, or with variations of one."""
    state = relay_state()
    text = _last_user_text(chat.messages)
    variation = find_variation_request(text, chat.messages)
    if variation is None:
        answer = _generate(state, api_key, model, text)
    else:
        answer = _vary(state, api_key, model, variation)

    result = ChatResult(answer, "stop", calculate_token(text), calculate_token(answer))
    body = format_openai_response(result, chat.model)
    if chat.stream:
        return replay_as_stream(body, chat.include_usage)
    return jsonify(body)


def _last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            return content_text(message.get("content"))
    raise InvalidRequestError(
        "An image model needs a user message that describes the image.", param="messages"
    )


def find_variation_request(text: str, messages: list[dict]) -> VariationRequest | None:
    """Return the variation that the last user message requests, or None when it requests new images."""
    command = COMMAND_PATTERN.search(text)
    if command is not None:
        extra = text[: command.start()] + text[command.end() :]
        return VariationRequest(command.group(2), int(command.group(1)), extra)
    tag = TAG_PATTERN.search(text)
    if tag is None:
        return None
    number = int(tag.group(1))
    for message in reversed(messages):
        if message["role"] != "assistant":
            continue
        for match in TAGGED_IMAGE_PATTERN.finditer(content_text(message.get("content"))):
            if int(match.group(2)) == number:
                return VariationRequest(match.group(1), number, text[: tag.start()] + text[tag.end() :])
    raise InvalidRequestError(
        f"No earlier assistant message contains an image tagged [_V{number}_]. "
        "Send a tag shown under one of the images, or /v1 followed by the image URL.",
        param="messages",
    )


def _generate(state: RelayState, api_key: str, model: CatalogModel, text: str) -> str:
    flags = parse_prompt_flags(text)
    if not flags.prompt:
        raise InvalidRequestError("Describe the image to generate in the last user message.", param="messages")
    job = ImageJob(prompt=flags.prompt, aspect=flags.aspect, negative_prompt=flags.negative_prompt, mode=flags.mode)
    keys = run_image_job(state.client, api_key, FEATURE_IMAGE_GENERATOR, model, job, state.settings.image_job_timeout)
    return _answer(state, api_key, model, job, keys)


def _vary(state: RelayState, api_key: str, model: CatalogModel, variation: VariationRequest) -> str:
    if not model.supports(FEATURE_IMAGE_VARIATOR):
        raise InvalidRequestError(
            f"The model '{model.id}' cannot make variations of an image. "
            f"Models that can: {_variation_models(state)}. Switch to one of them and send the tag again.",
            param="model",
            code="unsupported_model",
        )
    saved = state.storage.get(_params_key(api_key, variation.url)) or {}
    flags = parse_prompt_flags(variation.extra_text)
    saved_aspect = saved.get("aspect")
    job = ImageJob(
        aspect=flags.aspect or (tuple(saved_aspect) if saved_aspect else None),
        mode=flags.mode or saved.get("mode"),
        image_path=_image_path(state, api_key, variation.url),
    )
    logger.info("making variations of image [_V%d_] with %s", variation.tag, model.id)
    keys = run_image_job(state.client, api_key, FEATURE_IMAGE_VARIATOR, model, job, state.settings.image_job_timeout)
    return _answer(state, api_key, model, job, keys)


def _image_path(state: RelayState, api_key: str, url: str) -> str:
    """Return the asset path of an image URL: CDN URLs directly, other URLs by guarded download and upload."""
    prefix = state.settings.one_min_asset_url + "/"
    if url.startswith(prefix):
        return unquote(urlsplit(url).path[len(urlsplit(prefix).path) :])
    settings = state.settings
    try:
        image = fetch_image(
            url, settings.max_image_bytes, settings.image_fetch_timeout, settings.image_fetch_allowed_hosts
        )
    except FetchError as error:
        raise InvalidRequestError(f"The image to vary could not be used: {error}.", param="messages") from None
    return upload_image(state.client, api_key, image.content, "variation-source", "messages")


def _variation_models(state: RelayState) -> str:
    return ", ".join(sorted(model.id for model in state.catalog.list(FEATURE_IMAGE_VARIATOR))) or "none"


def _params_key(api_key: str, url: str) -> str:
    return PARAMS_KEY_PREFIX + hash_secret(f"{api_key}\n{url}")


def _answer(state: RelayState, api_key: str, model: CatalogModel, job: ImageJob, keys: list[str]) -> str:
    """Write the Markdown reply and store each image's parameters for later variations."""
    params = {"model": model.id, "aspect": list(job.aspect) if job.aspect else None, "mode": job.mode}
    lines = []
    for number, key in enumerate(keys, start=1):
        url = state.client.asset_link(key)
        state.storage.set(_params_key(api_key, url), params, state.settings.image_params_ttl_seconds)
        lines.append(f"![Image {number}]({url}) `[_V{number}_]`")
    lines.append("")
    if model.supports(FEATURE_IMAGE_VARIATOR):
        lines.append("To get variations of an image, send its tag, for example `[_V1_]`, or `/v1 <image URL>`.")
    else:
        lines.append(
            f"{model.id} cannot make variations; to vary an image, switch to one of "
            f"{_variation_models(state)} and send its tag, for example `[_V1_]`."
        )
    return "\n".join(lines)
