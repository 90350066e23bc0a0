"""Skills and skill versions (spec §3.6, §2.8 multipart, §2.10 zip download) through the official
SDK in strict mode."""

import calendar
import io
import os
import zipfile

import anthropic
import httpx2
import pytest

from conftest import BASE_URL, assert_no_extra


def skill_md(name, description="Does a thing. Use it when asked.", extra=""):
    return f"---\nname: {name}\ndescription: {description}\n{extra}---\n\n# {name}\n\nInstructions.\n".encode()


def skill_files(name, directory=None, description="Does a thing. Use it when asked.", script=b"print('hi')\n"):
    d = directory or name
    return [
        (f"{d}/SKILL.md", skill_md(name, description), "text/markdown"),
        (f"{d}/scripts/run.py", script, "text/x-python"),
        (f"{d}/reference/notes.txt", bytes(range(256)), "application/octet-stream"),
    ]


def make_skill(client, unique, **kw):
    name = f"conf-{unique}"
    return name, client.beta.skills.create(files=skill_files(name), **kw)


def test_create_and_retrieve(client, unique):
    name, skill = make_skill(client, unique)
    assert skill.type == "skill"
    assert skill.id.startswith("skill_")
    assert skill.display_name == name, "defaults to the front matter name"
    assert skill.source.type == "custom"
    assert skill.latest_version_id.startswith("skillver_")
    assert skill.created_at == skill.updated_at
    assert_no_extra(skill)

    got = client.beta.skills.retrieve(skill.id)
    assert got == skill
    assert_no_extra(got)

    v = client.beta.skills.versions.retrieve("latest", skill_id=skill.id)
    assert v.type == "skill_version"
    assert v.id == skill.latest_version_id
    assert v.name == name
    assert v.description == "Does a thing. Use it when asked."
    assert v.skill_id == skill.id
    assert_no_extra(v)
    assert client.beta.skills.versions.retrieve(v.id, skill_id=skill.id) == v


def test_display_name_and_quoted_front_matter(client, unique):
    name = f"conf-q-{unique}"
    md = f"---\nname: \"{name}\"\ndescription: >-\n  Folded description\n  over two lines.\nlicense: MIT\n---\nbody\n"
    skill = client.beta.skills.create(
        files=[(f"{name}/SKILL.md", md.encode(), "text/markdown")], display_name="My Pretty Skill"
    )
    assert skill.display_name == "My Pretty Skill"
    v = client.beta.skills.versions.retrieve(skill.latest_version_id, skill_id=skill.id)
    assert v.name == name
    assert v.description == "Folded description over two lines."


def test_name_falls_back_to_the_directory(client, unique):
    d = f"conf-dir-{unique}"
    md = b"---\ndescription: No name key here.\n---\n"
    skill = client.beta.skills.create(files=[(f"{d}/SKILL.md", md, "text/markdown")])
    assert skill.display_name == d
    assert client.beta.skills.versions.retrieve("latest", skill_id=skill.id).name == d


def test_download_is_a_zip_of_the_version(client, unique):
    name, skill = make_skill(client, unique)
    raw = client.beta.skills.versions.download(skill.latest_version_id, skill_id=skill.id).read()
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        assert z.testzip() is None, "every CRC matches"
        expected = {f"{name}/{p.split('/', 1)[1]}": data for p, data, _ in skill_files(name)}
        assert set(z.namelist()) == set(expected)
        for n, data in expected.items():
            assert z.read(n) == data
    # `latest` works for downloads too, and the archive is named after the skill.
    resp = client.beta.skills.versions.with_raw_response.download("latest", skill_id=skill.id)
    assert resp.headers["content-type"] == "application/zip"
    assert f"{name}.zip" in resp.headers["content-disposition"]


def test_archive_uses_the_skill_name_as_top_directory(client, unique):
    name = f"conf-top-{unique}"
    skill = client.beta.skills.create(files=skill_files(name, directory=f"upload-dir-{unique}"))
    raw = client.beta.skills.versions.download("latest", skill_id=skill.id).read()
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        assert all(n.startswith(f"{name}/") for n in z.namelist())


def test_versions_latest_and_pagination(client, unique):
    name, skill = make_skill(client, unique)
    v1 = skill.latest_version_id
    v2 = client.beta.skills.versions.create(
        skill.id, files=skill_files(name, description="Second version.", script=b"print('v2')\n")
    )
    assert v2.type == "skill_version" and v2.id != v1
    assert v2.description == "Second version."
    assert_no_extra(v2)

    after = client.beta.skills.retrieve(skill.id)
    assert after.latest_version_id == v2.id
    assert after.updated_at >= skill.updated_at
    assert client.beta.skills.versions.retrieve("latest", skill_id=skill.id).id == v2.id

    versions = [v.id for v in client.beta.skills.versions.list(skill.id, limit=1)]
    assert versions == [v2.id, v1], "newest first, across pages"
    page = client.beta.skills.versions.list(skill.id, limit=1)
    assert len(page.data) == 1 and page.next_page

    # Each version keeps its own files.
    raw = client.beta.skills.versions.download(v1, skill_id=skill.id).read()
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        assert z.read(f"{name}/scripts/run.py") == b"print('hi')\n"

    # The older beta addresses versions by their creation time in microseconds.
    created = v2.created_at
    epoch = calendar.timegm(created.utctimetuple()) * 1_000_000 + created.microsecond
    assert client.beta.skills.versions.retrieve(str(epoch), skill_id=skill.id).id == v2.id


def test_new_version_must_keep_the_name(client, unique):
    _, skill = make_skill(client, unique)
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.skills.versions.create(skill.id, files=skill_files(f"other-{unique}"))
    assert "name" in err.value.message


def test_list_skills(client, unique):
    ids = {make_skill(client, f"{unique}-{i}")[1].id for i in range(3)}
    seen = [s.id for s in client.beta.skills.list(limit=1)]
    assert ids <= set(seen)
    assert len(seen) == len(set(seen))
    custom = [s.id for s in client.beta.skills.list(source="custom", limit=1000)]
    assert ids <= set(custom)
    assert client.beta.skills.list(source="anthropic").data == []
    with pytest.raises(anthropic.BadRequestError):
        client.beta.skills.list(source="bogus")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.skills.list(limit=1001)


def test_delete_versions_and_skill(client, unique):
    name, skill = make_skill(client, unique)
    v1 = skill.latest_version_id
    v2 = client.beta.skills.versions.create(skill.id, files=skill_files(name)).id

    with pytest.raises(anthropic.BadRequestError):
        client.beta.skills.versions.delete("latest", skill_id=skill.id)

    deleted = client.beta.skills.versions.delete(v2, skill_id=skill.id)
    assert deleted.id == v2 and deleted.type == "skill_version_deleted"
    assert_no_extra(deleted)
    assert client.beta.skills.retrieve(skill.id).latest_version_id == v1
    with pytest.raises(anthropic.NotFoundError):
        client.beta.skills.versions.retrieve(v2, skill_id=skill.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.skills.versions.delete(v2, skill_id=skill.id)

    # A skill always holds a version: the last one goes with the skill.
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.skills.versions.delete(v1, skill_id=skill.id)
    assert "delete the skill" in err.value.message

    gone = client.beta.skills.delete(skill.id)
    assert gone.id == skill.id and gone.type == "skill_deleted"
    assert_no_extra(gone)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.skills.retrieve(skill.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.skills.versions.list(skill.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.skills.versions.download(v1, skill_id=skill.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.skills.delete(skill.id)
    assert skill.id not in [s.id for s in client.beta.skills.list(limit=1000)]


@pytest.mark.parametrize(
    "files, needle",
    [
        ([("s/README.md", b"x", "text/markdown")], "SKILL.md"),
        ([("s/SKILL.md", skill_md("s"), "text/markdown"), ("t/x.md", b"x", "text/markdown")], "same top-level"),
        ([("SKILL.md", skill_md("s"), "text/markdown")], "directory"),
        ([("s/SKILL.md", skill_md("s"), "text/markdown"), ("s/../evil.py", b"x", "text/plain")], ".."),
        ([("/abs/SKILL.md", skill_md("abs"), "text/markdown")], "absolute"),
        ([("s/sub/SKILL.md", skill_md("s"), "text/markdown")], "SKILL.md"),
        ([("s/SKILL.md", b"# no front matter\n", "text/markdown")], "front matter"),
        ([("s/SKILL.md", b"---\nname: s\n---\n", "text/markdown")], "description"),
        ([("s/SKILL.md", skill_md("Not Kebab"), "text/markdown")], "kebab"),
        ([("s/SKILL.md", skill_md("s"), "text/markdown"), ("s/SKILL.md", b"x", "text/markdown")], "more than once"),
    ],
)
def test_invalid_uploads_are_400(client, files, needle):
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.skills.create(files=files)
    assert needle in err.value.message
    assert err.value.type == "invalid_request_error"


def test_display_name_limits(client, unique):
    name = f"conf-dn-{unique}"
    with pytest.raises(anthropic.BadRequestError):
        client.beta.skills.create(files=skill_files(name), display_name="x" * 256)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.skills.create(files=skill_files(name), display_name="two\nlines")


def test_not_multipart_or_no_files_is_400():
    key = os.environ["OMA_API_KEY"]
    r = httpx2.post(f"{BASE_URL}/v1/skills", headers={"Authorization": f"Bearer {key}"}, json={"files": []}, timeout=30)
    assert r.status_code == 400 and r.json()["type"] == "error"
    r = httpx2.post(
        f"{BASE_URL}/v1/skills", headers={"Authorization": f"Bearer {key}"}, data={"display_name": "x"}, files={"x": ("a", b"a")}, timeout=30
    )
    assert r.status_code == 400
    assert "files[]" in r.json()["error"]["message"]


def test_unknown_ids_are_404(client, unique):
    with pytest.raises(anthropic.NotFoundError):
        client.beta.skills.retrieve("skill_nope")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.skills.versions.create("skill_nope", files=skill_files(f"conf-{unique}"))
    _, skill = make_skill(client, unique)
    with pytest.raises(anthropic.NotFoundError) as err:
        client.beta.skills.versions.retrieve("skillver_nope", skill_id=skill.id)
    assert "skillver_nope" in err.value.message
    with pytest.raises(anthropic.NotFoundError):
        client.beta.skills.versions.download("skillver_nope", skill_id=skill.id)


def test_other_tenant_sees_nothing(client, other_client, unique):
    name, skill = make_skill(client, unique)
    v = skill.latest_version_id
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.skills.retrieve(skill.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.skills.versions.retrieve(v, skill_id=skill.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.skills.versions.list(skill.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.skills.versions.download(v, skill_id=skill.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.skills.versions.create(skill.id, files=skill_files(name))
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.skills.versions.delete(v, skill_id=skill.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.skills.delete(skill.id)
    assert skill.id not in [s.id for s in other_client.beta.skills.list(limit=1000)]
    assert client.beta.skills.retrieve(skill.id).id == skill.id


@pytest.mark.skipif(not os.environ.get("OMA_TEST_MAX_UPLOAD_BYTES"), reason="server upload limit not given")
def test_upload_over_the_limit_is_413(client, unique):
    limit = int(os.environ["OMA_TEST_MAX_UPLOAD_BYTES"])
    name = f"conf-big-{unique}"
    files = [(f"{name}/SKILL.md", skill_md(name), "text/markdown"), (f"{name}/big.bin", b"x" * limit, "application/octet-stream")]
    with pytest.raises(anthropic.APIStatusError) as err:
        client.beta.skills.create(files=files)
    assert err.value.status_code == 413
