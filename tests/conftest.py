"""Fixtures: real nats-server processes and an OpenTelemetry SDK with in-memory exporters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import nats
import pytest
from opentelemetry.metrics import NoOpMeterProvider

from opentelemetry.instrumentation.nats.server_trace import ServerTraceBridge
from tests import families
from tests import trace_topology as topo
from tests.helpers import Telemetry
from tests.natsserver import NatsServer, nats_server_binary, nats_server_version, server_skip_reason


def pytest_report_header() -> str:
    return f"nats-server {'.'.join(map(str, nats_server_version()))} ({nats_server_binary()})"


@pytest.hookimpl(tryfirst=True)  # before fixtures start servers for a test that will be skipped
def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("nats_server"):
        reason = server_skip_reason(mark)
        if reason is not None:
            pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "nats_server(minimum, below, why): run only on these nats-server versions (requires_server())"
    )
    config.addinivalue_line(
        "markers",
        "auto_instrumentation: runs an app under opentelemetry-instrument in a subprocess "
        "(tests.helpers.instrumented_command); scripts/check_dist.py reruns these against the built wheel",
    )
    config.addinivalue_line(
        "markers",
        "nats_core: an auto_instrumentation test of a nats-core app (scripts/check_dist.py runs it with the "
        "wheel's nats-core extra on Python 3.13)",
    )


@pytest.fixture(scope="session")
def server() -> Iterator[NatsServer]:
    """A plain nats-server shared by the session."""
    srv = NatsServer().start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="session")
def js_server() -> Iterator[NatsServer]:
    """A JetStream-enabled nats-server shared by the session."""
    srv = NatsServer(jetstream=True).start()
    yield srv
    srv.cleanup()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """An instrumented nats-py with in-memory span and metric exporters (uninstrumented afterwards)."""
    tel = Telemetry()
    tel.instrument()
    yield tel
    tel.uninstrument()


@pytest.fixture
def make_telemetry() -> Iterator[Any]:
    """Instrument with custom options: ``make_telemetry(semconv="legacy")``; ``metrics=False``: with
    the API's no-op meter provider (an SDK tracer only)."""
    made: list[Telemetry] = []

    def make(*, metrics: bool = True, **options: Any) -> Telemetry:
        tel = Telemetry()
        if not metrics:
            tel.meter_provider = NoOpMeterProvider()
        tel.instrument(**options)
        made.append(tel)
        return tel

    yield make
    for tel in made:
        tel.uninstrument()


@pytest.fixture
async def connect() -> AsyncIterator[Any]:
    """``await connect(url, **opts)``: nats-py connections closed at the end of the test."""
    conns: list[Any] = []

    async def _connect(url: str, **opts: Any) -> Any:
        nc = await nats.connect(url, **opts)
        conns.append(nc)
        return nc

    yield _connect
    for nc in conns:
        if not nc.is_closed:
            await nc.close()


@pytest.fixture(params=families.NAMES)
async def family(request: pytest.FixtureRequest) -> AsyncIterator[families.Family]:
    """Each client family in turn (tests/families.py): skipped where it is not installed; its
    connections are closed at the end of the test."""
    reason = families.skip_reason(request.param)
    if reason is not None:
        pytest.skip(reason)
    fam = families.FAMILIES[request.param]()
    yield fam
    await fam.close_all()


@pytest.fixture
async def bridge(telemetry: Any, connect: Any) -> AsyncIterator[Any]:
    """``await bridge(server, *others)``: a ServerTraceBridge on ``server`` reporting to the test's SDK,
    once the trace events of every server in ``others`` reach it."""
    started: list[ServerTraceBridge] = []

    async def start(server: NatsServer, *others: NatsServer) -> ServerTraceBridge:
        nc = await connect(topo.url(server))
        b = ServerTraceBridge(
            nc, topo.TRACE_SUBJECT, tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )
        await b.start()
        started.append(b)
        for other in (server, *others):
            await topo.routed(other, nc)
        return b

    yield start
    for b in started:
        await b.stop()
