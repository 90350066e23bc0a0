#!/usr/bin/env bash
# End-to-end test of the web console in real Chromium: starts a scripted fake model and
# `oma serve`, then drives the console with playwright-core (e2e/console/console.test.mjs).
#
#   e2e/console/run.sh                         # uses target/debug/oma
#   OMA_CONSOLE_SCREENSHOT=docs/console-timeline.png e2e/console/run.sh
#
# Needs: node, Debian's chromium (CHROMIUM, default /usr/bin/chromium), `npm ci` done in
# e2e/console (.ci/run does both), python3 for the fake model.
set -euo pipefail
cd "$(dirname "$0")/../.."

OMA_BIN=${OMA_BIN:-target/debug/oma}
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
server_pid=""
fake_pid=""
source conformance/lib.sh
cleanup() {
    if [ -n "$fake_pid" ]; then
        kill "$fake_pid" 2>/dev/null || true
        wait "$fake_pid" 2>/dev/null || true
    fi
    stop_server_and_clean
}
trap cleanup EXIT

if [ ! -d e2e/console/node_modules/playwright-core ]; then
    (cd e2e/console && npm ci --no-audit --no-fund --silent)
fi

port=$(free_port)
fake_port=$(free_port)
key="sk-console-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
admin_key="sk-admin-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"

"$PYTHON" e2e/console/fake_model_main.py "$fake_port" >"$work/fake.log" 2>&1 &
fake_pid=$!

OMA_API_KEY="$key" OMA_ADMIN_KEY="$admin_key" OMA_ROOT_SECRET="${OMA_ROOT_SECRET:-}" \
    ANTHROPIC_BASE_URL="http://127.0.0.1:$fake_port" ANTHROPIC_API_KEY="fake-model-key" \
    "$OMA_BIN" serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
    >"$work/server.log" 2>&1 &
server_pid=$!
wait_healthy "http://127.0.0.1:$port"
# A second tenant: its key must see none of the first tenant's things in the console.
"$OMA_BIN" tenants create console-b --data-dir "$work/data" >/dev/null
key2=$("$OMA_BIN" keys create --tenant console-b --data-dir "$work/data" | tail -n 1)
echo "console e2e: oma on 127.0.0.1:$port, fake model on 127.0.0.1:$fake_port"

set +e
OMA_BASE_URL="http://127.0.0.1:$port" OMA_API_KEY="$key" OMA_API_KEY_2="$key2" OMA_ADMIN_KEY="$admin_key" \
    CHROMIUM="${CHROMIUM:-/usr/bin/chromium}" OMA_CONSOLE_SCREENSHOT="${OMA_CONSOLE_SCREENSHOT:-}" \
    node --test --test-reporter=spec e2e/console/console.test.mjs
status=$?
set -e
if [ $status -ne 0 ]; then
    cp "$work/server.log" /tmp/console-e2e-server.log 2>/dev/null || true
    echo "---- server log (last 60 lines) ----" >&2
    tail -n 60 "$work/server.log" >&2
    echo "---- fake model log ----" >&2
    cat "$work/fake.log" >&2
fi
exit $status
