"""Environments (spec §3.2, §5.2) through the official SDK in strict mode."""

import anthropic
import pytest

from conftest import assert_no_extra


def _create(client, unique, **kw):
    kw.setdefault("name", f"env-{unique}")
    env = client.beta.environments.create(**kw)
    assert_no_extra(env)
    return env


def test_create_defaults_to_unrestricted_cloud(client, unique):
    env = _create(client, unique)
    assert env.id.startswith("env_")
    assert env.type == "environment"
    assert env.name == f"env-{unique}"
    assert env.archived_at is None
    assert env.description is None
    assert env.metadata == {}
    assert env.scope == "organization"
    assert env.config.type == "cloud"
    assert env.config.networking.type == "unrestricted"
    pk = env.config.packages
    assert (pk.apt, pk.cargo, pk.gem, pk.go, pk.npm, pk.pip) == ([], [], [], [], [], [])
    assert env.created_at and env.updated_at


def test_create_full_cloud_config_and_retrieve(client, unique):
    env = _create(
        client,
        unique,
        description="build box",
        metadata={"team": "infra"},
        scope="organization",
        config={
            "type": "cloud",
            "networking": {
                "type": "limited",
                "allowed_hosts": ["api.example.com", "*.example.org", "192.0.2.1"],
                "allow_mcp_servers": True,
                "allow_package_managers": True,
            },
            "packages": {"type": "packages", "pip": ["requests==2.32.0"], "npm": ["@scope/pkg@^1.2.0"]},
        },
    )
    net = env.config.networking
    assert net.type == "limited"
    assert net.allowed_hosts == ["api.example.com", "*.example.org", "192.0.2.1"]
    assert net.allow_mcp_servers is True and net.allow_package_managers is True
    assert env.config.packages.pip == ["requests==2.32.0"]
    assert env.config.packages.npm == ["@scope/pkg@^1.2.0"]
    assert env.config.packages.apt == []
    got = client.beta.environments.retrieve(env.id)
    assert_no_extra(got)
    assert got.model_dump() == env.model_dump()


def test_limited_defaults(client, unique):
    env = _create(client, unique, config={"type": "cloud", "networking": {"type": "limited"}})
    net = env.config.networking
    assert (net.allowed_hosts, net.allow_mcp_servers, net.allow_package_managers) == ([], False, False)


def test_self_hosted(client, unique):
    env = _create(client, unique, config={"type": "self_hosted"})
    assert env.config.type == "self_hosted"
    assert env.config.model_dump() == {"type": "self_hosted"}


@pytest.mark.parametrize(
    "kw",
    [
        {"name": ""},
        {"config": {"type": "gpu"}},
        {"config": {"type": "cloud", "networking": {"type": "open"}}},
        {"config": {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["https://x.com"]}}},
        {"config": {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["x.com:443"]}}},
        {"config": {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["x.com/path"]}}},
        {"config": {"type": "cloud", "packages": {"pip": [""]}}},
        {"config": {"type": "cloud", "packages": {"apt": ["--allow-unauthenticated"]}}},
        {"config": {"type": "cloud", "packages": {"npm": ["x; rm -rf /"]}}},
        # Packages under limited networking need allow_package_managers.
        {
            "config": {
                "type": "cloud",
                "networking": {"type": "limited", "allowed_hosts": ["pypi.org"]},
                "packages": {"pip": ["requests"]},
            }
        },
        {"scope": "account"},
        {"metadata": {f"k{i}": "v" for i in range(17)}},
    ],
)
def test_create_validation(client, unique, kw):
    kw.setdefault("name", f"bad-{unique}")
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.environments.create(**kw)
    assert e.value.type == "invalid_request_error"


def test_update_semantics(client, unique):
    env = _create(
        client,
        unique,
        description="d",
        metadata={"a": "1", "b": "2", "c": "3"},
        config={
            "type": "cloud",
            "networking": {"type": "limited", "allowed_hosts": ["a.example.com"], "allow_package_managers": True},
            "packages": {"pip": ["requests"], "apt": ["curl"]},
        },
    )
    # Absent fields are preserved.
    same = client.beta.environments.update(env.id)
    assert_no_extra(same)
    assert same.name == env.name and same.description == "d"
    assert same.config.model_dump() == env.config.model_dump()
    assert same.metadata == env.metadata

    # Config fields omitted inside a config are preserved too.
    up = client.beta.environments.update(
        env.id, config={"type": "cloud", "networking": {"type": "limited", "allow_mcp_servers": True}}
    )
    assert up.config.networking.allowed_hosts == ["a.example.com"]
    assert up.config.networking.allow_mcp_servers is True
    assert up.config.networking.allow_package_managers is True
    assert up.config.packages.pip == ["requests"] and up.config.packages.apt == ["curl"]

    up = client.beta.environments.update(env.id, config={"type": "cloud", "packages": {"pip": ["httpx"]}})
    assert up.config.packages.pip == ["httpx"] and up.config.packages.apt == ["curl"]

    # Values replace; null clears the description; metadata: null and "" delete keys.
    up = client.beta.environments.update(
        env.id, name=f"renamed-{unique}", description=None, metadata={"a": None, "b": "", "d": "4"}
    )
    assert_no_extra(up)
    assert up.name == f"renamed-{unique}"
    assert up.description is None
    assert up.metadata == {"c": "3", "d": "4"}
    assert up.updated_at >= env.updated_at

    # An empty description is stored as given.
    up = client.beta.environments.update(env.id, description="")
    assert up.description == ""

    # Turning package managers off while packages remain is rejected.
    with pytest.raises(anthropic.BadRequestError):
        client.beta.environments.update(
            env.id, config={"type": "cloud", "networking": {"type": "limited", "allow_package_managers": False}}
        )
    with pytest.raises(anthropic.BadRequestError):
        client.beta.environments.update(env.id, name="")

    # Switching to unrestricted networking.
    up = client.beta.environments.update(env.id, config={"type": "cloud", "networking": {"type": "unrestricted"}})
    assert up.config.networking.type == "unrestricted"
    assert client.beta.environments.retrieve(env.id).config.networking.type == "unrestricted"


def test_update_config_type_change_rejected(client, unique):
    env = _create(client, unique)
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.environments.update(env.id, config={"type": "self_hosted"})
    assert e.value.error_code == "invalid_config_type_change"
    assert type(e.value).__name__ == "BetaInvalidConfigTypeChangeError"


def test_archive_and_archived_update(client, unique):
    env = _create(client, unique)
    archived = client.beta.environments.archive(env.id)
    assert_no_extra(archived)
    assert archived.archived_at is not None
    # Archiving again is idempotent and keeps the first timestamp.
    again = client.beta.environments.archive(env.id)
    assert again.archived_at == archived.archived_at
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.environments.update(env.id, name="nope")
    assert e.value.error_code == "environment_archived"
    assert type(e.value).__name__ == "BetaEnvironmentArchivedError"
    # Still retrievable, and hidden from lists unless asked for.
    assert client.beta.environments.retrieve(env.id).archived_at == archived.archived_at
    ids = [x.id for x in client.beta.environments.list(limit=100)]
    assert env.id not in ids
    ids = [x.id for x in client.beta.environments.list(limit=100, include_archived=True)]
    assert env.id in ids


def test_delete(client, unique):
    env = _create(client, unique)
    deleted = client.beta.environments.delete(env.id)
    assert_no_extra(deleted)
    assert deleted.id == env.id and deleted.type == "environment_deleted"
    with pytest.raises(anthropic.NotFoundError) as e:
        client.beta.environments.retrieve(env.id)
    assert e.value.error_code == "environment_not_found"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.environments.delete(env.id)


def test_not_found_everywhere(client):
    missing = "env_doesnotexist0000000000"
    for call in (
        lambda: client.beta.environments.retrieve(missing),
        lambda: client.beta.environments.update(missing, name="x"),
        lambda: client.beta.environments.archive(missing),
        lambda: client.beta.environments.delete(missing),
    ):
        with pytest.raises(anthropic.NotFoundError) as e:
            call()
        assert e.value.error_code == "environment_not_found"
        assert type(e.value).__name__ == "BetaEnvironmentNotFoundError"


def test_pagination(client, unique):
    made = [_create(client, f"{unique}-{i}").id for i in range(3)]
    seen = []
    for env in client.beta.environments.list(limit=1):
        assert_no_extra(env)
        seen.append(env.id)
    assert len(seen) == len(set(seen)), "a page repeated an item"
    for i in made:
        assert i in seen
    page = client.beta.environments.list(limit=1)
    assert len(page.data) == 1
    assert page.next_page
    page2 = page.get_next_page()
    assert page2.data[0].id != page.data[0].id


def test_list_limits(client):
    with pytest.raises(anthropic.BadRequestError):
        client.beta.environments.list(limit=0)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.environments.list(limit=101)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.environments.list(page="page_garbage!")


def test_cross_tenant_is_404(client, other_client, unique):
    env = _create(client, unique)
    for call in (
        lambda: other_client.beta.environments.retrieve(env.id),
        lambda: other_client.beta.environments.update(env.id, name="stolen"),
        lambda: other_client.beta.environments.archive(env.id),
        lambda: other_client.beta.environments.delete(env.id),
    ):
        with pytest.raises(anthropic.NotFoundError) as e:
            call()
        assert e.value.error_code == "environment_not_found"
    assert env.id not in [x.id for x in other_client.beta.environments.list(limit=100, include_archived=True)]
    # Untouched for its owner.
    got = client.beta.environments.retrieve(env.id)
    assert got.name == env.name and got.archived_at is None
