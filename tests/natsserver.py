"""Start and stop real ``nats-server`` processes on free loopback ports for the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nats_server_binary() -> str:
    binary = os.environ.get("NATS_SERVER_BIN") or shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        raise RuntimeError("nats-server is not installed: run `apt-get install -y nats-server`")
    return binary


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


def start_cluster(size: int = 3, jetstream: bool = True, cluster_name: str = "otel-test") -> list[NatsServer]:
    """A cluster of ``size`` servers with routes on loopback."""
    cluster_ports = [free_port() for _ in range(size)]
    routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in cluster_ports)
    servers = [
        NatsServer(
            jetstream=jetstream,
            name=f"{cluster_name}-n{i + 1}",
            extra=f"cluster {{ name: {cluster_name}\n listen: 127.0.0.1:{cp}\n routes: [{routes}] }}",
        )
        for i, cp in enumerate(cluster_ports)
    ]
    for s in servers:
        s.start()
    return servers
