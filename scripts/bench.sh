#!/usr/bin/env bash
# The benchmarks and their performance bounds. Installs what is missing (nats-server, a .venv with this package, the
# OpenTelemetry SDK and matplotlib; where a Python 3.13 is found, a .venv313 with nats-core and
# nats-jetstream too), then runs, each with its own nats-server on a free loopback port:
#   suite  benchmarks/run.py: per-message cost against the raw clients and hand-written instrumentation,
#          nats-py and (in .venv313) nats-core (writes benchmarks/results/results.md and paths.png);
#          without a Python 3.13 the nats-core half is skipped, and the report says so
#   scale  benchmarks/scale.py: 100 000 distinct subjects against one (writes benchmarks/results/scale.md)
#   soak   benchmarks/soak.py twice: memory and metric series over 1 000 000 messages on one subject,
#          then on 1 000 000 distinct subjects
# Each prints PASS/FAIL per bound; the exit status is 1 when a bound fails.
#   scripts/bench.sh                  all three; arguments go to run.py, and --quick to all three
#   scripts/bench.sh --quick          a smoke run of all three (too short for the bounds to mean much)
#   scripts/bench.sh suite --rounds 25
#   scripts/bench.sh scale --configs unsampled,metrics
#   scripts/bench.sh soak --messages 200000
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_setup.sh

mode=all
case "${1:-}" in
    suite | scale | soak | all) mode=$1 && shift ;;
esac
quick=()
for arg in "$@"; do
    if [ "$arg" = --quick ]; then quick=(--quick); fi
done

# nats-core (Python 3.13 only): .venv313 with it, nats-jetstream, the SDK and this package
natscore=()
ensure_venv313() {
    local dir
    dir="$(find_python313)"
    if [ -z "$dir" ]; then
        echo "note: no Python 3.13 found (python3.13 on PATH or pyenv's 3.13): the suite skips nats-core" >&2
        return 0
    fi
    if ! .venv313/bin/python -m pip --version >/dev/null 2>&1; then
        rm -rf .venv313
        "$dir/python3.13" -m venv .venv313
        .venv313/bin/python -m pip install --quiet --upgrade pip
    fi
    .venv313/bin/python -m pip install --quiet -e '.[nats-core]' 'opentelemetry-sdk >= 1.30, < 2'
    natscore=(--natscore-python .venv313/bin/python)
}

ensure_nats_server
ensure_venv
.venv/bin/python -m pip install --quiet -e '.[test]' 'matplotlib >= 3.5'
if [ "$mode" = suite ] || [ "$mode" = all ]; then
    ensure_venv313
fi
py=.venv/bin/python
status=0
case "$mode" in
    suite) "$py" benchmarks/run.py ${natscore[@]+"${natscore[@]}"} "$@" || status=1 ;;
    scale) "$py" benchmarks/scale.py "$@" || status=1 ;;
    soak)
        "$py" benchmarks/soak.py "$@" || status=1
        "$py" benchmarks/soak.py --distinct "$@" || status=1
        ;;
    all)
        "$py" benchmarks/run.py ${natscore[@]+"${natscore[@]}"} "$@" || status=1
        "$py" benchmarks/scale.py ${quick[@]+"${quick[@]}"} || status=1
        "$py" benchmarks/soak.py ${quick[@]+"${quick[@]}"} || status=1
        "$py" benchmarks/soak.py --distinct ${quick[@]+"${quick[@]}"} || status=1
        ;;
esac
exit $status
