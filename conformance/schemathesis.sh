#!/usr/bin/env bash
# Fuzzes every operation of the served OpenAPI document with schemathesis, then checks that
# nothing was left half-written.
#
#   conformance/schemathesis.sh
#
# Passes when schemathesis finds no 5xx, every response (errors included, which must be the
# Anthropic envelope) matches the document's schema, status code and content type, `oma
# doctor` is clean, and every session's events list in order.
#
# Environment: OMA_BIN (default target/debug/oma), PYTHON (a python with schemathesis,
# default .venv/bin/python), ST_MAX_EXAMPLES (examples per operation, default 25),
# ST_ARGS (extra schemathesis arguments).
set -euo pipefail
cd "$(dirname "$0")/.."

OMA_BIN=${OMA_BIN:-target/debug/oma}
PYTHON=${PYTHON:-.venv/bin/python}
ST=${ST:-$(dirname "$PYTHON")/schemathesis}
work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    { grep -o " $work/[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
# The model is an unused loopback port: turns fail fast (connection refused) and must end in
# a `session.error`, never in a 5xx or a half-written session.
dead_port=$(free_port)
key="sk-schemathesis-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
admin="sk-admin-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
storage=(--data-dir "$work/data")

OMA_API_KEY="$key" OMA_ADMIN_KEY="$admin" ANTHROPIC_BASE_URL="http://127.0.0.1:$dead_port" \
    ANTHROPIC_API_KEY="unused" OMA_MODEL_RETRY_BASE_MS=5 OMA_SANDBOX=local \
    "$OMA_BIN" serve --listen "127.0.0.1:$port" "${storage[@]}" >"$work/server.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 300); do
    "$PYTHON" -c "import urllib.request; urllib.request.urlopen('$base/health', timeout=1)" 2>/dev/null && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "oma serve exited early:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
done

echo "schemathesis: every operation of $base/v1/openapi.json"
start=$(date +%s)
set +e
# Streams stay open by design: a short request timeout ends them (a timeout is not a failure
# of the checks chosen here). Examples are bounded so the run fits in a few minutes.
"$ST" run "$base/v1/openapi.json" \
    --url "$base" \
    --header "x-api-key: $key" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "${ST_MAX_EXAMPLES:-25}" \
    --request-timeout 2 \
    --workers 2 \
    --seed 1 \
    --suppress-health-check all \
    --exclude-path-regex '/stream$|/admin/logs$' \
    --no-color \
    ${ST_ARGS:-} 2>&1 | tee "$work/schemathesis.log"
st_status=${PIPESTATUS[0]}
set -e
echo "schemathesis: finished in $(( $(date +%s) - start )) s, exit $st_status"

# Nothing half-written: the store is consistent and every session's log reads back in order.
"$OMA_BIN" doctor "${storage[@]}" >"$work/doctor.log" 2>&1 || { cat "$work/doctor.log" >&2; echo "oma doctor failed" >&2; exit 1; }
OMA_BASE_URL="$base" OMA_API_KEY="$key" "$PYTHON" - <<'PY'
import json, os, urllib.request
base, key = os.environ["OMA_BASE_URL"], os.environ["OMA_API_KEY"]
def get(path):
    req = urllib.request.Request(base + path, headers={"x-api-key": key})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)
def pages(path):
    sep = "&" if "?" in path else "?"
    page = None
    while True:
        body = get(path + (sep + "page=" + page if page else ""))
        yield from body["data"]
        page = body.get("next_page")
        if not page:
            return
sessions = list(pages("/v1/sessions?include_archived=true&limit=100"))
events = 0
for s in sessions:
    seen, last = set(), ""
    for e in pages(f"/v1/sessions/{s['id']}/events?limit=1000"):
        assert e["id"] not in seen, f"{s['id']}: duplicate event {e['id']}"
        seen.add(e["id"])
        at = e.get("processed_at") or ""
        assert at >= last or not at, f"{s['id']}: {e['id']} out of order"
        last = at or last
        events += 1
print(f"schemathesis: {len(sessions)} sessions, {events} events read back in order")
PY
if [ "$st_status" -ne 0 ]; then
    echo "---- server log (last 50 lines) ----" >&2
    tail -n 50 "$work/server.log" >&2
fi
exit "$st_status"
