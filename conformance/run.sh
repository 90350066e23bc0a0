#!/usr/bin/env bash
# Runs the SDK conformance suite against a freshly started `oma serve`.
#
#   conformance/run.sh sqlite                 # a temporary data dir with the embedded database
#   conformance/run.sh postgres URL           # a PostgreSQL database (`oma serve` initialises
#                                             # it when empty)
#
# Environment: OMA_BIN (default target/debug/oma), PYTHON (a python with `anthropic` and
# `pytest`, default .venv/bin/python), PYTEST_ARGS (extra pytest arguments), MOTO_SERVER (a
# `moto_server` executable: blobs then go to an S3 bucket on a moto server started here, as
# several nodes would share them).
set -euo pipefail
cd "$(dirname "$0")/.."

backend=${1:-sqlite}
OMA_BIN=${OMA_BIN:-target/debug/oma}
PYTHON=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
server_pid=""
moto_pid=""

source conformance/lib.sh
cleanup() {
    if [ -n "$moto_pid" ]; then
        kill "$moto_pid" 2>/dev/null || true
        wait "$moto_pid" 2>/dev/null || true
    fi
    stop_server_and_clean
}
trap cleanup EXIT

storage=(--data-dir "$work/data")
if [ "$backend" = postgres ]; then
    url=${2:?usage: conformance/run.sh postgres URL}
    storage+=(--database-url "$url")
fi

port=$(free_port)
# The model the server talks to is a scripted fake served by the pytest process itself
# (conformance/fake_model.py), on a port chosen here.
fake_port=$(free_port)
# web_search goes to a fake Brave Search API served by the pytest process too.
search_port=$(free_port)
search_key="brave-conformance-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
key="sk-conformance-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# github_repository clones reach a fake GitHub (git over HTTPS) served by the pytest process
# (conformance/fake_git.py): the egress connects there for github.com and trusts its CA.
git_port=$(free_port)
s3_env=()
if [ -n "${MOTO_SERVER:-}" ]; then
    moto_port=$(free_port)
    "$MOTO_SERVER" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
    moto_pid=$!
    for _ in $(seq 1 300); do
        "$PYTHON" -c "import urllib.request; urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:$moto_port/oma-conformance', method='PUT'), timeout=1)" 2>/dev/null && break
        sleep 0.1
    done
    s3_env=(OMA_BLOB_URL="s3://oma-conformance/$backend" AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
        AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=conformance AWS_SECRET_ACCESS_KEY=conformance AWS_REGION=us-east-1)
    echo "conformance: blobs in s3://oma-conformance/$backend on moto at 127.0.0.1:$moto_port"
fi
"$PYTHON" conformance/fake_git.py certs "$work/git-certs"
cat >"$work/oma.toml" <<TOML
[egress]
connect_to = { "github.com" = "127.0.0.1:$git_port" }
upstream_ca_files = ["$work/git-certs/ca.pem"]
TOML
env "${s3_env[@]}" OMA_API_KEY="$key" OMA_ROOT_SECRET="${OMA_ROOT_SECRET:-}" \
    ANTHROPIC_BASE_URL="http://127.0.0.1:$fake_port" ANTHROPIC_API_KEY="fake-model-key" \
    OMA_OPENAI_BASE_URL="http://127.0.0.1:$fake_port/v1" OMA_OPENAI_API_KEY="fake-openai-key" \
    OMA_OPENAI_MODELS="oma-test-openai-model" OMA_MODEL_RETRY_BASE_MS=20 \
    OMA_WORK_LEASE_TTL_SECONDS=3 OMA_MAX_TOOL_ROUNDS=10 \
    OMA_WEB_SEARCH_PROVIDER=brave OMA_WEB_SEARCH_URL="http://127.0.0.1:$search_port" \
    OMA_WEB_SEARCH_API_KEY="$search_key" \
    "$OMA_BIN" serve --listen "127.0.0.1:$port" "${storage[@]}" --config "$work/oma.toml" \
    >"$work/server.log" 2>&1 &
server_pid=$!

wait_healthy "http://127.0.0.1:$port"

"$OMA_BIN" tenants create conformance-b "${storage[@]}" >/dev/null
key2=$("$OMA_BIN" keys create --tenant conformance-b "${storage[@]}" | tail -n 1)

echo "conformance: $backend on 127.0.0.1:$port"
set +e
# The work queue tests create environment keys with the CLI, on the same storage.
db_env=()
if [ "$backend" = postgres ]; then db_env=(OMA_DATABASE_URL="$url"); fi
env "${db_env[@]}" OMA_BIN="$(realpath "$OMA_BIN")" \
OMA_BASE_URL="http://127.0.0.1:$port" OMA_FAKE_MODEL_PORT="$fake_port" OMA_FAKE_SEARCH_PORT="$search_port" OMA_FAKE_SEARCH_KEY="$search_key" OMA_FAKE_GIT_PORT="$git_port" OMA_FAKE_GIT_CERTS="$work/git-certs" OMA_API_KEY="$key" OMA_API_KEY_2="$key2" OMA_SERVER_LOG="$work/server.log" \
    OMA_DATA_DIR="$work/data" "$PYTHON" -m pytest conformance -q -p no:cacheprovider ${PYTEST_ARGS:-}
status=$?
set -e
# With a bucket, the blobs must really have gone there (moto logs each request).
if [ -n "$moto_pid" ] && [ $status -eq 0 ] && ! grep -q "PUT /oma-conformance/$backend/" "$work/moto.log"; then
    echo "conformance: no blob reached s3://oma-conformance/$backend" >&2
    status=1
fi
if [ $status -ne 0 ]; then
    echo "---- server log (last 50 lines) ----" >&2
    tail -n 50 "$work/server.log" >&2
fi
exit $status
