"""Per-tenant model routes (`/v1/oma/model_routes`, an oma extension) over raw HTTP.

The official SDK has no client for these endpoints, so the tests speak HTTP with the HTTP
client the SDK itself depends on (`httpx2` in anthropic 2.x, `httpx` before), authenticated
like the SDK does (`x-api-key`). The provider key is
write-only: every response is checked for it, as raw text, wherever one is returned.
"""

import os

import pytest

try:
    import httpx2 as httpx
except ImportError:  # older SDKs depend on httpx itself
    import httpx


BASE_URL = os.environ.get("OMA_BASE_URL", "http://127.0.0.1:8787")
PATH = "/v1/oma/model_routes"

# Distinctive plaintexts, so that a leak is unambiguous wherever it shows up.
KEY = "sk-oma-test-route-key-3c9d1e"
KEY2 = "sk-oma-test-route-key-8b7a6f"

ROUTE_KEYS = {
    "type", "id", "model", "provider", "base_url", "upstream_model", "display_name",
    "metadata", "has_api_key", "created_at", "updated_at",
}


def make_http(key: str) -> httpx.Client:
    return httpx.Client(
        base_url=BASE_URL,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        timeout=30,
    )


@pytest.fixture(scope="module")
def http():
    with make_http(os.environ["OMA_API_KEY"]) as c:
        yield c


@pytest.fixture(scope="module")
def other_http():
    key = os.environ.get("OMA_API_KEY_2")
    if not key:
        pytest.skip("OMA_API_KEY_2 not set: no second tenant")
    with make_http(key) as c:
        yield c


def no_key(resp: httpx.Response) -> None:
    for k in (KEY, KEY2):
        assert k not in resp.text, f"the provider key leaked: {resp.text}"


def ok(resp: httpx.Response) -> dict:
    no_key(resp)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    return resp.json()


def route_ok(resp: httpx.Response) -> dict:
    r = ok(resp)
    assert set(r) == ROUTE_KEYS, f"unexpected keys: {sorted(r)}"
    assert r["type"] == "model_route"
    assert r["id"].startswith("mroute_")
    assert r["provider"] in ("openai", "anthropic")
    assert isinstance(r["has_api_key"], bool)
    assert isinstance(r["metadata"], dict)
    assert r["created_at"].endswith("Z") and r["updated_at"].endswith("Z")
    return r


def error(resp: httpx.Response, status: int, kind: str) -> dict:
    no_key(resp)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    assert body["error"]["message"]
    if 400 <= status < 500 and status != 429:
        assert resp.headers.get("x-should-retry") == "false"
    return body


def create(http, unique, **kw) -> dict:
    body = {
        "model": f"gpt-test-{unique}",
        "provider": "openai",
        "base_url": "https://api.openai.example/v1",
    }
    body.update(kw)
    return route_ok(http.post(PATH, json=body))


def test_crud_and_the_key_is_never_returned(http, unique):
    r = create(
        http,
        unique,
        base_url="HTTPS://API.OpenAI.example:443/v1/",
        api_key=KEY,
        display_name="OpenAI",
        metadata={"team": "ml"},
    )
    assert r["model"] == f"gpt-test-{unique}"
    assert r["provider"] == "openai"
    assert r["base_url"] == "https://api.openai.example/v1"
    assert r["upstream_model"] == r["model"], "upstream_model defaults to model"
    assert r["has_api_key"] is True
    assert r["display_name"] == "OpenAI"
    assert r["metadata"] == {"team": "ml"}
    assert "api_key" not in r

    got = route_ok(http.get(f"{PATH}/{r['id']}"))
    assert got == r

    listed = ok(http.get(PATH, params={"limit": 100}))
    assert set(listed) == {"data", "next_page"}
    assert r["id"] in [x["id"] for x in listed["data"]]

    d = ok(http.delete(f"{PATH}/{r['id']}"))
    assert d == {"id": r["id"], "type": "model_route_deleted"}
    error(http.get(f"{PATH}/{r['id']}"), 404, "not_found_error")
    error(http.delete(f"{PATH}/{r['id']}"), 404, "not_found_error")
    error(http.post(f"{PATH}/{r['id']}", json={}), 404, "not_found_error")


def test_local_server_without_key(http, unique):
    r = create(
        http,
        unique,
        model=f"my-llama-{unique}",
        base_url="http://127.0.0.1:11434/v1",
        upstream_model="llama3.1:70b",
    )
    assert r["has_api_key"] is False
    assert r["upstream_model"] == "llama3.1:70b"
    assert r["display_name"] is None
    assert r["metadata"] == {}
    r = create(http, unique, model=f"claude-gw-{unique}", provider="anthropic",
               base_url="https://gateway.example", api_key=KEY)
    assert r["provider"] == "anthropic" and r["has_api_key"] is True


def test_update_three_state(http, unique):
    r = create(http, unique, api_key=KEY, display_name="D", metadata={"a": "1", "b": "2"})

    # Absent keeps everything (an empty update changes nothing, not even updated_at).
    same = route_ok(http.post(f"{PATH}/{r['id']}", json={}))
    assert same == r
    # Sending the same key again changes nothing either.
    same = route_ok(http.post(f"{PATH}/{r['id']}", json={"api_key": KEY}))
    assert same == r

    # A value replaces; the key stays set and is still not returned.
    u = route_ok(http.post(f"{PATH}/{r['id']}", json={
        "api_key": KEY2,
        "base_url": "http://localhost:8000/v1",
        "upstream_model": "served-name",
        "metadata": {"a": None, "c": "3"},
    }))
    assert u["has_api_key"] is True
    assert u["base_url"] == "http://localhost:8000/v1"
    assert u["upstream_model"] == "served-name"
    assert u["metadata"] == {"b": "2", "c": "3"}
    assert u["display_name"] == "D"
    assert u["created_at"] == r["created_at"]
    assert u["updated_at"] > r["updated_at"]

    # Renaming the model keeps upstream_model; null resets it to the model.
    u = route_ok(http.post(f"{PATH}/{r['id']}", json={"model": f"renamed-{unique}", "provider": "anthropic"}))
    assert u["model"] == f"renamed-{unique}"
    assert u["provider"] == "anthropic"
    assert u["upstream_model"] == "served-name"
    u = route_ok(http.post(f"{PATH}/{r['id']}", json={"upstream_model": None, "display_name": None}))
    assert u["upstream_model"] == f"renamed-{unique}"
    assert u["display_name"] is None

    # null removes the key.
    u = route_ok(http.post(f"{PATH}/{r['id']}", json={"api_key": None}))
    assert u["has_api_key"] is False
    assert route_ok(http.get(f"{PATH}/{r['id']}"))["has_api_key"] is False

    # Required fields cannot be cleared.
    for field in ("model", "provider", "base_url"):
        error(http.post(f"{PATH}/{r['id']}", json={field: None}), 400, "invalid_request_error")


def test_duplicate_model_is_a_conflict(http, other_http, unique):
    r = create(http, unique)
    body = error(
        http.post(PATH, json={"model": r["model"], "provider": "anthropic", "base_url": "http://h"}),
        409,
        "conflict_error",
    )
    assert r["model"] in body["error"]["message"]
    # Renaming another route onto the taken model id is a conflict too.
    other = create(http, unique, model=f"other-{unique}")
    error(http.post(f"{PATH}/{other['id']}", json={"model": r["model"]}), 409, "conflict_error")
    # The model id is unique per tenant only.
    create(other_http, unique, model=r["model"])
    # Deleting frees the model id.
    ok(http.delete(f"{PATH}/{r['id']}"))
    create(http, unique, model=r["model"])


def test_pagination(http, unique):
    ids = [create(http, unique, model=f"page-{i}-{unique}")["id"] for i in range(3)]
    seen = []
    page = None
    while True:
        params = {"limit": 1}
        if page:
            params["page"] = page
        listed = ok(http.get(PATH, params=params))
        assert len(listed["data"]) <= 1
        seen.extend(x["id"] for x in listed["data"])
        page = listed["next_page"]
        if page is None:
            break
    assert len(seen) == len(set(seen)), "no route is listed twice"
    mine = [i for i in seen if i in ids]
    assert mine == list(reversed(ids)), "newest first by default"

    asc = ok(http.get(PATH, params={"limit": 100, "order": "asc"}))
    mine = [x["id"] for x in asc["data"] if x["id"] in ids]
    assert mine == ids

    error(http.get(PATH, params={"limit": 0}), 400, "invalid_request_error")
    error(http.get(PATH, params={"limit": 101}), 400, "invalid_request_error")
    error(http.get(PATH, params={"page": "garbage"}), 400, "invalid_request_error")


def test_other_tenant_sees_nothing(http, other_http, unique):
    r = create(http, unique, api_key=KEY)
    error(other_http.get(f"{PATH}/{r['id']}"), 404, "not_found_error")
    error(other_http.post(f"{PATH}/{r['id']}", json={"api_key": None}), 404, "not_found_error")
    error(other_http.delete(f"{PATH}/{r['id']}"), 404, "not_found_error")
    listed = ok(other_http.get(PATH, params={"limit": 100}))
    assert r["id"] not in [x["id"] for x in listed["data"]]
    # Untouched by the attempts above.
    assert route_ok(http.get(f"{PATH}/{r['id']}")) == r


@pytest.mark.parametrize(
    "patch",
    [
        {"model": None},
        {"model": ""},
        {"model": "x" * 257},
        {"model": "has space"},
        {"model": 42},
        {"provider": "azure"},
        {"provider": None},
        {"base_url": None},
        {"base_url": "ftp://h.example"},
        {"base_url": "h.example/v1"},
        {"base_url": "https://user:pass@h.example/v1"},
        {"base_url": "https://h.example/v1#frag"},
        {"base_url": "https://h.example/v1?x=1"},
        {"base_url": "https://h.example:0"},
        {"upstream_model": ""},
        {"api_key": ""},
        {"api_key": "sk with spaces"},
        {"api_key": 7},
        {"display_name": "x" * 256},
        {"metadata": {"k": 1}},
        {"apikey": KEY},
    ],
    ids=lambda p: next(iter(p)),
)
def test_bad_input_is_400(http, unique, patch):
    good = {"model": f"bad-{unique}", "provider": "openai", "base_url": "https://h.example/v1"}
    error(http.post(PATH, json={**good, **patch}), 400, "invalid_request_error")
    # Nothing was created: the model id is still free.
    r = route_ok(http.post(PATH, json=good))
    ok(http.delete(f"{PATH}/{r['id']}"))


def test_bad_bodies_and_ids(http, unique):
    error(http.post(PATH, content=b"not json", headers={"content-type": "application/json"}),
          400, "invalid_request_error")
    error(http.post(PATH, json=[1, 2]), 400, "invalid_request_error")
    error(http.post(PATH, json={}), 400, "invalid_request_error")
    error(http.get(f"{PATH}/mroute_doesnotexist"), 404, "not_found_error")
    r = create(http, unique)
    error(http.post(f"{PATH}/{r['id']}", json={"api_key": ""}), 400, "invalid_request_error")
    error(http.post(f"{PATH}/{r['id']}", json={"unknown": 1}), 400, "invalid_request_error")


def test_requires_authentication(unique):
    with httpx.Client(base_url=BASE_URL, timeout=30) as anon:
        error(anon.get(PATH), 401, "authentication_error")
        error(anon.post(PATH, json={"model": "m", "provider": "openai", "base_url": "http://h"}),
              401, "authentication_error")
