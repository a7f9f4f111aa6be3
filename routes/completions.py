"""Legacy text completions, and the embeddings endpoint that 1min.ai cannot serve."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, stream_with_context

from routes.functions.chat_func import require_chat_model
from routes.functions.choices_func import check_choice_count
from routes.functions.completion_func import (
    completion_choice_group,
    format_completion,
    parse_completion_request,
    stream_completion,
)
from routes.functions.shared_func import parse_json_body, relay_state, validate_auth
from routes.functions.stream_func import SSE_HEADERS
from utils.errors import InvalidRequestError

bp = Blueprint("completions", __name__)


@bp.post("/v1/completions")
def create_completion() -> Response:
    api_key = validate_auth()
    completion = parse_completion_request(parse_json_body())
    g.model = completion.model
    check_choice_count(len(completion.prompts) * completion.n, relay_state().settings.max_n)
    require_chat_model(completion.model)

    group = completion_choice_group(api_key, completion)
    if completion.stream:
        group.start()
        return Response(stream_with_context(stream_completion(group, completion)), headers=SSE_HEADERS)
    return jsonify(format_completion(completion, group.collect()))


@bp.post("/v1/embeddings")
def create_embedding() -> Response:
    """Reject every embeddings request with a 400 that explains why.

    It is a 400 rather than a 501, because the openai SDK retries every 5xx response and a retry
    cannot help. It is not a 404, so that a client can tell an endpoint that is not offered
    from a wrong URL.
    """
    raise InvalidRequestError(
        "1min.ai offers no embedding models, so this relay cannot create embeddings. "
        "Send embedding requests to a provider that offers them.",
        code="unsupported_endpoint",
    )
