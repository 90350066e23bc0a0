"""Agents and agent versions (spec §3.1) through the official SDK in strict mode."""

import anthropic
import pytest

from conftest import assert_no_extra


def test_create_retrieve_roundtrip(client, unique):
    agent = client.beta.agents.create(
        model="claude-opus-4-8",
        name=f"oracle-{unique}",
        system="be helpful",
        metadata={"team": "qa"},
    )
    assert agent.type == "agent"
    assert agent.id.startswith("agent_")
    assert agent.version == 1
    assert agent.model.id == "claude-opus-4-8"
    assert agent.metadata == {"team": "qa"}
    assert agent.archived_at is None
    assert agent.execution_identity.type == "service_account"
    assert_no_extra(agent)

    got = client.beta.agents.retrieve(agent.id)
    assert got.id == agent.id and got.version == 1 and got.name == agent.name
    assert_no_extra(got)


def test_list_paginates_across_pages(client, unique):
    ids = {client.beta.agents.create(model="claude-opus-4-8", name=f"p{i}-{unique}").id for i in range(3)}
    seen = [a.id for a in client.beta.agents.list(limit=1)]
    assert ids <= set(seen)
    assert len(seen) == len(set(seen)), "pagination must not repeat items"
    page = client.beta.agents.list(limit=2)
    assert len(page.data) == 2 and page.next_page


def test_update_versions_and_three_state_semantics(client, unique):
    agent = client.beta.agents.create(
        model="claude-opus-4-8", name=f"u-{unique}", description="d", system="s", metadata={"a": "1", "b": "2"}
    )
    # absent fields are preserved, null clears, metadata is a patch
    v2 = client.beta.agents.update(agent.id, version=1, description=None, metadata={"a": None, "c": "3"})
    assert v2.version == 2
    assert v2.description is None
    assert v2.system == "s"
    assert v2.metadata == {"b": "2", "c": "3"}
    assert v2.name == agent.name

    # an update that changes nothing writes no new version
    same = client.beta.agents.update(agent.id, name=agent.name)
    assert same.version == 2

    # historical versions stay readable
    v1 = client.beta.agents.retrieve(agent.id, version=1)
    assert v1.version == 1 and v1.description == "d"
    versions = [a.version for a in client.beta.agents.versions.list(agent.id, limit=1)]
    assert sorted(versions) == [1, 2]


def test_version_precondition_conflict_is_not_retried(client, unique):
    agent = client.beta.agents.create(model="claude-opus-4-8", name=f"c-{unique}")
    client.beta.agents.update(agent.id, system="x")
    with pytest.raises(anthropic.ConflictError) as err:
        client.beta.agents.with_raw_response.update(agent.id, version=1, system="y")
    assert err.value.response.headers.get("x-should-retry") == "false"
    assert err.value.type == "conflict_error"


def test_archive_hides_from_list(client, unique):
    agent = client.beta.agents.create(model="claude-opus-4-8", name=f"arch-{unique}")
    archived = client.beta.agents.archive(agent.id)
    assert archived.archived_at is not None
    assert agent.id not in [a.id for a in client.beta.agents.list()]
    assert agent.id in [a.id for a in client.beta.agents.list(include_archived=True)]


def test_errors_use_the_envelope(client):
    with pytest.raises(anthropic.NotFoundError) as err:
        client.beta.agents.retrieve("agent_does_not_exist")
    assert err.value.type == "not_found_error"
    assert err.value.request_id and err.value.request_id.startswith("req_")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.agents.create(model="claude-opus-4-8", name="")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.agents.list(limit=0)


def test_other_tenant_sees_nothing(client, other_client, unique):
    agent = client.beta.agents.create(model="claude-opus-4-8", name=f"mine-{unique}")
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.agents.retrieve(agent.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.agents.update(agent.id, name="stolen")
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.agents.archive(agent.id)
    assert agent.id not in [a.id for a in other_client.beta.agents.list()]
    assert client.beta.agents.retrieve(agent.id).name == f"mine-{unique}"


def test_bad_key_is_rejected():
    from conftest import make_client

    with pytest.raises(anthropic.AuthenticationError):
        make_client("sk-oma-not-a-real-key").beta.agents.list()


def test_archived_agents_are_read_only(client, unique):
    agent = client.beta.agents.create(model="claude-opus-4-8", name=f"ro-{unique}")
    client.beta.agents.archive(agent.id)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.agents.update(agent.id, system="changed")
