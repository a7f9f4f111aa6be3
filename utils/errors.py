"""Exceptions named after OpenAI's error types.

Code anywhere in the relay raises one of these; `app.py` renders it once as
``{"error": {"message", "type", "param", "code"}}`` with the class's HTTP status.
"""

from __future__ import annotations


class OpenAIError(Exception):
    """Base class: an error the client sees in OpenAI's shape."""

    status_code = 500
    error_type = "server_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    def to_dict(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(OpenAIError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(OpenAIError):
    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(OpenAIError):
    status_code = 403
    error_type = "invalid_request_error"
    default_code = "permission_denied"


class NotFoundError(OpenAIError):
    status_code = 404
    error_type = "invalid_request_error"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"

    def __init__(self, model: str, *, param: str | None = "model", message: str | None = None) -> None:
        super().__init__(
            message
            or f"The model '{model}' does not exist or is not available through this relay. "
            "GET /v1/models lists the models you can use.",
            param=param,
        )


class MethodNotAllowedError(OpenAIError):
    status_code = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class RequestTooLargeError(OpenAIError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimitError(OpenAIError):
    status_code = 429
    error_type = "requests"
    default_code = "rate_limit_exceeded"


class UpstreamError(OpenAIError):
    """1min.ai failed, returned something unusable, or could not be reached."""

    status_code = 502
    error_type = "server_error"
    default_code = "upstream_error"


class ServiceUnavailableError(OpenAIError):
    status_code = 503
    error_type = "server_error"
    default_code = "service_unavailable"


class UpstreamTimeoutError(OpenAIError):
    status_code = 504
    error_type = "server_error"
    default_code = "upstream_timeout"
