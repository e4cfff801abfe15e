"""Assertion helpers shared by the tests."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from opentelemetry.propagators.textmap import CarrierT, Setter, TextMapPropagator, default_setter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from opentelemetry.instrumentation.nats import NatsInstrumentor


async def wait_spans(telemetry: Any, count: int, timeout: float = 5.0) -> list[ReadableSpan]:
    """Wait until at least ``count`` spans have ended; return them in start order."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(telemetry.exporter.get_finished_spans()) < count:
        if loop.time() > deadline:
            names = [s.name for s in telemetry.spans()]
            raise AssertionError(f"expected {count} spans, got {len(names)}: {names}")
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)  # let stragglers (spurious spans) arrive too
    return telemetry.spans()


def conn_attrs(nc: Any, mode: str = "current") -> dict[str, Any]:
    """The connection attributes every span of ``nc`` carries."""
    info = nc._server_info
    uri = nc._current_server.uri
    attrs: dict[str, Any] = {
        "messaging.nats.server.id": info["server_id"],
        "messaging.nats.server.name": info["server_name"],
        "messaging.nats.server.version": info["version"],
    }
    if info.get("cluster"):
        attrs["messaging.nats.cluster.name"] = info["cluster"]
    if mode in ("current", "dup"):
        attrs.update(
            {
                "server.address": uri.hostname,
                "server.port": uri.port,
                "messaging.client.id": str(info["client_id"]),
            }
        )
    if mode in ("legacy", "dup"):
        attrs.update(
            {
                "net.peer.name": uri.hostname,
                "net.peer.port": uri.port,
                "messaging.nats.client.id": info["client_id"],
            }
        )
    return attrs


def by_name(spans: list[ReadableSpan], name: str, kind: SpanKind | None = None) -> ReadableSpan:
    found = [s for s in spans if s.name == name and (kind is None or s.kind == kind)]
    assert len(found) == 1, f"{len(found)} spans named {name!r} in {[s.name for s in spans]}"
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def _ids(span: Any) -> tuple[Any, Any, Any]:
    """(trace id, span id, parent span id) of an SDK span, or of a span that tests/test_examples.py parsed
    from an example's output (hex strings)."""
    if isinstance(span, ReadableSpan):
        return span.context.trace_id, span.context.span_id, parent_of(span)
    return span.trace, span.span, span.parent


def assert_child(child: Any, parent: Any) -> None:
    """``child`` is in the trace of ``parent`` and its parent is ``parent`` (SDK spans or parsed ones)."""
    (child_trace, _, child_parent), (parent_trace, parent_id, _) = _ids(child), _ids(parent)
    assert child_trace == parent_trace, f"{child.name} not in the trace of {parent.name}"
    assert child_parent == parent_id, f"{child.name} is not a child of {parent.name}"


async def synced(*conns: Any) -> None:
    """Make sure the server has processed everything the connections sent (their SUBs above all).

    ``Client.flush()`` alone is not enough: nats-py writes the PING straight to the socket while a
    SUB may still wait in the pending buffer for the flusher task, so the PONG can come back before
    the server has seen the SUB. Forcing the pending buffer out first closes that race."""
    for nc in conns:
        await nc._flush_pending(force_flush=True)
        await nc.flush()


async def collect(nc: Any, subject: str) -> asyncio.Queue[Any]:
    """Subscribe ``nc`` to ``subject`` (the server has seen the SUB on return); the messages go to the queue."""
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        await got.put(msg)

    await nc.subscribe(subject, cb=handler)
    await synced(nc)
    return got


async def responder(nc: Any, subject: str, reply: bytes = b"ok") -> list[dict[str, str]]:
    """Answer requests on ``subject`` with ``reply``; the list gets the headers of each request."""
    seen: list[dict[str, str]] = []

    async def handler(msg: Any) -> None:
        seen.append(dict(msg.headers))
        await msg.respond(reply)

    await nc.subscribe(subject, cb=handler)
    return seen


async def new_stream(nc: Any, telemetry: Any, prefix: str) -> tuple[Any, str]:
    """A JetStream stream ``{prefix}_<random>`` on the subjects ``{stream}.>``; telemetry cleared afterwards."""
    js = nc.jetstream()
    stream = f"{prefix}_{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    telemetry.clear()
    return js, stream


async def stored_headers(nc: Any, stream: str, **query: Any) -> dict[str, str]:
    """The headers of a message stored in ``stream`` (``seq=…`` or ``last_by_subj=…``), read through
    the JetStream API itself (no span: JetStream API traffic makes none)."""
    reply = await nc.request(f"$JS.API.STREAM.MSG.GET.{stream}", json.dumps(query).encode(), timeout=5)
    message = json.loads(reply.data)["message"]
    lines = base64.b64decode(message.get("hdrs", "")).decode().split("\r\n")[1:]
    return dict(line.split(": ", 1) for line in lines if line)


def load_script(name: str) -> Any:
    """Import ``scripts/<name>.py`` (scripts are not a package) once, as module ``name``."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


Row = tuple[str, str, str | None, tuple[str, ...]]


def forest(spans: list[ReadableSpan], scope: str | None = None, rename: Any = None) -> list[list[Row]]:
    """The spans as traces: per trace, one row ``(name, kind, parent name, link names)`` per span.

    Parents and links are looked up among all ``spans`` (``"?"`` when not there; a parent in
    another trace is not a parent), so the result pins names, kinds, parents, links and which spans
    share a trace. Rows and traces are sorted; ``scope`` keeps only the rows of spans from that
    instrumentation scope; ``rename(name)`` normalises names."""
    name = rename or (lambda n: n)
    by_id = {s.context.span_id: s for s in spans}

    def ref(span_id: int, trace_id: int | None = None) -> str:
        found = by_id.get(span_id)
        if found is None or (trace_id is not None and found.context.trace_id != trace_id):
            return "?"
        return name(found.name)

    traces: dict[int, list[Row]] = {}
    for s in spans:
        if scope is not None and s.instrumentation_scope.name != scope:
            continue
        parent = ref(s.parent.span_id, s.context.trace_id) if s.parent else None
        links = tuple(sorted(ref(link.context.span_id) for link in s.links))
        traces.setdefault(s.context.trace_id, []).append((name(s.name), s.kind.name, parent, links))
    return expected_forest(*traces.values())


def expected_forest(*traces: list[Row]) -> list[list[Row]]:
    """Traces written in any order, sorted as :func:`forest` sorts them."""
    return sorted((sorted(rows, key=str) for rows in traces), key=str)


def assert_links(span: ReadableSpan, *targets: ReadableSpan) -> None:
    """``span`` links to exactly ``targets`` (their trace and span ids), in that order."""
    links = [(link.context.trace_id, link.context.span_id) for link in span.links]
    assert links == [(t.context.trace_id, t.context.span_id) for t in targets], f"links of {span.name}"


def instrumented_command(script: Path) -> list[str]:
    """``opentelemetry-instrument python script`` for the tests marked ``auto_instrumentation``.

    They run in the virtualenv of ``$NATS_APP_PYTHON`` when it is set (scripts/check_dist.py points it at a
    fresh one holding only the built wheel, its ``instruments`` extra and opentelemetry-distro), else in the
    tests' own."""
    python = Path(os.environ.get("NATS_APP_PYTHON") or sys.executable)  # not resolved: a venv's python is a link
    return [str(python.parent / "opentelemetry-instrument"), str(python), str(script)]


class Telemetry:
    """The SDK pipeline the instrumentation reports to, plus helpers to read it."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader])
        self.instrumentor = NatsInstrumentor()

    def instrument(self, **options: Any) -> None:
        self.instrumentor.instrument(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options
        )

    def uninstrument(self) -> None:
        self.instrumentor.uninstrument()

    def spans(self) -> list[ReadableSpan]:
        return sorted(self.exporter.get_finished_spans(), key=lambda s: s.start_time or 0)

    def clear(self) -> None:
        self.exporter.clear()


class ConstantPropagator(TextMapPropagator):
    """Writes ``x-constant: 1`` whatever the context (so the no-SDK shortcuts must still ask it)."""

    def extract(self, carrier: CarrierT, context: Any = None, getter: Any = None) -> Any:
        return context

    def inject(self, carrier: CarrierT, context: Any = None, setter: Setter[CarrierT] = default_setter) -> None:
        setter.set(carrier, "x-constant", "1")

    @property
    def fields(self) -> set[str]:
        return {"x-constant"}


def configured(make_telemetry: Any, monkeypatch: Any, source: str, env: tuple[str, str], **options: Any) -> Any:
    """Telemetry configured one of two ways: ``source`` "env" sets the environment variable
    ``env = (name, value)`` and instruments with no options; otherwise ``options`` are passed."""
    if source == "env":
        monkeypatch.setenv(*env)
        return make_telemetry()
    return make_telemetry(**options)


# A creation context a caller put in its own headers (W3C ``traceparent``) and its ids
CALLER_TRACE_HEX = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN_HEX = "b7ad6b7169203331"
CALLER_TRACEPARENT = f"00-{CALLER_TRACE_HEX}-{CALLER_SPAN_HEX}-01"
CALLER_IDS = (int(CALLER_TRACE_HEX, 16), int(CALLER_SPAN_HEX, 16))


def link_ids(span: Any) -> list[tuple[int, int]]:
    """The (trace id, span id) of each of ``span``'s links."""
    return [(link.context.trace_id, link.context.span_id) for link in span.links]
