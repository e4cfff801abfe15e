# Shared set-up for scripts/test.sh and scripts/demo.sh (sourced, not run).
#
#   ensure_nats_server  - make sure a nats-server binary exists (apt-get install it if not) and
#                         export NATS_SERVER_BIN with its path (tests/natsserver.py and the demo use it)
#   ensure_venv         - create .venv with python3 (3.10 or newer) unless it already works
#
# Both install Debian packages only when something is missing, with sudo when not root.

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
        bin="$(command -v nats-server || true)"
    fi
    if [ -z "$bin" ] && [ -x /usr/sbin/nats-server ]; then
        bin=/usr/sbin/nats-server
    fi
    if [ -z "$bin" ]; then
        echo "nats-server not found: installing it with apt-get" >&2
        apt_install nats-server
        bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
    fi
    if [ ! -x "$bin" ]; then
        echo "error: nats-server is not executable at $bin" >&2
        return 1
    fi
    export NATS_SERVER_BIN="$bin"
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
