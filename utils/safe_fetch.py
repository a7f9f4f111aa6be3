"""Fetch a user-supplied image URL without letting it reach the relay's own network.

The host is resolved once, every resolved address must be public, and the connection
goes to that verified address (so a second DNS answer cannot swap in an internal one).
Each redirect is checked the same way. Bodies are capped while reading, the whole
fetch has one deadline, and the bytes must look like the image type the server claims.
Hosts listed in IMAGE_FETCH_ALLOWED_HOSTS skip the address check, for trusted
internal image servers (and the tests' loopback server).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from utils.constants import USER_AGENT

MAX_REDIRECTS = 5
READ_CHUNK = 65536
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Special-purpose ranges that some Python 3.11 patch releases still report as global.
NON_GLOBAL_IPV4 = (
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("192.88.99.0/24"),
)

# Leading bytes of the image formats chat models accept.
IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


class FetchError(Exception):
    """The URL was refused or could not be fetched; the message is safe to show the client."""


@dataclass(frozen=True)
class FetchedImage:
    content: bytes
    content_type: str


def sniff_image_type(content: bytes) -> str | None:
    """Return the MIME type that the leading bytes identify, or None for a non-image."""
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    for signature, mime_type in IMAGE_SIGNATURES:
        if content.startswith(signature):
            return mime_type
    return None


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Tell whether an address is globally routable: not loopback, private, link-local,
    multicast, reserved, shared (CGNAT) or unspecified, including IPv4 hidden in IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if address in NAT64_PREFIX:
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None and not is_public_address(address.sixtofour):
            return False
    elif any(address in network for network in NON_GLOBAL_IPV4):
        return False
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return False
    return address.is_global


class _Watchdog:
    """Enforce one deadline on a whole fetch by shutting down the open socket when it passes.

    Socket timeouts bound each read, not the sum, so a server that sends one byte just
    before every timeout could otherwise hold the fetch open for hours.
    """

    def __init__(self, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.expired = False
        self._connection: HTTPConnection | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return max(0.1, self.deadline - time.monotonic())

    def watch(self, connection: HTTPConnection | None) -> None:
        with self._lock:
            self._connection = connection
            if self.expired:
                self._shut(connection)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut(self._connection)

    @staticmethod
    def _shut(connection: HTTPConnection | None) -> None:
        sock = connection.sock if connection is not None else None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        self._timer.cancel()


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise FetchError(f"the host {host!r} could not be resolved") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def _checked_address(host: str, port: int, allowed_hosts: tuple[str, ...]) -> str:
    """Resolve ``host`` and return the address to connect to, refusing non-public ones."""
    addresses = _resolve(host, port)
    if host.lower() in allowed_hosts:
        return addresses[0]
    for text in addresses:
        if not is_public_address(ipaddress.ip_address(text.split("%")[0])):
            raise FetchError(f"the host {host!r} resolves to a non-public address, which this relay does not fetch")
    return addresses[0]


def _split(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError("only http and https URLs can be fetched")
    if parts.username or parts.password:
        raise FetchError("URLs with credentials are not fetched")
    if not parts.hostname:
        raise FetchError("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FetchError("the URL has an invalid port") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path


def _connect(url: str, allowed_hosts: tuple[str, ...], watchdog: _Watchdog) -> tuple[HTTPConnection, str, str]:
    """Open a connection to the checked address of ``url``; return it, the Host header and the path."""
    scheme, host, port, path = _split(url)
    address = _checked_address(host, port, allowed_hosts)
    timeout = watchdog.remaining()
    if scheme == "https":
        connection: HTTPConnection = HTTPSConnection(
            address, port, timeout=timeout, server_hostname=host, assert_hostname=host
        )
    else:
        connection = HTTPConnection(address, port, timeout=timeout)
    host_header = host if ":" not in host else f"[{host}]"
    if port != (443 if scheme == "https" else 80):
        host_header += f":{port}"
    connection.connect()
    watchdog.watch(connection)
    return connection, host_header, path


def _request(url: str, allowed_hosts: tuple[str, ...], watchdog: _Watchdog) -> tuple[HTTPConnection, urllib3.BaseHTTPResponse]:
    connection: HTTPConnection | None = None
    try:
        connection, host_header, path = _connect(url, allowed_hosts, watchdog)
        headers = {"Host": host_header, "User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"}
        connection.request("GET", path, headers=headers, preload_content=False)
        return connection, connection.getresponse()
    except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError) as error:
        if connection is not None:
            connection.close()
        if watchdog.expired or isinstance(error, (TimeoutError, urllib3.exceptions.TimeoutError)):
            raise FetchError("the image server did not respond in time") from None
        raise FetchError(f"the image could not be fetched ({type(error).__name__})") from None


def _read_capped(response: urllib3.BaseHTTPResponse, max_bytes: int, watchdog: _Watchdog) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"the image is larger than the limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.stream(READ_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"the image is larger than the limit of {max_bytes} bytes")
            chunks.append(chunk)
    except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError) as error:
        if watchdog.expired:
            raise FetchError("the image download took too long") from None
        raise FetchError(f"the image download failed ({type(error).__name__})") from None
    if watchdog.expired:
        raise FetchError("the image download took too long")
    return b"".join(chunks)


def _follow(url: str, max_bytes: int, allowed_hosts: tuple[str, ...], watchdog: _Watchdog) -> FetchedImage:
    for _ in range(MAX_REDIRECTS + 1):
        connection, response = _request(url, allowed_hosts, watchdog)
        try:
            if response.status in REDIRECT_STATUSES:
                location = response.headers.get("Location")
                if not location:
                    raise FetchError("the image server sent a redirect without a Location")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise FetchError(f"the image server returned HTTP {response.status}")
            declared_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if not declared_type.startswith("image/"):
                raise FetchError(f"the URL did not return an image (Content-Type {declared_type or 'missing'})")
            content = _read_capped(response, max_bytes, watchdog)
        finally:
            watchdog.watch(None)
            response.close()
            connection.close()
        actual_type = sniff_image_type(content)
        if actual_type is None:
            raise FetchError("the downloaded bytes are not a PNG, JPEG, GIF, WebP or BMP image")
        return FetchedImage(content, actual_type)
    raise FetchError(f"the image URL redirected more than {MAX_REDIRECTS} times")


def fetch_image(url: str, max_bytes: int, timeout: float, allowed_hosts: tuple[str, ...] = ()) -> FetchedImage:
    """Download an image from a public http(s) URL, or raise `FetchError` saying why not.

    The whole fetch, redirects included, ends after ``timeout`` seconds.
    """
    watchdog = _Watchdog(timeout)
    try:
        return _follow(url, max_bytes, allowed_hosts, watchdog)
    finally:
        watchdog.cancel()
