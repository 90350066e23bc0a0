"""Creates one object of every kind on a running `oma serve` and writes a schemathesis config
whose dictionaries feed their ids into the path parameters (most of the time: the rest stay
random, which exercises the 404s), so the fuzzer reaches the handlers behind the lookups.

    python conformance/fixtures.py BASE_URL API_KEY OUT_TOML [--turn]

With `--turn`, it also starts a turn in a further session (the model is unreachable, so it
ends in `session.error`).
"""

import json
import sys
import urllib.request
import uuid

base, key, out = sys.argv[1:4]


def call(method, path, body=None, raw=None, ctype="application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"x-api-key": key, "content-type": ctype})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def multipart(path, name, filename, content):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: text/plain\r\n\r\n").encode() + content + \
        f"\r\n--{boundary}--\r\n".encode()
    return call("POST", path, raw=body, ctype=f"multipart/form-data; boundary={boundary}")


ids = {}
agent = call("POST", "/v1/agents", {"name": "fx", "model": "claude-opus-4-8",
                                    "tools": [{"type": "agent_toolset_20260401"}]})
ids["agent_id"] = agent["id"]
env = call("POST", "/v1/environments", {"name": "fx", "config": {"type": "cloud"}})
ids["environment_id"] = env["id"]
f = multipart("/v1/files", "file", "hello.txt", b"hello")
ids["file_id"] = f["id"]
session = call("POST", "/v1/sessions", {"agent": agent["id"], "environment_id": env["id"],
                                        "resources": [{"type": "file", "file_id": f["id"]}]})
ids["session_id"] = session["id"]
ids["resource_id"] = session["resources"][0]["id"]
threads = call("GET", f"/v1/sessions/{session['id']}/threads")
ids["thread_id"] = threads["data"][0]["id"] if threads["data"] else "sthr_none"
vault = call("POST", "/v1/vaults", {"display_name": "fx"})
ids["vault_id"] = vault["id"]
cred = call("POST", f"/v1/vaults/{vault['id']}/credentials", {"auth": {
    "type": "static_bearer", "mcp_server_url": "https://mcp.example.com/mcp", "token": "fx"}})
ids["credential_id"] = cred["id"]
store = call("POST", "/v1/memory_stores", {"name": "fx"})
ids["memory_store_id"] = store["id"]
mem = call("POST", f"/v1/memory_stores/{store['id']}/memories", {"path": "/a.md", "content": "x"})
ids["memory_id"] = mem["id"]
versions = call("GET", f"/v1/memory_stores/{store['id']}/memory_versions")
ids["memory_version_id"] = versions["data"][0]["id"]
skill = multipart("/v1/skills", "files[]", "fx-skill/SKILL.md",
                  b"---\nname: fx-skill\ndescription: a fixture\n---\nDo things.\n")
ids["skill_id"] = skill["id"]
ids["version"] = skill["latest_version_id"]
route = call("POST", "/v1/oma/model_routes", {"model": "fx-model", "provider": "openai",
                                              "base_url": "http://127.0.0.1:9/v1", "api_key": "fx"})
ids["route_id"] = route["id"]

if "--turn" in sys.argv:
    kept = call("POST", "/v1/sessions", {"agent": agent["id"], "environment_id": env["id"]})
    call("POST", f"/v1/sessions/{kept['id']}/events", {"events": [
        {"type": "user.message", "content": [{"type": "text", "text": "hello"}]}]})

with open(out, "w") as o:
    for name, value in ids.items():
        o.write(f"[dictionaries.{name}]\nvalues = [{json.dumps(value)}]\n\n")
    o.write("[parameters]\n")
    for name in ids:
        o.write(f'"path.{name}" = {{ dictionary = "{name}", probability = 0.8 }}\n')
print(f"fixtures: {len(ids)} ids")
