"""Multi-agent threads (semantics §10) through the official SDK in strict mode: a coordinator
delegates to two roster agents, each child runs in its own thread with its own context, a
child's confirmation is answered on the session, and a follow-up continues the same thread."""

import threading

import anthropic
import pytest

from conftest import assert_no_extra
from fake_model import Reply
from test_runtime import MODEL, listed, run_until_idle, send_text, types

ASK = [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_ask"}}}]


def roster(client, unique):
    researcher = client.beta.agents.create(
        model=MODEL, name=f"researcher-{unique}", system="You research.", description="Finds facts."
    )
    writer = client.beta.agents.create(model=MODEL, name=f"writer-{unique}", system="You write.", tools=ASK)
    coordinator = client.beta.agents.create(
        model=MODEL,
        name=f"lead-{unique}",
        system="You coordinate.",
        multiagent={"type": "coordinator", "agents": [researcher.id, {"type": "agent", "id": writer.id}]},
    )
    env = client.beta.environments.create(name=f"ma-{unique}", config={"type": "cloud"})
    s = client.beta.sessions.create(agent=coordinator.id, environment_id=env.id)
    return s, researcher, writer


def request_texts(req):
    """The texts of every message of a model request, as (role, text) pairs."""
    out = []
    for m in req["body"]["messages"]:
        content = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
        for b in content:
            if b.get("type") == "text":
                out.append((m["role"], b["text"]))
            elif b.get("type") == "tool_result":
                inner = b.get("content") or []
                inner = inner if isinstance(inner, list) else [{"type": "text", "text": inner}]
                out.extend((m["role"], f"result:{c.get('text', '')}") for c in inner)
    return out


def tool_names(req):
    return [t["name"] for t in req["body"].get("tools", [])]


def test_coordinator_delegates_to_two_agents(client, fake_model, unique):
    s, researcher, writer = roster(client, unique)
    fake_model.push(
        Reply(tool_uses=[("send_to_agent", {"agent": researcher.name, "message": "Find facts about otters"})]),
        Reply(text="Otters hold hands while sleeping."),
        Reply(tool_uses=[("send_to_agent", {"agent": writer.name, "message": "Write the otter note"})]),
        Reply(tool_uses=[("bash", {"command": "echo otter-note-written"})]),
    )
    first = run_until_idle(client, s.id, lambda: send_text(client, s.id, "Research otters, then write it up"))
    threads = client.beta.sessions.threads.list(s.id).data
    for t in threads:
        assert_no_extra(t)
    primary = next(t for t in threads if t.parent_thread_id is None)
    children = {t.agent.name: t for t in threads if t.parent_thread_id is not None}
    assert set(children) == {researcher.name, writer.name}
    assert all(t.parent_thread_id == primary.id for t in children.values())
    r_thread, w_thread = children[researcher.name], children[writer.name]
    assert r_thread.agent.id == researcher.id and r_thread.status == "idle"
    assert w_thread.status == "idle"

    # The session stream: the coordinator's work, the children's lifecycle and the writer's
    # confirmation, but none of the children's own reasoning.
    assert types(first) == [
        "user.message",
        "session.status_running",
        "span.model_request_start",
        "agent.tool_use",
        "span.model_request_end",
        "session.thread_created",
        "agent.thread_message_sent",
        "session.thread_status_running",
        "session.thread_status_idle",
        "agent.thread_message_received",
        "agent.tool_result",
        "span.model_request_start",
        "agent.tool_use",
        "span.model_request_end",
        "session.thread_created",
        "agent.thread_message_sent",
        "session.thread_status_running",
        "agent.tool_use",
        "session.thread_status_idle",
        "session.usage",
        "session.status_idle",
    ]
    created = [e for e in first if e.type == "session.thread_created"]
    assert [(e.session_thread_id, e.agent_name) for e in created] == [
        (r_thread.id, researcher.name),
        (w_thread.id, writer.name),
    ]
    sent = next(e for e in first if e.type == "agent.thread_message_sent")
    assert sent.to_session_thread_id == r_thread.id and sent.to_agent_name == researcher.name
    assert sent.content[0].text == "Find facts about otters"
    report = next(e for e in first if e.type == "agent.thread_message_received")
    assert report.from_session_thread_id == r_thread.id and report.from_agent_name == researcher.name
    assert report.content[0].text == "Otters hold hands while sleeping."
    delegation = next(e for e in first if e.type == "agent.tool_use")
    assert delegation.name == "send_to_agent"
    result = next(e for e in first if e.type == "agent.tool_result")
    assert result.tool_use_id == delegation.id and "Otters hold hands" in result.content[0].text
    statuses = [e for e in first if e.type.startswith("session.thread_status_")]
    assert [(e.session_thread_id, e.type) for e in statuses] == [
        (r_thread.id, "session.thread_status_running"),
        (r_thread.id, "session.thread_status_idle"),
        (w_thread.id, "session.thread_status_running"),
        (w_thread.id, "session.thread_status_idle"),
    ]
    assert statuses[1].stop_reason.type == "end_turn"
    assert statuses[3].stop_reason.type == "requires_action"
    ask = [e for e in first if e.type == "agent.tool_use"][-1]
    assert ask.name == "bash" and ask.evaluated_permission == "ask" and ask.session_thread_id == w_thread.id
    assert statuses[3].stop_reason.event_ids == [ask.id]
    assert first[-1].stop_reason.type == "requires_action" and first[-1].stop_reason.event_ids == [ask.id]
    assert client.beta.sessions.retrieve(s.id).status == "idle"
    # The session's event list is the session stream.
    assert [e.id for e in listed(client, s.id)] == [e.id for e in first]

    # The researcher's own thread: the task, its work, its report, in its own log.
    r_events = list(client.beta.sessions.threads.events.list(r_thread.id, session_id=s.id))
    for e in r_events:
        assert_no_extra(e)
    assert types(r_events) == [
        "agent.thread_message_received",
        "session.thread_status_running",
        "span.model_request_start",
        "agent.message",
        "span.model_request_end",
        "session.thread_status_idle",
        "agent.thread_message_sent",
    ]
    assert r_events[0].from_session_thread_id == primary.id and r_events[0].from_agent_name is None
    assert r_events[-1].to_session_thread_id == primary.id
    assert r_events[-1].content[0].text == "Otters hold hands while sleeping."
    # The primary thread's list is the session-level list.
    assert [e.id for e in client.beta.sessions.threads.events.list(primary.id, session_id=s.id, limit=100)] == [
        e.id for e in first
    ]

    # The writer's confirmation is answered on the session; the writer goes on, reports, and
    # the coordinator finishes. Its thread stream shows the second half live.
    fake_model.push(Reply(text="Wrote the otter note."), Reply(text="All done: otters researched and written up."))
    w_seen = []
    w_done = threading.Event()
    w_open = threading.Event()

    def watch_writer():
        with client.beta.sessions.threads.events.stream(w_thread.id, session_id=s.id) as w_stream:
            w_open.set()
            for ev in w_stream:
                w_seen.append(ev)
                if ev.type == "agent.thread_message_sent":
                    break
        w_done.set()

    watcher = threading.Thread(target=watch_writer, daemon=True)
    watcher.start()
    assert w_open.wait(10)
    second = run_until_idle(
        client,
        s.id,
        lambda: client.beta.sessions.events.send(
            s.id, events=[{"type": "user.tool_confirmation", "tool_use_id": ask.id, "result": "allow"}]
        ),
    )
    w_listed = list(client.beta.sessions.threads.events.list(w_thread.id, session_id=s.id))
    assert w_done.wait(10), (types(second), types(w_seen), types(w_listed))
    for ev in w_seen:
        assert_no_extra(ev)
    assert types(second) == [
        "user.tool_confirmation",
        "session.status_running",
        "session.thread_status_running",
        "session.thread_status_idle",
        "agent.thread_message_received",
        "agent.tool_result",
        "span.model_request_start",
        "agent.message",
        "span.model_request_end",
        "session.usage",
        "session.status_idle",
    ]
    assert second[-1].stop_reason.type == "end_turn"
    assert second[4].from_session_thread_id == w_thread.id and second[4].content[0].text == "Wrote the otter note."
    assert types(w_seen) == [
        "user.tool_confirmation",
        "session.thread_status_running",
        "agent.tool_result",
        "span.model_request_start",
        "agent.message",
        "span.model_request_end",
        "session.thread_status_idle",
        "agent.thread_message_sent",
    ]
    assert "otter-note-written" in w_seen[2].content[0].text and w_seen[2].tool_use_id == ask.id

    # Each agent saw only its own context: its own system prompt, its own task, its own tools.
    reqs = fake_model.requests[-6:]
    lead1, research, lead2, write1, write2, lead3 = reqs
    assert lead1["body"]["system"][0]["text"] == "You coordinate."
    assert {"send_to_agent", "list_agents"} <= set(tool_names(lead1))
    assert research["body"]["system"][0]["text"] == "You research."
    assert request_texts(research) == [("user", "Find facts about otters")]
    assert "send_to_agent" not in tool_names(research)
    assert write1["body"]["system"][0]["text"] == "You write."
    assert request_texts(write1) == [("user", "Write the otter note")]
    assert "bash" in tool_names(write1) and "send_to_agent" not in tool_names(write1)
    assert request_texts(write2)[0] == ("user", "Write the otter note")
    assert not any("otters" in t.lower() and "research" in t.lower() for _, t in request_texts(write2))
    assert ("user", "result:Otters hold hands while sleeping.") in request_texts(lead2)
    assert ("user", "result:Wrote the otter note.") in request_texts(lead3)
    assert not any("otter-note-written" in t for _, t in request_texts(lead3))

    # A follow-up to the researcher continues its thread, with its history.
    fake_model.push(
        Reply(tool_uses=[("send_to_agent", {"agent": researcher.name, "message": "And what do they eat?"})]),
        Reply(text="Sea urchins."),
        Reply(text="They eat sea urchins."),
    )
    third = run_until_idle(client, s.id, lambda: send_text(client, s.id, "Ask what they eat"))
    assert "session.thread_created" not in types(third)
    follow = next(e for e in third if e.type == "agent.thread_message_sent")
    assert follow.to_session_thread_id == r_thread.id
    assert request_texts(fake_model.requests[-2]) == [
        ("user", "Find facts about otters"),
        ("assistant", "Otters hold hands while sleeping."),
        ("user", "And what do they eat?"),
    ]
    assert len(client.beta.sessions.threads.list(s.id).data) == 3


def test_unknown_agent_and_list_agents(client, fake_model, unique):
    s, researcher, writer = roster(client, unique)
    fake_model.push(
        Reply(tool_uses=[("list_agents", {}), ("send_to_agent", {"agent": "nobody", "message": "hi"})]),
        Reply(text="ok"),
    )
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "who is there?"))
    results = [e for e in events if e.type == "agent.tool_result"]
    assert len(results) == 2
    listing, refused = results
    assert not listing.is_error and researcher.name in listing.content[0].text and "Finds facts." in listing.content[0].text
    assert refused.is_error and "nobody" in refused.content[0].text and writer.name in refused.content[0].text
    assert [t.parent_thread_id for t in client.beta.sessions.threads.list(s.id).data] == [None]


def test_archiving_a_child_thread(client, fake_model, unique):
    s, researcher, _ = roster(client, unique)
    fake_model.push(
        Reply(tool_uses=[("send_to_agent", {"agent": researcher.name, "message": "Find facts"})]),
        Reply(text="Facts."),
        Reply(text="done"),
    )
    run_until_idle(client, s.id, lambda: send_text(client, s.id, "go"))
    child = next(t for t in client.beta.sessions.threads.list(s.id).data if t.parent_thread_id)
    archived = client.beta.sessions.threads.archive(child.id, session_id=s.id)
    assert_no_extra(archived)
    assert archived.archived_at is not None and archived.status == "terminated"
    terminated = [e for e in listed(client, s.id) if e.type == "session.thread_status_terminated"]
    assert [(e.session_thread_id, e.agent_name) for e in terminated] == [(child.id, researcher.name)]
    # A new delegation to that agent starts a fresh thread.
    fake_model.push(
        Reply(tool_uses=[("send_to_agent", {"agent": researcher.name, "message": "Again"})]),
        Reply(text="More facts."),
        Reply(text="done again"),
    )
    again = run_until_idle(client, s.id, lambda: send_text(client, s.id, "again"))
    created = next(e for e in again if e.type == "session.thread_created")
    assert created.session_thread_id != child.id
    assert request_texts(fake_model.requests[-2]) == [("user", "Again")]


def test_roster_features_not_run_are_refused_at_session_create(client, unique):
    env = client.beta.environments.create(name=f"ma-{unique}", config={"type": "cloud"})
    advised = client.beta.agents.create(
        model=MODEL,
        name=f"adv-{unique}",
        multiagent={"type": "coordinator", "agents": [{"type": "advisor", "model": MODEL}]},
    )
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.sessions.create(agent=advised.id, environment_id=env.id)
    assert "advisor" in str(e.value)


def test_interrupt_while_a_child_waits_on_the_user(client, fake_model, unique):
    s, _, writer = roster(client, unique)
    fake_model.push(
        Reply(tool_uses=[("send_to_agent", {"agent": writer.name, "message": "Write it"})]),
        Reply(tool_uses=[("bash", {"command": "echo never-runs"})]),
    )
    first = run_until_idle(client, s.id, lambda: send_text(client, s.id, "write"))
    assert first[-1].stop_reason.type == "requires_action"
    ask = [e for e in first if e.type == "agent.tool_use"][-1]
    w_thread = ask.session_thread_id
    second = run_until_idle(
        client, s.id, lambda: client.beta.sessions.events.send(s.id, events=[{"type": "user.interrupt"}])
    )
    assert second[-1].stop_reason.type == "end_turn"
    # The child's call is denied in its thread, its turn ends, and the delegation fails.
    w_events = list(client.beta.sessions.threads.events.list(w_thread, session_id=s.id))
    denied = next(e for e in w_events if e.type == "agent.tool_result")
    assert denied.tool_use_id == ask.id and denied.is_error
    assert w_events[-1].type == "session.thread_status_idle" and w_events[-1].stop_reason.type == "end_turn"
    delegation = next(e for e in first if e.type == "agent.tool_use" and e.name == "send_to_agent")
    failed = next(e for e in listed(client, s.id) if e.type == "agent.tool_result" and e.tool_use_id == delegation.id)
    assert failed.is_error
    assert {t.status for t in client.beta.sessions.threads.list(s.id).data} == {"idle"}
    # The session takes new work; the same writer thread continues.
    fake_model.push(
        Reply(tool_uses=[("send_to_agent", {"agent": writer.name, "message": "Try again"})]),
        Reply(text="Nothing to run this time."),
        Reply(text="ok"),
    )
    third = run_until_idle(client, s.id, lambda: send_text(client, s.id, "again"))
    assert third[-1].stop_reason.type == "end_turn"
    assert next(e for e in third if e.type == "agent.thread_message_sent").to_session_thread_id == w_thread


def test_interrupt_mid_child_stream(client, fake_model, unique):
    s, researcher, _ = roster(client, unique)
    gate, at_gate = threading.Event(), threading.Event()
    fake_model.push(
        Reply(tool_uses=[("send_to_agent", {"agent": researcher.name, "message": "Think long"})]),
        Reply(text="A long thought that is cut", gate=gate, at_gate=at_gate),
    )

    def act():
        send_text(client, s.id, "go")
        assert at_gate.wait(10)
        client.beta.sessions.events.send(s.id, events=[{"type": "user.interrupt"}])
        gate.set()

    events = run_until_idle(client, s.id, act)
    assert events[-1].stop_reason.type == "end_turn"
    statuses = [e for e in events if e.type.startswith("session.thread_status_")]
    assert [e.type for e in statuses] == ["session.thread_status_running", "session.thread_status_idle"]
    result = next(e for e in events if e.type == "agent.tool_result")
    assert result.is_error and "interrupted" in result.content[0].text
    assert types(events)[-3:] == ["user.interrupt", "session.usage", "session.status_idle"]


def test_self_copy_runs_the_coordinators_agent_without_the_roster(client, fake_model, unique):
    lead = client.beta.agents.create(
        model=MODEL, name=f"solo-{unique}", system="You coordinate yourself.", multiagent={"type": "coordinator", "agents": [{"type": "self"}]}
    )
    env = client.beta.environments.create(name=f"ma-{unique}", config={"type": "cloud"})
    s = client.beta.sessions.create(agent=lead.id, environment_id=env.id)
    fake_model.push(
        Reply(tool_uses=[("send_to_agent", {"agent": lead.name, "message": "Half of the work"})]),
        Reply(text="Did half."),
        Reply(text="Both halves done."),
    )
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "split it"))
    assert events[-1].stop_reason.type == "end_turn"
    created = next(e for e in events if e.type == "session.thread_created")
    assert created.agent_name == lead.name
    copy = fake_model.requests[-2]["body"]
    assert copy["system"][0]["text"] == "You coordinate yourself."
    assert request_texts(fake_model.requests[-2]) == [("user", "Half of the work")]
    # A copy is one level deep: it cannot delegate further.
    assert "send_to_agent" not in tool_names(fake_model.requests[-2])


def test_multiagent_sessions_need_a_cloud_environment(client, unique):
    researcher = client.beta.agents.create(model=MODEL, name=f"r-{unique}")
    lead = client.beta.agents.create(
        model=MODEL, name=f"l-{unique}", multiagent={"type": "coordinator", "agents": [researcher.id]}
    )
    env = client.beta.environments.create(name=f"mash-{unique}", config={"type": "self_hosted"})
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.sessions.create(agent=lead.id, environment_id=env.id)
    assert "cloud environment" in str(e.value)
    assert list(client.beta.sessions.list(agent_id=lead.id)) == []
