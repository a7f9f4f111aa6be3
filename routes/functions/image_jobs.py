"""Image jobs from request to result: field checks, prompt flags, uploads, upstream calls and the ImagesResponse.

The image endpoints and the chat flow for image models share everything here; the
per-family ``promptObject`` rules live in `image_families`.
"""

from __future__ import annotations

import base64
import contextvars
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from routes.functions.image_families import ImageJob, family_of, prompt_objects
from routes.functions.shared_func import number_in_range, optional_field, required_field, unix_time
from routes.functions.txt_func import check_record
from utils.catalog import CatalogModel, ModelCatalog
from utils.common import OneMinClient
from utils.constants import FEATURE_IMAGE_EDITOR, FEATURE_IMAGE_GENERATOR, FEATURE_IMAGE_VARIATOR, FEATURES_PATH
from utils.errors import InvalidRequestError, UpstreamError
from utils.safe_fetch import sniff_image_type

logger = logging.getLogger(__name__)

QUALITIES = ("standard", "hd", "low", "medium", "high", "auto")
STYLES = ("vivid", "natural")
BACKGROUNDS = ("transparent", "opaque", "auto")
OUTPUT_FORMATS = ("png", "jpeg", "webp")
MODERATIONS = ("low", "auto")
RESPONSE_FORMATS = ("url", "b64_json")
# 1min.ai stores uploads by file extension; BMP is not among the image types it accepts.
UPLOAD_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}
MAX_SIDE_DIGITS = 5

SIZE_PATTERN = re.compile(rf"^([1-9]\d{{0,{MAX_SIDE_DIGITS - 1}}})x([1-9]\d{{0,{MAX_SIDE_DIGITS - 1}}})$")
# A flag starts at the beginning of the prompt or after whitespace.
ASPECT_FLAG = re.compile(r"(?:^|\s)--(?:ar|aspect)(?:\s+(\S+)|(?=\s|$))", re.IGNORECASE)
NEGATIVE_FLAG = re.compile(r"(?:^|\s)--no(?:\s+(.*?))?(?=\s--[a-z]|$)", re.IGNORECASE | re.DOTALL)
MODE_FLAG = re.compile(r"(?:^|\s)--(fast|relax)(?=\s|$)", re.IGNORECASE)
ASPECT_VALUE = re.compile(r"^([1-9]\d{0,3}):([1-9]\d{0,3})$")

OPERATION_VERBS = {
    FEATURE_IMAGE_GENERATOR: "generate images",
    FEATURE_IMAGE_VARIATOR: "make image variations",
    FEATURE_IMAGE_EDITOR: "edit images",
}


@dataclass
class PromptFlags:
    """A prompt with the original relay's flags taken out, and what the flags asked for."""

    prompt: str
    aspect: tuple[int, int] | None = None
    negative_prompt: str | None = None
    mode: str | None = None


def parse_prompt_flags(text: str) -> PromptFlags:
    """Remove ``--ar W:H`` (or ``--aspect``), ``--no words``, ``--fast`` and ``--relax`` from a prompt.

    The last ``--ar`` and mode flag win; several ``--no`` lists are joined with commas.
    """
    aspect = None
    for match in ASPECT_FLAG.finditer(text):
        aspect = _aspect_value(match.group(1) or "")
    text = ASPECT_FLAG.sub(" ", text)

    modes = [match.group(1).lower() for match in MODE_FLAG.finditer(text)]
    text = MODE_FLAG.sub(" ", text)

    negatives = [match.group(1).strip() for match in NEGATIVE_FLAG.finditer(text) if (match.group(1) or "").strip()]
    text = NEGATIVE_FLAG.sub(" ", text)

    prompt = " ".join(text.split())
    return PromptFlags(prompt, aspect, ", ".join(negatives) or None, modes[-1] if modes else None)


def _aspect_value(value: str) -> tuple[int, int]:
    match = ASPECT_VALUE.match(value)
    if match is None:
        raise InvalidRequestError(
            f"Invalid aspect ratio flag '--ar {value}'. Write it as --ar WIDTH:HEIGHT, for example --ar 16:9.",
            param="prompt",
            code="invalid_value",
        )
    return int(match.group(1)), int(match.group(2))


# --- request fields --------------------------------------------------------------------------


@dataclass
class ImageRequest:
    """A checked image request: the model asked for, the job, and how to return the results."""

    model: str
    job: ImageJob
    # None: the model family's default (b64_json for gpt-image, url for the others).
    response_format: str | None
    # The prompt as the client sent it, to tell whether the flags changed it.
    original_prompt: str = ""


def _choice(body: dict, name: str, choices: tuple[str, ...]) -> str | None:
    value = optional_field(body, name, str)
    if value is not None and value not in choices:
        raise InvalidRequestError(
            f"Invalid value for '{name}': '{value}'. Supported values: {', '.join(choices)}.",
            param=name,
            code="invalid_value",
        )
    return value


def _size(body: dict) -> str | None:
    size = optional_field(body, "size", str)
    if size is None or size == "auto" or SIZE_PATTERN.match(size):
        return size
    raise InvalidRequestError(
        f"Invalid value for 'size': '{size}'. Use WIDTHxHEIGHT, for example 1024x1024, or auto.",
        param="size",
        code="invalid_value",
    )


def parse_image_request(body: dict, feature: str, default_model: str, max_n: int) -> ImageRequest:
    """Check the OpenAI fields of an image request; raise a 400 naming the first bad one.

    ``moderation`` and ``user`` are checked and then not used, because 1min.ai has no field
    for them. Prompt flags are taken out of the prompt here.
    """
    model = optional_field(body, "model", str) or default_model
    if optional_field(body, "stream", bool):
        raise InvalidRequestError(
            "Streaming image generation is not supported by this relay. Send the request without 'stream'.",
            param="stream",
        )
    _choice(body, "moderation", MODERATIONS)
    optional_field(body, "user", str)

    original_prompt = ""
    flags = PromptFlags("")
    if feature != FEATURE_IMAGE_VARIATOR:
        original_prompt = required_field(body, "prompt", str)
        flags = parse_prompt_flags(original_prompt)
        if not flags.prompt:
            raise InvalidRequestError("'prompt' must contain a description of the image.", param="prompt")

    job = ImageJob(
        prompt=flags.prompt,
        n=number_in_range(body, "n", 1, max_n, integer=True) or 1,
        size=_size(body),
        aspect=flags.aspect,
        quality=_choice(body, "quality", QUALITIES),
        style=_choice(body, "style", STYLES),
        background=_choice(body, "background", BACKGROUNDS),
        output_format=_choice(body, "output_format", OUTPUT_FORMATS),
        output_compression=number_in_range(body, "output_compression", 0, 100, integer=True),
        negative_prompt=flags.negative_prompt,
        mode=flags.mode,
    )
    return ImageRequest(model, job, _choice(body, "response_format", RESPONSE_FORMATS), original_prompt)


def require_image_model(catalog: ModelCatalog, model_id: str, feature: str) -> CatalogModel:
    """Return the catalog model for an image operation.

    An unknown model is a 404; a known model that cannot do ``feature`` is a 400 that
    lists the models that can.
    """
    model = catalog.require(model_id)
    if model.supports(feature):
        return model
    capable = ", ".join(sorted(candidate.id for candidate in catalog.list(feature))) or "none"
    raise InvalidRequestError(
        f"The model '{model_id}' cannot {OPERATION_VERBS[feature]}. Models that can: {capable}.",
        param="model",
        code="unsupported_model",
    )


def default_response_format(model: CatalogModel) -> str:
    """Return OpenAI's default for the model: base64 for the gpt-image models, URLs for the rest."""
    return "b64_json" if family_of(model) == "gpt-image" else "url"


# --- upstream ----------------------------------------------------------------------------------


def upload_image(client: OneMinClient, api_key: str, content: bytes, name: str, param: str) -> str:
    """Upload image bytes to 1min.ai's assets and return the asset path that features take."""
    mime_type = sniff_image_type(content)
    extension = UPLOAD_EXTENSIONS.get(mime_type or "")
    if extension is None:
        raise InvalidRequestError(
            f"'{param}' must be a PNG, JPEG, GIF or WebP image.", param=param, code="invalid_image_format"
        )
    body = client.upload_asset(api_key, f"{name}.{extension}", content, mime_type or "")
    file_content = body.get("fileContent") if isinstance(body.get("fileContent"), dict) else {}
    asset = body.get("asset") if isinstance(body.get("asset"), dict) else {}
    path = file_content.get("path") or asset.get("key")
    if not isinstance(path, str) or not path:
        raise UpstreamError("1min.ai returned no asset path for the uploaded image.")
    return path


def _result_keys(body: Any) -> list[str]:
    record = check_record(body)
    detail = record.get("aiRecordDetail") if isinstance(record.get("aiRecordDetail"), dict) else {}
    result = detail.get("resultObject", record.get("resultObject"))
    if not isinstance(result, list) or not result or not all(isinstance(key, str) and key for key in result):
        raise UpstreamError("1min.ai returned no image for the image request.")
    return result


def run_image_job(
    client: OneMinClient, api_key: str, feature: str, model: CatalogModel, job: ImageJob, timeout: float
) -> list[str]:
    """Run ``job`` on 1min.ai and return the storage keys of its images, at most ``job.n`` of them.

    A job that needs several calls runs them in parallel; one failure fails the request.
    """
    bodies = [
        {"type": feature, "model": model.id, "promptObject": prompt_object}
        for prompt_object in prompt_objects(feature, model, job)
    ]

    def call(body: dict) -> list[str]:
        return _result_keys(client.post_json(FEATURES_PATH, api_key, body, timeout=timeout).json())

    if len(bodies) == 1:
        batches = [call(bodies[0])]
    else:
        with ThreadPoolExecutor(max_workers=len(bodies), thread_name_prefix="image-job") as pool:
            # Each call runs in a copy of the request's context, so its log lines keep the request id.
            futures = [pool.submit(contextvars.copy_context().run, call, body) for body in bodies]
            batches = [future.result() for future in futures]

    keys = [key for batch in batches for key in batch]
    if job.n is not None and len(keys) < job.n:
        logger.warning("%s returned %d of %d requested images", model.id, len(keys), job.n)
    return keys if job.n is None else keys[: job.n]


def images_response(
    client: OneMinClient, keys: list[str], response_format: str, max_bytes: int, revised_prompt: str | None = None
) -> dict:
    """Build OpenAI's ``ImagesResponse``: a CDN URL per image, or its bytes in base64."""
    data = []
    for key in keys:
        if response_format == "b64_json":
            item = {"b64_json": base64.b64encode(client.download_asset(key, max_bytes)).decode("ascii")}
        else:
            item = {"url": client.asset_link(key)}
        if revised_prompt:
            item["revised_prompt"] = revised_prompt
        data.append(item)
    return {"created": unix_time(), "data": data}
