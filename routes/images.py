"""Image endpoints: generation, variations and edits, in OpenAI's request and response shapes."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.datastructures import FileStorage

from routes.functions.image_jobs import (
    ImageRequest,
    default_response_format,
    images_response,
    parse_image_request,
    require_image_model,
    run_image_job,
    upload_image,
)
from routes.functions.shared_func import parse_json_body, relay_state, validate_auth
from utils.catalog import CatalogModel
from utils.constants import (
    DEFAULT_IMAGE_EDIT_MODEL,
    DEFAULT_IMAGE_GENERATION_MODEL,
    DEFAULT_IMAGE_VARIATION_MODEL,
    FEATURE_IMAGE_EDITOR,
    FEATURE_IMAGE_GENERATOR,
    FEATURE_IMAGE_VARIATOR,
)
from utils.errors import InvalidRequestError, RequestTooLargeError

bp = Blueprint("images", __name__)

# Room for the non-file form fields and multipart framing next to the image and mask.
FORM_OVERHEAD_BYTES = 1024 * 1024
INTEGER_FORM_FIELDS = ("n", "output_compression")
READ_CHUNK_BYTES = 65536


@bp.post("/v1/images/generations")
def create_image() -> Response:
    api_key = validate_auth()
    image_request, model = _checked_request(parse_json_body(), FEATURE_IMAGE_GENERATOR, DEFAULT_IMAGE_GENERATION_MODEL)

    return _run(api_key, FEATURE_IMAGE_GENERATOR, model, image_request)


@bp.post("/v1/images/variations")
def create_image_variation() -> Response:
    api_key = validate_auth()
    image_request, model = _checked_request(_read_form(), FEATURE_IMAGE_VARIATOR, DEFAULT_IMAGE_VARIATION_MODEL)

    image_request.job.image_path = _upload_part(api_key, "image", required=True)
    return _run(api_key, FEATURE_IMAGE_VARIATOR, model, image_request)


@bp.post("/v1/images/edits")
def create_image_edit() -> Response:
    api_key = validate_auth()
    image_request, model = _checked_request(_read_form(), FEATURE_IMAGE_EDITOR, DEFAULT_IMAGE_EDIT_MODEL)

    image_request.job.image_path = _upload_part(api_key, "image", required=True)
    image_request.job.mask_path = _upload_part(api_key, "mask", required=False)
    return _run(api_key, FEATURE_IMAGE_EDITOR, model, image_request)


def _checked_request(body: dict, feature: str, default_model: str) -> tuple[ImageRequest, CatalogModel]:
    """Check the request fields and the model, before anything is uploaded or generated."""
    state = relay_state()
    image_request = parse_image_request(body, feature, default_model, state.settings.max_n)
    g.model = image_request.model
    return image_request, require_image_model(state.catalog, image_request.model, feature)


def _run(api_key: str, feature: str, model: CatalogModel, image_request: ImageRequest) -> Response:
    """Run the job upstream and respond with an ``ImagesResponse``.

    ``revised_prompt`` appears only when prompt flags were taken out of the prompt.
    """
    state = relay_state()
    job = image_request.job
    keys = run_image_job(state.client, api_key, feature, model, job, state.settings.image_job_timeout)

    response_format = image_request.response_format or default_response_format(model)
    revised_prompt = job.prompt if job.prompt != image_request.original_prompt else None
    body = images_response(state.client, keys, response_format, state.settings.max_image_bytes, revised_prompt)
    return jsonify(body)


def _read_form() -> dict:
    """Parse a multipart image request into a dict of typed OpenAI fields.

    The body may hold an image and a mask, each at most MAX_IMAGE_BYTES, so this request's
    size limit is set from that value before anything is read.
    """
    request.max_content_length = 2 * relay_state().settings.max_image_bytes + FORM_OVERHEAD_BYTES
    if not request.mimetype.startswith("multipart/form-data"):
        raise InvalidRequestError(
            "Image variations and edits take a multipart/form-data body with the image as a file part named 'image'."
        )
    fields: dict = {name: value for name, value in request.form.items() if value != ""}
    for name in INTEGER_FORM_FIELDS:
        if name in fields:
            fields[name] = _form_integer(name, fields[name])
    if "stream" in fields:
        fields["stream"] = fields["stream"].strip().lower() == "true"
    return fields


def _form_integer(name: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise InvalidRequestError(
            f"Invalid value for '{name}': expected an integer, got '{value}'.", param=name, code="invalid_type"
        ) from None


def _upload_part(api_key: str, name: str, required: bool) -> str | None:
    """Read one image file part, capped at MAX_IMAGE_BYTES, and upload it to 1min.ai's assets."""
    parts = request.files.getlist(name) + request.files.getlist(f"{name}[]")
    if not parts:
        if required:
            raise InvalidRequestError(
                f"Missing required parameter: '{name}'. Send the image as a file part named '{name}'.",
                param=name,
                code="missing_required_parameter",
            )
        return None
    if len(parts) > 1:
        raise InvalidRequestError(
            f"This relay takes one '{name}' file per request, got {len(parts)}.", param=name
        )
    state = relay_state()
    content = _read_capped(parts[0], name, state.settings.max_image_bytes)
    return upload_image(state.client, api_key, content, name, name)


def _read_capped(part: FileStorage, name: str, max_bytes: int) -> bytes:
    content = bytearray()
    while chunk := part.stream.read(READ_CHUNK_BYTES):
        content += chunk
        if len(content) > max_bytes:
            raise RequestTooLargeError(
                f"'{name}' is larger than the limit of {max_bytes} bytes (MAX_IMAGE_BYTES).", param=name
            )
    if not content:
        raise InvalidRequestError(f"'{name}' is an empty file.", param=name)
    return bytes(content)
