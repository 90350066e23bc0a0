"""Files (spec §3.7, §2.8 multipart, §2.10 downloads) through the official SDK in strict mode."""

import io
import os
from datetime import timedelta

import anthropic
import httpx2
import pytest

from conftest import BASE_URL, assert_no_extra


def upload(client, name, data, mime="text/plain", **kw):
    return client.beta.files.upload(file=(name, data, mime), **kw)


def test_upload_retrieve_download_roundtrip(client, unique):
    data = f"hello {unique}\n".encode()
    f = upload(client, f"notes-{unique}.txt", data)
    assert f.type == "file"
    assert f.id.startswith("file_")
    assert f.filename == f"notes-{unique}.txt"
    assert f.mime_type == "text/plain"
    assert f.size_bytes == len(data)
    assert f.downloadable is True
    assert f.expires_at is None
    assert f.scope is None
    assert_no_extra(f)

    got = client.beta.files.retrieve_metadata(f.id)
    assert got == f
    assert_no_extra(got)

    resp = client.beta.files.download(f.id)
    assert resp.read() == data
    assert resp.headers["content-type"].startswith("text/plain")
    assert "attachment" in resp.headers.get("content-disposition", "")


def test_binary_roundtrip_is_byte_exact(client, unique):
    data = bytes(range(256)) * 4096 + os.urandom(12345)  # ~1 MiB, every byte value
    f = upload(client, f"blob-{unique}.bin", data, "application/octet-stream")
    assert f.size_bytes == len(data)
    assert client.beta.files.download(f.id).read() == data


def test_empty_file(client, unique):
    f = upload(client, f"empty-{unique}.txt", b"")
    assert f.size_bytes == 0
    assert client.beta.files.download(f.id).read() == b""


def test_filename_rules(client, unique):
    # Only the last path component is kept.
    f = upload(client, f"some/dir/leaf-{unique}.md", b"# x", "text/markdown")
    assert f.filename == f"leaf-{unique}.md"
    assert f.mime_type == "text/markdown"
    # A part without a filename becomes `unnamed` + the extension of its type.
    f = client.beta.files.upload(file=(None, b"abc", "text/plain"))
    assert f.filename == "unnamed.txt"
    f = client.beta.files.upload(file=io.BytesIO(b"abc"))
    assert f.filename == "unnamed"
    assert f.mime_type == "application/octet-stream"
    # Non-ASCII names survive.
    f = upload(client, f"résumé-{unique}.txt", b"x")
    assert f.filename == f"résumé-{unique}.txt"


def test_expires_in_seconds(client, unique):
    f = upload(client, f"exp-{unique}.txt", b"x", expires_in_seconds=3600)
    assert f.expires_at is not None
    assert abs((f.expires_at - f.created_at) - timedelta(seconds=3600)) < timedelta(seconds=1)
    assert client.beta.files.retrieve_metadata(f.id).expires_at == f.expires_at
    # Not yet expired: still downloadable.
    assert client.beta.files.download(f.id).read() == b"x"
    for bad in (10, 3599, 7776001):
        with pytest.raises(anthropic.BadRequestError) as err:
            upload(client, f"bad-{unique}.txt", b"x", expires_in_seconds=bad)
        assert "expires_in_seconds" in err.value.message


def test_list_paginates_newest_first(client, unique):
    ids = [upload(client, f"p{i}-{unique}.txt", b"p").id for i in range(3)]
    seen = [f.id for f in client.beta.files.list(limit=1)]
    assert len(seen) == len(set(seen)), "pagination must not repeat items"
    ours = [i for i in seen if i in ids]
    assert ours == list(reversed(ids)), "newest first"
    page = client.beta.files.list(limit=2)
    assert len(page.data) == 2 and page.next_page and page.next_page.startswith("page_")
    for f in page.data:
        assert_no_extra(f)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(limit=0)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(limit=1001)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(page="garbage")


def test_list_by_ids_is_one_page(client, unique):
    a = upload(client, f"a-{unique}.txt", b"a").id
    b = upload(client, f"b-{unique}.txt", b"b").id
    page = client.beta.files.list(ids=[a, b, a, "file_doesnotexist"])
    assert sorted(f.id for f in page.data) == sorted([a, b])
    assert page.next_page is None
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(ids=[a], limit=5)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(ids=[f"file_{n}" for n in range(101)])
    # Exactly 100 distinct ids is allowed.
    assert client.beta.files.list(ids=[a] + [f"file_{n}" for n in range(99)]).data[0].id == a


def test_scope_filter(client, unique):
    upload(client, f"s-{unique}.txt", b"s")
    page = client.beta.files.list(scope_id=f"sesn_nothing{unique}")
    assert page.data == [] and page.next_page is None


def test_delete(client, unique):
    f = upload(client, f"d-{unique}.txt", b"d")
    deleted = client.beta.files.delete(f.id)
    assert deleted.id == f.id and deleted.type == "file_deleted"
    assert_no_extra(deleted)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.retrieve_metadata(f.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.download(f.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.delete(f.id)
    assert client.beta.files.list(ids=[f.id]).data == []


def test_unknown_ids_are_404(client):
    with pytest.raises(anthropic.NotFoundError) as err:
        client.beta.files.retrieve_metadata("file_nope")
    assert err.value.type == "not_found_error"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.download("file_nope")


def test_other_tenant_sees_nothing(client, other_client, unique):
    f = upload(client, f"t-{unique}.txt", b"secret")
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.files.retrieve_metadata(f.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.files.download(f.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.files.delete(f.id)
    assert other_client.beta.files.list(ids=[f.id]).data == []
    assert f.id not in [x.id for x in other_client.beta.files.list()]
    # Still there for its owner.
    assert client.beta.files.download(f.id).read() == b"secret"


def _raw_post(path, **kw):
    key = os.environ["OMA_API_KEY"]
    return httpx2.post(f"{BASE_URL}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30, **kw)


def test_malformed_uploads_are_400_envelopes():
    # No `file` part.
    r = _raw_post("/v1/files", files={"other": ("x.txt", b"x", "text/plain")}, data={"expires_in_seconds": "3600"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "file" in r.json()["error"]["message"]
    # Not multipart at all.
    r = _raw_post("/v1/files", json={"file": "x"})
    assert r.status_code == 400
    assert r.json()["type"] == "error"
    # Two `file` parts.
    r = _raw_post("/v1/files", files=[("file", ("a.txt", b"a", "text/plain")), ("file", ("b.txt", b"b", "text/plain"))])
    assert r.status_code == 400


@pytest.mark.skipif(not os.environ.get("OMA_TEST_MAX_UPLOAD_BYTES"), reason="server upload limit not given")
def test_upload_over_the_limit_is_413(client, unique):
    limit = int(os.environ["OMA_TEST_MAX_UPLOAD_BYTES"])
    with pytest.raises(anthropic.APIStatusError) as err:
        upload(client, f"big-{unique}.bin", b"x" * (limit + 1), "application/octet-stream")
    assert err.value.status_code == 413
    # Exactly at the limit is fine.
    f = upload(client, f"big-{unique}.bin", b"x" * limit, "application/octet-stream")
    assert f.size_bytes == limit
