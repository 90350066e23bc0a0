"""Self-hosted environments: the work queue through the SDK's typed methods in strict mode, the
credentials each endpoint takes, and the official `EnvironmentWorker` (and `oma worker`)
running a session's tools on "their own machine" (a temporary folder), including a worker that
dies mid-call and a second one that finishes the turn."""

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import pytest

from conftest import BASE_URL, assert_no_extra, make_client
from fake_model import Reply

MODEL = "claude-opus-4-8"
HERE = Path(__file__).resolve().parent
OMA_BIN = os.environ.get("OMA_BIN", str(HERE.parent / "target/debug/oma"))


def environment_key(env_id: str) -> str:
    """`oma environments keys create`, as an operator runs it: the key is the last line."""
    out = subprocess.run(
        [OMA_BIN, "environments", "keys", "create", env_id, "--tenant", "default", "--name", "conformance"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    return out.stdout.strip().splitlines()[-1]


def self_hosted(client, unique, tools=None):
    env = client.beta.environments.create(name=f"sh-{unique}", config={"type": "self_hosted"})
    agent = client.beta.agents.create(
        model=MODEL,
        name=f"sh-{unique}",
        system="You are a test agent.",
        tools=tools if tools is not None else [{"type": "agent_toolset_20260401"}],
    )
    return env, agent, environment_key(env.id)


def decode_secret(secret: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4)))


def wait_for(what, predicate, timeout=30.0, every=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def poll_until(work, env_id):
    return wait_for("a work item", lambda: work.poll(env_id, block_ms=999))


def test_work_queue_endpoints(client, unique):
    env, agent, key = self_hosted(client, unique)
    worker = make_client(key)
    work = worker.beta.environments.work

    stats = client.beta.environments.work.stats(env.id)
    assert_no_extra(stats)
    assert stats.type == "work_queue_stats" and stats.depth == 0 and stats.oldest_queued_at is None

    # An empty queue answers JSON null (the SDK's None), also after a long poll.
    assert work.poll(env.id) is None
    t0 = time.monotonic()
    assert work.poll(env.id, block_ms=300) is None
    assert time.monotonic() - t0 >= 0.25

    session = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    stats = client.beta.environments.work.stats(env.id)
    assert stats.depth == 1 and stats.pending == 0 and stats.oldest_queued_at

    item = work.poll(env.id, block_ms=999, anthropic_worker_id=f"w-{unique}")
    assert_no_extra(item)
    assert item.type == "work" and item.id.startswith("work_") and item.state == "queued"
    assert item.data.type == "session" and item.data.id == session.id
    assert item.environment_id == env.id and item.metadata == {}
    token = decode_secret(item.secret)["sessions_token"]
    stats = client.beta.environments.work.stats(env.id)
    assert (stats.depth, stats.pending, stats.workers_polling) == (0, 1, 1)
    # Offered but not acknowledged: not offered again before the reclaim time...
    assert work.poll(env.id) is None
    # ...and offered again (with a new sessions token) once it has passed.
    again = work.poll(env.id, reclaim_older_than_ms=0)
    assert again.id == item.id
    assert decode_secret(again.secret)["sessions_token"] != token
    token = decode_secret(again.secret)["sessions_token"]

    listed = list(work.list(env.id))
    assert [w.id for w in listed] == [item.id]
    assert listed[0].secret is None

    acked = work.ack(item.id, environment_id=env.id)
    assert_no_extra(acked)
    assert acked.state == "starting" and acked.acknowledged_at

    # Heartbeats: the first claims the lease, later ones echo the last value exactly.
    beat = work.heartbeat(item.id, environment_id=env.id, expected_last_heartbeat="NO_HEARTBEAT")
    assert_no_extra(beat)
    assert beat.type == "work_heartbeat" and beat.state == "active" and beat.lease_extended
    assert beat.ttl_seconds > 0 and beat.last_heartbeat
    with pytest.raises(anthropic.APIStatusError) as e:
        work.heartbeat(item.id, environment_id=env.id, expected_last_heartbeat="NO_HEARTBEAT")
    assert e.value.status_code == 412
    details = e.value.body["error"]["details"]
    assert details["error_code"] == "heartbeat_precondition_failed"
    assert details["current_state"] == {
        "state": "active",
        "ttl_seconds": beat.ttl_seconds,
        "last_heartbeat": beat.last_heartbeat,
        "lease_extended": False,
    }
    beat2 = work.heartbeat(
        item.id, environment_id=env.id, expected_last_heartbeat=beat.last_heartbeat, desired_ttl_seconds=45
    )
    assert beat2.lease_extended and beat2.ttl_seconds == 45 and beat2.last_heartbeat != beat.last_heartbeat

    # The sessions token works for this item's heartbeat and its session, nowhere else.
    by_token = make_client(token)
    beat3 = by_token.beta.environments.work.heartbeat(
        item.id, environment_id=env.id, expected_last_heartbeat=beat2.last_heartbeat
    )
    assert beat3.lease_extended
    assert by_token.beta.sessions.retrieve(session.id).id == session.id
    assert list(by_token.beta.sessions.events.list(session.id)) == []
    other = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    with pytest.raises(anthropic.PermissionDeniedError):
        list(by_token.beta.sessions.events.list(other.id))
    with pytest.raises(anthropic.PermissionDeniedError):
        by_token.beta.agents.list()
    with pytest.raises(anthropic.PermissionDeniedError):
        by_token.beta.environments.work.poll(env.id)
    # The raw secret is not a credential.
    with pytest.raises(anthropic.AuthenticationError):
        make_client(again.secret).beta.sessions.retrieve(session.id)

    # Who may call what: an API key cannot poll/ack/list; the environment key cannot
    # retrieve, update, stop or read stats; neither works on another environment.
    with pytest.raises(anthropic.PermissionDeniedError):
        client.beta.environments.work.poll(env.id)
    with pytest.raises(anthropic.PermissionDeniedError):
        client.beta.environments.work.ack(item.id, environment_id=env.id)
    with pytest.raises(anthropic.PermissionDeniedError):
        list(client.beta.environments.work.list(env.id))
    with pytest.raises(anthropic.PermissionDeniedError):
        client.beta.environments.work.heartbeat(item.id, environment_id=env.id)
    with pytest.raises(anthropic.PermissionDeniedError):
        work.retrieve(item.id, environment_id=env.id)
    with pytest.raises(anthropic.PermissionDeniedError):
        work.stats(env.id)
    with pytest.raises(anthropic.PermissionDeniedError):
        work.stop(item.id, environment_id=env.id)
    with pytest.raises(anthropic.PermissionDeniedError):
        worker.beta.agents.list()
    env2 = client.beta.environments.create(name=f"sh2-{unique}", config={"type": "self_hosted"})
    with pytest.raises(anthropic.PermissionDeniedError):
        work.poll(env2.id)

    # Metadata is a merge patch; retrieve shows it, never the secret.
    updated = client.beta.environments.work.update(item.id, environment_id=env.id, metadata={"a": "1", "b": "2"})
    assert_no_extra(updated)
    assert updated.metadata == {"a": "1", "b": "2"}
    updated = client.beta.environments.work.update(item.id, environment_id=env.id, metadata={"a": None})
    assert updated.metadata == {"b": "2"}
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.environments.work.update(item.id, environment_id=env.id, metadata={"k": "x" * 600})
    assert e.value.body["error"]["details"]["error_code"] == "invalid_metadata"
    got = client.beta.environments.work.retrieve(item.id, environment_id=env.id)
    assert_no_extra(got)
    assert got.state == "active" and got.secret is None and got.started_at and got.latest_heartbeat_at

    # Graceful stop: stopping (heartbeats report it, extend nothing), then stopped.
    stopping = client.beta.environments.work.stop(item.id, environment_id=env.id)
    assert stopping.state == "stopping" and stopping.stop_requested_at and stopping.stopped_at is None
    beat4 = by_token.beta.environments.work.heartbeat(
        item.id, environment_id=env.id, expected_last_heartbeat="anything: not compared once stopping"
    )
    assert beat4.state == "stopping" and not beat4.lease_extended
    stopped = by_token.beta.environments.work.stop(item.id, environment_id=env.id, force=True)
    assert stopped.state == "stopped" and stopped.stopped_at
    # Already stopped: 409, and the SDK is told not to retry it.
    raw = client.beta.environments.work.with_raw_response
    with pytest.raises(anthropic.ConflictError) as e:
        raw.stop(item.id, environment_id=env.id, force=True)
    assert e.value.response.headers.get("x-should-retry") == "false"
    # A stopped item's token is dead.
    with pytest.raises(anthropic.AuthenticationError):
        by_token.beta.sessions.retrieve(session.id)

    with pytest.raises(anthropic.BadRequestError):
        work.poll(env.id, block_ms=0)
    with pytest.raises(anthropic.BadRequestError):
        work.poll(env.id, block_ms=1000)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.environments.work.retrieve("work_nope", environment_id=env.id)


def test_dormant_session_input_queues_work(client, unique):
    env, agent, key = self_hosted(client, unique)
    work = make_client(key).beta.environments.work
    session = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    item = poll_until(work, env.id)
    work.ack(item.id, environment_id=env.id)
    # While an item is live, more input brings no second one.
    client.beta.sessions.events.send(
        session.id, events=[{"type": "user.interrupt"}]
    )
    assert work.poll(env.id) is None
    client.beta.environments.work.stop(item.id, environment_id=env.id, force=True)
    # Input for a session whose item stopped queues a new one.
    client.beta.sessions.events.send(session.id, events=[{"type": "user.interrupt"}])
    fresh = poll_until(work, env.id)
    assert fresh.id != item.id and fresh.data.id == session.id
    # Archiving the session stops its items.
    work.ack(fresh.id, environment_id=env.id)
    client.beta.sessions.archive(session.id)
    assert client.beta.environments.work.retrieve(fresh.id, environment_id=env.id).state == "stopped"


def test_self_hosted_sessions_take_only_memory_stores(client, unique):
    env = client.beta.environments.create(name=f"shr-{unique}", config={"type": "self_hosted"})
    agent = client.beta.agents.create(model=MODEL, name=f"shr-{unique}")
    f = client.beta.files.upload(file=("a.txt", b"hello", "text/plain"))
    with pytest.raises(anthropic.BadRequestError) as e:
        client.beta.sessions.create(
            agent=agent.id,
            environment_id=env.id,
            resources=[{"type": "file", "file_id": f.id, "mount_path": "/workspace/a.txt"}],
        )
    assert "memory_store" in e.value.message
    store = client.beta.memory_stores.create(name=f"shr-{unique}")
    s = client.beta.sessions.create(
        agent=agent.id,
        environment_id=env.id,
        resources=[{"type": "memory_store", "memory_store_id": store.id}],
    )
    assert [r.type for r in s.resources] == ["memory_store"]
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.resources.add(s.id, type="file", file_id=f.id)
    # Keys are for self-hosted environments only.
    cloud = client.beta.environments.create(name=f"shc-{unique}", config={"type": "cloud"})
    out = subprocess.run(
        [OMA_BIN, "environments", "keys", "create", cloud.id, "--tenant", "default"],
        capture_output=True, text=True, env=os.environ,
    )
    assert out.returncode != 0 and "self_hosted" in out.stderr


def session_with_stores(client, env, agent, tag, guide):
    """A session with a read_write store and a read_only one holding /guide.md."""
    rw = client.beta.memory_stores.create(name=f"rw-{tag}")
    ro = client.beta.memory_stores.create(name=f"ro-{tag}")
    client.beta.memory_stores.memories.create(ro.id, path="/guide.md", content=guide)
    session = client.beta.sessions.create(
        agent=agent.id,
        environment_id=env.id,
        resources=[
            {"type": "memory_store", "memory_store_id": rw.id, "access": "read_write"},
            {"type": "memory_store", "memory_store_id": ro.id, "access": "read_only"},
        ],
    )
    return session, rw, ro


def test_a_sessions_token_reaches_the_memories_of_its_sessions_stores_only(client, unique):
    env, agent, key = self_hosted(client, unique)
    elsewhere = client.beta.memory_stores.create(name=f"elsewhere-{unique}")
    session, rw, ro = session_with_stores(client, env, agent, f"{unique}", "read me")
    item = poll_until(make_client(key).beta.environments.work, env.id)
    assert item.data.id == session.id
    memories = make_client(decode_secret(item.secret)["sessions_token"]).beta.memory_stores.memories
    # The worker syncs the session's stores: reads everywhere, writes where it may.
    written = memories.create(rw.id, path="/notes.md", content="from the worker")
    assert memories.retrieve(written.id, memory_store_id=rw.id).content == "from the worker"
    memories.update(written.id, memory_store_id=rw.id, content="changed")
    assert [m.path for m in memories.list(ro.id)] == ["/guide.md"]
    versions = list(client.beta.memory_stores.memory_versions.list(rw.id, memory_id=written.id))
    assert {v.created_by.type for v in versions} == {"session_actor"}
    assert {v.created_by.session_id for v in versions} == {session.id}
    with pytest.raises(anthropic.PermissionDeniedError):
        memories.create(ro.id, path="/x.md", content="x")
    with pytest.raises(anthropic.PermissionDeniedError):
        list(memories.list(elsewhere.id))
    # The environment key reaches no memory store.
    with pytest.raises(anthropic.PermissionDeniedError):
        list(make_client(key).beta.memory_stores.memories.list(rw.id))
    memories.delete(written.id, memory_store_id=rw.id)


@pytest.mark.parametrize("kind", ["sdk", "oma"])
def test_a_worker_installs_the_agents_skills_with_its_sessions_token(kind, client, fake_model, unique, workers):
    env = client.beta.environments.create(name=f"sk-{unique}", config={"type": "self_hosted"})
    name = f"wskill-{unique}"
    md = f"---\nname: {name}\ndescription: Says hello. Use it when asked.\n---\n\n# {name}\n".encode()
    skill = client.beta.skills.create(files=[(f"{name}/SKILL.md", md, "text/markdown")])
    unused = client.beta.skills.create(
        files=[(f"u{name}/SKILL.md", md.replace(name.encode(), f"u{name}".encode()), "text/markdown")]
    )
    agent = client.beta.agents.create(
        model=MODEL, name=f"sk-{unique}", tools=[{"type": "agent_toolset_20260401"}],
        skills=[{"type": "custom", "skill_id": skill.id}],
    )
    key = environment_key(env.id)
    fake_model.push(Reply(tool_uses=[("bash", {"command": "cat skills/*/SKILL.md"})]), Reply(text="Read it."))
    session = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    worker, _ = workers(kind, env.id, key, f"skills-{kind}-{unique}")
    events = run_turn(client, session.id, "read the skill")
    result = next((e for e in events if e.type == "user.tool_result"), None)
    assert result is not None, ([e.type for e in events], worker.output())
    assert name in "".join(b.text for b in result.content if b.type == "text"), worker.output()
    # The token reads the skills of its session's agent, and no other. (The worker goes first,
    # so the next item is this test's to claim.)
    worker.kill()
    item = list(make_client(key).beta.environments.work.list(env.id))[0]
    assert item.data.id == session.id
    session2 = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    fresh = poll_until(make_client(key).beta.environments.work, env.id)
    assert fresh.data.id == session2.id
    by_token = make_client(decode_secret(fresh.secret)["sessions_token"])
    assert by_token.beta.skills.versions.retrieve(skill.latest_version_id, skill_id=skill.id).name == name
    assert by_token.beta.skills.versions.download(skill.latest_version_id, skill_id=skill.id).read()[:2] == b"PK"
    with pytest.raises(anthropic.PermissionDeniedError):
        by_token.beta.skills.versions.retrieve(unused.latest_version_id, skill_id=unused.id)
    with pytest.raises(anthropic.PermissionDeniedError):
        by_token.beta.skills.list()


@pytest.mark.parametrize("kind", ["sdk", "oma"])
def test_a_worker_mounts_the_sessions_memory_stores_and_saves_what_the_tools_write(kind, client, fake_model, unique, workers):
    env, agent, key = self_hosted(client, unique)
    session, rw, ro = session_with_stores(client, env, agent, f"{kind}-{unique}", "the guide says hi")
    client.beta.memory_stores.memories.create(rw.id, path="/old.md", content="to be removed")
    mounts = {r.memory_store_id: r.mount_path for r in session.resources}
    notes, guide = mounts[rw.id], mounts[ro.id]
    command = (
        f"cat {guide}/guide.md && echo learned > {notes}/learned.md && rm {notes}/old.md"
        f" && (echo x > {guide}/nope.md || echo read-only-refused)"
    )
    fake_model.push(Reply(tool_uses=[("bash", {"command": command})]), Reply(text="Noted."))
    worker, _ = workers(kind, env.id, key, f"mem-{kind}-{unique}")
    events = run_turn(client, session.id, "take notes")
    result = next((e for e in events if e.type == "user.tool_result"), None)
    assert result is not None, ([e.type for e in events], worker.output())
    text = "".join(b.text for b in result.content if b.type == "text")
    assert "the guide says hi" in text, (text, worker.output())
    if kind == "oma":
        # oma's box mounts a read-only store read-only; the SDK's bash runs unconfined (its
        # file tools refuse such writes, its shell cannot).
        assert "read-only-refused" in text, text
    # What the tool wrote is in the store once the worker has answered (or let the session go).
    wait_for(
        "the notes to reach the store",
        lambda: sorted(m.path for m in client.beta.memory_stores.memories.list(rw.id)) == ["/learned.md"],
        timeout=30,
    )
    assert [m.path for m in client.beta.memory_stores.memories.list(ro.id)] == ["/guide.md"]


# ---- workers ----------------------------------------------------------------------------------


class Worker:
    """A worker process: the official SDK's EnvironmentWorker, or `oma worker`."""

    def __init__(self, kind: str, env_id: str, key: str, workdir: Path, name: str):
        self.log = workdir.parent / f"{name}.log"
        environ = dict(os.environ, OMA_WORKER_MAX_IDLE="2", OMA_WORKER_ID=name)
        if kind == "sdk":
            cmd = [sys.executable, str(HERE / "worker_main.py"), env_id, key, str(workdir)]
        else:
            cmd = [
                OMA_BIN, "worker", "--url", BASE_URL, "--environment", env_id, "--key", key,
                "--workdir", str(workdir), "--worker-id", name, "--max-idle-seconds", "2",
            ]
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=environ)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def workers(tmp_path):
    started = []

    def start(kind, env_id, key, name, workdir=None):
        if workdir is None:
            workdir = tmp_path / name
        workdir.mkdir(exist_ok=True)
        w = Worker(kind, env_id, key, workdir, name)
        started.append(w)
        return w, workdir

    yield start
    for w in started:
        w.kill()


def run_turn(client, session_id, text, timeout=60):
    seen = []
    with client.beta.sessions.events.stream(session_id) as stream:
        client.beta.sessions.events.send(
            session_id, events=[{"type": "user.message", "content": [{"type": "text", "text": text}]}]
        )
        deadline = time.monotonic() + timeout
        for ev in stream:
            assert_no_extra(ev)
            seen.append(ev)
            if ev.type == "session.status_idle" and ev.stop_reason.type != "requires_action":
                break
            assert time.monotonic() < deadline, f"no end of turn within {timeout}s: {[e.type for e in seen]}"
    return seen


@pytest.mark.parametrize("kind", ["sdk", "oma"])
def test_a_worker_runs_the_sessions_bash(kind, client, fake_model, unique, workers):
    env, agent, key = self_hosted(client, unique)
    fake_model.push(
        Reply(tool_uses=[("bash", {"command": "echo made-by-the-worker > proof.txt && pwd && cat proof.txt"})]),
        Reply(text="The worker ran it."),
    )
    session = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    worker, workdir = workers(kind, env.id, key, f"{kind}-{unique}")
    events = run_turn(client, session.id, "run it")
    kinds = [e.type for e in events]
    assert "agent.tool_use" in kinds and "user.tool_result" in kinds, (kinds, worker.output())
    # The server ran no tool itself: the result is the worker's.
    assert "agent.tool_result" not in kinds
    use = next(e for e in events if e.type == "agent.tool_use")
    result = next(e for e in events if e.type == "user.tool_result")
    assert result.tool_use_id == use.id and not result.is_error
    text = "".join(b.text for b in result.content if b.type == "text")
    assert "made-by-the-worker" in text
    # While it waited on the worker the session said so.
    idle = [e for e in events if e.type == "session.status_idle"]
    assert idle[0].stop_reason.type == "requires_action" and idle[0].stop_reason.event_ids == [use.id]
    assert idle[-1].stop_reason.type == "end_turn"
    # The model got the worker's output as the tool's result.
    last = fake_model.requests[-1]["body"]["messages"]
    tool_results = [b for m in last if m["role"] == "user" for b in m["content"] if b.get("type") == "tool_result"]
    assert "made-by-the-worker" in json.dumps(tool_results)
    # The file is on the worker's machine.
    assert list(workdir.rglob("proof.txt")), f"no proof.txt under {workdir}: {worker.output()}"
    # The system prompt has no outputs instruction (there is no /mnt/session/outputs here).
    system = json.dumps(fake_model.requests[-1]["body"].get("system", []))
    assert "/mnt/session/outputs" not in system
    # After its idle time the worker stops the item and polls on.
    wait_for(
        "the worker to stop its item",
        lambda: client.beta.environments.work.stats(env.id).depth == 0
        and all(
            w.state == "stopped"
            for w in make_client(key).beta.environments.work.list(env.id)
        ),
        timeout=30,
    )


@pytest.mark.parametrize("kind", ["sdk", "oma"])
def test_a_killed_worker_loses_its_lease_and_another_finishes_the_turn(kind, client, fake_model, unique, workers, tmp_path):
    env, agent, key = self_hosted(client, unique)
    # Both workers serve from one workdir (a worker restarted on the same machine), so the
    # second sees what the first left in the session's workspace.
    workdir = tmp_path / f"shared-{kind}"
    marker = "first-attempt-started"
    command = f"if [ -e {marker} ]; then echo second-worker-ran-it; else touch {marker}; sleep 120; fi"
    fake_model.push(Reply(tool_uses=[("bash", {"command": command})]), Reply(text="Finished."))
    session = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    first, _ = workers(kind, env.id, key, f"first-{kind}-{unique}", workdir)
    with client.beta.sessions.events.stream(session.id) as stream:
        client.beta.sessions.events.send(
            session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "go"}]}]
        )
        wait_for("the first worker to start the call", lambda: any(workdir.rglob(marker)), timeout=60)
        first.kill()
        second, _ = workers(kind, env.id, key, f"second-{kind}-{unique}", workdir)
        seen = []
        deadline = time.monotonic() + 90
        for ev in stream:
            seen.append(ev)
            if ev.type == "session.status_idle" and ev.stop_reason.type == "end_turn":
                break
            assert time.monotonic() < deadline, ([e.type for e in seen], second.output())
    results = [e for e in seen if e.type == "user.tool_result"]
    assert len(results) == 1, [e.type for e in seen]
    assert "second-worker-ran-it" in "".join(b.text for b in results[0].content if b.type == "text")
    # One lease expired: the item went back to the queue and was acknowledged again.
    items = list(make_client(key).beta.environments.work.list(env.id))
    assert len(items) == 1
