"""Metric instruments and recording, per semantic-convention mode.

:class:`NatsMetrics` is owned by the :class:`~.recorder.Recorder`, which calls :meth:`NatsMetrics.record`
when an operation ends; connection health comes from :class:`ConnectionWatch` (chained to the
application's connection callbacks) and observable gauges read live client state on collection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from opentelemetry.metrics import CallbackOptions, Meter, NoOpMeter, Observation

from opentelemetry.instrumentation.nats import attributes, names, otel_private
from opentelemetry.instrumentation.nats.access import ClientAccess
from opentelemetry.instrumentation.nats.attributes import Attrs
from opentelemetry.instrumentation.nats.names import Keys, Metric, Mode
from opentelemetry.instrumentation.nats.subjects import is_wildcard

if TYPE_CHECKING:
    from opentelemetry.instrumentation.nats.destinations import Destinations

_LOG = logging.getLogger(__name__)

_SEND_OPS = frozenset({names.PUBLISH, names.RESPOND, names.REQUEST})
_SETTLE_TYPE = "settle"


def metric_attribute_keys(keys: Keys) -> frozenset[str]:
    """The low-cardinality span attribute keys that metrics keep, in a mode."""
    out = {names.DESTINATION_NAME, names.ERROR_TYPE}
    out.update(keys.system, keys.subject, keys.template, keys.subject_template)
    out.update(keys.server_address, keys.server_port, keys.consumer_group)
    if keys.current_operation:
        out.update((names.OPERATION_TYPE, names.OPERATION_NAME))
    if keys.legacy_operation:
        out.add(names.LEGACY_OPERATION)
    return frozenset(out)


def metric_attributes(allowed: frozenset[str], span_attrs: Attrs) -> Attrs:
    """Metric attributes from a span's cached attributes (the destination is added by the caller
    when it is shown: see :mod:`.destinations`)."""
    return {k: v for k, v in span_attrs.items() if k in allowed}


class NatsMetrics:
    """Every instrument of this instrumentation, created once in ``instrument()``."""

    def __init__(self, meter: Meter, mode: Mode, keys: Keys) -> None:
        self.meter = meter
        self.noop = isinstance(meter, NoOpMeter)  # the API's no-op meter: never records
        self.keys = keys
        self.allowed = metric_attribute_keys(keys)
        self.system: Attrs = dict.fromkeys(keys.system, names.SYSTEM)  # every series carries it
        self.current = mode in (Mode.CURRENT, Mode.DUP)
        self.legacy = mode in (Mode.LEGACY, Mode.DUP)
        self.clients: WeakKeyDictionary[Any, ClientAccess] = WeakKeyDictionary()  # → its family's accessor
        self.sub_dropped: WeakKeyDictionary[Any, int] = WeakKeyDictionary()
        self.any_dropped = False  # fast path: spans look up sub_dropped only once something was dropped
        self.js_pending: dict[tuple[str, str], int] = {}
        self.stream_sizes: dict[str, tuple[int, int]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.destinations: Destinations | None = None  # set by the recorder: names subscriptions in gauges

        def histogram(m: Metric, buckets: Iterable[float]) -> Any:
            return meter.create_histogram(
                m.name, unit=m.unit, description=m.description, explicit_bucket_boundaries_advisory=list(buckets)
            )

        def counter(m: Metric) -> Any:
            return meter.create_counter(m.name, unit=m.unit, description=m.description)

        def gauge(m: Metric, callback: Any) -> None:
            meter.create_observable_gauge(m.name, callbacks=[callback], unit=m.unit, description=m.description)

        s, ms = names.DURATION_BUCKETS_S, names.DURATION_BUCKETS_MS
        if self.current:
            self.op_duration = histogram(names.M_OPERATION_DURATION, s)
            self.process_duration = histogram(names.M_PROCESS_DURATION, s)
            self.sent = counter(names.M_SENT_MESSAGES)
            self.consumed = counter(names.M_CONSUMED_MESSAGES)
            self.sent_bytes = counter(names.M_SENT_BYTES)
            self.received_bytes = counter(names.M_RECEIVED_BYTES)
            self.dropped = counter(names.M_DROPPED)
            gauge(names.M_SUB_PENDING, self._observe_pending)
        if self.legacy:
            self.l_publish_duration = histogram(names.M_LEGACY_PUBLISH_DURATION, ms)
            self.l_publish_messages = counter(names.M_LEGACY_PUBLISH_MESSAGES)
            self.l_publish_bytes = counter(names.M_LEGACY_PUBLISH_BYTES)
            self.l_publish_errors = counter(names.M_LEGACY_PUBLISH_ERRORS)
            self.l_receive_duration = histogram(names.M_LEGACY_RECEIVE_DURATION, ms)
            self.l_receive_messages = counter(names.M_LEGACY_RECEIVE_MESSAGES)
            self.l_receive_bytes = counter(names.M_LEGACY_RECEIVE_BYTES)
            self.l_ack_duration = histogram(names.M_LEGACY_ACK_DURATION, ms)
            self.l_dropped = counter(names.M_LEGACY_DROPPED)
            gauge(names.M_LEGACY_PENDING, self._observe_pending)
        self.reconnects = counter(names.M_RECONNECTS)
        self.disconnect_duration = histogram(names.M_DISCONNECT_DURATION, s)
        self.propagation_skipped = counter(names.M_PROPAGATION_SKIPPED)
        self.redelivered = counter(names.M_JS_REDELIVERED)
        self.message_age = histogram(names.M_JS_MESSAGE_AGE, names.MESSAGE_AGE_BUCKETS_S)
        meter.create_observable_up_down_counter(
            names.M_CONNECTIONS.name,
            callbacks=[self._observe_connections],
            unit=names.M_CONNECTIONS.unit,
            description=names.M_CONNECTIONS.description,
        )
        gauge(names.M_JS_CONSUMER_PENDING, self._observe_js_pending)
        gauge(names.M_JS_STREAM_MESSAGES, self._observe_stream_messages)
        gauge(names.M_JS_STREAM_BYTES, self._observe_stream_bytes)

    def idle(self) -> bool:
        """True while every instrument is a no-op: the API's no-op meter, or the global proxy meter
        before a meter provider is set (no SDK). Anything unknown counts as recording."""
        return self.noop or not otel_private.meter_resolved(self.meter)

    # --- per operation ---------------------------------------------------------------------

    def record(
        self,
        op: Any,
        attrs: Attrs,
        seconds: float,
        error: BaseException | None = None,
        messages: int = 1,
        nbytes: int | None = None,
    ) -> None:
        """Record one ended operation (``op`` is a recorder ``Operation``; ``attrs`` its metric attributes)."""
        if error is not None:
            attrs = {**attrs, names.ERROR_TYPE: type(error).__qualname__}
        kind = op.op
        if kind is names.PROCESS or kind is names.RECEIVE:
            if kind is names.RECEIVE and self.current:
                self.op_duration.record(seconds, attrs)
            self._consumed(attrs, messages, nbytes, seconds if kind is names.PROCESS else None)
            if op.extra and names.JS_NUM_DELIVERED in op.extra:
                self.jetstream_message(op.extra, attrs)
                stored = attributes.ack_timestamp(op.reply_to)
                if stored is not None:  # delivered when its callback started, or (receive) now
                    delivered = op.started if kind is names.PROCESS else time.time_ns()
                    ordered = op.access.ordered_consumer(op.client, op.sid)
                    self.jetstream_age(op.extra, stored, delivered, op.subject, ordered)
        elif kind is names.FETCH:  # per-message JetStream metadata: see fetches.fetched
            if self.current:
                self.op_duration.record(seconds, attrs)
            self._consumed(attrs, messages, nbytes, None)
        else:
            if self.current:
                self.op_duration.record(seconds, attrs)
                if kind in _SEND_OPS:
                    self.sent.add(1, attrs)
                    if nbytes:
                        self.sent_bytes.add(nbytes, attrs)
            if self.legacy:
                if kind in _SEND_OPS:
                    self.l_publish_duration.record(seconds * 1000, attrs)
                    self.l_publish_messages.add(1, attrs)
                    if nbytes:
                        self.l_publish_bytes.add(nbytes, attrs)
                    if error is not None:
                        self.l_publish_errors.add(1, attrs)
                elif kind.type == _SETTLE_TYPE:
                    self.l_ack_duration.record(seconds * 1000, attrs)

    def _consumed(self, attrs: Attrs, messages: int, nbytes: int | None, seconds: float | None) -> None:
        if self.current:
            if seconds is not None:
                self.process_duration.record(seconds, attrs)
            self.consumed.add(messages, attrs)
            if nbytes:
                self.received_bytes.add(nbytes, attrs)
        if self.legacy:
            if seconds is not None:
                self.l_receive_duration.record(seconds * 1000, attrs)
            self.l_receive_messages.add(messages, attrs)
            if nbytes:
                self.l_receive_bytes.add(nbytes, attrs)

    def jetstream_message(self, meta: Attrs, attrs: Attrs) -> None:
        """Consumer lag and redeliveries from a delivered JetStream message's metadata."""
        stream, consumer = meta.get(names.JS_STREAM), meta.get(names.JS_CONSUMER)
        if stream and consumer and names.JS_NUM_PENDING in meta:
            self.js_pending[(stream, consumer)] = meta[names.JS_NUM_PENDING]
        if meta.get(names.JS_NUM_DELIVERED, 1) > 1:
            self.redelivered.add(1, {**attrs, names.JS_STREAM: stream, names.JS_CONSUMER: consumer})

    def jetstream_age(self, meta: Attrs, stored: int, delivered: int, subject: str, ordered: bool = False) -> None:
        """The age of a delivered JetStream message: ``delivered - stored`` (nanoseconds since the epoch,
        the client's clock and the server's), 0 when below zero (clock skew). By stream and consumer
        (none for an ``ordered`` consumer: its name changes at every reset) and the ``subject_templates``
        pattern the message's subject matches; never the subject itself."""
        attrs = {**self.system, names.JS_STREAM: meta.get(names.JS_STREAM)}
        consumer = meta.get(names.JS_CONSUMER)
        if consumer and not ordered:
            attrs[names.JS_CONSUMER] = consumer
        templates = self.destinations.templates if self.destinations is not None else None
        if templates:
            template = templates.first(subject)
            if template is not None:
                for k in self.keys.subject_template:
                    attrs[k] = template
        self.message_age.record(max(0.0, (delivered - stored) / 1e9), attrs)

    def skipped(self, reason: str, client: Any) -> None:
        self.propagation_skipped.add(1, {**self.system, "reason": reason})

    def dropped_message(self, attrs: Attrs, sub: Any) -> None:
        """A message dropped because ``sub`` (a slow consumer) hit its pending limits."""
        with suppress(TypeError):  # not weak-referenceable
            self.sub_dropped[sub] = self.sub_dropped.get(sub, 0) + 1
            self.any_dropped = True
        self._count_dropped(1, attrs)

    def dropped_total(self, attrs: Attrs, sub: Any, total: int) -> None:
        """``sub`` has dropped ``total`` messages in all (a client that counts them itself): count
        the ones not counted yet."""
        try:
            new = total - self.sub_dropped.get(sub, 0)
            if new <= 0:
                return
            self.sub_dropped[sub] = total
        except TypeError:  # not weak-referenceable: not counted
            return
        self.any_dropped = True
        self._count_dropped(new, attrs)

    def _count_dropped(self, n: int, attrs: Attrs) -> None:
        if self.current:
            self.dropped.add(n, attrs)
        if self.legacy:
            self.l_dropped.add(n, attrs)

    def reconnected(self, access: ClientAccess, client: Any, down_since: float | None) -> None:
        """``client`` reconnected; it lost its connection at ``down_since`` (``time.monotonic()``)."""
        attrs = self.server_attributes(access, client)
        self.reconnects.add(1, attrs)
        if down_since is not None:
            self.disconnect_duration.record(time.monotonic() - down_since, attrs)

    # --- observable state ------------------------------------------------------------------

    def track(self, client: Any, access: ClientAccess) -> None:
        with suppress(TypeError):  # not weak-referenceable: not observed
            self.clients[client] = access

    def untrack(self, client: Any) -> None:
        with suppress(TypeError):
            self.clients.pop(client, None)
        for task in [t for t in self.tasks if getattr(t, "nats_client", None) is client]:
            task.cancel()

    def shutdown(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        self.tasks.clear()

    def server_attributes(self, access: ClientAccess, client: Any) -> Attrs:
        """Metric attributes of a connection: system, server address and port."""
        host, port = access.server_endpoint(client)
        attrs: Attrs = dict(self.system)
        for k in self.keys.server_address:
            if host:
                attrs[k] = host
        for k in self.keys.server_port:
            if port:
                attrs[k] = port
        return attrs

    def subscription_attributes(self, access: ClientAccess, client: Any, subject: str, queue: str | None) -> Attrs:
        """Metric attributes of a subscription: its subject (a template when it has wildcards or
        matches ``subject_templates``; left out past the destination limit) and queue group."""
        attrs = self.server_attributes(access, client)
        if subject:
            if self.destinations is not None:
                keys, subject = self.destinations.subscription_keys(subject)
            else:
                keys = self.keys.template if is_wildcard(subject) else self.keys.subject
            for k in keys:
                attrs[k] = subject
        if queue:
            for k in self.keys.consumer_group:
                attrs[k] = queue
        return attrs

    def _observe_connections(self, options: CallbackOptions) -> Iterable[Observation]:
        counts: dict[tuple[tuple[str, Any], ...], int] = {}
        for client, access in list(self.clients.items()):
            if access.is_connected(client):
                key = tuple(sorted(self.server_attributes(access, client).items()))
                counts[key] = counts.get(key, 0) + 1
        if not counts:
            return [Observation(0, dict(self.system))]
        return [Observation(n, dict(key)) for key, n in counts.items()]

    def _observe_pending(self, options: CallbackOptions) -> Iterable[Observation]:
        totals: dict[tuple[tuple[str, Any], ...], int] = {}
        for client, access in list(self.clients.items()):
            for sub in access.subscriptions(client):
                attrs = self.subscription_attributes(access, client, sub.subject, sub.queue)
                if sub.dropped:  # (a client that counts its drops: the ones since the last look)
                    self.dropped_total(attrs, sub.sub, sub.dropped)
                key = tuple(sorted(attrs.items()))
                totals[key] = totals.get(key, 0) + (sub.pending or 0)
        return [Observation(n, dict(key)) for key, n in totals.items()]

    def _observe_js_pending(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(n, {**self.system, names.JS_STREAM: s, names.JS_CONSUMER: c})
            for (s, c), n in list(self.js_pending.items())
        ]

    def _observe_stream_messages(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(m, {**self.system, names.JS_STREAM: s}) for s, (m, _) in list(self.stream_sizes.items())]

    def _observe_stream_bytes(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(b, {**self.system, names.JS_STREAM: s}) for s, (_, b) in list(self.stream_sizes.items())]
