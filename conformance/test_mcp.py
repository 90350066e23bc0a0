"""An agent's MCP servers through the official SDK in strict mode: a server that cannot be
reached is a non-blocking `session.error` naming it, and the turn goes on without its tools."""

from conftest import assert_no_extra
from fake_model import Reply
from test_runtime import MODEL, run_until_idle, send_text, types


def test_an_unreachable_mcp_server_does_not_block_the_session(client, fake_model, unique):
    agent = client.beta.agents.create(
        model=MODEL,
        name=f"mcp-{unique}",
        tools=[{"type": "mcp_toolset", "mcp_server_name": "nowhere"}],
        mcp_servers=[{"type": "url", "name": "nowhere", "url": "http://127.0.0.1:9/mcp"}],
    )
    env = client.beta.environments.create(name=f"mcp-{unique}", config={"type": "cloud"})
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    fake_model.push(Reply(text="Carrying on without it."))
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "hi"))
    assert "session.error" in types(events), types(events)
    err = next(e for e in events if e.type == "session.error")
    assert_no_extra(err)
    assert err.error.type == "mcp_connection_failed_error"
    assert err.error.mcp_server_name == "nowhere"
    assert err.error.retry_status.type == "retrying"
    idle = events[-1]
    assert idle.type == "session.status_idle" and idle.stop_reason.type == "end_turn"
    assert any(e.type == "agent.message" for e in events)
    # The model was offered no tool of the unreachable server.
    request = fake_model.requests[-1]["body"]
    assert not any(t["name"].startswith("mcp__") for t in request.get("tools", []))
    listed = list(client.beta.sessions.events.list(s.id, limit=100))
    for e in listed:
        assert_no_extra(e)
