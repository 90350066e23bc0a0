"""Sessions, session resources and session threads (spec §3.3, §5.3) through the official SDK in
strict mode.

Sessions created with `initial_events` start `running`. The tests that need a session to stay
running (archive, delete and agent updates are refused then) hold its first model request open
on the scripted fake model until the test ends (fixture `hold_turns`).
"""

import datetime as dt
import io

import anthropic
import pytest

from conftest import assert_no_extra

BUDGET = {"type": "limit", "max_list_cost": {"amount": "2500", "currency": "USD"}}
HELLO = {"type": "user.message", "content": [{"type": "text", "text": "hello"}]}
REPO = "https://github.com/acme/widgets"


@pytest.fixture
def hold_turns(fake_model):
    """Keeps sessions running: their first model requests stream until the test ends."""
    import threading

    from fake_model import Reply

    gate = threading.Event()
    for _ in range(4):
        fake_model.push(Reply(text="holding the turn open", gate=gate))
    yield
    gate.set()



@pytest.fixture
def agent(client, unique):
    return client.beta.agents.create(
        model="claude-opus-4-8",
        name=f"sess-agent-{unique}",
        system="be brief",
        tools=[{"type": "agent_toolset_20260401"}],
    )


@pytest.fixture
def env(client, unique):
    return client.beta.environments.create(name=f"sess-env-{unique}")


def _session(client, agent, env, **kw):
    s = client.beta.sessions.create(agent=kw.pop("agent_ref", agent.id), environment_id=env.id, **kw)
    assert_no_extra(s)
    return s


def _upload(client, name="data.csv"):
    return client.beta.files.upload(file=(name, io.BytesIO(b"a,b\n1,2\n"), "text/csv"))


def _primary_thread(client, session_id):
    threads = list(client.beta.sessions.threads.list(session_id))
    assert len(threads) == 1
    return threads[0]


# ---------------------------------------------------------------------------------------------
# Create and retrieve
# ---------------------------------------------------------------------------------------------


def test_create_minimal_session(client, agent, env):
    s = _session(client, agent, env)
    assert s.type == "session"
    assert s.id.startswith("sesn_")
    assert s.status == "idle"
    assert s.environment_id == env.id
    assert s.archived_at is None and s.budget is None and s.title is None and s.deployment_id is None
    assert s.metadata == {} and s.resources == [] and s.vault_ids == [] and s.outcome_evaluations == []
    assert s.stats.active_seconds == 0 and s.stats.duration_seconds is not None
    assert s.usage.input_tokens == 0 and s.usage.output_tokens == 0
    # The agent snapshot: the latest version, fully resolved, without agent-only keys.
    a = s.agent
    assert (a.type, a.id, a.version, a.name, a.system) == ("agent", agent.id, 1, agent.name, "be brief")
    assert a.model.id == "claude-opus-4-8" and a.model.effort.type == "high"
    assert a.tools[0].type == "agent_toolset_20260401"
    assert a.execution_identity.type == "service_account"
    assert a.multiagent is None

    got = client.beta.sessions.retrieve(s.id)
    assert_no_extra(got)
    assert got.id == s.id and got.agent.model_dump() == s.agent.model_dump()
    assert got.created_at == s.created_at

    # Every session has one primary thread running its agent.
    t = _primary_thread(client, s.id)
    assert_no_extra(t)
    assert t.type == "session_thread" and t.id.startswith("sthr_")
    assert t.session_id == s.id and t.parent_thread_id is None and t.workflow_run_id is None
    assert t.status == "idle" and t.archived_at is None
    assert t.agent.type == "agent" and t.agent.id == agent.id and t.agent.version == 1
    assert client.beta.sessions.threads.retrieve(t.id, session_id=s.id).model_dump() == t.model_dump()


def test_create_with_everything(client, agent, env, unique):
    vault = client.beta.vaults.create(display_name=f"v-{unique}")
    store = client.beta.memory_stores.create(name=f"User Notes {unique}", description="what the user likes")
    f = _upload(client)
    s = _session(
        client,
        agent,
        env,
        title="triage",
        metadata={"ticket": "T-1"},
        vault_ids=[vault.id],
        budget=BUDGET,
        resources=[
            {
                "type": "github_repository",
                "url": REPO,
                "authorization_token": "ghp_secret_value",
                "checkout": {"type": "branch", "name": "main"},
            },
            {"type": "file", "file_id": f.id},
            {"type": "file", "file_id": f.id, "mount_path": "/inputs/copy.csv"},
            {"type": "memory_store", "memory_store_id": store.id, "access": "read_only", "instructions": "read it"},
        ],
    )
    assert s.title == "triage" and s.metadata == {"ticket": "T-1"} and s.vault_ids == [vault.id]
    assert s.budget.type == "limit"
    assert (s.budget.max_list_cost.amount, s.budget.max_list_cost.currency) == ("2500", "USD")
    repo, file1, file2, mem = s.resources
    assert (repo.type, repo.url, repo.mount_path) == ("github_repository", REPO, "/workspace/widgets")
    assert repo.checkout.type == "branch" and repo.checkout.name == "main"
    assert repo.id and repo.created_at and repo.updated_at
    assert "ghp_secret_value" not in s.model_dump_json(), "the token is write-only"
    assert (file1.type, file1.file_id, file1.mount_path) == ("file", f.id, f"/mnt/session/uploads/{f.id}")
    assert file2.mount_path == "/mnt/session/uploads/inputs/copy.csv"
    assert (mem.type, mem.memory_store_id, mem.access, mem.instructions) == ("memory_store", store.id, "read_only", "read it")
    assert mem.name == store.name and mem.description == "what the user likes"
    assert mem.mount_path == f"/mnt/memory/user-notes-{unique}"
    got = client.beta.sessions.retrieve(s.id)
    assert got.model_dump(exclude={"stats", "updated_at"}) == s.model_dump(exclude={"stats", "updated_at"})


def test_initial_events_start_the_session_running(client, agent, env, hold_turns):
    outcome = {
        "type": "user.define_outcome",
        "description": "write a haiku",
        "rubric": {"type": "text", "content": "5-7-5"},
    }
    s = _session(client, agent, env, initial_events=[HELLO, outcome])
    assert s.status == "running"
    assert len(s.outcome_evaluations) == 1
    ev = s.outcome_evaluations[0]
    assert (ev.type, ev.description, ev.result, ev.iteration) == ("outcome_evaluation", "write a haiku", "pending", 0)
    assert ev.outcome_id.startswith("outc_") and ev.completed_at is None and ev.explanation is None
    # The events are processed in order (echoed into the log as the session's host consumes
    # them), not echoed in the create response.
    import time

    deadline = time.monotonic() + 30
    while len(events := list(client.beta.sessions.events.list(s.id))) < 2:
        assert time.monotonic() < deadline, "the initial events were never processed"
        time.sleep(0.02)
    assert [e.type for e in events[:3]] == ["user.message", "user.define_outcome", "session.status_running"]
    assert events[1].outcome_id == ev.outcome_id
    assert _primary_thread(client, s.id).status == "running"


def test_agent_forms_pin_versions_and_snapshot(client, agent, env):
    client.beta.agents.update(agent.id, system="v2 prompt")
    latest = _session(client, agent, env)
    assert latest.agent.version == 2 and latest.agent.system == "v2 prompt"
    pinned = _session(client, agent, env, agent_ref={"type": "agent", "id": agent.id, "version": 1})
    assert pinned.agent.version == 1 and pinned.agent.system == "be brief"
    by_object = _session(client, agent, env, agent_ref={"type": "agent", "id": agent.id})
    assert by_object.agent.version == 2
    # Later agent changes never reach existing sessions.
    client.beta.agents.update(agent.id, system="v3 prompt")
    assert client.beta.sessions.retrieve(latest.id).agent.system == "v2 prompt"


def test_agent_with_overrides(client, agent, env):
    s = _session(
        client,
        agent,
        env,
        agent_ref={
            "type": "agent_with_overrides",
            "id": agent.id,
            "version": 1,
            "model": {"id": "claude-sonnet-4-6", "effort": "max"},
            "system": None,
            "tools": [
                {"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_ask"}}},
                {"type": "mcp_toolset", "mcp_server_name": "docs"},
            ],
            "mcp_servers": [{"type": "url", "name": "docs", "url": "https://mcp.example.com/docs"}],
        },
    )
    a = s.agent
    assert (a.id, a.version) == (agent.id, 1), "overrides keep pointing at the base agent"
    assert a.model.id == "claude-sonnet-4-6"
    assert a.model.effort.type == "high", "an effort inside a model override is ignored"
    assert a.system is None
    assert a.tools[0].default_config.permission_policy.type == "always_ask"
    assert [m.name for m in a.mcp_servers] == ["docs"]
    # The agent itself is unchanged.
    base = client.beta.agents.retrieve(agent.id)
    assert base.version == 1 and base.system == "be brief" and base.mcp_servers == []


@pytest.mark.parametrize(
    "agent_ref",
    [
        {"type": "agent_with_overrides", "id": "{agent}", "model": None},
        {"type": "agent_with_overrides", "id": "{agent}", "tools": [{"type": "hammer"}]},
        {"type": "agent_with_overrides", "id": "{agent}", "tools": [{"type": "mcp_toolset", "mcp_server_name": "nope"}]},
        {"type": "agent", "id": "{agent}", "model": "claude-sonnet-4-6"},
        {"type": "agent", "id": "{agent}", "version": 0},
        {"type": "robot", "id": "{agent}"},
        "",
    ],
)
def test_bad_agent_references_are_400(client, agent, env, agent_ref):
    if isinstance(agent_ref, dict):
        agent_ref = {k: (agent.id if v == "{agent}" else v) for k, v in agent_ref.items()}
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(agent=agent_ref, environment_id=env.id)


def test_model_override_null_has_a_code(client, agent, env):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.sessions.create(
            agent={"type": "agent_with_overrides", "id": agent.id, "model": None}, environment_id=env.id
        )
    assert e.value.error_code == "agent_model_required"


def test_missing_and_archived_references(client, other_client, agent, env, unique):
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(agent="agent_doesnotexist", environment_id=env.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(agent={"type": "agent", "id": agent.id, "version": 99}, environment_id=env.id)
    with pytest.raises(anthropic.NotFoundError) as e:
        client.beta.sessions.create(agent=agent.id, environment_id="env_doesnotexist")
    assert e.value.error_code == "environment_not_found"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(agent=agent.id, environment_id=env.id, vault_ids=["vlt_doesnotexist"])
    for resource in (
        {"type": "file", "file_id": "file_doesnotexist"},
        {"type": "memory_store", "memory_store_id": "memstore_doesnotexist"},
    ):
        with pytest.raises(anthropic.NotFoundError):
            client.beta.sessions.create(agent=agent.id, environment_id=env.id, resources=[resource])
    # Another tenant's agent and environment do not exist for this one.
    other_env = other_client.beta.environments.create(name=f"other-{unique}")
    other_agent = other_client.beta.agents.create(model="claude-opus-4-8", name=f"other-{unique}")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(agent=agent.id, environment_id=other_env.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(agent=other_agent.id, environment_id=env.id)

    archived_env = client.beta.environments.create(name=f"gone-{unique}")
    client.beta.environments.archive(archived_env.id)
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.sessions.create(agent=agent.id, environment_id=archived_env.id)
    assert e.value.error_code == "environment_archived"
    archived_agent = client.beta.agents.create(model="claude-opus-4-8", name=f"gone-{unique}")
    client.beta.agents.archive(archived_agent.id)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(agent=archived_agent.id, environment_id=env.id)


@pytest.mark.parametrize(
    "kw",
    [
        {"resources": [{"type": "github_repository", "url": "https://github.com/acme/widgets.git"}]},
        {"resources": [{"type": "github_repository", "url": "git@github.com:acme/widgets.git"}]},
        {"resources": [{"type": "github_repository", "url": REPO, "mount_path": "../escape"}]},
        {"resources": [{"type": "github_repository", "url": REPO, "checkout": {"type": "commit", "sha": "abc"}}]},
        {"resources": [{"type": "memory_store", "memory_store_id": "memstore_x", "access": "write"}]},
        {"resources": [{"type": "memory_store", "memory_store_id": "memstore_x", "instructions": "x" * 4097}]},
        {"resources": [{"type": "disk"}]},
        {"initial_events": [{"type": "user.interrupt"}]},
        {"initial_events": [HELLO] * 51},
        {"initial_events": [{"type": "user.message", "content": []}]},
        {"budget": {"type": "limit", "max_list_cost": {"amount": "25.00", "currency": "USD"}}},
        {"budget": {"type": "limit", "max_list_cost": {"amount": "2500", "currency": "EUR"}}},
        {"budget": {"type": "cap", "max_list_cost": {"amount": "2500", "currency": "USD"}}},
        {"metadata": {f"k{i}": "v" for i in range(17)}},
        {"vault_ids": [""]},
    ],
)
def test_invalid_create_params_are_400(client, agent, env, kw):
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(agent=agent.id, environment_id=env.id, **kw)


def test_budget_needs_list_priced_models(client, env, unique):
    a = client.beta.agents.create(model="gpt-local-7b", name=f"unpriced-{unique}")
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.sessions.create(agent=a.id, environment_id=env.id, budget=BUDGET)
    assert e.value.error_code == "model_not_budgetable"
    # Without a budget the same agent is fine.
    assert client.beta.sessions.create(agent=a.id, environment_id=env.id).status == "idle"


def test_missing_sessions_are_404_and_other_tenants_are_invisible(client, other_client, agent, env):
    for call in (
        lambda c: c.beta.sessions.retrieve("sesn_doesnotexist"),
        lambda c: c.beta.sessions.update("sesn_doesnotexist", title="x"),
        lambda c: c.beta.sessions.archive("sesn_doesnotexist"),
        lambda c: c.beta.sessions.delete("sesn_doesnotexist"),
    ):
        with pytest.raises(anthropic.NotFoundError):
            call(client)

    s = _session(client, agent, env, resources=[{"type": "github_repository", "url": REPO}])
    rid = s.resources[0].id
    tid = _primary_thread(client, s.id).id
    for call in (
        lambda c: c.beta.sessions.retrieve(s.id),
        lambda c: c.beta.sessions.update(s.id, title="stolen"),
        lambda c: c.beta.sessions.archive(s.id),
        lambda c: c.beta.sessions.delete(s.id),
        lambda c: list(c.beta.sessions.resources.list(s.id)),
        lambda c: c.beta.sessions.resources.retrieve(rid, session_id=s.id),
        lambda c: c.beta.sessions.resources.update(rid, session_id=s.id, authorization_token="x"),
        lambda c: c.beta.sessions.resources.delete(rid, session_id=s.id),
        lambda c: c.beta.sessions.resources.add(s.id, type="file", file_id="file_x"),
        lambda c: list(c.beta.sessions.threads.list(s.id)),
        lambda c: c.beta.sessions.threads.retrieve(tid, session_id=s.id),
        lambda c: c.beta.sessions.threads.archive(tid, session_id=s.id),
    ):
        with pytest.raises(anthropic.NotFoundError):
            call(other_client)
    assert s.id not in [x.id for x in other_client.beta.sessions.list(include_archived=True)]
    # Untouched by the attempts.
    got = client.beta.sessions.retrieve(s.id)
    assert got.title is None and got.archived_at is None and len(got.resources) == 1


# ---------------------------------------------------------------------------------------------
# Update
# ---------------------------------------------------------------------------------------------


def test_update_title_and_metadata_three_states(client, agent, env):
    s = _session(client, agent, env, title="first", metadata={"a": "1", "b": "2"})
    u = client.beta.sessions.update(s.id, metadata={"a": None, "c": "3"})
    assert_no_extra(u)
    assert u.title == "first", "absent keeps"
    assert u.metadata == {"b": "2", "c": "3"}
    assert u.updated_at >= s.updated_at
    u = client.beta.sessions.update(s.id, title=None)
    assert u.title is None and u.metadata == {"b": "2", "c": "3"}
    u = client.beta.sessions.update(s.id, title="second")
    assert u.title == "second"
    # Each change is a session.updated event carrying only what changed.
    updates = [e for e in client.beta.sessions.events.list(s.id) if e.type == "session.updated"]
    assert len(updates) == 3
    assert updates[0].metadata == {"b": "2", "c": "3"} and updates[0].title is None
    assert "title" in updates[1].model_fields_set and updates[1].title is None
    assert updates[2].title == "second"
    assert_no_extra(updates)
    # A no-op writes nothing.
    same = client.beta.sessions.update(s.id, title="second")
    assert same.title == "second"
    assert len([e for e in client.beta.sessions.events.list(s.id) if e.type == "session.updated"]) == 3
    # Clearing every key is a change; the event then carries no metadata.
    cleared = client.beta.sessions.update(s.id, metadata={"b": None, "c": None})
    assert cleared.metadata == {} and client.beta.sessions.retrieve(s.id).metadata == {}
    last = [e for e in client.beta.sessions.events.list(s.id) if e.type == "session.updated"][-1]
    assert len([e for e in client.beta.sessions.events.list(s.id) if e.type == "session.updated"]) == 4
    assert "metadata" not in last.model_fields_set
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.update(s.id, metadata={"k": "x" * 513})


def test_update_budget_rules(client, agent, env):
    without = _session(client, agent, env)
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.sessions.update(without.id, budget=BUDGET)
    assert e.value.error_code == "budget_create_only"

    s = _session(client, agent, env, budget=BUDGET)
    raised = {"type": "limit", "max_list_cost": {"amount": "5000", "currency": "USD"}}
    u = client.beta.sessions.update(s.id, budget=raised)
    assert u.budget.max_list_cost.amount == "5000"
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.update(s.id, budget={"type": "limit", "max_list_cost": {"amount": "0", "currency": "USD"}})
    removed = client.beta.sessions.update(s.id, budget=None)
    assert removed.budget is None
    updates = [e for e in client.beta.sessions.events.list(s.id) if e.type == "session.updated"]
    assert updates[-1].budget is None and "budget" in updates[-1].model_fields_set
    # A removed budget cannot come back.
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.sessions.update(s.id, budget=BUDGET)
    assert e.value.error_code == "budget_create_only"


def test_update_agent_tools_and_mcp_servers(client, agent, env):
    s = _session(client, agent, env)
    u = client.beta.sessions.update(
        s.id,
        agent={
            "tools": [
                {"type": "agent_toolset_20260401", "configs": [{"name": "bash", "enabled": False}]},
                {"type": "mcp_toolset", "mcp_server_name": "docs"},
            ],
            "mcp_servers": [{"type": "url", "name": "docs", "url": "https://mcp.example.com/docs"}],
        },
    )
    assert [t.type for t in u.agent.tools] == ["agent_toolset_20260401", "mcp_toolset"]
    assert [m.name for m in u.agent.mcp_servers] == ["docs"]
    assert u.agent.model.id == "claude-opus-4-8" and u.agent.version == 1
    updated = [e for e in client.beta.sessions.events.list(s.id) if e.type == "session.updated"][-1]
    assert updated.agent.mcp_servers[0].name == "docs"
    assert _primary_thread(client, s.id).agent.mcp_servers[0].name == "docs"
    # The agent resource is unchanged.
    assert client.beta.agents.retrieve(agent.id).mcp_servers == []
    # An MCP toolset needs its server.
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.update(s.id, agent={"mcp_servers": []})
    # Empty arrays clear.
    u = client.beta.sessions.update(s.id, agent={"tools": [], "mcp_servers": []})
    assert u.agent.tools == [] and u.agent.mcp_servers == []


def test_update_rejections(client, agent, env, hold_turns):
    running = _session(client, agent, env, initial_events=[HELLO])
    with pytest.raises(anthropic.ConflictError) as e:
        client.beta.sessions.update(running.id, agent={"tools": []})
    assert e.value.response.headers.get("x-should-retry") == "false"
    # Other fields may change while running.
    assert client.beta.sessions.update(running.id, title="still running").title == "still running"
    idle = _session(client, agent, env)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.update(idle.id, vault_ids=[])
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.update(idle.id, extra_body={"agent": {"model": "claude-sonnet-4-6"}})


# ---------------------------------------------------------------------------------------------
# List
# ---------------------------------------------------------------------------------------------


def test_list_pagination_both_ways(client, agent, env):
    ids = [_session(client, agent, env).id for _ in range(5)]
    seen = [s.id for s in client.beta.sessions.list(agent_id=agent.id, limit=1)]
    assert seen == list(reversed(ids)), "newest first, every page followed"

    first = client.beta.sessions.list(agent_id=agent.id, limit=2)
    assert [s.id for s in first.data] == [ids[4], ids[3]]
    assert first.next_page and first.prev_page is None
    for s in first.data:
        assert_no_extra(s)
    second = client.beta.sessions.list(agent_id=agent.id, limit=2, page=first.next_page)
    assert [s.id for s in second.data] == [ids[2], ids[1]]
    assert second.prev_page
    back = client.beta.sessions.list(agent_id=agent.id, limit=2, page=second.prev_page)
    assert [s.id for s in back.data] == [ids[4], ids[3]], "prev_page returns the previous page in list order"
    assert back.prev_page is None and back.next_page
    third = client.beta.sessions.list(agent_id=agent.id, limit=2, page=second.next_page)
    assert [s.id for s in third.data] == [ids[0]] and third.next_page is None

    asc = [s.id for s in client.beta.sessions.list(agent_id=agent.id, order="asc", limit=2)]
    assert asc == ids
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.list(agent_id=agent.id, limit=2, page=first.next_page, order="asc")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.list(page="garbage")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.list(limit=0)


def test_list_filters(client, agent, env, unique, hold_turns):
    store = client.beta.memory_stores.create(name=f"filter-{unique}")
    idle = _session(client, agent, env)
    running = _session(client, agent, env, initial_events=[HELLO])
    with_store = _session(client, agent, env, resources=[{"type": "memory_store", "memory_store_id": store.id}])
    archived = _session(client, agent, env)
    client.beta.sessions.archive(archived.id)
    client.beta.agents.update(agent.id, system="newer")
    v2 = _session(client, agent, env)

    def ids(**kw):
        return [s.id for s in client.beta.sessions.list(agent_id=agent.id, **kw)]

    assert ids() == [v2.id, with_store.id, running.id, idle.id]
    assert ids(include_archived=True) == [v2.id, archived.id, with_store.id, running.id, idle.id]
    assert ids(agent_version=1) == [with_store.id, running.id, idle.id]
    assert ids(agent_version=2) == [v2.id]
    assert ids(statuses=["running"]) == [running.id]
    assert set(ids(statuses=["idle", "running"])) == {v2.id, with_store.id, running.id, idle.id}
    assert ids(statuses=["terminated"], include_archived=True) == [archived.id]
    assert ids(memory_store_id=store.id) == [with_store.id]
    assert [s.id for s in client.beta.sessions.list(memory_store_id=store.id)] == [with_store.id]
    assert ids(deployment_id="depl_none") == []

    created = {s.id: s.created_at for s in client.beta.sessions.list(agent_id=agent.id)}
    t = created[running.id]
    assert ids(created_at_gte=t) == [v2.id, with_store.id, running.id]
    assert ids(created_at_gt=t) == [v2.id, with_store.id]
    assert ids(created_at_lte=t) == [running.id, idle.id]
    assert ids(created_at_lt=t) == [idle.id]
    assert ids(created_at_lt=t - dt.timedelta(days=1)) == []
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.list(statuses=["sleeping"])
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.list(created_at_gt="yesterday")


# ---------------------------------------------------------------------------------------------
# Archive and delete
# ---------------------------------------------------------------------------------------------


def test_archive(client, agent, env, hold_turns):
    running = _session(client, agent, env, initial_events=[HELLO])
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.archive(running.id)

    s = _session(client, agent, env)
    a = client.beta.sessions.archive(s.id)
    assert_no_extra(a)
    assert a.archived_at is not None and a.status == "terminated"
    assert client.beta.sessions.retrieve(s.id).status == "terminated"
    again = client.beta.sessions.archive(s.id)
    assert again.archived_at == a.archived_at, "archiving twice keeps the first time"
    assert [e.type for e in client.beta.sessions.events.list(s.id)] == ["session.status_terminated"]
    assert _primary_thread(client, s.id).status == "terminated"
    # Archived sessions keep their history but take no new events and no new files.
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.events.send(s.id, events=[HELLO])
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.update(s.id, agent={"tools": []})
    # Title and metadata stay editable.
    assert client.beta.sessions.update(s.id, title="post-mortem").title == "post-mortem"


def test_delete(client, agent, env, hold_turns):
    running = _session(client, agent, env, initial_events=[HELLO])
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.delete(running.id)
    assert client.beta.sessions.retrieve(running.id).status == "running"

    f = _upload(client)
    s = _session(client, agent, env, title="doomed", resources=[{"type": "file", "file_id": f.id}])
    client.beta.sessions.update(s.id, title="doomed twice")
    d = client.beta.sessions.delete(s.id)
    assert_no_extra(d)
    assert (d.id, d.type) == (s.id, "session_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.retrieve(s.id)
    with pytest.raises(anthropic.NotFoundError):
        list(client.beta.sessions.events.list(s.id))
    with pytest.raises(anthropic.NotFoundError):
        list(client.beta.sessions.resources.list(s.id))
    with pytest.raises(anthropic.NotFoundError):
        list(client.beta.sessions.threads.list(s.id))
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.delete(s.id)
    # The uploaded file is the caller's and stays.
    assert client.beta.files.retrieve_metadata(f.id).id == f.id
    # Archived sessions can be deleted.
    a = _session(client, agent, env)
    client.beta.sessions.archive(a.id)
    assert client.beta.sessions.delete(a.id).id == a.id


# ---------------------------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------------------------


def test_resources_sub_api(client, agent, env, unique):
    store = client.beta.memory_stores.create(name=f"res-{unique}")
    s = _session(
        client,
        agent,
        env,
        resources=[
            {"type": "github_repository", "url": REPO, "authorization_token": "ghp_one", "mount_path": "/src/w"},
            {"type": "memory_store", "memory_store_id": store.id},
        ],
    )
    repo, mem = s.resources
    assert repo.mount_path == "/src/w" and mem.access == "read_write"

    f = _upload(client, "notes.txt")
    added = client.beta.sessions.resources.add(s.id, type="file", file_id=f.id, mount_path="/notes.txt")
    assert_no_extra(added)
    assert (added.type, added.file_id, added.mount_path) == ("file", f.id, "/mnt/session/uploads/notes.txt")
    default = client.beta.sessions.resources.add(s.id, type="file", file_id=f.id)
    assert default.mount_path == f"/mnt/session/uploads/{f.id}"
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.resources.add(s.id, type="file", file_id=f.id, mount_path="/notes.txt")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.add(s.id, type="file", file_id="file_doesnotexist")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.resources.add(
            s.id, type="file", file_id=f.id, extra_body={"type": "memory_store", "memory_store_id": store.id}
        )

    got = client.beta.sessions.resources.retrieve(added.id, session_id=s.id)
    assert_no_extra(got)
    assert got.model_dump() == added.model_dump()
    got_mem = client.beta.sessions.resources.retrieve(store.id, session_id=s.id)
    assert got_mem.type == "memory_store" and got_mem.memory_store_id == store.id
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.retrieve("sres_doesnotexist", session_id=s.id)

    every = list(client.beta.sessions.resources.list(s.id))
    assert [r.type for r in every] == ["github_repository", "memory_store", "file", "file"]
    assert_no_extra(every)
    paged = [r.type for r in client.beta.sessions.resources.list(s.id, limit=1)]
    assert paged == ["github_repository", "memory_store", "file", "file"]
    page = client.beta.sessions.resources.list(s.id, limit=3)
    assert len(page.data) == 3 and page.next_page
    unpaged = client.beta.sessions.resources.list(s.id)
    assert len(unpaged.data) == 4 and unpaged.next_page is None
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.resources.list(s.id, limit=1001)
    assert [r.type for r in client.beta.sessions.retrieve(s.id).resources] == [
        "github_repository",
        "memory_store",
        "file",
        "file",
    ]

    rotated = client.beta.sessions.resources.update(repo.id, session_id=s.id, authorization_token="ghp_two")
    assert_no_extra(rotated)
    assert rotated.type == "github_repository" and rotated.id == repo.id and rotated.updated_at >= repo.updated_at
    assert "ghp_two" not in rotated.model_dump_json()
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.resources.update(added.id, session_id=s.id, authorization_token="x")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.resources.update(repo.id, session_id=s.id, authorization_token="")

    deleted = client.beta.sessions.resources.delete(added.id, session_id=s.id)
    assert_no_extra(deleted)
    assert (deleted.id, deleted.type) == (added.id, "session_resource_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.retrieve(added.id, session_id=s.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.delete(added.id, session_id=s.id)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.resources.delete(repo.id, session_id=s.id)
    assert len(client.beta.sessions.retrieve(s.id).resources) == 3

    # A resource is only reachable through its own session.
    other = _session(client, agent, env)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.retrieve(repo.id, session_id=other.id)

    client.beta.sessions.archive(s.id)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.resources.add(s.id, type="file", file_id=f.id)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.resources.delete(default.id, session_id=s.id)


# ---------------------------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------------------------


def test_threads(client, agent, env, hold_turns):
    s = _session(client, agent, env, initial_events=[HELLO])
    threads = client.beta.sessions.threads.list(s.id)
    assert len(threads.data) == 1 and threads.next_page is None
    primary = threads.data[0]
    assert_no_extra(primary)
    assert primary.status == "running" and primary.stats is None and primary.usage is None
    assert [t.id for t in client.beta.sessions.threads.list(s.id, statuses=["running"])] == [primary.id]
    assert list(client.beta.sessions.threads.list(s.id, statuses=["idle", "terminated"])) == []
    assert [t.id for t in client.beta.sessions.threads.list(s.id, limit=1)] == [primary.id]
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.threads.list(s.id, statuses=["asleep"])
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.threads.list(s.id, limit=1001)

    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.threads.archive(primary.id, session_id=s.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.threads.retrieve("sthr_doesnotexist", session_id=s.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.threads.archive("sthr_doesnotexist", session_id=s.id)
    other = _session(client, agent, env)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.threads.retrieve(primary.id, session_id=other.id)
