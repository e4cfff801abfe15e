#!/usr/bin/env bash
# The project's test command. On a fresh Debian machine it installs what is missing (nats-server,
# a .venv with tox) and runs, with this machine's python3:
#   lint       ruff check + ruff format --check
#   typecheck  mypy --strict
#   py-newest  the tests with the newest releases of every dependency
#   py-oldest  the tests with the oldest supported releases (pins in tox.ini)
#   dist       (only without arguments) build the sdist and the wheel and check them (scripts/check_dist.py)
# Extra arguments go to pytest:  scripts/test.sh -k publish -x
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_setup.sh

ensure_nats_server
ensure_venv
.venv/bin/python -m pip install --quiet 'tox >= 4.11'
.venv/bin/tox -e lint,typecheck,py-newest,py-oldest -- "$@"
if [ $# -eq 0 ]; then .venv/bin/tox -e dist; fi
