"""Outcomes (semantics §11): `user.define_outcome` starts work, a grader with its own context
judges the deliverable in /mnt/session/outputs/ against the rubric, `needs_revision` feeds
back, and the session's `outcome_evaluations[]` follows it to the end. Official SDK, strict
mode."""

import json
import threading

import anthropic
import pytest

from fake_model import Reply
from test_runtime import listed, make_session, run_until_idle, types

ALLOW = [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_allow"}}}]
RUBRIC = "The haiku has three lines and names a season."


def outcome(max_iterations=None):
    o = {"type": "user.define_outcome", "description": "Write a haiku to /mnt/session/outputs/haiku.txt",
         "rubric": {"type": "text", "content": RUBRIC}}
    if max_iterations is not None:
        o["max_iterations"] = max_iterations
    return o


def verdict(result, explanation):
    return Reply(text=json.dumps({"result": result, "explanation": explanation}))


def write(text):
    return Reply(tool_uses=[("write", {"file_path": "/mnt/session/outputs/haiku.txt", "content": text})])


def test_an_outcome_that_needs_one_revision_then_is_satisfied(client, fake_model, unique):
    fake_model.push(
        write("old pond\na frog jumps in\nsplash"),
        Reply(text="I wrote the haiku."),
        verdict("needs_revision", "The haiku names no season."),
        write("autumn moonlight\na worm digs silently\ninto the chestnut"),
        Reply(text="Revised: it names autumn now."),
        verdict("satisfied", "Three lines, and autumn is named."),
    )
    s = make_session(client, unique, tools=ALLOW)
    events = run_until_idle(client, s.id, lambda: client.beta.sessions.events.send(s.id, events=[outcome()]), timeout=60)
    kinds = types(events)
    defined = events[0]
    assert defined.type == "user.define_outcome" and defined.outcome_id.startswith("outc_")
    assert kinds[1] == "session.status_running"
    starts = [e for e in events if e.type == "span.outcome_evaluation_start"]
    ends = [e for e in events if e.type == "span.outcome_evaluation_end"]
    assert [(e.iteration, e.outcome_id) for e in starts] == [(0, defined.outcome_id), (1, defined.outcome_id)]
    assert [e.result for e in ends] == ["needs_revision", "satisfied"]
    assert [e.outcome_evaluation_start_id for e in ends] == [e.id for e in starts]
    assert ends[0].explanation == "The haiku names no season." and ends[0].iteration == 0
    assert ends[1].usage.output_tokens > 0 and ends[1].usage.input_tokens > 0
    assert any(e.type == "span.outcome_evaluation_ongoing" and e.iteration == 0 for e in events)
    # start → ongoing → end, in that order, each cycle.
    for start, end in zip(starts, ends):
        assert kinds.index("span.outcome_evaluation_start", events.index(start)) < events.index(end)
    assert kinds[-2:] == ["session.usage", "session.status_idle"]
    assert events[-1].stop_reason.type == "end_turn"

    # The grader saw its own context only: the rubric, the report and the file, no tools and
    # none of the agent's conversation; the agent saw the grader's feedback.
    grader = [r["body"] for r in fake_model.requests if "grade" in str(r["body"].get("system", ""))]
    assert len(grader) == 2
    first = json.dumps(grader[0]["messages"])
    assert RUBRIC in first and "old pond" in first and "I wrote the haiku." in first
    assert not grader[0].get("tools") and len(grader[0]["messages"]) == 1
    assert "autumn moonlight" in json.dumps(grader[1]["messages"])
    revising = fake_model.requests[3]["body"]
    assert "The haiku names no season." in json.dumps(revising["messages"])

    got = client.beta.sessions.retrieve(s.id)
    [ev] = got.outcome_evaluations
    assert (ev.outcome_id, ev.result, ev.iteration) == (defined.outcome_id, "satisfied", 1)
    assert ev.explanation == "Three lines, and autumn is named." and ev.completed_at is not None
    # The grader's tokens count toward the session's usage.
    assert got.usage.output_tokens >= sum(e.usage.output_tokens for e in ends)

    # After the outcome the session goes on as a conversation, and a new outcome may start.
    fake_model.push(Reply(text="sure"))
    events = run_until_idle(client, s.id, lambda: client.beta.sessions.events.send(s.id, events=[
        {"type": "user.message", "content": [{"type": "text", "text": "thanks"}]}]))
    assert events[-1].stop_reason.type == "end_turn"
    assert "span.outcome_evaluation_start" not in types(events)


def test_one_outcome_at_a_time(client, fake_model, unique):
    s = make_session(client, unique, tools=ALLOW)
    before = listed(client, s.id)
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.sessions.events.send(s.id, events=[outcome(), outcome()])
    assert e.value.error_code == "outcome_in_progress"
    assert listed(client, s.id) == before and client.beta.sessions.retrieve(s.id).outcome_evaluations == []


def test_the_last_iteration_is_max_iterations_reached_then_acknowledged(client, fake_model, unique):
    fake_model.push(
        write("short"),
        Reply(text="Done."),
        verdict("needs_revision", "Not a haiku."),
        Reply(text="I could not finish the haiku in time."),
    )
    s = make_session(client, unique, tools=ALLOW)
    events = run_until_idle(client, s.id, lambda: client.beta.sessions.events.send(s.id, events=[outcome(1)]), timeout=60)
    [end] = [e for e in events if e.type == "span.outcome_evaluation_end"]
    assert end.result == "max_iterations_reached" and end.explanation == "Not a haiku."
    kinds = types(events)
    # One final acknowledgement turn follows, without a further evaluation.
    after = kinds[kinds.index("span.outcome_evaluation_end"):]
    assert after.count("span.model_request_start") == 1 and "span.outcome_evaluation_start" not in after
    assert events[-1].stop_reason.type == "end_turn"
    assert "limit of evaluations" in json.dumps(fake_model.requests[-1]["body"]["messages"])
    [ev] = client.beta.sessions.retrieve(s.id).outcome_evaluations
    assert (ev.result, ev.iteration) == ("max_iterations_reached", 0) and ev.completed_at is not None


def test_an_interrupt_ends_the_outcome(client, fake_model, unique):
    gate, at_gate = threading.Event(), threading.Event()
    fake_model.push(Reply(text="Working on the haiku...", gate=gate, at_gate=at_gate))
    s = make_session(client, unique, tools=ALLOW)
    seen = []
    try:
        with client.beta.sessions.events.stream(s.id) as stream:
            client.beta.sessions.events.send(s.id, events=[outcome()])
            assert at_gate.wait(30), "the model stream never started"
            client.beta.sessions.events.send(s.id, events=[{"type": "user.interrupt"}])
            for ev in stream:
                seen.append(ev)
                if ev.type == "session.status_idle":
                    break
    finally:
        gate.set()
    end = next(e for e in seen if e.type == "span.outcome_evaluation_end")
    assert end.result == "interrupted" and end.outcome_evaluation_start_id == ""
    assert seen[-1].stop_reason.type == "end_turn"
    [ev] = client.beta.sessions.retrieve(s.id).outcome_evaluations
    assert ev.result == "interrupted" and ev.completed_at is not None
