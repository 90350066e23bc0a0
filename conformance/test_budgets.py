"""Budgets are enforced (semantics §6.7, §12.2): list cost is tracked at list rates, the turn
stops between model requests once the cap is reached, only settling events are taken at the
cap, and raising or removing the budget resumes paused work. Official SDK, strict mode."""

import anthropic
import pytest

from fake_model import Reply
from test_runtime import run_until_idle as until_idle, types

# $5 / $25 per million input / output tokens: 2,000 input tokens cost one cent.
MODEL = "claude-opus-4-8"
TOOLS = [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_allow"}}}]


def budget(cents):
    return {"type": "limit", "max_list_cost": {"amount": str(cents), "currency": "USD"}}


def make_session(client, unique, cents, tools=TOOLS):
    agent = client.beta.agents.create(model=MODEL, name=f"budget-{unique}", tools=tools)
    env = client.beta.environments.create(name=f"budget-{unique}", config={"type": "cloud"})
    kw = {} if cents is None else {"budget": budget(cents)}
    return client.beta.sessions.create(agent=agent.id, environment_id=env.id, **kw)


def message(text):
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def primary_thread(client, sid):
    return next(t for t in client.beta.sessions.threads.list(sid) if t.parent_thread_id is None)


def test_list_cost_is_tracked_at_list_rates(client, fake_model, unique):
    # 20,000 input tokens (10¢) and 400 output tokens (1¢) on Opus 4.8; no budget needed.
    fake_model.push(Reply(text="priced", usage={"input_tokens": 20_000, "output_tokens": 400}))
    s = make_session(client, unique, None, tools=[])
    events = until_idle(client, s.id, lambda: client.beta.sessions.events.send(s.id, events=[message("hi")]))
    usage = next(e for e in events if e.type == "session.usage")
    assert usage.budget is None
    assert (usage.usage.list_cost.amount, usage.usage.list_cost.currency) == ("11", "USD")
    assert client.beta.sessions.retrieve(s.id).usage.list_cost.amount == "11"


def test_a_budget_stops_the_turn_between_model_requests_and_a_raise_resumes_it(client, fake_model, unique):
    # The first request costs 5¢ and asks for a tool: it completes, the tool runs, and the
    # next request is not made at a 3¢ cap.
    fake_model.push(
        Reply(tool_uses=[("bash", {"command": "echo under-budget"})], usage={"input_tokens": 10_000}),
        Reply(text="finished after the raise"),
    )
    s = make_session(client, unique, 3)
    events = until_idle(client, s.id, lambda: client.beta.sessions.events.send(s.id, events=[message("go")]))
    assert types(events)[-3:] == ["session.thread_status_idle", "session.usage", "session.status_idle"]
    thread_idle, usage, idle = events[-3:]
    assert idle.stop_reason.type == "budget_reached"
    assert thread_idle.stop_reason.type == "budget_reached"
    assert thread_idle.session_thread_id == primary_thread(client, s.id).id
    assert thread_idle.agent_name == f"budget-{unique}"
    assert usage.budget.max_list_cost.amount == "3" and usage.usage.list_cost.amount == "5"
    result = next(e for e in events if e.type == "agent.tool_result")
    assert not result.is_error
    assert len(fake_model.requests) == 1

    got = client.beta.sessions.retrieve(s.id)
    assert got.status == "idle" and got.usage.list_cost.amount == "5"

    # At the cap, new work is refused and nothing is lost or queued.
    before = list(client.beta.sessions.events.list(s.id, limit=100))
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.sessions.events.send(s.id, events=[message("more")])
    assert "budget" in str(e.value) and "user.tool_result" in str(e.value)
    # An interrupt is accepted, ignored and not recorded (checked once the turn is over).
    client.beta.sessions.events.send(s.id, events=[{"type": "user.interrupt"}])

    # A cap at or below what was consumed is refused.
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.sessions.update(s.id, budget=budget(5))
    assert e.value.error_code == "budget_not_raised"
    assert "greater than the session's consumed list cost" in str(e.value)

    # A raise resumes the paused work: session.updated, running, the next request, end_turn.
    resumed = until_idle(client, s.id, lambda: client.beta.sessions.update(s.id, budget=budget(100)))
    kinds = types(resumed)
    assert kinds[:2] == ["session.updated", "session.status_running"], kinds
    assert kinds[-2:] == ["session.usage", "session.status_idle"]
    assert resumed[-1].stop_reason.type == "end_turn"
    assert any(e.type == "agent.message" and e.content[0].text == "finished after the raise" for e in resumed)
    assert len(fake_model.requests) == 2
    listed = list(client.beta.sessions.events.list(s.id, limit=100))
    assert [e.id for e in listed[: len(before)]] == [e.id for e in before]
    assert "user.interrupt" not in types(listed) and "user.message" not in types(listed[len(before):])
    # The model saw the tool's output of the paused turn.
    assert "under-budget" in str(fake_model.requests[1]["body"]["messages"])


def test_removing_the_budget_resumes_paused_work(client, fake_model, unique):
    fake_model.push(
        Reply(tool_uses=[("bash", {"command": "true"})], usage={"input_tokens": 10_000}),
        Reply(text="uncapped"),
    )
    s = make_session(client, unique, 2)
    events = until_idle(client, s.id, lambda: client.beta.sessions.events.send(s.id, events=[message("go")]))
    assert events[-1].stop_reason.type == "budget_reached"
    resumed = until_idle(client, s.id, lambda: client.beta.sessions.update(s.id, budget=None))
    assert types(resumed)[:2] == ["session.updated", "session.status_running"]
    assert resumed[-1].stop_reason.type == "end_turn"
    assert client.beta.sessions.retrieve(s.id).budget is None


def test_the_request_that_crosses_the_cap_ends_its_turn(client, fake_model, unique):
    # The answer costs 2¢ at a 1¢ cap: the thread's turn ends, the session reports the budget.
    fake_model.push(Reply(text="expensive answer", usage={"input_tokens": 4_000}))
    s = make_session(client, unique, 1, tools=[])
    events = until_idle(client, s.id, lambda: client.beta.sessions.events.send(s.id, events=[message("go")]))
    assert types(events)[-4:] == [
        "span.model_request_end", "session.thread_status_idle", "session.usage", "session.status_idle",
    ]
    assert events[-3].stop_reason.type == "end_turn"
    assert events[-1].stop_reason.type == "budget_reached"
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.events.send(s.id, events=[message("again")])
    # Raised, nothing was paused: the update alone starts nothing, the next message does.
    client.beta.sessions.update(s.id, budget=budget(50))
    fake_model.push(Reply(text="next turn"))
    again = until_idle(client, s.id, lambda: client.beta.sessions.events.send(s.id, events=[message("again")]))
    assert types(again)[:2] == ["user.message", "session.status_running"]
    assert again[-1].stop_reason.type == "end_turn"
    assert len(fake_model.requests) == 2
