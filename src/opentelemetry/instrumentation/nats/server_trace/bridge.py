"""``ServerTraceBridge``: subscribe to the servers' trace events and record one span per traversal.

Each span is recorded through a ``TracerProvider`` of the server's own (resource: ``service.name`` =
``nats-server``, ``service.instance.id`` = server id, ``service.version``) that shares the span
processors, sampler and limits of the application's SDK provider, so server spans go wherever the
application's spans go. Those per-server providers are kept in a small LRU (:data:`MAX_SERVERS`) and
never shut down (that would shut down the shared processors). A span's id is the one
:mod:`.spans` planned for it; :class:`PlannedIds` hands it to the SDK.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import MeterProvider, get_meter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
    get_tracer_provider,
    set_span_in_context,
)

from opentelemetry.instrumentation.nats import names, otel_private
from opentelemetry.instrumentation.nats.names import SCHEMA_URL
from opentelemetry.instrumentation.nats.server_trace import events, spans
from opentelemetry.instrumentation.nats.version import __version__

_LOG = logging.getLogger(__name__)
SCOPE = "opentelemetry.instrumentation.nats.server_trace"
MAX_SERVERS = 256  # per-server providers kept (one per distinct server id / name / version / cluster)


class PlannedIds(IdGenerator):
    """The SDK's id generator for server spans: the next span id is the one the plan derived
    (set right before ``start_span``), else random."""

    def __init__(self) -> None:
        self.next_span_id: int | None = None
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        planned, self.next_span_id = self.next_span_id, None
        return planned if planned is not None else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        return self._random.generate_trace_id()


class ServerTraceBridge:
    """Turns the nats-server message-trace events published on ``subject`` into spans.

    ``nc`` is a connected nats-py client of the account whose ``msg_trace { dest }`` is ``subject``
    (several bridges share the work with the same ``queue`` group). Spans go to ``tracer_provider``
    (an SDK ``TracerProvider``; the global one by default); the bridge's counters to
    ``meter_provider``. ``start()`` subscribes, ``stop()`` drains the subscription.
    """

    def __init__(
        self,
        nc: Any,
        subject: str,
        tracer_provider: TracerProvider | None = None,
        queue: str | None = None,
        *,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        if not isinstance(subject, str) or not subject:
            raise ValueError("ServerTraceBridge: subject must be a non-empty subject")
        self.nc = nc
        self.subject = subject
        self.queue = queue or ""
        self._provider = tracer_provider
        self._ids = PlannedIds()
        self._tracers: OrderedDict[tuple[str, ...], Tracer] = OrderedDict()
        meter = get_meter(SCOPE, __version__, meter_provider=meter_provider, schema_url=SCHEMA_URL)
        self._converted = meter.create_counter(
            names.ST_M_EVENTS.name, unit=names.ST_M_EVENTS.unit, description=names.ST_M_EVENTS.description
        )
        self._skipped = meter.create_counter(
            names.ST_M_SKIPPED.name, unit=names.ST_M_SKIPPED.unit, description=names.ST_M_SKIPPED.description
        )
        self._sub: Any = None

    async def start(self) -> None:
        """Subscribe to the trace subject (idempotent)."""
        if self._sub is not None:
            return
        provider = self._base()
        if _shared(provider) is None:
            _LOG.warning(
                "ServerTraceBridge: %s is not an OpenTelemetry SDK TracerProvider; server spans keep "
                "its resource and later hops cannot find their parents",
                type(provider).__name__,
            )
        # The instrumentation (NatsInstrumentor) must not trace the bridge's own subscription: one
        # root span per trace event would bury the server spans.
        with suppress_instrumentation():
            self._sub = await self.nc.subscribe(self.subject, queue=self.queue, cb=self._on_message)
        try:  # so that events are caught from the moment start() returns. Two round trips: nats-py
            await self.nc.flush()  # may write its PING ahead of the SUB still in its pending buffer
            await self.nc.flush()
        except Exception:  # (re)connecting: the subscription is sent when the connection is back
            _LOG.warning("ServerTraceBridge: could not confirm the subscription to %s", self.subject, exc_info=True)

    async def stop(self) -> None:
        """Handle the events already received, then unsubscribe (idempotent)."""
        sub, self._sub = self._sub, None
        if sub is None:
            return
        try:
            await sub.drain()
        except Exception:  # the connection may be closed or closing
            _LOG.debug("ServerTraceBridge: could not drain the subscription", exc_info=True)

    async def _on_message(self, msg: Any) -> None:
        headers = getattr(msg, "headers", None) or {}
        self.handle(msg.data, headers.get("Content-Encoding"))

    def handle(self, data: bytes, content_encoding: str | None = None) -> None:
        """Record the span of one trace event payload; malformed payloads are counted, never raised.
        (Called on the event loop for each message; not meant for several threads at once.)"""
        try:
            event = events.parse(data, content_encoding)
        except events.InvalidEvent as exc:
            _LOG.debug("ServerTraceBridge: skipped a trace event: %s", exc)
            self._skipped.add(1, {names.ERROR_TYPE: exc.reason})
            return
        try:
            for reason in event.skipped:
                self._skipped.add(1, {names.ERROR_TYPE: reason})
            self._record(spans.plan(event))
            self._converted.add(1)
        except Exception as exc:  # a bug here must not stop the bridge
            _LOG.warning("ServerTraceBridge: could not record a trace event", exc_info=True)
            self._skipped.add(1, {names.ERROR_TYPE: type(exc).__qualname__})

    def _record(self, plan: spans.SpanPlan) -> None:
        """The one place that makes server spans."""
        context = None
        if plan.publisher is not None and plan.parent_span_id is not None:
            pub = plan.publisher
            parent = SpanContext(pub.trace_id, plan.parent_span_id, True, pub.trace_flags, pub.trace_state)
            context = set_span_in_context(NonRecordingSpan(parent))
        tracer = self._tracer(plan.resource)
        self._ids.next_span_id = plan.span_id
        try:
            span = tracer.start_span(
                plan.name, context=context, kind=SpanKind.CONSUMER, attributes=plan.attributes, start_time=plan.start
            )
        finally:
            self._ids.next_span_id = None
        for event in plan.events:
            span.add_event(event.name, event.attributes, timestamp=event.ts)
        if plan.error is not None:
            span.set_status(Status(StatusCode.ERROR, plan.error[1]))
        span.end(end_time=plan.end)

    def _base(self) -> TracerProvider:
        return self._provider if self._provider is not None else get_tracer_provider()

    def _tracer(self, resource: dict[str, Any]) -> Tracer:
        key = tuple(f"{k}={v}" for k, v in sorted(resource.items()))
        tracer = self._tracers.get(key)
        if tracer is not None:
            self._tracers.move_to_end(key)
            return tracer
        base = self._base()
        shared = _shared(base)
        if shared is not None:
            assert isinstance(base, SdkTracerProvider)
            processor, limits = shared
            provider: TracerProvider = SdkTracerProvider(
                sampler=base.sampler,
                resource=Resource.create(resource),
                shutdown_on_exit=False,
                active_span_processor=processor,
                id_generator=self._ids,
                span_limits=limits,
            )
        else:
            provider = base
        tracer = provider.get_tracer(SCOPE, __version__, schema_url=SCHEMA_URL)
        self._tracers[key] = tracer
        if len(self._tracers) > MAX_SERVERS:
            self._tracers.popitem(last=False)
        return tracer


def _shared(provider: Any) -> tuple[Any, Any] | None:
    """The span processor and limits of an SDK provider, to share (see otel_private)."""
    return otel_private.shared_pipeline(provider) if isinstance(provider, SdkTracerProvider) else None
