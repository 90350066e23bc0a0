"""Sessions come alive: agent turns end to end through the official SDK in strict mode, against
a scripted fake model, reading both the live stream and the event list."""

import threading
import time

import anthropic
import pytest

from conftest import assert_no_extra
from fake_model import Reply

MODEL = "claude-opus-4-8"


def make_session(client, unique, tools=None, model=MODEL, system="You are a test agent."):
    agent = client.beta.agents.create(model=model, name=f"rt-{unique}", system=system, tools=tools or [])
    env = client.beta.environments.create(name=f"rt-{unique}", config={"type": "cloud"})
    return client.beta.sessions.create(agent=agent.id, environment_id=env.id)


def send_text(client, sid, text):
    return client.beta.sessions.events.send(
        sid, events=[{"type": "user.message", "content": [{"type": "text", "text": text}]}]
    )


def run_until_idle(client, sid, action, timeout=30):
    """Opens the stream, performs `action`, and collects events until the session is idle."""
    seen = []
    with client.beta.sessions.events.stream(sid) as stream:
        action()
        deadline = time.monotonic() + timeout
        for ev in stream:
            assert_no_extra(ev)
            seen.append(ev)
            if ev.type == "session.status_idle":
                break
            assert time.monotonic() < deadline, f"no idle within {timeout}s: {[e.type for e in seen]}"
    return seen


def types(events):
    return [e.type for e in events]


def listed(client, sid):
    return list(client.beta.sessions.events.list(sid, limit=100))


def test_plain_turn(client, fake_model, unique):
    fake_model.push(Reply(text="Hello from the fake model."))
    s = make_session(client, unique)
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "hi"))
    assert types(events) == [
        "user.message",
        "session.status_running",
        "span.model_request_start",
        "agent.message",
        "span.model_request_end",
        "session.usage",
        "session.status_idle",
    ]
    assert events[3].content[0].text == "Hello from the fake model."
    assert events[-1].stop_reason.type == "end_turn"
    assert events[4].model_request_start_id == events[2].id
    assert events[4].model_usage.input_tokens > 0
    # The list holds the same events in the same order.
    assert [e.id for e in listed(client, s.id)] == [e.id for e in events]
    # The model saw the system prompt and the message.
    req = fake_model.requests[-1]["body"]
    assert req["system"][0]["text"] == "You are a test agent."
    assert req["messages"][0]["content"][0]["text"] == "hi"
    got = client.beta.sessions.retrieve(s.id)
    assert got.status == "idle"
    assert got.usage.input_tokens and got.usage.output_tokens


def test_bash_tool_turn(client, fake_model, unique):
    fake_model.push(
        Reply(text="Let me look.", tool_uses=[("bash", {"command": "echo $((6*7))"})]),
        Reply(text="The answer is 42."),
    )
    s = make_session(client, unique, tools=[{"type": "agent_toolset_20260401"}])
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "compute"))
    t = types(events)
    assert t.count("span.model_request_start") == 2
    use = next(e for e in events if e.type == "agent.tool_use")
    assert use.name == "bash" and use.evaluated_permission == "allow"
    result = next(e for e in events if e.type == "agent.tool_result")
    assert result.tool_use_id == use.id and not result.is_error
    assert "42" in result.content[0].text
    assert t.index("agent.tool_use") < t.index("span.model_request_end") < t.index("agent.tool_result")
    # The second request carried the tool result back to the model.
    second = fake_model.requests[-1]["body"]["messages"]
    blocks = [b for m in second for b in m["content"] if isinstance(m["content"], list)]
    assert any(b.get("type") == "tool_result" and "42" in str(b.get("content")) for b in blocks)


def test_multi_step_turn_and_persistent_shell(client, fake_model, unique):
    fake_model.push(
        Reply(tool_uses=[("bash", {"command": "mkdir -p work && cd work && export GREETING=hey"})]),
        Reply(tool_uses=[("bash", {"command": "pwd; echo $GREETING"})]),
        Reply(tool_uses=[("write", {"file_path": "notes.txt", "content": "one\ntwo\n"})]),
        Reply(tool_uses=[("read", {"file_path": "notes.txt"})]),
        Reply(text="done"),
    )
    s = make_session(client, unique, tools=[{"type": "agent_toolset_20260401"}])
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "steps"))
    results = [e for e in events if e.type == "agent.tool_result"]
    assert len(results) == 4 and not any(r.is_error for r in results)
    assert "work" in results[1].content[0].text and "hey" in results[1].content[0].text
    assert "two" in results[3].content[0].text


def test_custom_tool_round_trip(client, fake_model, unique):
    tool = {"type": "custom", "name": "lookup", "description": "Looks a thing up",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
    fake_model.push(Reply(tool_uses=[("lookup", {"q": "oma"})]), Reply(text="Found it."))
    s = make_session(client, unique, tools=[tool])
    first = run_until_idle(client, s.id, lambda: send_text(client, s.id, "look up oma"))
    use = next(e for e in first if e.type == "agent.custom_tool_use")
    assert use.name == "lookup" and use.input == {"q": "oma"}
    assert first[-1].stop_reason.type == "requires_action"
    assert first[-1].stop_reason.event_ids == [use.id]
    assert client.beta.sessions.retrieve(s.id).status == "idle"

    second = run_until_idle(client, s.id, lambda: client.beta.sessions.events.send(s.id, events=[{
        "type": "user.custom_tool_result", "custom_tool_use_id": use.id,
        "content": [{"type": "text", "text": "oma is a server"}]}]))
    assert types(second)[:2] == ["user.custom_tool_result", "session.status_running"]
    assert second[-1].stop_reason.type == "end_turn"
    msgs = fake_model.requests[-1]["body"]["messages"]
    assert any(b.get("type") == "tool_result" and "oma is a server" in str(b) for m in msgs for b in m["content"])


def ask_toolset():
    return [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_ask"}}}]


def test_confirmation_allowed(client, fake_model, unique):
    fake_model.push(Reply(tool_uses=[("bash", {"command": "echo approved-run"})]), Reply(text="ran it"))
    s = make_session(client, unique, tools=ask_toolset())
    first = run_until_idle(client, s.id, lambda: send_text(client, s.id, "run"))
    use = next(e for e in first if e.type == "agent.tool_use")
    assert use.evaluated_permission == "ask"
    assert first[-1].stop_reason.type == "requires_action" and first[-1].stop_reason.event_ids == [use.id]
    assert "agent.tool_result" not in types(first)
    second = run_until_idle(client, s.id, lambda: client.beta.sessions.events.send(s.id, events=[{
        "type": "user.tool_confirmation", "tool_use_id": use.id, "result": "allow"}]))
    result = next(e for e in second if e.type == "agent.tool_result")
    assert result.tool_use_id == use.id and "approved-run" in result.content[0].text
    assert second[-1].stop_reason.type == "end_turn"


def test_confirmation_denied(client, fake_model, unique):
    fake_model.push(Reply(tool_uses=[("bash", {"command": "rm -rf /tmp/x"})]), Reply(text="ok, not doing it"))
    s = make_session(client, unique, tools=ask_toolset())
    first = run_until_idle(client, s.id, lambda: send_text(client, s.id, "clean"))
    use = next(e for e in first if e.type == "agent.tool_use")
    second = run_until_idle(client, s.id, lambda: client.beta.sessions.events.send(s.id, events=[{
        "type": "user.tool_confirmation", "tool_use_id": use.id, "result": "deny", "deny_message": "too risky"}]))
    result = next(e for e in second if e.type == "agent.tool_result")
    assert result.is_error and "too risky" in result.content[0].text
    assert second[-1].stop_reason.type == "end_turn"


def test_unknown_confirmation_target_is_rejected(client, fake_model, unique):
    s = make_session(client, unique)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.events.send(s.id, events=[{
            "type": "user.tool_confirmation", "tool_use_id": "sevt_nope", "result": "allow"}])


def test_interrupt_mid_stream_keeps_partial_text(client, fake_model, unique):
    gate, at_gate = threading.Event(), threading.Event()
    fake_model.push(Reply(text="This answer will be cut off before it ends.", gate=gate, at_gate=at_gate))
    s = make_session(client, unique)
    seen = []
    try:
        with client.beta.sessions.events.stream(s.id) as stream:
            send_text(client, s.id, "talk")
            assert at_gate.wait(30), "the model stream never started"
            client.beta.sessions.events.send(s.id, events=[{"type": "user.interrupt"}])
            for ev in stream:
                seen.append(ev)
                if ev.type == "session.status_idle":
                    break
    finally:
        gate.set()
    t = types(seen)
    assert "user.interrupt" in t
    assert seen[-1].stop_reason.type == "end_turn"
    partial = next(e for e in seen if e.type == "agent.message")
    assert partial.content[0].text.startswith("This ans")
    end = next(e for e in seen if e.type == "span.model_request_end")
    assert end.is_error


def test_message_sent_mid_turn_reaches_the_model(client, fake_model, unique):
    gate, at_gate = threading.Event(), threading.Event()
    fake_model.push(
        Reply(text="Working on it...", tool_uses=[("bash", {"command": "echo step"})], gate=gate, at_gate=at_gate),
        Reply(text="Noted your follow-up."),
    )
    s = make_session(client, unique, tools=[{"type": "agent_toolset_20260401"}])
    seen = []
    with client.beta.sessions.events.stream(s.id) as stream:
        send_text(client, s.id, "start")
        assert at_gate.wait(30)
        sent = send_text(client, s.id, "also mention bananas")
        assert sent.data[0].processed_at is None
        gate.set()
        for ev in stream:
            seen.append(ev)
            if ev.type == "session.status_idle":
                break
    follow = [e for e in seen if e.type == "user.message" and e.content[0].text == "also mention bananas"]
    assert follow and follow[0].processed_at is not None
    assert types(seen).count("session.status_running") == 1
    msgs = fake_model.requests[-1]["body"]["messages"]
    assert "bananas" in str(msgs[-1])


def test_overloaded_twice_then_success(client, fake_model, unique):
    fake_model.push(
        Reply(error=(529, "overloaded_error", 0)),
        Reply(error=(529, "overloaded_error", 0)),
        Reply(text="third time lucky"),
    )
    s = make_session(client, unique)
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "hi"))
    errors = [e for e in events if e.type == "session.error"]
    assert len(errors) == 2
    assert all(e.error.type == "model_overloaded_error" and e.error.retry_status.type == "retrying" for e in errors)
    assert types(events).count("session.status_rescheduled") == 2
    assert events[-1].stop_reason.type == "end_turn"
    assert any(e.type == "agent.message" and e.content[0].text == "third time lucky" for e in events)


def test_retries_exhausted(client, fake_model, unique):
    fake_model.push(*[Reply(error=(529, "overloaded_error", 0)) for _ in range(10)])
    s = make_session(client, unique)
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "hi"), timeout=60)
    last_error = [e for e in events if e.type == "session.error"][-1]
    assert last_error.error.retry_status.type == "exhausted"
    assert types(events)[-2:] == ["session.usage", "session.status_idle"]
    assert events[-1].stop_reason.type == "retries_exhausted"
    assert client.beta.sessions.retrieve(s.id).status == "idle"


def test_auth_error_is_terminal_for_the_turn(client, fake_model, unique):
    fake_model.push(Reply(error=(401, "authentication_error", None)))
    s = make_session(client, unique)
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "hi"))
    errors = [e for e in events if e.type == "session.error"]
    assert len(errors) == 1 and errors[0].error.retry_status.type == "exhausted"
    assert events[-1].stop_reason.type == "retries_exhausted"


def test_turn_on_the_openai_compatible_provider(client, fake_model, unique):
    fake_model.push(Reply(text="", tool_uses=[("bash", {"command": "echo via-openai"})]), Reply(text="openai says hi"))
    s = make_session(client, unique, tools=[{"type": "agent_toolset_20260401"}], model="oma-test-openai-model")
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "hi"))
    assert events[-1].stop_reason.type == "end_turn"
    assert "via-openai" in next(e for e in events if e.type == "agent.tool_result").content[0].text
    assert any(e.type == "agent.message" and e.content[0].text == "openai says hi" for e in events)
    assert fake_model.requests[-1]["path"].endswith("/chat/completions")


def test_initial_events_start_a_turn(client, fake_model, unique):
    fake_model.push(Reply(text="started by initial events"))
    agent = client.beta.agents.create(model=MODEL, name=f"init-{unique}")
    env = client.beta.environments.create(name=f"init-{unique}", config={"type": "cloud"})
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id, initial_events=[
        {"type": "user.message", "content": [{"type": "text", "text": "go"}]}])
    assert s.status == "running"
    deadline = time.monotonic() + 30
    while client.beta.sessions.retrieve(s.id).status != "idle":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t = [e.type for e in listed(client, s.id)]
    assert t[:2] == ["user.message", "session.status_running"] and t[-1] == "session.status_idle"


def test_streaming_previews_on_request(client, fake_model, unique):
    text = "A streamed answer arriving in several small fragments."
    fake_model.push(Reply(text=text))
    s = make_session(client, unique)
    seen = []
    with client.beta.sessions.events.stream(s.id, event_deltas=["agent.message"]) as stream:
        with client.beta.sessions.events.stream(s.id) as plain:
            send_text(client, s.id, "stream it")
            for ev in stream:
                assert_no_extra(ev)
                seen.append(ev)
                if ev.type == "session.status_idle":
                    break
            plain_types = []
            for ev in plain:
                plain_types.append(ev.type)
                if ev.type == "session.status_idle":
                    break
    t = types(seen)
    starts = [e for e in seen if e.type == "event_start"]
    assert len(starts) == 1 and starts[0].event.type == "agent.message"
    message = next(e for e in seen if e.type == "agent.message")
    assert message.id == starts[0].event.id
    deltas = [e for e in seen if e.type == "event_delta"]
    assert len(deltas) > 1 and all(d.event_id == message.id for d in deltas)
    assert t.index("event_start") < t.index("event_delta") < t.index("agent.message")
    assert "".join(d.delta.content.text for d in deltas) == text
    # The connection that did not opt in sees no previews.
    assert "event_start" not in plain_types and "event_delta" not in plain_types
    # Previews are never stored.
    assert "event_delta" not in types(listed(client, s.id))


def test_turn_through_a_tenant_model_route(client, fake_model, unique):
    """A tenant's own model route (oma extension) serves its agents' model id."""
    import os

    try:
        import httpx2 as httpx
    except ImportError:  # pragma: no cover - older SDK builds
        import httpx

    port = os.environ["OMA_FAKE_MODEL_PORT"]
    base = os.environ.get("OMA_BASE_URL", "http://127.0.0.1:8787")
    http = httpx.Client(base_url=base, headers={"x-api-key": os.environ["OMA_API_KEY"]})
    model = f"tenant-model-{unique}"
    r = http.post("/v1/oma/model_routes", json={
        "model": model, "provider": "openai", "base_url": f"http://127.0.0.1:{port}/v1",
        "upstream_model": "upstream-llm", "api_key": "sk-tenant-route-secret"})
    assert r.status_code == 200, r.text
    assert "sk-tenant-route-secret" not in r.text
    fake_model.push(Reply(text="served by the tenant's route"))
    s = make_session(client, unique, model=model)
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "hi"))
    assert events[-1].stop_reason.type == "end_turn"
    req = fake_model.requests[-1]
    assert req["path"].endswith("/chat/completions")
    assert req["body"]["model"] == "upstream-llm"
    auth = {k.lower(): v for k, v in req["headers"].items()}.get("authorization")
    assert auth == "Bearer sk-tenant-route-secret"
    http.delete(f"/v1/oma/model_routes/{r.json()['id']}")
