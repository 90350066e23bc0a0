# Shared by conformance/run.sh and conformance/schemathesis.sh (sourced, not run).

# Stops the server started by the caller (`$server_pid`) and removes `$work`.
stop_server_and_clean() {
    if [ -n "${server_pid:-}" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    # Workspace disks the server did not get to unmount (it was killed) would keep rm out.
    { grep -o " $work/[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$work"
}

# A free port: bind to 0 and read back what the kernel chose.
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits for `$1/health` with a deadline (no fixed sleeps); fails if the server exits first.
wait_healthy() {
    for _ in $(seq 1 300); do
        if "$PYTHON" -c "import urllib.request; urllib.request.urlopen('$1/health', timeout=1)" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "oma serve exited early:" >&2
            cat "$work/server.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}
