"""``opentelemetry-nats-server-trace`` as a real process next to a real server, exporting with the
console exporter (``OTEL_TRACES_EXPORTER=console``)."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import trace_topology as topo
from tests.helpers import load_script
from tests.natsserver import NatsServer, free_port
from tests.trace_topology import url

SCRIPT = Path(sys.executable).parent / "opentelemetry-nats-server-trace"
TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PUBLISHER = 0x00F067AA0BA902B7


@pytest.fixture(scope="module")
def solo() -> Iterator[NatsServer]:
    (srv,) = topo.single()
    yield srv
    srv.cleanup()


def _wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 30.0) -> str:
    assert proc.stderr is not None
    seen = ""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while text not in seen:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"{text!r} not printed; stderr so far:\n{seen}")
            if sel.select(0.1):
                seen += proc.stderr.readline()
    return seen


def _run(*args: str, **env: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ.update(env)
    return subprocess.Popen(
        [str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ
    )


@contextlib.contextmanager
def _bridge_process(*args: str, **env: str) -> Iterator[subprocess.Popen[str]]:
    """The console script running with ``args`` and ``env``; killed on exit if it is still running."""
    proc = _run(*args, **env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _sigterm(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Stop the process as a service manager would; its stdout and stderr."""
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=30)


@topo.requires_msg_trace
async def test_console_script_exports_server_spans(solo: NatsServer, connect: Any) -> None:
    with _bridge_process(
        "--servers",
        url(solo),
        "--subject",
        topo.TRACE_SUBJECT,
        "--queue",
        "bridges",
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=test",
    ) as proc:
        started = _wait_for_line(proc, "listening on")
        assert f"listening on {topo.TRACE_SUBJECT} (queue 'bridges') at 127.0.0.1:{solo.port}" in started
        assert "app:app" not in started  # no credentials in the log
        pub = await connect(url(solo), name="publisher")
        await pub.publish("orders.nobody", b"hello", headers={"traceparent": f"00-{TRACE:032x}-{PUBLISHER:016x}-01"})
        await pub.flush()
        time.sleep(0.3)  # the event reaches the bridge
        out, err = _sigterm(proc)
    assert proc.returncode == 0, err

    (span,) = load_script("trace_picture").console_spans(out)
    info = topo.info(solo)
    assert span["name"] == "traverse orders.nobody"
    assert span["kind"] == "SpanKind.CONSUMER"
    assert span["context"]["trace_id"] == f"0x{TRACE:032x}"
    assert span["parent_id"] == f"0x{PUBLISHER:016x}"
    assert span["status"] == {"status_code": "UNSET"}
    assert span["attributes"] == {
        "messaging.system.name": "nats",
        "messaging.destination.name": "orders.nobody",
        "messaging.message.envelope.size": topo.envelope_size(b"hello", traceparent="x" * 55),
        "messaging.nats.server.id": info["server_id"],
        "messaging.nats.server.name": "solo",
        "messaging.nats.server.version": info["version"],
        "messaging.nats.account": "APP",
        "messaging.nats.server.ingress.kind": "client",
        "messaging.nats.server.ingress.name": "publisher",
        "messaging.nats.server.ingress.cid": int(pub._server_info["client_id"]),
        "messaging.nats.server.egress.count": 0,
    }
    resource = span["resource"]["attributes"]
    assert {k: v for k, v in resource.items() if k.startswith(("service.", "deployment."))} == {
        "service.name": "nats-server",
        "service.instance.id": info["server_id"],
        "service.version": info["version"],
        "deployment.environment.name": "test",
    }


def test_console_script_waits_for_its_server_and_stops_on_sigterm() -> None:
    port = free_port()
    with _bridge_process(
        "--servers",
        f"nats://127.0.0.1:{port}",
        "--subject",
        "otel.trace",
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
    ) as proc:
        _wait_for_line(proc, "ConnectionRefusedError")
        out, err = _sigterm(proc)
    assert proc.returncode == 0
    assert "Traceback" not in err
    assert out == ""


def test_console_script_reports_a_bad_exporter_in_one_line() -> None:
    proc = _run("--servers", "nats://127.0.0.1:1", "--subject", "otel.trace", OTEL_TRACES_EXPORTER="no-such-exporter")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in err
    assert "no-such-exporter" in err.strip().splitlines()[-1]


def test_console_script_help() -> None:
    done = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    for option in ("--servers", "--subject", "--queue", "--creds"):
        assert option in done.stdout
