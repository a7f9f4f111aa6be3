"""The Files API end to end: the openai SDK, the relay under waitress, the fake 1min.ai."""

from __future__ import annotations

import io
import tempfile
import threading
import zipfile
from pathlib import Path

import openai
import pytest
import requests

from tests.fake_onemin.media import png_image
from tests.openapi_check import assert_matches_schema

KEY = "test-key-1"
OTHER_KEY = "test-key-2"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = png_image("files")


def _docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def _headers(key: str = KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _upload(relay, filename: str, content: bytes, purpose: str = "assistants", key: str = KEY) -> requests.Response:
    return requests.post(
        relay.url("/v1/files"),
        headers=_headers(key),
        files={"file": (filename, content, "application/octet-stream")},
        data={"purpose": purpose},
        timeout=30,
    )


def _uploads_received(fake) -> list:
    return fake.requests_to("/api/assets")


def test_file_cycle_through_sdk(any_relay, fake_onemin):
    client = any_relay.openai_client()
    content = "Quarterly numbers: 42\nПривет\n".encode()

    created = client.files.with_raw_response.create(file=("report.txt", content), purpose="assistants")
    created_body = created.http_response.json()
    assert_matches_schema("OpenAIFile", created_body)
    file = created.parse()
    assert file.id.startswith("file-")
    assert file.bytes == len(content)
    assert file.filename == "report.txt"
    assert file.purpose == "assistants"
    assert file.status == "processed"
    assert file.expires_at == file.created_at + 30 * 24 * 3600

    upload = _uploads_received(fake_onemin)[-1]
    assert upload.headers["api-key"] == KEY
    assert upload.files["asset"] == ("report.txt", "text/plain", content)

    retrieved = client.files.with_raw_response.retrieve(file.id).http_response.json()
    assert retrieved == created_body

    listed = client.files.with_raw_response.list().http_response.json()
    assert_matches_schema("ListFilesResponse", listed)
    assert [item["id"] for item in listed["data"]] == [file.id]
    assert listed["first_id"] == file.id
    assert listed["last_id"] == file.id
    assert listed["has_more"] is False

    downloaded = client.files.content(file.id)
    assert downloaded.content == content
    assert downloaded.response.headers["Content-Type"] == "text/plain; charset=utf-8"

    deleted = client.files.with_raw_response.delete(file.id).http_response.json()
    assert_matches_schema("DeleteFileResponse", deleted)
    assert deleted == {"id": file.id, "object": "file", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(file.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(file.id)
    assert client.files.list().data == []
    client.close()


def test_empty_list_shape(relay):
    body = requests.get(relay.url("/v1/files"), headers=_headers(), timeout=30).json()

    assert body == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


@pytest.mark.parametrize(
    ("filename", "content", "sent_name", "sent_type", "download_type"),
    [
        ("notes.md", b"# Title\n\nSome *markdown*.\n", "notes.md.txt", "text/plain", "text/markdown; charset=utf-8"),
        ("data.jsonl", b'{"a": 1}\n{"a": 2}\n', "data.jsonl.txt", "text/plain", "text/plain; charset=utf-8"),
        ("table.csv", b"a,b\n1,2\n", "table.csv", "text/csv", "text/csv; charset=utf-8"),
        ("README", b"plain words\n", "README.txt", "text/plain", "text/plain; charset=utf-8"),
        ("report.pdf", PDF, "report.pdf", "application/pdf", "application/pdf"),
        ("scan.bin", PDF, "scan.pdf", "application/pdf", "application/pdf"),
        (
            "letter.docx",
            _docx(),
            "letter.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        ("photo.jpg", PNG, "photo.png", "image/png", "image/png"),
        ("../../etc/pass:wd.txt", b"x\n", "pass_wd.txt", "text/plain", "text/plain; charset=utf-8"),
    ],
)
def test_upload_name_matches_content(relay, fake_onemin, filename, content, sent_name, sent_type, download_type):
    response = _upload(relay, filename, content)

    assert response.status_code == 200, response.text
    assert response.json()["filename"] == filename
    sent = _uploads_received(fake_onemin)[-1].files["asset"]
    assert sent == (sent_name, sent_type, content)
    download = requests.get(relay.url(f"/v1/files/{response.json()['id']}/content"), headers=_headers(), timeout=30)
    assert download.content == content
    assert download.headers["Content-Type"] == download_type


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("blob.bin", b"\x00\x01\x02\xff\xfe binary", "is not supported"),
        ("sheet.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "is not supported"),
        ("archive.zip", b"PK\x03\x04" + bytes(60), "is not supported"),
        ("empty.txt", b"", "is empty"),
    ],
)
def test_unsupported_upload_rejected(relay, fake_onemin, filename, content, message):
    response = _upload(relay, filename, content)

    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error["message"]
    assert error["param"] == "file"
    assert _uploads_received(fake_onemin) == []


@pytest.mark.parametrize(
    ("data", "param"),
    [({}, "purpose"), ({"purpose": "homework"}, "purpose")],
)
def test_invalid_purpose_rejected(relay, data, param):
    response = requests.post(
        relay.url("/v1/files"), headers=_headers(), files={"file": ("a.txt", b"a")}, data=data, timeout=30
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_missing_file_part_rejected(relay):
    response = requests.post(relay.url("/v1/files"), headers=_headers(), files={"purpose": (None, "assistants")}, timeout=30)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"


def test_json_body_rejected(relay):
    response = requests.post(relay.url("/v1/files"), headers=_headers(), json={"purpose": "assistants"}, timeout=30)

    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]["message"]


def test_upload_without_key_rejected(relay, fake_onemin):
    response = requests.post(relay.url("/v1/files"), files={"file": ("a.txt", b"a")}, data={"purpose": "assistants"}, timeout=30)

    assert response.status_code == 401
    assert _uploads_received(fake_onemin) == []


def test_upstream_rejection_forwarded(relay, fake_onemin):
    fake_onemin.set(fail_status=400, error_code="UNSUPPORTED_FILE_TYPE", error_message="File type isn't supported")

    response = _upload(relay, "a.txt", b"text")

    assert response.status_code == 400
    assert "UNSUPPORTED_FILE_TYPE" in response.json()["error"]["message"]
    assert requests.get(relay.url("/v1/files"), headers=_headers(), timeout=30).json()["data"] == []


def test_expires_after_through_sdk(openai_client):
    file = openai_client.files.create(
        file=("a.txt", b"short-lived"), purpose="user_data", expires_after={"anchor": "created_at", "seconds": 7200}
    )

    assert file.expires_at == file.created_at + 7200
    assert openai_client.files.retrieve(file.id).expires_at == file.created_at + 7200


def test_expires_after_out_of_range_rejected(relay):
    response = requests.post(
        relay.url("/v1/files"),
        headers=_headers(),
        files={"file": ("a.txt", b"a")},
        data={"purpose": "assistants", "expires_after[anchor]": "created_at", "expires_after[seconds]": "60"},
        timeout=30,
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "expires_after.seconds"


def test_list_filters_orders_and_pages(relay):
    client = relay.openai_client()
    ids = [client.files.create(file=(f"f{index}.txt", b"x"), purpose=purpose).id
           for index, purpose in enumerate(["assistants", "user_data", "assistants", "assistants"])]

    newest_first = [file.id for file in client.files.list()]
    assert newest_first == list(reversed(ids))
    oldest_first = [file.id for file in client.files.list(order="asc")]
    assert oldest_first == ids
    assistants_only = [file.id for file in client.files.list(purpose="assistants", order="asc")]
    assert assistants_only == [ids[0], ids[2], ids[3]]

    first_page = client.files.with_raw_response.list(limit=2, order="asc").http_response.json()
    assert [item["id"] for item in first_page["data"]] == ids[:2]
    assert first_page["has_more"] is True
    second_page = client.files.list(limit=2, order="asc", after=first_page["last_id"])
    assert [file.id for file in second_page.data] == ids[2:]
    assert second_page.has_more is False
    every_page = [file.id for file in client.files.list(limit=1, order="asc")]
    assert every_page == ids
    client.close()


@pytest.mark.parametrize(("query", "param"), [("limit=0", "limit"), ("limit=abc", "limit"), ("order=up", "order")])
def test_list_invalid_query_rejected(relay, query, param):
    response = requests.get(relay.url(f"/v1/files?{query}"), headers=_headers(), timeout=30)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_other_key_sees_not_found(relay):
    owner = relay.openai_client(KEY)
    stranger = relay.openai_client(OTHER_KEY)
    file = owner.files.create(file=("secret.txt", b"top secret"), purpose="assistants")

    unknown = requests.get(relay.url("/v1/files/file-doesnotexist"), headers=_headers(OTHER_KEY), timeout=30)
    foreign = requests.get(relay.url(f"/v1/files/{file.id}"), headers=_headers(OTHER_KEY), timeout=30)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"]["message"] == f"No such File object: {file.id}"
    assert foreign.json()["error"]["type"] == unknown.json()["error"]["type"]
    with pytest.raises(openai.NotFoundError):
        stranger.files.content(file.id)
    with pytest.raises(openai.NotFoundError):
        stranger.files.delete(file.id)
    assert stranger.files.list().data == []
    assert owner.files.retrieve(file.id).id == file.id
    owner.close()
    stranger.close()


def test_replicas_share_files(relay_factory, memcached_server, fake_onemin):
    from tests.conftest import flush_memcached

    host, port = memcached_server
    flush_memcached(host, port)
    first = relay_factory(MEMCACHED_HOST=host, MEMCACHED_PORT=port)
    second = relay_factory(MEMCACHED_HOST=host, MEMCACHED_PORT=port)
    file = first.openai_client().files.create(file=("shared.txt", b"shared bytes"), purpose="assistants")

    other_client = second.openai_client()
    assert other_client.files.retrieve(file.id).filename == "shared.txt"
    assert other_client.files.content(file.id).content == b"shared bytes"

    # Uploads racing on both replicas all land in the one shared index.
    results: list[str] = []

    def upload(relay, index: int) -> None:
        response = _upload(relay, f"race{index}.txt", b"race")
        results.append(response.json()["id"])

    threads = [threading.Thread(target=upload, args=(relay, index)) for index, relay in enumerate([first, second] * 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    listed = {item.id for item in other_client.files.list()}
    assert listed == set(results) | {file.id}
    assert len(listed) == 11


def test_content_when_cdn_lost_bytes(relay, fake_onemin):
    file_id = _upload(relay, "gone.txt", b"soon gone").json()["id"]
    fake_onemin.store.assets_by_path.clear()

    response = requests.get(relay.url(f"/v1/files/{file_id}/content"), headers=_headers(), timeout=30)

    assert response.status_code == 502
    assert "HTTP 404" in response.json()["error"]["message"]


# --- size limit and temporary files ---------------------------------------------------------------


class SpoolRecorder:
    """Keep every temporary file the relay opens, so a test can check that each was closed.

    Holding the references also stops garbage collection from closing a leaked file behind the test's back.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.handles: list = []

    def assert_all_closed(self) -> None:
        assert all(handle.closed for handle in self.handles)
        assert list(self.directory.iterdir()) == []


@pytest.fixture
def spools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SpoolRecorder:
    """Send Python's temporary files to this test's own directory and record each one opened."""
    recorder = SpoolRecorder(tmp_path)
    original = tempfile.TemporaryFile

    def recording(*args, **kwargs):
        handle = original(*args, **kwargs)
        recorder.handles.append(handle)
        return handle

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(tempfile, "TemporaryFile", recording)
    return recorder


@pytest.fixture
def small_relay(relay_factory):
    return relay_factory(MEMCACHED_HOST="", MAX_FILE_BYTES=2048)


def test_file_at_limit_accepted(small_relay, spools):
    response = _upload(small_relay, "full.txt", b"a" * 2048)

    assert response.status_code == 200
    assert response.json()["bytes"] == 2048
    assert len(spools.handles) == 1
    spools.assert_all_closed()


def test_file_over_limit_stops_while_reading(small_relay, fake_onemin, spools):
    response = _upload(small_relay, "big.txt", b"a" * 3000)

    assert response.status_code == 413
    error = response.json()["error"]
    assert "limit of 2048 bytes" in error["message"]
    assert error["param"] == "file"
    assert _uploads_received(fake_onemin) == []
    assert len(spools.handles) == 1
    spools.assert_all_closed()


def test_body_over_limit_rejected_by_length(small_relay, fake_onemin, spools):
    response = _upload(small_relay, "huge.txt", b"a" * 200_000)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert _uploads_received(fake_onemin) == []
    assert spools.handles == []
    spools.assert_all_closed()


def test_chunked_body_over_limit_rejected(small_relay, fake_onemin, spools):
    boundary = "relayboundary"
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
        "Content-Type: text/plain\r\n\r\n"
    ).encode()

    def body():
        yield head
        for _ in range(100):
            yield b"a" * 1000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = requests.post(
        small_relay.url("/v1/files"),
        headers={**_headers(), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        data=body(),
        timeout=30,
    )

    assert response.status_code == 413
    assert _uploads_received(fake_onemin) == []
    spools.assert_all_closed()


def test_failed_upstream_upload_leaves_no_files(relay, fake_onemin, spools):
    fake_onemin.set(fail_status=500)

    response = _upload(relay, "a.txt", b"text")

    assert response.status_code == 502
    assert len(spools.handles) == 1
    spools.assert_all_closed()


def test_rejected_type_leaves_no_files(relay, spools):
    response = _upload(relay, "blob.bin", b"\x00\x01binary")

    assert response.status_code == 400
    assert len(spools.handles) == 1
    spools.assert_all_closed()


