#!/usr/bin/env bash
# The benchmark suite (SPEC §8). Installs what is missing (nats-server, a .venv with this package,
# the OpenTelemetry SDK and matplotlib), then runs benchmarks/run.py, which starts its own
# nats-server on a free loopback port, prints the per-message costs, ratios and PASS/FAIL per
# bound, and writes benchmarks/results/results.md and paths.png. Exit status 1 when a bound fails.
# Extra arguments go to run.py:  scripts/bench.sh --quick   scripts/bench.sh --rounds 25
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_setup.sh

ensure_nats_server
ensure_venv
.venv/bin/python -m pip install --quiet -e '.[test]' 'matplotlib >= 3.5'
exec .venv/bin/python benchmarks/run.py "$@"
