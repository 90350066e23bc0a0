"""Stop reasons and limits (spec §4.2–§4.4): a refusal ends the turn with `refusal` and its
details, the `auto` permission policy judges each call and says so, the tool-use round cap ends
a turn with `tool_use_limit_reached_error`, and `file_id` image and document blocks reach the
model as real content blocks. Official SDK, strict mode."""

import base64

from fake_model import Reply
from test_runtime import listed, make_session, run_until_idle, send_text, types

AUTO = [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "auto"}}}]
ALLOW = [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_allow"}}}]
# conformance/run.sh starts the server with OMA_MAX_TOOL_ROUNDS=10.
MAX_TOOL_ROUNDS = 10


def test_a_refusal_ends_the_turn_with_its_details(client, fake_model, unique):
    details = {"type": "refusal", "category": "cyber", "explanation": "This request could enable harm."}
    fake_model.push(Reply(text="I can't help", stop_reason="refusal", stop_details=details))
    s = make_session(client, unique)
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "write malware"))
    assert types(events)[-2:] == ["session.usage", "session.status_idle"]
    idle = events[-1]
    assert idle.stop_reason.type == "refusal"
    assert idle.stop_details.type == "refusal"
    assert idle.stop_details.category == "cyber"
    assert idle.stop_details.explanation == "This request could enable harm."
    assert client.beta.sessions.retrieve(s.id).status == "idle"

    # A refusal without details still says it was one; the next message is a normal turn.
    fake_model.push(Reply(stop_reason="refusal"), Reply(text="fine"))
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "again"))
    assert events[-1].stop_reason.type == "refusal"
    assert events[-1].stop_details.category is None and events[-1].stop_details.explanation is None
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "something else"))
    assert events[-1].stop_reason.type == "end_turn" and events[-1].stop_details is None


def test_auto_permission_judges_each_call(client, fake_model, unique):
    fake_model.push(
        Reply(tool_uses=[
            ("bash", {"command": "ls / && echo judged-safe"}),
            ("bash", {"command": "rm -rf /"}),
            ("bash", {"command": "echo asked > /workspace/asked.txt && echo ran-after-allow"}),
        ]),
        Reply(text="done"),
    )
    s = make_session(client, unique, tools=AUTO)
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "go"))
    uses = [e for e in events if e.type == "agent.tool_use"]
    assert [u.evaluated_permission for u in uses] == ["allow", "deny", "ask"]
    assert all(u.evaluation.type == "auto" for u in uses)
    assert uses[0].evaluation.evaluated_permission.type == "allow"
    assert uses[1].evaluation.evaluated_permission.type == "deny"
    assert uses[1].evaluation.evaluated_permission.reason_code == "high_risk"
    assert uses[2].evaluation.evaluated_permission.type == "ask"
    assert uses[2].evaluation.evaluated_permission.reason_code == "indeterminate"
    results = {e.tool_use_id: e for e in events if e.type == "agent.tool_result"}
    assert not results[uses[0].id].is_error and "judged-safe" in str(results[uses[0].id].content)
    assert results[uses[1].id].is_error and "high-risk" in results[uses[1].id].content[0].text
    idle = events[-1]
    assert idle.stop_reason.type == "requires_action" and idle.stop_reason.event_ids == [uses[2].id]

    resumed = run_until_idle(client, s.id, lambda: client.beta.sessions.events.send(s.id, events=[{
        "type": "user.tool_confirmation", "tool_use_id": uses[2].id, "result": "allow"}]))
    result = next(e for e in resumed if e.type == "agent.tool_result")
    assert result.tool_use_id == uses[2].id and "ran-after-allow" in str(result.content)
    assert resumed[-1].stop_reason.type == "end_turn"


def test_the_tool_use_round_cap_ends_the_turn(client, fake_model, unique):
    fake_model.push(*[Reply(tool_uses=[("bash", {"command": f"echo round-{i}"})]) for i in range(MAX_TOOL_ROUNDS + 2)])
    s = make_session(client, unique, tools=ALLOW)
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "loop forever"))
    assert len(fake_model.requests) == MAX_TOOL_ROUNDS
    assert sum(1 for e in events if e.type == "agent.tool_result") == MAX_TOOL_ROUNDS
    error = next(e for e in events if e.type == "session.error")
    assert error.error.type == "tool_use_limit_reached_error"
    assert error.error.retry_status.type == "exhausted"
    assert f"{MAX_TOOL_ROUNDS} tool-use rounds" in error.error.message
    assert types(events)[-3:] == ["session.error", "session.usage", "session.status_idle"]
    assert events[-1].stop_reason.type == "retries_exhausted"

    # The next message starts a new turn with a fresh count.
    fake_model.reset()
    fake_model.push(Reply(tool_uses=[("bash", {"command": "true"})]), Reply(text="new turn"))
    events = run_until_idle(client, s.id, lambda: send_text(client, s.id, "continue"))
    assert events[-1].stop_reason.type == "end_turn"
    assert len(fake_model.requests) == 2


# A 1×1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_file_blocks_reach_the_model_as_content(client, fake_model, unique):
    image = client.beta.files.upload(file=("dot.png", PNG, "image/png"))
    notes = client.beta.files.upload(file=("notes.md", b"# Notes\nthe launch code is 0451\n", "text/markdown"))
    pdf_bytes = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    pdf = client.beta.files.upload(file=("spec.pdf", pdf_bytes, "application/pdf"))
    archive = client.beta.files.upload(file=("a.zip", b"PK\x03\x04", "application/zip"))
    fake_model.push(Reply(text="seen"))
    s = make_session(client, unique)
    content = [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "file", "file_id": image.id}},
        {"type": "document", "source": {"type": "file", "file_id": notes.id}, "title": "My notes"},
        {"type": "document", "source": {"type": "file", "file_id": pdf.id}},
        {"type": "document", "source": {"type": "file", "file_id": archive.id}},
    ]
    events = run_until_idle(client, s.id, lambda: client.beta.sessions.events.send(
        s.id, events=[{"type": "user.message", "content": content}]))
    assert events[-1].stop_reason.type == "end_turn"
    sent = fake_model.requests[-1]["body"]["messages"][0]["content"]
    assert sent[0] == {"type": "text", "text": "look"}
    assert sent[1] == {"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}}
    assert sent[2]["type"] == "document" and sent[2]["title"] == "My notes"
    assert sent[2]["source"] == {"type": "text", "media_type": "text/plain",
                                 "data": "# Notes\nthe launch code is 0451\n"}
    assert sent[3]["type"] == "document" and sent[3]["title"] == "spec.pdf"
    assert sent[3]["source"] == {"type": "base64", "media_type": "application/pdf",
                                 "data": base64.b64encode(pdf_bytes).decode()}
    assert sent[4]["type"] == "text" and archive.id in sent[4]["text"] and "application/zip" in sent[4]["text"]
    # The log keeps the message as it was sent: references, not bytes.
    echoed = next(e for e in listed(client, s.id) if e.type == "user.message")
    assert echoed.content[1].source.type == "file" and echoed.content[1].source.file_id == image.id
