"""Fetch a user-supplied image URL without letting it reach the relay's own network.

The host is resolved once, every resolved address must be public, and the connection
goes to that verified address (so a second DNS answer cannot swap in an internal one).
Each redirect is checked the same way. Bodies are capped while reading, the whole
fetch has one deadline, and the bytes must look like the image type the server claims.
Hosts listed in IMAGE_FETCH_ALLOWED_HOSTS skip the address check, for trusted
internal image servers (and the tests' loopback server).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3

from utils.constants import USER_AGENT

MAX_REDIRECTS = 5
READ_CHUNK = 65536
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")

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
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return False
    return address.is_global


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


def _open(url: str, allowed_hosts: tuple[str, ...], deadline: float) -> urllib3.BaseHTTPResponse:
    scheme, host, port, path = _split(url)
    address = _checked_address(host, port, allowed_hosts)
    timeout = urllib3.Timeout(total=max(0.1, deadline - time.monotonic()))
    if scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            address, port, server_hostname=host, assert_hostname=host, timeout=timeout, retries=False
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False)
    host_header = host if ":" not in host else f"[{host}]"
    default_port = 443 if scheme == "https" else 80
    if port != default_port:
        host_header += f":{port}"
    try:
        return pool.urlopen(
            "GET",
            path,
            headers={"Host": host_header, "User-Agent": USER_AGENT, "Accept": "image/*"},
            redirect=False,
            preload_content=False,
        )
    except urllib3.exceptions.TimeoutError:
        raise FetchError("the image server did not respond in time") from None
    except urllib3.exceptions.HTTPError as error:
        raise FetchError(f"the image could not be fetched ({type(error).__name__})") from None


def _read_capped(response: urllib3.BaseHTTPResponse, max_bytes: int, deadline: float) -> bytes:
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
            if time.monotonic() > deadline:
                raise FetchError("the image download took too long")
            chunks.append(chunk)
    except urllib3.exceptions.HTTPError as error:
        raise FetchError(f"the image download failed ({type(error).__name__})") from None
    return b"".join(chunks)


def fetch_image(url: str, max_bytes: int, timeout: float, allowed_hosts: tuple[str, ...] = ()) -> FetchedImage:
    """Download an image from a public http(s) URL, or raise `FetchError` saying why not."""
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        response = _open(url, allowed_hosts, deadline)
        try:
            if response.status in (301, 302, 303, 307, 308):
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
            content = _read_capped(response, max_bytes, deadline)
        finally:
            response.release_conn()
        actual_type = sniff_image_type(content)
        if actual_type is None:
            raise FetchError("the downloaded bytes are not a PNG, JPEG, GIF, WebP or BMP image")
        return FetchedImage(content, actual_type)
    raise FetchError(f"the image URL redirected more than {MAX_REDIRECTS} times")
