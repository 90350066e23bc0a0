"""Vaults and credentials (spec §3.4, §5.4) through the official SDK in strict mode.

Secrets are write-only: every test that handles one checks that it never comes back.
"""

import os
import pathlib

import anthropic
import pytest

from conftest import assert_no_extra


# Distinctive plaintexts, so that a leak is unambiguous wherever it shows up.
ACCESS = "oma-test-access-7f3a9c"
REFRESH = "oma-test-refresh-1b2c3d"
CLIENT_SECRET = "oma-test-client-secret-4e5f6a"
TOKEN = "oma-test-static-token-8d9e0f"
SECRET_VALUE = "oma-test-secret-value-a1b2c3"
ALL_SECRETS = [ACCESS, REFRESH, CLIENT_SECRET, TOKEN, SECRET_VALUE]


def assert_no_secret(obj) -> None:
    dumped = str(obj.model_dump()) if hasattr(obj, "model_dump") else str(obj)
    for s in ALL_SECRETS:
        assert s not in dumped, f"secret {s!r} leaked in {dumped}"
    for key in ("access_token", "refresh_token", "client_secret", "token", "secret_value"):
        assert f"'{key}'" not in dumped, f"secret field {key} present in {dumped}"


def _vault(client, unique, **kw):
    kw.setdefault("display_name", f"vault-{unique}")
    v = client.beta.vaults.create(**kw)
    assert_no_extra(v)
    return v


def _oauth_auth(url, **extra):
    auth = {
        "type": "mcp_oauth",
        "mcp_server_url": url,
        "access_token": ACCESS,
        "expires_at": "2099-01-01T00:00:00Z",
        "refresh": {
            "client_id": "client-123",
            "refresh_token": REFRESH,
            "token_endpoint": "https://auth.example.com/oauth/token",
            "token_endpoint_auth": {"type": "client_secret_basic", "client_secret": CLIENT_SECRET},
            "scope": "read write",
            "resource": "https://mcp.example.com/",
        },
    }
    auth.update(extra)
    return auth


def _bearer_auth(url):
    return {"type": "static_bearer", "mcp_server_url": url, "token": TOKEN}


def _env_auth(name, **extra):
    auth = {
        "type": "environment_variable",
        "secret_name": name,
        "secret_value": SECRET_VALUE,
        "networking": {"type": "limited", "allowed_hosts": ["api.github.com", "*.githubusercontent.com"]},
    }
    auth.update(extra)
    return auth


# ---------------------------------------------------------------------------------------------
# Vaults
# ---------------------------------------------------------------------------------------------


def test_vault_crud(client, unique):
    v = _vault(client, unique, metadata={"external_user_id": "usr_1", "tier": "gold"})
    assert v.id.startswith("vlt_")
    assert v.type == "vault"
    assert v.display_name == f"vault-{unique}"
    assert v.metadata == {"external_user_id": "usr_1", "tier": "gold"}
    assert v.archived_at is None

    got = client.beta.vaults.retrieve(v.id)
    assert_no_extra(got)
    assert got.model_dump() == v.model_dump()

    # Absent preserves; metadata patch upserts and deletes with null.
    same = client.beta.vaults.update(v.id)
    assert same.display_name == v.display_name and same.metadata == v.metadata
    up = client.beta.vaults.update(v.id, display_name="Alice", metadata={"tier": None, "region": "eu"})
    assert_no_extra(up)
    assert up.display_name == "Alice"
    assert up.metadata == {"external_user_id": "usr_1", "region": "eu"}
    up = client.beta.vaults.update(v.id, metadata=None)
    assert up.metadata == {"external_user_id": "usr_1", "region": "eu"}

    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.update(v.id, display_name="")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.update(v.id, display_name="x" * 256)

    deleted = client.beta.vaults.delete(v.id)
    assert_no_extra(deleted)
    assert deleted.id == v.id and deleted.type == "vault_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.retrieve(v.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.delete(v.id)


@pytest.mark.parametrize(
    "kw",
    [
        {"display_name": ""},
        {"display_name": "x" * 256},
        {"display_name": "ok", "metadata": {f"k{i}": "v" for i in range(17)}},
        {"display_name": "ok", "metadata": {"k" * 65: "v"}},
        {"display_name": "ok", "metadata": {"k": "v" * 513}},
    ],
)
def test_vault_validation(client, kw):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.vaults.create(**kw)
    assert e.value.type == "invalid_request_error"


def test_vault_archive_cascades(client, unique):
    v = _vault(client, unique)
    c = client.beta.vaults.credentials.create(v.id, auth=_bearer_auth("https://mcp.example.com/a"))
    archived = client.beta.vaults.archive(v.id)
    assert_no_extra(archived)
    assert archived.archived_at is not None
    assert client.beta.vaults.archive(v.id).archived_at == archived.archived_at

    cred = client.beta.vaults.credentials.retrieve(c.id, vault_id=v.id)
    assert cred.archived_at is not None
    assert_no_secret(cred)

    # Archived vaults are read-only and hidden from the default list.
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.update(v.id, display_name="x")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.credentials.create(v.id, auth=_bearer_auth("https://mcp.example.com/b"))
    assert v.id not in [x.id for x in client.beta.vaults.list(limit=100)]
    assert v.id in [x.id for x in client.beta.vaults.list(limit=100, include_archived=True)]


def test_vault_pagination(client, unique):
    made = [_vault(client, f"{unique}-{i}").id for i in range(3)]
    seen = [v.id for v in client.beta.vaults.list(limit=1)]
    assert len(seen) == len(set(seen))
    for i in made:
        assert i in seen
    page = client.beta.vaults.list(limit=1)
    assert len(page.data) == 1 and page.next_page
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.list(limit=101)


def test_vault_delete_removes_credentials(client, unique):
    v = _vault(client, unique)
    c = client.beta.vaults.credentials.create(v.id, auth=_bearer_auth("https://mcp.example.com/x"))
    client.beta.vaults.delete(v.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.credentials.retrieve(c.id, vault_id=v.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.credentials.list(vault_id=v.id).data


# ---------------------------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------------------------


def test_mcp_oauth_credential(client, unique):
    v = _vault(client, unique)
    c = client.beta.vaults.credentials.create(
        v.id,
        display_name="Linear",
        metadata={"k": "v"},
        auth=_oauth_auth("https://mcp.example.com/mcp"),
    )
    assert_no_extra(c)
    assert_no_secret(c)
    assert c.id.startswith("vcrd_")
    assert c.type == "vault_credential"
    assert c.vault_id == v.id
    assert c.display_name == "Linear"
    assert c.metadata == {"k": "v"}
    assert c.archived_at is None
    a = c.auth
    assert a.type == "mcp_oauth"
    assert a.mcp_server_url == "https://mcp.example.com/mcp"
    assert a.expires_at is not None and a.expires_at.year == 2099
    assert a.refresh.client_id == "client-123"
    assert a.refresh.token_endpoint == "https://auth.example.com/oauth/token"
    assert a.refresh.token_endpoint_auth.type == "client_secret_basic"
    assert a.refresh.scope == "read write"
    assert a.refresh.resource == "https://mcp.example.com/"

    got = client.beta.vaults.credentials.retrieve(c.id, vault_id=v.id)
    assert_no_extra(got)
    assert_no_secret(got)
    assert got.model_dump() == c.model_dump()

    # Rotate the tokens, clear the scope with "", clear the expiry with null.
    up = client.beta.vaults.credentials.update(
        c.id,
        vault_id=v.id,
        auth={
            "type": "mcp_oauth",
            "access_token": ACCESS + "-2",
            "expires_at": None,
            "refresh": {
                "refresh_token": REFRESH + "-2",
                "scope": "",
                "token_endpoint_auth": {"type": "client_secret_post", "client_secret": CLIENT_SECRET + "-2"},
            },
        },
    )
    assert_no_extra(up)
    assert_no_secret(up)
    assert up.auth.expires_at is None
    assert up.auth.refresh.scope is None
    # The stored method is kept even when the other secret-based type is sent.
    assert up.auth.refresh.token_endpoint_auth.type == "client_secret_basic"
    assert up.auth.refresh.client_id == "client-123"

    # Omitted auth fields keep their values.
    up2 = client.beta.vaults.credentials.update(c.id, vault_id=v.id, auth={"type": "mcp_oauth"})
    assert up2.auth.model_dump() == up.auth.model_dump()


def test_mcp_oauth_without_refresh_and_none_auth(client, unique):
    v = _vault(client, unique)
    c = client.beta.vaults.credentials.create(
        v.id, auth={"type": "mcp_oauth", "mcp_server_url": "https://a.example.com/mcp", "access_token": ACCESS}
    )
    assert_no_extra(c)
    assert c.auth.refresh is None and c.auth.expires_at is None
    assert c.display_name is None
    # Refresh support cannot be added after creation.
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.credentials.update(
            c.id, vault_id=v.id, auth={"type": "mcp_oauth", "refresh": {"refresh_token": REFRESH}}
        )

    c2 = client.beta.vaults.credentials.create(
        v.id,
        auth={
            "type": "mcp_oauth",
            "mcp_server_url": "https://b.example.com/mcp",
            "access_token": ACCESS,
            "refresh": {
                "client_id": "c",
                "refresh_token": REFRESH,
                "token_endpoint": "https://b.example.com/token",
                "token_endpoint_auth": {"type": "none"},
            },
        },
    )
    assert_no_extra(c2)
    assert c2.auth.refresh.token_endpoint_auth.type == "none"
    assert c2.auth.refresh.scope is None and c2.auth.refresh.resource is None
    # A `none` token endpoint has no client secret to replace.
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.credentials.update(
            c2.id,
            vault_id=v.id,
            auth={
                "type": "mcp_oauth",
                "refresh": {"token_endpoint_auth": {"type": "client_secret_basic", "client_secret": "x"}},
            },
        )


def test_static_bearer_credential(client, unique):
    v = _vault(client, unique)
    c = client.beta.vaults.credentials.create(v.id, auth=_bearer_auth("https://mcp.example.com/bearer"))
    assert_no_extra(c)
    assert_no_secret(c)
    assert c.auth.type == "static_bearer"
    assert c.auth.mcp_server_url == "https://mcp.example.com/bearer"
    assert c.auth.model_dump() == {"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/bearer"}
    up = client.beta.vaults.credentials.update(
        c.id, vault_id=v.id, auth={"type": "static_bearer", "token": TOKEN + "-2"}, display_name="renamed"
    )
    assert_no_secret(up)
    assert up.display_name == "renamed"
    up = client.beta.vaults.credentials.update(c.id, vault_id=v.id, display_name=None)
    assert up.display_name is None
    # The type cannot change, and the server URL is immutable.
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.credentials.update(c.id, vault_id=v.id, auth={"type": "mcp_oauth", "access_token": "x"})
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.credentials.update(
            c.id, vault_id=v.id, auth={"type": "static_bearer", "mcp_server_url": "https://other.example.com"}
        )


def test_environment_variable_credential(client, unique):
    v = _vault(client, unique)
    c = client.beta.vaults.credentials.create(v.id, auth=_env_auth("GITHUB_TOKEN"))
    assert_no_extra(c)
    assert_no_secret(c)
    a = c.auth
    assert a.type == "environment_variable"
    assert a.secret_name == "GITHUB_TOKEN"
    assert a.networking.type == "limited"
    assert a.networking.allowed_hosts == ["api.github.com", "*.githubusercontent.com"]
    # Without an explicit choice, both locations are enabled.
    assert (a.injection_location.header, a.injection_location.body) == (True, True)

    # injection_location merges per key.
    up = client.beta.vaults.credentials.update(
        c.id, vault_id=v.id, auth={"type": "environment_variable", "injection_location": {"body": False}}
    )
    assert_no_extra(up)
    assert (up.auth.injection_location.header, up.auth.injection_location.body) == (True, False)
    assert up.auth.networking.allowed_hosts == ["api.github.com", "*.githubusercontent.com"]
    # At least one location stays enabled.
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.credentials.update(
            c.id, vault_id=v.id, auth={"type": "environment_variable", "injection_location": {"header": False}}
        )
    # networking replaces as a whole; the secret rotates.
    up = client.beta.vaults.credentials.update(
        c.id,
        vault_id=v.id,
        auth={"type": "environment_variable", "networking": {"type": "unrestricted"}, "secret_value": SECRET_VALUE + "2"},
    )
    assert_no_secret(up)
    assert up.auth.networking.model_dump() == {"type": "unrestricted"}
    assert (up.auth.injection_location.header, up.auth.injection_location.body) == (True, False)

    c2 = client.beta.vaults.credentials.create(
        v.id, auth=_env_auth("OTHER_TOKEN", injection_location={"header": True, "body": False})
    )
    assert (c2.auth.injection_location.header, c2.auth.injection_location.body) == (True, False)


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "password", "value": "x"},
        {"type": "static_bearer", "mcp_server_url": "https://x.example.com"},
        {"type": "static_bearer", "mcp_server_url": "not a url", "token": TOKEN},
        {"type": "static_bearer", "mcp_server_url": "ftp://x.example.com", "token": TOKEN},
        {"type": "static_bearer", "mcp_server_url": "https://x.example.com", "token": ""},
        {"type": "mcp_oauth", "mcp_server_url": "https://x.example.com", "access_token": ACCESS,
         "expires_at": "2001-01-01T00:00:00Z"},
        {"type": "mcp_oauth", "mcp_server_url": "https://x.example.com", "access_token": ACCESS,
         "refresh": {"client_id": "c", "refresh_token": REFRESH, "token_endpoint": "https://x.example.com/t",
                     "token_endpoint_auth": {"type": "client_secret_post"}}},
        {"type": "environment_variable", "secret_name": "1BAD", "secret_value": SECRET_VALUE,
         "networking": {"type": "unrestricted"}},
        {"type": "environment_variable", "secret_name": "K", "secret_value": SECRET_VALUE},
        {"type": "environment_variable", "secret_name": "K", "secret_value": SECRET_VALUE,
         "networking": {"type": "limited", "allowed_hosts": ["https://api.github.com"]}},
        {"type": "environment_variable", "secret_name": "K", "secret_value": SECRET_VALUE,
         "networking": {"type": "limited", "allowed_hosts": ["api.github.com:443"]}},
        {"type": "environment_variable", "secret_name": "K", "secret_value": SECRET_VALUE,
         "networking": {"type": "limited", "allowed_hosts": ["::1"]}},
        {"type": "environment_variable", "secret_name": "K", "secret_value": SECRET_VALUE,
         "networking": {"type": "limited", "allowed_hosts": [f"h{i}.example.com" for i in range(17)]}},
        {"type": "environment_variable", "secret_name": "K", "secret_value": SECRET_VALUE,
         "networking": {"type": "unrestricted"}, "injection_location": {"header": False, "body": False}},
    ],
)
def test_credential_validation(client, unique, auth):
    v = _vault(client, unique)
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.vaults.credentials.create(v.id, auth=auth)
    assert e.value.type == "invalid_request_error"
    for s in ALL_SECRETS:
        assert s not in str(e.value.body), "a validation error echoed a secret"


def test_duplicate_key_conflicts_until_archived(client, unique):
    v = _vault(client, unique)
    c = client.beta.vaults.credentials.create(v.id, auth=_bearer_auth("https://mcp.example.com/dup"))
    # Same server (normalised URL), even through another auth type.
    with pytest.raises(anthropic.ConflictError):
        client.beta.vaults.credentials.create(v.id, auth=_bearer_auth("HTTPS://MCP.example.com:443/dup/"))
    with pytest.raises(anthropic.ConflictError):
        client.beta.vaults.credentials.create(v.id, auth=_oauth_auth("https://mcp.example.com/dup"))
    e1 = client.beta.vaults.credentials.create(v.id, auth=_env_auth("DUP"))
    with pytest.raises(anthropic.ConflictError):
        client.beta.vaults.credentials.create(v.id, auth=_env_auth("DUP"))
    # Archiving frees the key.
    client.beta.vaults.credentials.archive(c.id, vault_id=v.id)
    client.beta.vaults.credentials.archive(e1.id, vault_id=v.id)
    client.beta.vaults.credentials.create(v.id, auth=_bearer_auth("https://mcp.example.com/dup"))
    client.beta.vaults.credentials.create(v.id, auth=_env_auth("DUP"))
    # Another vault has its own key space.
    v2 = _vault(client, unique + "-2")
    client.beta.vaults.credentials.create(v2.id, auth=_bearer_auth("https://mcp.example.com/dup"))


def test_credential_archive_and_delete(client, unique):
    v = _vault(client, unique)
    c = client.beta.vaults.credentials.create(v.id, auth=_env_auth("ARCH"))
    archived = client.beta.vaults.credentials.archive(c.id, vault_id=v.id)
    assert_no_extra(archived)
    assert_no_secret(archived)
    assert archived.archived_at is not None
    again = client.beta.vaults.credentials.archive(c.id, vault_id=v.id)
    assert again.archived_at == archived.archived_at
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.credentials.update(c.id, vault_id=v.id, display_name="x")
    assert c.id not in [x.id for x in client.beta.vaults.credentials.list(vault_id=v.id)]
    assert c.id in [x.id for x in client.beta.vaults.credentials.list(vault_id=v.id, include_archived=True)]

    deleted = client.beta.vaults.credentials.delete(c.id, vault_id=v.id)
    assert_no_extra(deleted)
    assert deleted.id == c.id and deleted.type == "vault_credential_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.credentials.retrieve(c.id, vault_id=v.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.credentials.delete(c.id, vault_id=v.id)


def test_credential_wrong_vault_is_404(client, unique):
    v1 = _vault(client, unique + "-a")
    v2 = _vault(client, unique + "-b")
    c = client.beta.vaults.credentials.create(v1.id, auth=_bearer_auth("https://mcp.example.com/w"))
    for call in (
        lambda: client.beta.vaults.credentials.retrieve(c.id, vault_id=v2.id),
        lambda: client.beta.vaults.credentials.update(c.id, vault_id=v2.id, display_name="x"),
        lambda: client.beta.vaults.credentials.archive(c.id, vault_id=v2.id),
        lambda: client.beta.vaults.credentials.delete(c.id, vault_id=v2.id),
        lambda: client.beta.vaults.credentials.create("vlt_missing000000000000", auth=_bearer_auth("https://x.io")),
        lambda: client.beta.vaults.credentials.list(vault_id="vlt_missing000000000000").data,
    ):
        with pytest.raises(anthropic.NotFoundError):
            call()


def test_credential_pagination_and_limit(client, unique):
    v = _vault(client, unique)
    made = [
        client.beta.vaults.credentials.create(v.id, auth=_env_auth(f"VAR_{i}")).id for i in range(5)
    ]
    seen = []
    for c in client.beta.vaults.credentials.list(vault_id=v.id, limit=1):
        assert_no_extra(c)
        assert_no_secret(c)
        seen.append(c.id)
    assert sorted(seen) == sorted(made)
    page = client.beta.vaults.credentials.list(vault_id=v.id, limit=2)
    assert len(page.data) == 2 and page.next_page
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.credentials.list(vault_id=v.id, limit=101)


def test_credentials_per_vault_cap(client, unique):
    v = _vault(client, unique)
    for i in range(20):
        client.beta.vaults.credentials.create(v.id, auth=_env_auth(f"CAP_{i}"))
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.credentials.create(v.id, auth=_env_auth("CAP_20"))


def test_cross_tenant_is_404(client, other_client, unique):
    v = _vault(client, unique)
    c = client.beta.vaults.credentials.create(v.id, auth=_bearer_auth("https://mcp.example.com/t"))
    for call in (
        lambda: other_client.beta.vaults.retrieve(v.id),
        lambda: other_client.beta.vaults.update(v.id, display_name="stolen"),
        lambda: other_client.beta.vaults.archive(v.id),
        lambda: other_client.beta.vaults.delete(v.id),
        lambda: other_client.beta.vaults.credentials.create(v.id, auth=_bearer_auth("https://evil.example.com")),
        lambda: other_client.beta.vaults.credentials.list(vault_id=v.id).data,
        lambda: other_client.beta.vaults.credentials.retrieve(c.id, vault_id=v.id),
        lambda: other_client.beta.vaults.credentials.update(c.id, vault_id=v.id, display_name="x"),
        lambda: other_client.beta.vaults.credentials.archive(c.id, vault_id=v.id),
        lambda: other_client.beta.vaults.credentials.delete(c.id, vault_id=v.id),
    ):
        with pytest.raises(anthropic.NotFoundError):
            call()
    assert v.id not in [x.id for x in other_client.beta.vaults.list(limit=100, include_archived=True)]
    got = client.beta.vaults.credentials.retrieve(c.id, vault_id=v.id)
    assert got.archived_at is None and got.display_name is None


def test_mcp_oauth_validate_probes_live(client, unique):
    """`mcp_oauth_validate` probes the MCP server live. A server that cannot be reached (here a
    loopback address, which a default server also refuses to contact) is `unknown`: transient,
    not a verdict on the credential, with the failing step and no HTTP response."""
    v = _vault(client, unique)
    c = client.beta.vaults.credentials.create(v.id, auth=_oauth_auth("http://127.0.0.1:9/v"))
    r = client.beta.vaults.credentials.mcp_oauth_validate(c.id, vault_id=v.id)
    assert_no_extra(r)
    assert r.type == "vault_credential_validation"
    assert (r.credential_id, r.vault_id) == (c.id, v.id)
    assert r.status == "unknown"
    assert r.has_refresh_token is True
    assert r.mcp_probe is not None and r.mcp_probe.method == "initialize"
    assert r.mcp_probe.http_response is None
    assert r.refresh is None
    assert r.validated_at is not None
    # Environment-variable credentials have no MCP server to probe.
    e = client.beta.vaults.credentials.create(v.id, auth=_env_auth(f"V_{unique}".upper()))
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.credentials.mcp_oauth_validate(e.id, vault_id=v.id)


def test_secrets_never_reach_the_database_file(client, unique):
    """With OMA_DATA_DIR pointing at a SQLite server's data dir, no plaintext is on disk."""
    data_dir = os.environ.get("OMA_DATA_DIR")
    if not data_dir:
        pytest.skip("OMA_DATA_DIR not set: cannot inspect the database files")
    v = _vault(client, unique)
    client.beta.vaults.credentials.create(v.id, auth=_oauth_auth("https://mcp.example.com/disk"))
    client.beta.vaults.credentials.create(v.id, auth=_bearer_auth("https://mcp.example.com/disk2"))
    client.beta.vaults.credentials.create(v.id, auth=_env_auth("DISK"))
    # A workspace's disk image (`workspaces/.disk-<session>.img`, sparse, gigabytes) holds
    # only what tools wrote in a box; its files are read through the mounted workspace.
    files = [
        p
        for p in pathlib.Path(data_dir).rglob("*")
        if p.is_file() and not (p.name.startswith(".disk-") and p.name.endswith(".img"))
    ]
    assert files, f"no files under {data_dir}"
    for p in files:
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            # Idle workspaces are snapshotted and removed while this walks the tree.
            continue
        for s in ALL_SECRETS:
            assert s.encode() not in data, f"secret {s!r} found in {p}"
