"""Error responses in the shapes that 1min.ai and the CDN in front of it send."""

from __future__ import annotations

import json
from typing import Any

from .behaviour import Behaviour

# Codes the real service was seen to send in `errorCode`.
UNSUPPORTED_MODEL = "UNSUPPORTED_MODEL"
MISSING_REQUIRED_FIELDS = "MISSING_REQUIRED_FIELDS"
REQUEST_BODY_VALIDATION_FAILED = "REQUEST_BODY_VALIDATION_FAILED"
UNKNOWN_ERROR = "UNKNOWN_ERROR"
EXTERNAL_API_RESPONSE_WITH_ERROR = "EXTERNAL_API_RESPONSE_WITH_ERROR"
UNSUPPORTED_FILE_TYPE = "UNSUPPORTED_FILE_TYPE"

# The real service hides provider errors behind this canned text and puts the cause in `details`.
BUSY_MESSAGE = "The service is a bit busy right now. Please try again later."

_CLOUDFLARE_403 = """<!DOCTYPE html>
<html lang="en-US"><head><title>Just a moment...</title></head>
<body><h1>Checking if the site connection is secure</h1>
<p>api.1min.ai needs to review the security of your connection before proceeding.</p></body></html>
"""

_CLOUDFLARE_5XX = """<!DOCTYPE html>
<html lang="en-US"><head><title>api.1min.ai | {status}: {reason}</title></head>
<body><h1>Error {status}</h1><h2>{reason}</h2>
<p>The web server reported an error. Cloudflare Ray ID: 8f0000000000fake</p></body></html>
"""


class FakeError(Exception):
    """An HTTP error response, raised by endpoints and written by the dispatcher."""

    def __init__(self, status: int, body: bytes, content_type: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def json_error(status: int, payload: Any, headers: dict[str, str] | None = None) -> FakeError:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return FakeError(status, body, "application/json; charset=utf-8", headers)


def html_error(status: int, page: str) -> FakeError:
    return FakeError(status, page.encode(), "text/html; charset=UTF-8")


def bad_request(code: str, message: str, details: Any = None) -> FakeError:
    """Build the 400 body `{"errorCode", "message", "details"}`."""
    return json_error(400, {"errorCode": code, "message": message, "details": details})


def invalid_body(message: str) -> FakeError:
    return bad_request(REQUEST_BODY_VALIDATION_FAILED, message)


def provider_error(cause: str) -> FakeError:
    """Build a provider-side rejection: canned message, real cause as a JSON-encoded string."""
    details = json.dumps({"error": {"message": cause, "type": "invalid_request_error"}})
    return bad_request(EXTERNAL_API_RESPONSE_WITH_ERROR, BUSY_MESSAGE, details)


def unsupported_model(model: Any) -> FakeError:
    return bad_request(UNSUPPORTED_MODEL, f"Model {model} is not supported")


def unauthorized(message: str = "Invalid API key") -> FakeError:
    return json_error(401, {"error": "Unauthorized", "message": message, "statusCode": 401})


def too_many_requests(retry_after: str | None) -> FakeError:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    payload = {"error": "Too Many Requests", "message": "Rate limit exceeded", "statusCode": 429}
    return json_error(429, payload, headers)


def not_found(message: str) -> FakeError:
    return json_error(404, {"message": message, "error": "Not Found", "statusCode": 404})


def bot_filter_page() -> FakeError:
    return html_error(403, _CLOUDFLARE_403)


def injected_failure(behaviour: Behaviour) -> FakeError:
    """Build the response for `fail_status`. The 400 and 500 bodies use the error_* fields."""
    status = behaviour.fail_status
    if status == 400:
        return bad_request(behaviour.error_code, behaviour.error_message, behaviour.error_details)
    if status == 401:
        return unauthorized()
    if status == 429:
        return too_many_requests(behaviour.retry_after)
    if status == 500:
        payload = {"statusCode": 500, "message": behaviour.error_message,
                   "error": "Internal Server Error"}
        return json_error(500, payload)
    if status == 403:
        return bot_filter_page()
    reasons = {502: "Bad gateway", 522: "Connection timed out"}
    return html_error(status, _CLOUDFLARE_5XX.format(status=status, reason=reasons[status]))
