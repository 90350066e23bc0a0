"""The built-in web_search tool (semantics §9.2, §9.3, §12.2) end to end through the official
SDK in strict mode: the scripted model calls web_search, oma asks the operator's search backend
(a fake Brave Search API speaking its real wire format), drops results the agent's domain rules
do not allow, and meters the search in the session's usage and list cost."""

import os
import time

from fake_model import Reply
from fake_search import brave_result
from test_runtime import run_until_idle, send_text, types

MODEL = "claude-opus-4-8"
# Tiny token counts, so the list cost is the search's cent and nothing else.
TINY = {"input_tokens": 10, "output_tokens": 10}


def make_session(client, unique, configs):
    agent = client.beta.agents.create(
        model=MODEL,
        name=f"search-{unique}",
        tools=[{"type": "agent_toolset_20260401", "configs": configs}],
    )
    env = client.beta.environments.create(name=f"search-{unique}", config={"type": "cloud"})
    return client.beta.sessions.create(agent=agent.id, environment_id=env.id)


def offered(request):
    return [t["name"] for t in request["body"].get("tools", [])]


def test_web_search_lists_allowed_results_and_is_metered(client, fake_model, fake_search, unique):
    fake_search.results = [
        brave_result("Allowed <strong>one</strong>", "https://docs.example.org/a", "First &amp; best", "2025-01-02T03:04:05"),
        brave_result("Blocked result", "https://ads.blocked.example.com/spam", "Buy now"),
        brave_result("Allowed two", "https://www.example.net/b", "Second"),
    ]
    fake_model.push(
        Reply(tool_uses=[("web_search", {"query": "oma conformance search"})], usage=TINY),
        Reply(text="Found them.", usage=TINY),
    )
    s = make_session(
        client,
        unique,
        [
            {
                "name": "web_search",
                "blocked_domains": ["blocked.example.com"],
                "user_location": {"type": "approximate", "country": "DE", "city": "Berlin"},
            }
        ],
    )
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "search please"))
    t = types(events)
    assert t.count("span.model_request_start") == 2
    use = next(e for e in events if e.type == "agent.tool_use")
    assert use.name == "web_search" and use.evaluated_permission == "allow"
    result = next(e for e in events if e.type == "agent.tool_result")
    assert result.tool_use_id == use.id and not result.is_error
    text = result.content[0].text
    assert text.startswith('Search results for "oma conformance search" (2 results):'), text
    assert "1. Allowed one\n   URL: https://docs.example.org/a\n   Age: 2025-01-02T03:04:05\n   First & best" in text
    assert "2. Allowed two\n   URL: https://www.example.net/b" in text
    assert "blocked" not in text.lower() and "Buy now" not in text

    # The backend got Brave's request: the query, the count, the country, the key.
    assert len(fake_search.requests) == 1
    req = fake_search.requests[0]
    assert req["path"] == "/res/v1/web/search"
    assert req["query"]["q"] == ["oma conformance search"]
    assert req["query"]["count"] == ["10"]
    assert req["query"]["country"] == ["DE"]
    headers = {k.lower(): v for k, v in req["headers"].items()}
    assert headers["x-subscription-token"] == os.environ["OMA_FAKE_SEARCH_KEY"]

    # The model was offered web_search and got the results back.
    assert "web_search" in offered(fake_model.requests[0])
    blocks = [b for m in fake_model.requests[-1]["body"]["messages"] if isinstance(m["content"], list) for b in m["content"]]
    assert any(b.get("type") == "tool_result" and "Allowed two" in str(b.get("content")) for b in blocks)

    # One search is metered, at $10 per 1,000: one cent of list cost.
    snapshot = next(e for e in events if e.type == "session.usage")
    assert snapshot.usage.server_tool_use.web_search_requests == 1
    assert snapshot.usage.server_tool_use.web_fetch_requests == 0
    assert snapshot.usage.list_cost.amount == "1"
    got = client.beta.sessions.retrieve(s.id)
    assert got.usage.server_tool_use.web_search_requests == 1
    assert (got.usage.list_cost.amount, got.usage.list_cost.currency) == ("1", "USD")


def test_web_search_counts_accumulate_and_a_plain_turn_costs_no_search(client, fake_model, fake_search, unique):
    fake_search.results = [brave_result("R", "https://example.org/", "r")]
    fake_model.push(Reply(text="no tools", usage=TINY))
    s = make_session(client, unique, [])
    run_until_idle(client, s.id, lambda: send_text(client, s.id, "hi"))
    got = client.beta.sessions.retrieve(s.id)
    assert got.usage.server_tool_use.web_search_requests == 0
    assert got.usage.list_cost.amount == "0"
    assert fake_search.requests == []

    fake_model.push(
        Reply(tool_uses=[("web_search", {"query": "one"}), ("web_search", {"query": "two"})], usage=TINY),
        Reply(text="done", usage=TINY),
    )
    run_until_idle(client, s.id, lambda: send_text(client, s.id, "search twice"))
    got = client.beta.sessions.retrieve(s.id)
    assert got.usage.server_tool_use.web_search_requests == 2
    assert got.usage.list_cost.amount == "2"
    assert sorted(r["query"]["q"][0] for r in fake_search.requests) == ["one", "two"]


def test_web_search_invalid_query_is_an_error_result_and_not_searched(client, fake_model, fake_search, unique):
    fake_model.push(
        Reply(tool_uses=[("web_search", {"query": "x" * 501})], usage=TINY),
        Reply(text="ok", usage=TINY),
    )
    s = make_session(client, unique, [])
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "search"))
    result = next(e for e in events if e.type == "agent.tool_result")
    assert result.is_error
    assert "500 characters" in result.content[0].text
    assert fake_search.requests == []
    assert client.beta.sessions.retrieve(s.id).usage.server_tool_use.web_search_requests == 0


def test_web_search_backend_failure_names_provider_and_status_never_the_key(client, fake_model, fake_search, unique):
    fake_search.error = (503, '{"type": "ErrorResponse", "error": {"code": "UNAVAILABLE"}}')
    fake_model.push(
        Reply(tool_uses=[("web_search", {"query": "failing search"})], usage=TINY),
        Reply(text="it failed", usage=TINY),
    )
    s = make_session(client, unique, [])
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "search"))
    result = next(e for e in events if e.type == "agent.tool_result")
    assert result.is_error
    text = result.content[0].text
    key = os.environ["OMA_FAKE_SEARCH_KEY"]
    assert "brave" in text and "503" in text, text
    assert key not in text
    assert len(fake_search.requests) == 1
    # A failed search is not metered.
    assert client.beta.sessions.retrieve(s.id).usage.server_tool_use.web_search_requests == 0
    # The operator sees a warning; the key never reaches the log.
    log_path = os.environ.get("OMA_SERVER_LOG")
    if log_path:
        deadline = time.monotonic() + 10
        while True:
            log = open(log_path, encoding="utf-8", errors="replace").read()
            if "the search backend failed" in log:
                break
            assert time.monotonic() < deadline, "no web_search warning in the server log"
            time.sleep(0.05)
        assert key not in log


def test_web_search_disabled_is_not_offered(client, fake_model, fake_search, unique):
    fake_model.push(Reply(text="ok", usage=TINY))
    s = make_session(client, unique, [{"name": "web_search", "enabled": False}])
    run_until_idle(client, s.id, lambda: send_text(client, s.id, "hi"))
    names = offered(fake_model.requests[-1])
    assert "web_search" not in names and "web_fetch" in names
