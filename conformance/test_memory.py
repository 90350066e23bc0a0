"""Memory stores, memories and memory versions (spec §3.5, §5.5) through the official SDK in
strict mode."""

import hashlib
import threading

import anthropic
import pytest

from conftest import assert_no_extra


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.fixture
def store(client, unique):
    s = client.beta.memory_stores.create(name=f"mem-{unique}")
    yield s
    try:
        client.beta.memory_stores.delete(s.id)
    except anthropic.NotFoundError:
        pass


# --------------------------------------------------------------------------------------------
# Stores
# --------------------------------------------------------------------------------------------


def test_store_create_retrieve_roundtrip(client, unique):
    s = client.beta.memory_stores.create(name=f"Notes {unique}", description="what we learned", metadata={"user": "u1"})
    assert s.type == "memory_store"
    assert s.id.startswith("memstore_")
    assert s.name == f"Notes {unique}"
    assert s.description == "what we learned"
    assert s.metadata == {"user": "u1"}
    assert s.archived_at is None
    assert s.created_at == s.updated_at
    assert_no_extra(s)

    got = client.beta.memory_stores.retrieve(s.id)
    assert got.model_dump() == s.model_dump()
    assert_no_extra(got)

    bare = client.beta.memory_stores.create(name=f"bare-{unique}")
    assert bare.description == ""
    assert bare.metadata == {}


def test_store_update_three_state(client, unique):
    s = client.beta.memory_stores.create(name=f"u-{unique}", description="d", metadata={"a": "1", "b": "2"})
    # absent keeps, null description clears, metadata is a patch, null name keeps the name
    u = client.beta.memory_stores.update(s.id, description=None, metadata={"a": None, "c": "3"}, name=None)
    assert u.name == s.name
    assert u.description == ""
    assert u.metadata == {"b": "2", "c": "3"}
    assert u.updated_at > s.updated_at
    assert u.created_at == s.created_at
    assert_no_extra(u)

    renamed = client.beta.memory_stores.update(s.id, name=f"renamed-{unique}", description="new")
    assert renamed.name == f"renamed-{unique}" and renamed.description == "new"
    assert renamed.metadata == {"b": "2", "c": "3"}

    # nothing changes: same object, same updated_at
    same = client.beta.memory_stores.update(s.id, name=f"renamed-{unique}")
    assert same.updated_at == renamed.updated_at

    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.update(s.id, name="")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.update(s.id, description="x" * 1025)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.update(s.id, metadata={f"k{i}": "v" for i in range(17)})


def test_store_validation(client):
    for bad in ["", "x" * 256, "tab\there"]:
        with pytest.raises(anthropic.BadRequestError):
            client.beta.memory_stores.create(name=bad)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.create(name="ok", description="d" * 1025)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.create(name="ok", metadata={"k": "v" * 513})
    assert client.beta.memory_stores.create(name="é" * 255).name == "é" * 255


def test_store_list_paginates_and_filters(client, unique):
    ids = [client.beta.memory_stores.create(name=f"p{i}-{unique}").id for i in range(3)]
    seen = [s.id for s in client.beta.memory_stores.list(limit=1)]
    assert set(ids) <= set(seen)
    assert len(seen) == len(set(seen)), "pagination must not repeat items"
    # newest first
    positions = [seen.index(i) for i in ids]
    assert positions == sorted(positions, reverse=True)
    page = client.beta.memory_stores.list(limit=2)
    assert len(page.data) == 2 and page.next_page
    for s in page.data:
        assert_no_extra(s)

    first = client.beta.memory_stores.retrieve(ids[0])
    later = [s.id for s in client.beta.memory_stores.list(created_at_gte=first.created_at)]
    assert set(ids) <= set(later)
    earlier = [s.id for s in client.beta.memory_stores.list(created_at_lte=first.created_at)]
    assert ids[0] in earlier and ids[2] not in earlier

    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.list(limit=0)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.list(limit=101)


def test_store_archive_is_one_way_and_read_only(client, unique):
    s = client.beta.memory_stores.create(name=f"arch-{unique}")
    m = client.beta.memory_stores.memories.create(s.id, path="/keep.md", content="kept")
    m2 = client.beta.memory_stores.memories.create(s.id, path="/old.md", content="v1")
    client.beta.memory_stores.memories.update(m2.id, memory_store_id=s.id, content="v2")

    archived = client.beta.memory_stores.archive(s.id)
    assert archived.archived_at is not None
    assert archived.updated_at >= archived.archived_at
    assert_no_extra(archived)
    again = client.beta.memory_stores.archive(s.id)
    assert again.archived_at == archived.archived_at

    assert s.id not in [x.id for x in client.beta.memory_stores.list()]
    assert s.id in [x.id for x in client.beta.memory_stores.list(include_archived=True)]

    # no store updates, no memory creates or updates
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.update(s.id, name="nope")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.create(s.id, path="/new.md", content="x")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.update(m.id, memory_store_id=s.id, content="x")

    # reads, deletes and redaction still work
    assert client.beta.memory_stores.memories.retrieve(m.id, memory_store_id=s.id).content == "kept"
    old = [v for v in client.beta.memory_stores.memory_versions.list(s.id, memory_id=m2.id) if v.operation == "created"]
    assert client.beta.memory_stores.memory_versions.redact(old[0].id, memory_store_id=s.id).redacted_at
    client.beta.memory_stores.memories.delete(m.id, memory_store_id=s.id)


def test_store_delete_removes_everything(client, unique):
    s = client.beta.memory_stores.create(name=f"del-{unique}")
    m = client.beta.memory_stores.memories.create(s.id, path="/a.md", content="a")
    deleted = client.beta.memory_stores.delete(s.id)
    assert deleted.type == "memory_store_deleted" and deleted.id == s.id
    assert_no_extra(deleted)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.memory_stores.retrieve(s.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.memory_stores.memories.retrieve(m.id, memory_store_id=s.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.memory_stores.memory_versions.list(s.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.memory_stores.delete(s.id)


# --------------------------------------------------------------------------------------------
# Memories
# --------------------------------------------------------------------------------------------


def test_memory_create_retrieve_views(client, store):
    m = client.beta.memory_stores.memories.create(store.id, path="/projects/foo/notes.md", content="héllo")
    assert m.type == "memory"
    assert m.id.startswith("mem_")
    assert m.memory_version_id.startswith("memver_")
    assert m.memory_store_id == store.id
    assert m.path == "/projects/foo/notes.md"
    assert m.content is None, "create defaults to view=basic"
    assert m.content_sha256 == sha("héllo")
    assert m.content_size_bytes == len("héllo".encode())
    assert_no_extra(m)

    full = client.beta.memory_stores.memories.retrieve(m.id, memory_store_id=store.id)
    assert full.content == "héllo", "retrieve defaults to view=full"
    assert full.memory_version_id == m.memory_version_id
    assert_no_extra(full)
    basic = client.beta.memory_stores.memories.retrieve(m.id, memory_store_id=store.id, view="basic")
    assert basic.content is None and basic.content_sha256 == sha("héllo")

    with_content = client.beta.memory_stores.memories.create(store.id, path="/b.md", content="", view="full")
    assert with_content.content == "" and with_content.content_size_bytes == 0
    assert with_content.content_sha256 == sha("")


def test_memory_path_and_content_rules(client, store):
    bad_paths = [
        "no-slash",
        "/",
        "/a/",
        "//a",
        "/a//b",
        "/a/./b",
        "/a/../b",
        "/a\u0007b",
        "/a\u200bb",
        "/a\u2028b",
        "/e\u0301",  # not NFC
        "/" + "x" * 1024,
        "/s" * 21,
    ]
    for p in bad_paths:
        with pytest.raises(anthropic.BadRequestError):
            client.beta.memory_stores.memories.create(store.id, path=p, content="x")
    assert client.beta.memory_stores.memories.create(store.id, path="/s" * 20, content="x")
    assert client.beta.memory_stores.memories.create(store.id, path="/" + "y" * 1023, content="x")
    assert client.beta.memory_stores.memories.create(store.id, path="/\u00e9t\u00e9.md", content="x")

    # size cap: 102,400 bytes of UTF-8
    ok = client.beta.memory_stores.memories.create(store.id, path="/big.md", content="x" * 102_400)
    assert ok.content_size_bytes == 102_400
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.create(store.id, path="/too-big.md", content="x" * 102_401)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.create(store.id, path="/too-big2.md", content="é" * 51_201)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.create(store.id, path="/null.md", content=None)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.update(ok.id, memory_store_id=store.id, content="x" * 102_401)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.create(store.id, path="/x", content="x", extra_query={"view": "all"})


def test_memory_path_conflicts(client, store):
    m = client.beta.memory_stores.memories.create(store.id, path="/a/b.md", content="1")
    with pytest.raises(anthropic.ConflictError) as err:
        client.beta.memory_stores.memories.with_raw_response.create(store.id, path="/a/b.md", content="2")
    assert err.value.type == "memory_path_conflict_error"
    assert err.value.response.headers.get("x-should-retry") == "false"
    # paths are case-sensitive
    assert client.beta.memory_stores.memories.create(store.id, path="/a/B.md", content="2").path == "/a/B.md"

    # a memory cannot also be a directory, and the reverse
    with pytest.raises(anthropic.ConflictError) as err:
        client.beta.memory_stores.memories.create(store.id, path="/a/b.md/c", content="x")
    assert err.value.type == "memory_path_conflict_error"
    with pytest.raises(anthropic.ConflictError) as err:
        client.beta.memory_stores.memories.create(store.id, path="/a", content="x")
    assert err.value.type == "memory_path_conflict_error"

    # renames collide the same way; the memory keeps its id
    other = client.beta.memory_stores.memories.create(store.id, path="/c.md", content="3")
    with pytest.raises(anthropic.ConflictError) as err:
        client.beta.memory_stores.memories.update(other.id, memory_store_id=store.id, path="/a/b.md")
    assert err.value.type == "memory_path_conflict_error"
    moved = client.beta.memory_stores.memories.update(other.id, memory_store_id=store.id, path="/d/c.md")
    assert moved.id == other.id and moved.path == "/d/c.md"
    # a memory can move below its own old path
    deeper = client.beta.memory_stores.memories.update(m.id, memory_store_id=store.id, path="/a/b.md/inner")
    assert deeper.path == "/a/b.md/inner"
    # the freed path can be reused
    assert client.beta.memory_stores.memories.create(store.id, path="/c.md", content="again").path == "/c.md"


def test_memory_update_semantics_and_preconditions(client, store):
    m = client.beta.memory_stores.memories.create(store.id, path="/n.md", content="one")

    # rename only: content kept, new version
    r = client.beta.memory_stores.memories.update(m.id, memory_store_id=store.id, path="/renamed.md")
    assert r.path == "/renamed.md" and r.content_sha256 == sha("one")
    assert r.memory_version_id != m.memory_version_id
    assert r.content is None, "update defaults to view=basic"
    assert_no_extra(r)

    # null and absent fields keep their values; an update that changes nothing writes no version
    same = client.beta.memory_stores.memories.update(m.id, memory_store_id=store.id, content=None, path=None)
    assert same.memory_version_id == r.memory_version_id and same.path == "/renamed.md"
    same = client.beta.memory_stores.memories.update(m.id, memory_store_id=store.id, content="one")
    assert same.memory_version_id == r.memory_version_id

    # content with a matching precondition
    c = client.beta.memory_stores.memories.update(
        m.id,
        memory_store_id=store.id,
        content="two",
        precondition={"type": "content_sha256", "content_sha256": sha("one")},
        view="full",
    )
    assert c.content == "two" and c.content_sha256 == sha("two") and c.path == "/renamed.md"
    assert c.updated_at >= r.updated_at and c.created_at == m.created_at

    # a stale precondition changes nothing and is not retried
    with pytest.raises(anthropic.ConflictError) as err:
        client.beta.memory_stores.memories.with_raw_response.update(
            m.id,
            memory_store_id=store.id,
            content="three",
            path="/elsewhere.md",
            precondition={"type": "content_sha256", "content_sha256": sha("one")},
        )
    assert err.value.type == "memory_precondition_failed_error"
    assert err.value.response.headers.get("x-should-retry") == "false"
    now = client.beta.memory_stores.memories.retrieve(m.id, memory_store_id=store.id)
    assert now.content == "two" and now.path == "/renamed.md" and now.memory_version_id == c.memory_version_id

    for bad in [
        {"type": "content_sha256", "content_sha256": "abc"},
        {"type": "content_sha256", "content_sha256": sha("two").upper()},
        {"type": "content_sha256"},
        {"type": "etag", "content_sha256": sha("two")},
    ]:
        with pytest.raises(anthropic.BadRequestError):
            client.beta.memory_stores.memories.update(m.id, memory_store_id=store.id, content="x", precondition=bad)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.update(m.id, memory_store_id=store.id, path="relative")


def test_concurrent_updates_with_one_precondition_exactly_one_wins(client, store):
    m = client.beta.memory_stores.memories.create(store.id, path="/race.md", content="base")
    n = 8
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            client.beta.memory_stores.memories.update(
                m.id,
                memory_store_id=store.id,
                content=f"writer {i}",
                precondition={"type": "content_sha256", "content_sha256": sha("base")},
            )
            results[i] = "ok"
        except anthropic.ConflictError as e:
            results[i] = e.type

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1, results
    assert results.count("memory_precondition_failed_error") == n - 1, results
    modified = list(client.beta.memory_stores.memory_versions.list(store.id, memory_id=m.id, operation="modified"))
    assert len(modified) == 1


def test_concurrent_creates_cannot_break_the_tree(client, store):
    # half the writers want `/t` as a memory, half want it as a directory
    n = 8
    paths = ["/t" if i % 2 == 0 else f"/t/{i}" for i in range(n)]
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            client.beta.memory_stores.memories.create(store.id, path=paths[i], content="x")
            results[i] = "ok"
        except anthropic.ConflictError as e:
            results[i] = e.type

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) <= {"ok", "memory_path_conflict_error"}, results
    listed = [m.path for m in client.beta.memory_stores.memories.list(store.id, path_prefix="/")]
    assert listed == ["/t"] or (listed and all(p.startswith("/t/") for p in listed)), listed
    assert results.count("ok") == len(listed)


def test_memory_delete_with_and_without_precondition(client, store):
    m = client.beta.memory_stores.memories.create(store.id, path="/gone.md", content="bye")
    with pytest.raises(anthropic.ConflictError) as err:
        client.beta.memory_stores.memories.delete(m.id, memory_store_id=store.id, expected_content_sha256=sha("other"))
    assert err.value.type == "memory_precondition_failed_error"
    assert client.beta.memory_stores.memories.retrieve(m.id, memory_store_id=store.id).content == "bye"
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.delete(m.id, memory_store_id=store.id, expected_content_sha256="nothex")

    d = client.beta.memory_stores.memories.delete(m.id, memory_store_id=store.id, expected_content_sha256=sha("bye"))
    assert d.type == "memory_deleted" and d.id == m.id
    assert_no_extra(d)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.memory_stores.memories.retrieve(m.id, memory_store_id=store.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.memory_stores.memories.delete(m.id, memory_store_id=store.id)

    m2 = client.beta.memory_stores.memories.create(store.id, path="/gone.md", content="again")
    client.beta.memory_stores.memories.delete(m2.id, memory_store_id=store.id)


def test_list_prefix_depth_and_pagination(client, store):
    paths = [
        "/a.md",
        "/notes/todo.md",
        "/notes/ideas.md",
        "/notes/deep/x.md",
        "/notes/deep/er/y.md",
        "/notes/other/z.md",
        "/notes-archive/old.md",
        "/zzz/1.md",
    ]
    for p in paths:
        client.beta.memory_stores.memories.create(store.id, path=p, content=p)

    everything = list(client.beta.memory_stores.memories.list(store.id))
    assert [m.path for m in everything] == sorted(paths), "depth 0 lists every memory in path order"
    assert all(m.type == "memory" and m.content is None for m in everything)
    for m in everything:
        assert_no_extra(m)

    under = [m.path for m in client.beta.memory_stores.memories.list(store.id, path_prefix="/notes/")]
    assert under == sorted(p for p in paths if p.startswith("/notes/"))
    assert "/notes-archive/old.md" not in under

    top = list(client.beta.memory_stores.memories.list(store.id, depth=1))
    assert [(i.type, i.path) for i in top] == [
        ("memory", "/a.md"),
        ("memory_prefix", "/notes-archive/"),
        ("memory_prefix", "/notes/"),
        ("memory_prefix", "/zzz/"),
    ]
    for i in top:
        assert_no_extra(i)

    notes = list(client.beta.memory_stores.memories.list(store.id, path_prefix="/notes/", depth=1))
    assert [(i.type, i.path) for i in notes] == [
        ("memory_prefix", "/notes/deep/"),
        ("memory", "/notes/ideas.md"),
        ("memory_prefix", "/notes/other/"),
        ("memory", "/notes/todo.md"),
    ]

    # limit=1 auto-pagination across memories and markers, without repeats
    paged = [(i.type, i.path) for i in client.beta.memory_stores.memories.list(store.id, depth=1, limit=1)]
    assert paged == [(i.type, i.path) for i in top]
    paged = [m.path for m in client.beta.memory_stores.memories.list(store.id, limit=1)]
    assert paged == sorted(paths)
    page = client.beta.memory_stores.memories.list(store.id, path_prefix="/notes/", depth=1, limit=2)
    assert len(page.data) == 2 and page.next_page

    # view=full carries content and caps pages at 20 items
    full = list(client.beta.memory_stores.memories.list(store.id, view="full", path_prefix="/notes/deep/"))
    assert [m.content for m in full] == [m.path for m in full]

    for bad in [{"path_prefix": "/notes"}, {"path_prefix": "notes/"}, {"path_prefix": "/a//"}, {"depth": 2}, {"depth": -1}]:
        with pytest.raises(anthropic.BadRequestError):
            client.beta.memory_stores.memories.list(store.id, **bad)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.list(store.id, limit=101)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.list(store.id, page="garbage")


def test_full_view_pages_hold_at_most_20(client, store):
    for i in range(23):
        client.beta.memory_stores.memories.create(store.id, path=f"/f/{i:02}.md", content=str(i))
    page = client.beta.memory_stores.memories.list(store.id, view="full", limit=100)
    assert len(page.data) == 20 and page.next_page
    assert all(m.content is not None for m in page.data)
    basic = client.beta.memory_stores.memories.list(store.id, limit=100)
    assert len(basic.data) == 23 and not basic.next_page
    assert len(list(client.beta.memory_stores.memories.list(store.id, view="full", limit=100))) == 23


# --------------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------------


def test_versions_record_every_change(client, store):
    m = client.beta.memory_stores.memories.create(store.id, path="/v.md", content="1")
    u1 = client.beta.memory_stores.memories.update(m.id, memory_store_id=store.id, content="2")
    u2 = client.beta.memory_stores.memories.update(m.id, memory_store_id=store.id, path="/w.md")
    client.beta.memory_stores.memories.delete(m.id, memory_store_id=store.id)
    other = client.beta.memory_stores.memories.create(store.id, path="/other.md", content="o")

    versions = list(client.beta.memory_stores.memory_versions.list(store.id, memory_id=m.id))
    assert [v.operation for v in versions] == ["deleted", "modified", "modified", "created"], "newest first"
    for v in versions:
        assert v.type == "memory_version" and v.id.startswith("memver_")
        assert v.memory_id == m.id and v.memory_store_id == store.id
        assert v.content is None, "list defaults to view=basic"
        assert v.redacted_at is None and v.redacted_by is None
        assert_no_extra(v)
    deleted, renamed, edited, created = versions
    assert created.id == m.memory_version_id and created.path == "/v.md" and created.content_sha256 == sha("1")
    assert edited.id == u1.memory_version_id and edited.content_size_bytes == 1 and edited.path == "/v.md"
    assert renamed.id == u2.memory_version_id and renamed.path == "/w.md" and renamed.content_sha256 == sha("2")
    assert deleted.path == "/w.md"
    assert deleted.content_sha256 is None and deleted.content_size_bytes is None

    full = list(client.beta.memory_stores.memory_versions.list(store.id, memory_id=m.id, view="full"))
    assert [v.content for v in full] == [None, "2", "2", "1"]

    got = client.beta.memory_stores.memory_versions.retrieve(edited.id, memory_store_id=store.id)
    assert got.content == "2", "retrieve defaults to view=full"
    assert_no_extra(got)
    assert client.beta.memory_stores.memory_versions.retrieve(edited.id, memory_store_id=store.id, view="basic").content is None

    # filters
    all_ids = [v.id for v in client.beta.memory_stores.memory_versions.list(store.id)]
    assert other.memory_version_id in all_ids and set(v.id for v in versions) <= set(all_ids)
    paged = [v.id for v in client.beta.memory_stores.memory_versions.list(store.id, limit=1)]
    assert paged == all_ids, "limit=1 auto-pagination walks the same order"
    created_ids = [v.id for v in client.beta.memory_stores.memory_versions.list(store.id, operation="created")]
    assert set(created_ids) == {m.memory_version_id, other.memory_version_id}
    since = [v.id for v in client.beta.memory_stores.memory_versions.list(store.id, created_at_gte=deleted.created_at)]
    assert deleted.id in since and created.id not in since
    until = [v.id for v in client.beta.memory_stores.memory_versions.list(store.id, created_at_lte=created.created_at)]
    assert created.id in until and deleted.id not in until
    for key in ["api_key_id", "session_id", "service_account_id"]:
        assert list(client.beta.memory_stores.memory_versions.list(store.id, **{key: "nobody"})) == []
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memory_versions.list(store.id, operation="renamed")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memory_versions.list(store.id, limit=0)


def test_redact_wipes_content_but_keeps_the_record(client, store):
    m = client.beta.memory_stores.memories.create(store.id, path="/secret.md", content="password=hunter2")
    u = client.beta.memory_stores.memories.update(m.id, memory_store_id=store.id, content="clean")

    # the current version of a live memory cannot be redacted
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memory_versions.redact(u.memory_version_id, memory_store_id=store.id)

    r = client.beta.memory_stores.memory_versions.redact(m.memory_version_id, memory_store_id=store.id)
    assert r.id == m.memory_version_id and r.operation == "created"
    assert r.redacted_at is not None
    assert r.content is None and r.path is None and r.content_sha256 is None and r.content_size_bytes is None
    assert_no_extra(r)
    again = client.beta.memory_stores.memory_versions.redact(m.memory_version_id, memory_store_id=store.id)
    assert again.redacted_at == r.redacted_at

    got = client.beta.memory_stores.memory_versions.retrieve(m.memory_version_id, memory_store_id=store.id)
    assert got.redacted_at == r.redacted_at and got.content is None and got.path is None
    listed = {v.id: v for v in client.beta.memory_stores.memory_versions.list(store.id, memory_id=m.id, view="full")}
    assert listed[m.memory_version_id].content is None
    assert listed[u.memory_version_id].content == "clean"
    assert client.beta.memory_stores.memories.retrieve(m.id, memory_store_id=store.id).content == "clean"

    # once the memory is deleted its last content version can be redacted too
    client.beta.memory_stores.memories.delete(m.id, memory_store_id=store.id)
    assert client.beta.memory_stores.memory_versions.redact(u.memory_version_id, memory_store_id=store.id).redacted_at


# --------------------------------------------------------------------------------------------
# Errors and tenancy
# --------------------------------------------------------------------------------------------


def test_missing_objects_are_404(client, store):
    with pytest.raises(anthropic.NotFoundError) as err:
        client.beta.memory_stores.retrieve("memstore_does_not_exist")
    assert err.value.type == "not_found_error"
    for call in [
        lambda: client.beta.memory_stores.update("memstore_nope", name="x"),
        lambda: client.beta.memory_stores.archive("memstore_nope"),
        lambda: client.beta.memory_stores.delete("memstore_nope"),
        lambda: client.beta.memory_stores.memories.create("memstore_nope", path="/a", content="x"),
        lambda: client.beta.memory_stores.memories.list("memstore_nope"),
        lambda: client.beta.memory_stores.memories.retrieve("mem_nope", memory_store_id=store.id),
        lambda: client.beta.memory_stores.memories.update("mem_nope", memory_store_id=store.id, content="x"),
        lambda: client.beta.memory_stores.memories.delete("mem_nope", memory_store_id=store.id),
        lambda: client.beta.memory_stores.memory_versions.list("memstore_nope"),
        lambda: client.beta.memory_stores.memory_versions.retrieve("memver_nope", memory_store_id=store.id),
        lambda: client.beta.memory_stores.memory_versions.redact("memver_nope", memory_store_id=store.id),
    ]:
        with pytest.raises(anthropic.NotFoundError):
            call()


def test_memories_are_scoped_to_their_store(client, store, unique):
    m = client.beta.memory_stores.memories.create(store.id, path="/mine.md", content="x")
    other = client.beta.memory_stores.create(name=f"other-{unique}")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.memory_stores.memories.retrieve(m.id, memory_store_id=other.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.memory_stores.memory_versions.retrieve(m.memory_version_id, memory_store_id=other.id)
    # the same path is free in another store
    assert client.beta.memory_stores.memories.create(other.id, path="/mine.md", content="y").path == "/mine.md"
    client.beta.memory_stores.delete(other.id)


def test_other_tenant_sees_nothing(client, other_client, store):
    m = client.beta.memory_stores.memories.create(store.id, path="/private.md", content="mine")
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.memory_stores.retrieve(store.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.memory_stores.update(store.id, name="stolen")
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.memory_stores.archive(store.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.memory_stores.delete(store.id)
    assert store.id not in [s.id for s in other_client.beta.memory_stores.list(include_archived=True)]
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.memory_stores.memories.create(store.id, path="/x", content="x")
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.memory_stores.memories.list(store.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.memory_stores.memories.retrieve(m.id, memory_store_id=store.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.memory_stores.memories.update(m.id, memory_store_id=store.id, content="stolen")
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.memory_stores.memories.delete(m.id, memory_store_id=store.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.memory_stores.memory_versions.list(store.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.memory_stores.memory_versions.retrieve(m.memory_version_id, memory_store_id=store.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.memory_stores.memory_versions.redact(m.memory_version_id, memory_store_id=store.id)
    assert client.beta.memory_stores.memories.retrieve(m.id, memory_store_id=store.id).content == "mine"
    assert client.beta.memory_stores.retrieve(store.id).name == store.name
