"""The guarded image fetch: address checks, redirects, size cap, deadline and content sniffing.

End-to-end cases use only loopback servers. Rejected URLs point at loopback variants
(127.0.0.2, [::1], 0.0.0.0) where a live server listens, so a guard failure shows up
as a recorded hit instead of leaving the machine.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator

import pytest

from tests.fake_onemin.media import png_image
from tests.image_server import ImageServer, chunked, drip, image, redirect, slow_headers
from utils.safe_fetch import FetchError, fetch_image, is_public_address, sniff_image_type

PNG = png_image("safe-fetch")
ALLOWED = ("127.0.0.1",)
MAX_BYTES = 64 * 1024
TIMEOUT = 5.0

NON_PUBLIC = [
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "fc00::1",
    "fd12:3456::1",
    "127.0.0.1",
    "127.0.0.2",
    "::1",
    "169.254.1.1",
    "fe80::1",
    "169.254.169.254",
    "fd00:ec2::254",
    "100.64.0.1",
    "100.127.255.254",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a00:1",
    "2002:a00:1::1",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "240.0.0.1",
    "255.255.255.255",
    "0.0.0.0",
    "::",
    "192.0.0.8",
    "192.0.2.1",
    "198.18.0.1",
    "2001:db8::1",
    "::127.0.0.1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_non_public_address_rejected(address):
    assert is_public_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", PUBLIC)
def test_public_address_accepted(address):
    assert is_public_address(ipaddress.ip_address(address)) is True


def test_sniff_image_types():
    assert sniff_image_type(PNG) == "image/png"
    assert sniff_image_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert sniff_image_type(b"GIF89a....") == "image/gif"
    assert sniff_image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image_type(b"<html><body>not an image</body></html>") is None
    assert sniff_image_type(b"") is None


@pytest.fixture
def server() -> Iterator[ImageServer]:
    started = ImageServer("127.0.0.1")
    yield started
    started.stop()


@pytest.fixture
def other_loopback() -> Iterator[ImageServer]:
    """A live server on 127.0.0.2, which the relay must never fetch from."""
    started = ImageServer("127.0.0.2")
    started.route("/secret.png", image(PNG))
    yield started
    started.stop()


def _ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def ipv6_loopback() -> Iterator[ImageServer]:
    if not _ipv6_loopback_available():
        pytest.skip("IPv6 loopback (::1) is not available on this machine")
    started = ImageServer("::1")
    started.route("/secret.png", image(PNG))
    yield started
    started.stop()


def _fetch(url: str, **overrides) -> object:
    options = {"max_bytes": MAX_BYTES, "timeout": TIMEOUT, "allowed_hosts": ALLOWED, **overrides}
    return fetch_image(url, **options)


def test_allowed_loopback_image_fetched(server):
    url = server.route("/cat.png", image(PNG))

    fetched = _fetch(url)

    assert fetched.content == PNG
    assert fetched.content_type == "image/png"


def test_loopback_refused_without_allow_list(server):
    url = server.route("/cat.png", image(PNG))

    with pytest.raises(FetchError, match="non-public address"):
        _fetch(url, allowed_hosts=())
    assert server.hits == []


def test_other_loopback_address_rejected(other_loopback):
    with pytest.raises(FetchError, match="non-public address"):
        _fetch(other_loopback.url("/secret.png"))
    assert other_loopback.hits == []


def test_ipv6_loopback_rejected(ipv6_loopback):
    with pytest.raises(FetchError, match="non-public address"):
        _fetch(ipv6_loopback.url("/secret.png"))
    assert ipv6_loopback.hits == []


def test_unspecified_address_rejected(server):
    server.route("/cat.png", image(PNG))

    with pytest.raises(FetchError, match="non-public address"):
        _fetch(f"http://0.0.0.0:{server.port}/cat.png")
    assert server.hits == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://127.0.0.1/cat.png", "only http and https"),
        ("http://user:secret@127.0.0.1/cat.png", "credentials"),
        ("http:///cat.png", "no host"),
        ("http://127.0.0.1:99999/cat.png", "invalid port"),
    ],
)
def test_malformed_url_rejected(url, message):
    with pytest.raises(FetchError, match=message):
        _fetch(url)


def test_redirect_to_other_loopback_rejected(server, other_loopback):
    url = server.route("/hop", redirect(other_loopback.url("/secret.png")))

    with pytest.raises(FetchError, match="non-public address"):
        _fetch(url)
    assert server.hits == ["/hop"]
    assert other_loopback.hits == []


def test_redirect_to_ipv6_loopback_rejected(server, ipv6_loopback):
    url = server.route("/hop", redirect(ipv6_loopback.url("/secret.png"), status=307))

    with pytest.raises(FetchError, match="non-public address"):
        _fetch(url)
    assert ipv6_loopback.hits == []


def test_redirect_to_file_scheme_rejected(server):
    url = server.route("/hop", redirect("file:///etc/passwd"))

    with pytest.raises(FetchError, match="only http and https"):
        _fetch(url)


def test_relative_redirect_followed(server):
    server.route("/cat.png", image(PNG))
    url = server.route("/old", redirect("/cat.png", status=301))

    fetched = _fetch(url)

    assert fetched.content == PNG
    assert server.hits == ["/old", "/cat.png"]


def test_redirect_loop_stops(server):
    url = server.route("/loop", redirect("/loop"))

    with pytest.raises(FetchError, match="redirected more than"):
        _fetch(url)
    assert len(server.hits) == 6


def test_declared_size_over_cap_rejected(server):
    url = server.route("/big.png", image(PNG + bytes(MAX_BYTES)))

    with pytest.raises(FetchError, match=f"larger than the limit of {MAX_BYTES} bytes"):
        _fetch(url)


def test_chunked_body_over_cap_rejected(server):
    url = server.route("/big.png", chunked(PNG + bytes(MAX_BYTES)))

    with pytest.raises(FetchError, match=f"larger than the limit of {MAX_BYTES} bytes"):
        _fetch(url)


def test_chunked_body_under_cap_fetched(server):
    url = server.route("/cat.png", chunked(PNG, chunk_size=7))

    assert _fetch(url).content == PNG


def test_slow_body_stops_at_deadline(server):
    url = server.route("/slow.png", drip(PNG, interval=0.05, total=200))

    started = time.monotonic()
    with pytest.raises(FetchError, match="took too long"):
        _fetch(url, timeout=0.5)
    assert time.monotonic() - started < 2.0


def test_slow_headers_stop_at_deadline(server):
    url = server.route("/slow.png", slow_headers(interval=0.05, total=200))

    started = time.monotonic()
    with pytest.raises(FetchError, match="did not respond in time"):
        _fetch(url, timeout=0.5)
    assert time.monotonic() - started < 2.0


def test_non_image_content_type_rejected(server):
    url = server.route("/page", image(b"<html>hi</html>", content_type="text/html"))

    with pytest.raises(FetchError, match="Content-Type text/html"):
        _fetch(url)


def test_image_type_with_html_bytes_rejected(server):
    url = server.route("/fake.png", image(b"<html>not really a png</html>", content_type="image/png"))

    with pytest.raises(FetchError, match="not a PNG, JPEG, GIF, WebP or BMP"):
        _fetch(url)


def test_sniffed_type_wins_over_declared(server):
    url = server.route("/mislabelled.jpg", image(PNG, content_type="image/jpeg"))

    assert _fetch(url).content_type == "image/png"


def test_error_status_rejected(server):
    with pytest.raises(FetchError, match="HTTP 404"):
        _fetch(server.url("/missing.png"))
