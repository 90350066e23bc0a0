"""github_repository resources at work: cloned into the session's box through its egress proxy,
which adds the resource's token on requests to that repository only, so the token is never in
the box, its files, the event log or the model's view. Failures are `session.error`s
(`repository_*_error`, `retrying`) and the session goes on. A rotated token reaches later
fetches.

The repositories are served by a fake GitHub over HTTPS (fake_git.py) that oma's egress
reaches for `github.com` through `[egress] connect_to` (run.sh)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from fake_git import FakeGit, basic
from fake_model import Reply
from test_runtime import listed, run_until_idle, send_text, types

MODEL = "claude-opus-4-8"
URL = "https://github.com/acme/widgets"
TOOLS = [{"type": "agent_toolset_20260401"}]
LOOK = (
    "git -C /workspace/widgets log -1 --format=%s && cat /workspace/widgets/README.md && "
    "git -C /workspace/widgets config remote.origin.url && cat /workspace/widgets/.git/config && env"
)


@pytest.fixture(scope="module")
def fake_git_server():
    port = os.environ.get("OMA_FAKE_GIT_PORT")
    certs = os.environ.get("OMA_FAKE_GIT_CERTS")
    if not port or not certs:
        pytest.skip("OMA_FAKE_GIT_PORT not set: the server has no fake GitHub")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = Path(tempfile.mkdtemp(prefix="oma-fake-git-"))
    fake = FakeGit(int(port), Path(certs), root)
    fake.create_repo("acme", "widgets", {
        "main": [("Initial widgets", {"README.md": "Widgets, main branch.\n"})],
        "feature": [("Feature work", {"README.md": "Widgets, feature branch.\n"})],
    })
    yield fake
    fake.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fake_git(fake_git_server):
    with fake_git_server.lock:
        fake_git_server.tokens = set()
        fake_git_server.requests = []
    yield fake_git_server


def token() -> str:
    return "ghs_" + uuid.uuid4().hex + uuid.uuid4().hex[:8]


def session_with(client, unique, resource: dict):
    agent = client.beta.agents.create(model=MODEL, name=f"repo-{unique}", system="Test agent.", tools=TOOLS)
    env = client.beta.environments.create(name=f"repo-{unique}", config={"type": "cloud"})
    return client.beta.sessions.create(agent=agent.id, environment_id=env.id, resources=[resource])


def bash_turn(client, fake_model, sid, command: str):
    fake_model.push(Reply(tool_uses=[("bash", {"command": command})]), Reply(text="done"))
    events = run_until_idle(client, sid, lambda: send_text(client, sid, "look"), timeout=90)
    result = next(e for e in events if e.type == "agent.tool_result")
    return events, result, "".join(b.text for b in result.content if b.type == "text")


def assert_secret_nowhere(client, fake_model, sid, *secrets: str):
    everything = json.dumps([e.model_dump(mode="json") for e in listed(client, sid)])
    everything += json.dumps(fake_model.requests)
    log = os.environ.get("OMA_SERVER_LOG")
    if log:
        everything += Path(log).read_text(errors="replace")
    for s in secrets:
        assert s not in everything
        assert basic(s).removeprefix("Basic ") not in everything


def repo_errors(events):
    return [e.error for e in events if e.type == "session.error"]


def test_repo_cloned_through_the_egress_with_the_token_injected(client, fake_model, fake_git, unique):
    t = token()
    fake_git.tokens = {t}
    s = session_with(client, unique, {"type": "github_repository", "url": URL, "authorization_token": t,
                                      "checkout": {"type": "branch", "name": "feature"}})
    assert s.resources[0].mount_path == "/workspace/widgets"
    events, result, out = bash_turn(client, fake_model, s.id, LOOK)
    assert not result.is_error, out
    assert repo_errors(events) == []
    assert "Feature work" in out
    assert "Widgets, feature branch." in out
    # The clone's remote is the plain URL: no credential in .git/config.
    assert f"\n{URL}\n" in out
    assert "x-access-token" not in out and t not in out
    # The box reaches the network through its proxy, and knows nothing of the token.
    assert "HTTPS_PROXY=http://127.0.0.1:3128" in out
    # Every request the fake GitHub saw carried the token, put there by the proxy, and was
    # for this repository.
    seen = fake_git.requests
    assert seen and all(r["authorization"] == basic(t) for r in seen)
    assert all(r["path"].startswith("/acme/widgets") for r in seen)
    assert all(r["host"] == "github.com" for r in seen)
    # The model was told where the repository is.
    system = json.dumps(fake_model.requests[0]["body"]["system"])
    assert "/workspace/widgets" in system and URL in system
    assert_secret_nowhere(client, fake_model, s.id, t)


def test_repo_wrong_token_is_an_authentication_error_and_the_session_goes_on(client, fake_model, fake_git, unique):
    fake_git.tokens = {token()}
    wrong = token()
    s = session_with(client, unique, {"type": "github_repository", "url": URL, "authorization_token": wrong})
    events, result, out = bash_turn(client, fake_model, s.id, "ls -a /workspace; echo still-here")
    errors = repo_errors(events)
    assert [e.type for e in errors] == ["repository_authentication_error"], errors
    assert errors[0].repository_url == URL
    assert errors[0].retry_status.type == "retrying"
    assert errors[0].message
    # The tool ran anyway, without the repository.
    assert not result.is_error and "still-here" in out and "widgets" not in out.split("still-here")[0]
    assert types(events)[-1] == "session.status_idle"
    assert_secret_nowhere(client, fake_model, s.id, wrong)


def test_repo_missing_branch_is_a_checkout_error(client, fake_model, fake_git, unique):
    t = token()
    fake_git.tokens = {t}
    s = session_with(client, unique, {"type": "github_repository", "url": URL, "authorization_token": t,
                                      "checkout": {"type": "branch", "name": "no-such-branch"}})
    events, result, out = bash_turn(client, fake_model, s.id, "echo ran")
    errors = repo_errors(events)
    assert [e.type for e in errors] == ["repository_checkout_error"], errors
    assert errors[0].repository_url == URL and errors[0].retry_status.type == "retrying"
    assert "ran" in out


def test_repo_missing_commit_is_a_checkout_error_and_a_present_one_is_checked_out(client, fake_model, fake_git, unique):
    t = token()
    fake_git.tokens = {t}
    s = session_with(client, unique, {"type": "github_repository", "url": URL, "authorization_token": t,
                                      "checkout": {"type": "commit", "sha": "0" * 40}})
    events, _, out = bash_turn(client, fake_model, s.id, "ls /workspace; echo ran")
    assert [e.type for e in repo_errors(events)] == ["repository_checkout_error"]
    # The clone without its commit was removed (the model is told why, after the output).
    listing, _, note = out.partition("ran")
    assert "widgets" not in listing
    assert "not available" in note

    sha = fake_git.commit("acme", "widgets", "main", "Pinned commit", {"PINNED": "yes\n"})
    s = session_with(client, unique, {"type": "github_repository", "url": URL, "authorization_token": t,
                                      "checkout": {"type": "commit", "sha": sha}})
    events, _, out = bash_turn(client, fake_model, s.id, "git -C /workspace/widgets rev-parse HEAD")
    assert repo_errors(events) == []
    assert sha in out


def test_repo_not_found_and_forbidden(client, fake_model, fake_git, unique):
    t = token()
    fake_git.tokens = {t}
    for url, kind in [("https://github.com/acme/nothing-here", "repository_not_found_error"),
                      ("https://github.com/forbidden/widgets", "repository_forbidden_error")]:
        s = session_with(client, unique, {"type": "github_repository", "url": url, "authorization_token": t})
        events, _, _ = bash_turn(client, fake_model, s.id, "true")
        errors = repo_errors(events)
        assert [e.type for e in errors] == [kind], errors
        assert errors[0].repository_url == url


def test_repo_token_rotation_reaches_later_fetches(client, fake_model, fake_git, unique):
    old, new = token(), token()
    fake_git.tokens = {old}
    s = session_with(client, unique, {"type": "github_repository", "url": URL, "authorization_token": old})
    events, _, out = bash_turn(client, fake_model, s.id, "git -C /workspace/widgets log -1 --format=%s")
    assert repo_errors(events) == []
    assert "After rotation" not in out

    # The host revokes the old token and has a new commit; the session gets the new token.
    fake_git.tokens = {new}
    fake_git.commit("acme", "widgets", "main", "After rotation", {"ROTATED": "yes\n"})
    rid = s.resources[0].id
    updated = client.beta.sessions.resources.update(rid, session_id=s.id, authorization_token=new)
    assert updated.id == rid
    fetch = ("git -C /workspace/widgets fetch --quiet origin && "
             "git -C /workspace/widgets log -1 --format=%s origin/main")
    events, result, out = bash_turn(client, fake_model, s.id, fetch)
    assert not result.is_error, out
    assert "After rotation" in out
    assert fake_git.requests[-1]["authorization"] == basic(new)
    assert_secret_nowhere(client, fake_model, s.id, old, new)


def test_repo_mounted_outside_the_workspace_and_twice(client, fake_model, fake_git, unique):
    t = token()
    fake_git.tokens = {t}
    agent = client.beta.agents.create(model=MODEL, name=f"repo-{unique}", system="Test agent.", tools=TOOLS)
    env = client.beta.environments.create(name=f"repo-{unique}", config={"type": "cloud"})
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id, resources=[
        {"type": "github_repository", "url": URL, "authorization_token": t, "mount_path": "/srv/widgets"},
        {"type": "github_repository", "url": URL, "authorization_token": t, "mount_path": "/home/user/src/w",
         "checkout": {"type": "branch", "name": "feature"}},
        {"type": "github_repository", "url": URL, "authorization_token": t, "mount_path": "/usr/share/w"},
    ])
    assert [r.mount_path for r in s.resources] == ["/srv/widgets", "/home/user/src/w", "/usr/share/w"]
    events, result, out = bash_turn(
        client, fake_model, s.id,
        "git -C /srv/widgets log -1 --format=%s; git -C /home/user/src/w log -1 --format=%s; "
        "touch /srv/widgets/new-file && echo writable",
    )
    assert "Feature work" in out and "writable" in out, out
    assert "Initial widgets" in out or "Pinned commit" in out or "After rotation" in out, out
    # A path inside the system view cannot hold a repository: a clone error, the rest works.
    errors = repo_errors(events)
    assert [e.type for e in errors] == ["repository_clone_error"], errors
    assert "/usr/share/w" in errors[0].message
