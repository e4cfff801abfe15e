"""The one place that starts and ends spans, injects and extracts context, and calls hooks.

Patch functions describe a client call as an :class:`Operation` and hand it to
:meth:`Recorder.run` (a call with a span around it: the one span lifecycle), its synchronous
counterpart :meth:`Recorder.run_sync` (a synchronous callback: nats-core's subscription callbacks),
or :meth:`Recorder.received` (a message handed to the application by an iterator or ``next``);
a JetStream fetch, whose links are known only when it ends, is recorded by :mod:`.fetches` with
:meth:`Recorder.start` and :meth:`Recorder.finish` (at its end time) and :meth:`Recorder.measure`.

Fast paths (the per-message cost is what users pay; each is covered by tests/test_fast_paths.py):

- No SDK (the API's no-op tracer and meter, :meth:`Recorder.idle`): a span would only carry its
  parent's context, so wrappers just propagate the current context and skip attributes, spans and
  metrics. A real tracer or meter that shows up later stays, so ``live`` caches the answer once False.
- Producer and client operations without hooks run only nats-py internals inside, so their span is
  not made current (no context attach/detach): a plain publish injects the span's context itself and
  the internals of the others (the publish inside request, respond, JetStream publish …) inject
  ``op.span``. Nothing to add after the call (no metrics, no result attributes or an unsampled
  span): the span is just ended.
- The SDK's ``start_span`` is called with positional arguments (cheaper than keywords); without
  ``captured_headers`` a headers dict matters only when it has a Nats-Msg-Id; without
  ``excluded_subjects`` or ``envelope_subjects`` no pattern set is consulted.
- A request, a reply (``Msg.respond``) or a JetStream publish to a destination seen before, without
  hooks, metrics or caller headers, takes :meth:`Recorder.run_cached` (its entry is looked up once,
  its operation built positionally; a plain JetStream publish carries its context in the call's
  headers); covered by the fast/full matrix tests in tests/matrix/test_core.py and
  test_jetstream_send.py.

The module is longer than the others on purpose: it is the span lifecycle of both client families
and the parent and link rules they share, which read best in one place (user hooks: hooks.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, Status, StatusCode

from opentelemetry import trace
from opentelemetry.instrumentation.nats import attributes, names, otel_private, propagation
from opentelemetry.instrumentation.nats.access import ClientAccess
from opentelemetry.instrumentation.nats.attributes import Attrs
from opentelemetry.instrumentation.nats.clients import Clients
from opentelemetry.instrumentation.nats.config import Hook, NatsConfig
from opentelemetry.instrumentation.nats.destinations import Destinations, Entry
from opentelemetry.instrumentation.nats.envelope import unwrap_envelope
from opentelemetry.instrumentation.nats.hooks import call_hook, call_hook_sync
from opentelemetry.instrumentation.nats.metrics import NatsMetrics, metric_attribute_keys
from opentelemetry.instrumentation.nats.names import Op
from opentelemetry.instrumentation.nats.operation import ACTIVE, CONSUMER, SERVER, Operation, now
from opentelemetry.instrumentation.nats.propagation import creation_links, current_context

if TYPE_CHECKING:
    from opentelemetry.instrumentation.nats.exception_events import ExceptionEvents

_LOG = logging.getLogger(__name__)

_ROOT = Context()  # the parent of a root span


# What Recorder.run hands the open span to instead of ending it (``publish_async``: ends on the ack).
Then = Callable[[Span, Operation, Any], None]


class Recorder:
    """Starts/ends spans for :class:`Operation` records."""

    def __init__(
        self,
        tracer: trace.Tracer,
        config: NatsConfig,
        metrics: NatsMetrics | None = None,
        *,
        events: ExceptionEvents | None = None,
    ) -> None:
        self.tracer = tracer
        self.config = config
        self.events = events  # exception events (the exception_events option), else None
        self.keys = names.KEYS[config.mode]
        self.metrics = metrics
        self.destinations = Destinations(
            self.keys,
            config.subject_templates,
            config.max_destinations,
            metrics.allowed if metrics is not None else metric_attribute_keys(self.keys),
        )
        if metrics is not None:
            metrics.destinations = self.destinations
        self.clients = Clients(self.keys, self.destinations, metrics.track if metrics is not None else None)
        # wrappers test ``rec.excluding is not None`` before calling excluded()
        self.excluding = config.excluded_subjects if config.excluded_subjects else None
        self._captures = bool(config.captured_headers)
        self.envelopes = bool(config.envelope_subjects)
        # receive spans may take receiving.py's fast path (it checks the rest per message)
        self.plain_receive = not self._captures and not self.envelopes and config.consume_hook is None
        self.hooks = any((config.publish_hook, config.consume_hook, config.request_hook, config.response_hook))
        self._link_mode = config.link_mode
        self._warned_hooks: set[int] = set()  # coroutine-function hooks a synchronous call could not run
        self.live = False  # an SDK tracer or meter was seen: idle() is False from then on (no call needed)
        self._measuring = False  # an SDK meter was seen: measuring() is True from then on
        # a meter that may record later: the global proxy meter before a meter provider is set
        self._proxy_meter: Any = metrics.meter if metrics is not None and not metrics.noop and metrics.idle() else None
        # what idle() asks first: True while no provider is set behind the tracer and that meter
        self._no_sdk = otel_private.no_sdk_probe(tracer, self._proxy_meter)
        self.measuring()
        # a publish's gate (sending.publish_gate): True while idle() and nothing_to_inject() are; None
        # when that cannot be told without idle()'s calls
        self.quiet = (
            None if self._measuring else otel_private.quiet_check(tracer, self._proxy_meter, propagation.is_stock)
        )

    def measuring(self) -> bool:
        """True when metrics are recorded: a meter from an SDK (cached once True, like :meth:`idle`)."""
        if self._measuring:
            return True
        metrics = self.metrics
        if metrics is None or metrics.noop:
            return False
        # a global proxy meter records only once a meter provider is set (see NatsMetrics.idle)
        self._measuring = otel_private.meter_resolved(metrics.meter)
        return self._measuring

    def idle(self) -> bool:
        """True while nothing can be recorded: no SDK tracer and no SDK meter (the API's no-op)."""
        if self.live:
            return False
        probe = self._no_sdk
        if probe is not None and not self._measuring and probe():
            return True  # (what the lines below find, without their calls)
        # the API's no-op tracer, or the global proxy tracer before a provider is set: no SDK
        if otel_private.tracer_is_noop(self.tracer) and not self.measuring():
            return True
        self.live = True
        return False

    def describe(self, op: Operation, cached: Entry | None = None) -> tuple[str, Attrs, Attrs]:
        """Span name, span attributes and metric attributes of ``op``: the cached ones of its
        destination (see clients.py; ``cached``: already looked up) and the per-message attributes."""
        name, attrs, metric_attrs, per_message = self.clients.entry(op) if cached is None else cached
        attrs = dict(attrs)
        subject = op.subject
        if per_message and subject:
            for k in self.keys.subject:
                attrs[k] = subject
        if op.body_size is not None:
            attrs[names.BODY_SIZE] = op.body_size
        if op.reply_to:
            attrs[names.NATS_REPLY_TO] = op.reply_to
        headers = op.headers
        if headers and (self._captures or type(headers) is not dict or attributes.MSG_ID_HEADER in headers):
            attrs.update(attributes.header_attributes(headers, self.config.captured_headers))
        if op.sid is not None:
            metrics = self.metrics
            dropped = metrics.sub_dropped if metrics is not None and metrics.any_dropped else None
            attributes.subscription_attributes(op.sid, op.access.subscription_counts(op.client, op.sid), dropped, attrs)
        if op.extra:
            attrs.update(op.extra)
        return name, attrs, metric_attrs

    def metering(self) -> bool:
        """True when an operation starting now records metrics (see :meth:`measuring`): a global
        proxy meter is a plain attribute check, no call, until a meter provider is set."""
        proxy = self._proxy_meter
        return self._measuring or (proxy is not None and otel_private.meter_resolved(proxy) and self.measuring())

    def inject(
        self,
        access: ClientAccess,
        client: Any,
        payload: Any,
        headers: Any,
        *,
        span_current: bool = False,
        context: Context | None = None,
        span: Span | None = None,
        parent: Context | None = None,
    ) -> Any:
        """Headers for an outgoing message carrying the current context, or ``context``, or ``span``
        as a child of ``parent`` (see :func:`propagation.inject`); ``span_current``: the context is
        not empty (the caller just made a span current, or gives ``context`` or ``span``)."""
        try:
            if not span_current and propagation.nothing_to_inject():
                return headers
            size = len(payload) if payload is not None else 0
            info, limit = access.send_limits(client)
            carrier = None if span is None else propagation.span_carrier(span, parent, headers)
            out, skipped = propagation.inject(headers, size, info, limit, context, carrier)
            if skipped is not None and self.metrics is not None:
                self.metrics.skipped(skipped, client)
            return out
        except Exception:
            _LOG.debug("could not inject context into NATS headers", exc_info=True)
            return headers

    def excluded(self, subject: Any) -> bool:
        """True when ``subject`` matches ``excluded_subjects``: the operation passes through untouched
        (no span, no header injection). Every wrapper asks here, so metrics must skip it too."""
        excluding = self.excluding
        return excluding is not None and subject in excluding

    def producer_context(self, headers: Any, subject: str, data: Any) -> Context:
        """The producer context a message carries: its headers, else (for ``envelope_subjects``) a JSON
        envelope ``{"traceparent", "tracestate", "data"}`` in its payload; an empty context when there is none."""
        ctx = propagation.extract(headers)
        if self.envelopes and not propagation.has_span(ctx) and subject in self.config.envelope_subjects:
            env_ctx, _ = unwrap_envelope(data)
            if env_ctx is not None:
                ctx = env_ctx
        return ctx

    def consumer_parent(
        self, headers: Any, subject: str, data: Any, idle: bool = False
    ) -> tuple[Context, list[Link] | None]:
        """Parent context and links of a process span for a message (see :meth:`producer_context`):
        a child of the producer's context with a link to it; in ``link`` mode a root with the link.

        ``idle``: no SDK, the span records nothing (no links are built)."""
        ctx = self.producer_context(headers, subject, data) if self.envelopes else propagation.extract(headers)
        links = None if idle else creation_links(ctx)
        if self._link_mode:
            return _ROOT, links
        return ctx, links

    def delivery(self, subject: str, headers: Any, data: Any) -> tuple[Context, list[Link] | None, bool] | None:
        """How a subscription callback runs for a delivered message: ``None`` when untouched (an
        excluded subject; no SDK and no context to carry or to switch from), else the parent and
        links of its process span and whether it is idle (no SDK: the callback just runs in the
        parent context, no span). ``headers``: the message's headers as the family reads them."""
        if self.excluding is not None and self.excluded(subject):
            return None
        idle = not self.live and self.idle()
        if idle and not headers and not self.envelopes and not propagation.current_context():
            return None
        parent, links = self.consumer_parent(headers, subject, data, idle)
        if idle:
            if not parent and not propagation.current_context():  # (empty already: nothing to switch)
                return None
            if otel_private.BAGGAGE_KEY in parent:  # (its baggage set aside, see callback_context)
                parent = propagation.callback_context(None, parent)
        return parent, links, idle

    def settle_parent(self, headers: Any, subject: str, data: Any) -> tuple[Context | None, list[Link] | None]:
        """Parent and links of a settle span (ack …) for a message (its headers as the family reads
        them, subject and data): the current span when there is one, else the message's creation
        context (an ack outside any span joins the producer's trace); a link to the creation context
        either way. ``(None, None)`` while nothing records (no SDK)."""
        if not self.live and self.idle():
            return None, None
        try:
            producer = self.producer_context(headers, subject, data)
        except Exception:
            _LOG.debug("could not read the creation context of a settled message", exc_info=True)
            return None, None
        if trace.get_current_span().get_span_context().is_valid:
            return None, creation_links(producer)
        return producer, creation_links(producer)

    def _hook_for(self, op: Operation) -> Hook | None:
        cfg = self.config
        if op.op is names.REQUEST:
            return cfg.request_hook
        if op.op is names.PUBLISH or op.op is names.RESPOND:  # (a CLIENT span too: see caller_links)
            return cfg.publish_hook
        if op.op is names.PROCESS:
            return cfg.consume_hook
        return None

    async def run(
        self,
        op: Operation,
        wrapped: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        parent: Context | None = None,
        links: list[Link] | None = None,
        inject: bool = False,
        then: Then | None = None,
    ) -> Any:
        """Run ``wrapped(*args, **kwargs)`` inside the span of ``op``; exceptions are recorded and re-raised.

        With ``inject``, ``args`` are ``Client.publish``'s ``(subject, payload, reply, headers)``: the
        message goes out, as ``wrapped(subject, payload, reply=reply, headers=headers)``, with headers
        carrying the span's context (see :meth:`inject`). With ``then``, the span stays open after a
        successful call: ``then(span, op, result)`` ends it later."""
        span = self.start(op, parent=parent, links=links)
        consumer = op.kind is CONSUMER or op.kind is SERVER
        try:
            if not self.hooks and not consumer:  # not made current (see the module's fast paths)
                if inject:  # nothing instrumented inside a plain publish: not even the ACTIVE marker
                    subject, payload, reply, headers = args
                    headers = self.inject(
                        op.access, op.client, payload, headers, span_current=True, span=span, parent=parent
                    )
                    result = await wrapped(subject, payload, reply=reply, headers=headers)
                else:
                    op.span, op.parent = span, parent
                    active = ACTIVE.set(op)
                    try:
                        result = await wrapped(*args, **kwargs)
                    finally:
                        ACTIVE.reset(active)
            else:
                tokens = self._make_current(span, op, parent, consumer)
                try:
                    if self.hooks and op.hook_args and span.is_recording():
                        await call_hook(self._hook_for(op), span, *op.hook_args)
                    if inject:
                        subject, payload, reply, headers = args
                        headers = self.inject(op.access, op.client, payload, headers, span_current=True)
                        args, kwargs = (subject, payload), {"reply": reply, "headers": headers}
                    result = await wrapped(*args, **kwargs)
                finally:
                    _restore(tokens)
        except BaseException as exc:
            self.finish(span, op, error=exc)
            raise
        if then is not None:
            then(span, op, result)
        elif op.op is names.REQUEST and self.config.response_hook is not None and span.is_recording():
            try:
                await call_hook(self.config.response_hook, span, result)
            finally:
                self.finish(span, op, result)
        else:
            self.ended(span, op, result)
        return result

    def subject_entry(self, access: ClientAccess, client: Any, op: Op, subject: str) -> Entry | None:
        """The cached entry of ``op`` on ``subject`` when it may take :meth:`run_cached`: an SDK
        tracer, no hooks, no metrics, and the destination seen before (the caller checks that there
        are no headers of the caller's to read)."""
        if not self.live or self.hooks or self.metering():
            return None  # (metrics asked first: with them, run looks the entry up itself)
        return self.clients.subject_entry(client, access, op, subject)

    async def run_cached(
        self,
        op: Operation,
        cached: Entry,
        wrapped: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        carry: bool = False,
    ) -> Any:
        """:meth:`run` for ``op`` when :meth:`subject_entry` found its destination's entry (``cached``),
        as a child of the current context: what ``run`` does without hooks, links or metrics, and
        without looking the entry up again. ``carry``: the call is ``wrapped(subject, payload, …)``
        and takes ``headers=``, which the caller left empty and nothing inside adds to: the context
        is injected here and given as those headers, and the client internals inside pass through
        instead of injecting (a plain JetStream publish).

        Why: round trips (a request and its reply, a JetStream publish) sit nearest their 1.05 x
        hand-written bound. Taking this path with an operation built by ``fast_operation``, not by
        keywords, and carrying the JetStream publish's context, took the sampled nats-py JetStream
        publish from 1.021 to 1.010 x hand-written instructions and nats-py's request/reply from
        1.002 to 0.990 x (callgrind, 1 000 messages)."""
        parent = current_context()
        name, attrs, _ = self.describe(op, cached)
        op.started = start = now()
        span = self.tracer.start_span(name, parent, op.kind, attrs, None, start)
        op.span, op.parent = span, parent  # (its client internals inject it: see run)
        if carry:
            op.inject = False
            headers = self.inject(op.access, op.client, args[1], None, span_current=True, span=span, parent=parent)
            kwargs = {**kwargs, "headers": headers}
        try:
            active = ACTIVE.set(op)
            try:
                result = await wrapped(*args, **kwargs)
            finally:
                ACTIVE.reset(active)
        except BaseException as exc:
            self.finish(span, op, error=exc)
            raise
        self.ended(span, op, result)
        return result

    def run_sync(
        self,
        op: Operation,
        wrapped: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        parent: Context | None = None,
        links: list[Link] | None = None,
    ) -> Any:
        """:meth:`run` for a synchronous call (a consumer's callback): ``wrapped(*args, **kwargs)``
        inside the span of ``op``, made current; exceptions are recorded and re-raised.

        Its hook is called synchronously: a coroutine-function hook cannot be awaited here, so it is
        not run (one warning says so)."""
        span = self.start(op, parent=parent, links=links)
        try:
            tokens = self._make_current(span, op, parent, op.kind is CONSUMER or op.kind is SERVER)
            try:
                if self.hooks and op.hook_args and span.is_recording():
                    call_hook_sync(self._hook_for(op), span, *op.hook_args, warned=self._warned_hooks)
                result = wrapped(*args, **kwargs)
            finally:
                _restore(tokens)
        except BaseException as exc:
            self.finish(span, op, error=exc)
            raise
        self.ended(span, op, result)
        return result

    @staticmethod
    def _make_current(span: Span, op: Operation, parent: Context | None, consumer: bool) -> tuple[Any, Any]:
        """Make ``span`` (a child of ``parent``) current and mark the client internals it runs: a
        consumer's are the application's code (nothing is marked), and run with the message's
        baggage set aside (see :func:`propagation.callback_context`)."""
        if consumer and parent is not None:
            ctx = propagation.callback_context(span, parent)
        else:
            ctx = propagation.with_span(span, parent)
        return propagation.attach(ctx), ACTIVE.set(None if consumer else op)

    def ended(self, span: Span, op: Operation, result: Any) -> None:
        """A successful call of ``op`` returned ``result``: end its span (see :meth:`finish`)."""
        if op.metric_attrs is None and (op.on_result is None or not span.is_recording()):
            span.end()  # nothing to add
        else:
            self.finish(span, op, result)

    def start(
        self,
        op: Operation,
        *,
        parent: Context | None = None,
        links: list[Link] | None = None,
        start_time: int | None = None,
    ) -> Span:
        """Start the span of ``op`` (not made current); ``op.started`` is the start time."""
        if not self.live and self.idle():  # no SDK: a no-op span carrying the parent's context
            op.metric_attrs = None  # (no attributes, and no metrics either: finish() records none)
            return self.tracer.start_span(op.op.name, context=parent, kind=op.kind)
        op.started = start = start_time or now()
        name, attrs, metric_attrs = self.describe(op)
        # no metric attributes (and so no metrics in finish()) while the meter is a no-op (metering(),
        # written out: one call less per message)
        proxy = self._proxy_meter
        measuring = self._measuring or (proxy is not None and otel_private.meter_resolved(proxy) and self.measuring())
        op.metric_attrs = metric_attrs if measuring else None
        return self.tracer.start_span(name, parent, op.kind, attrs, links, start)

    def finish(
        self,
        span: Span,
        op: Operation,
        result: Any = None,
        *,
        error: BaseException | None = None,
        messages: int = 1,
        nbytes: int | None = None,
        end_time: int | None = None,
    ) -> None:
        """End the span of ``op`` (at ``end_time``, else now) with the call's result or error, and
        record its metrics. A result that is an error the caller sees (``op.result_error``) is
        recorded as one."""
        if error is None and op.result_error is not None:
            try:
                error = op.result_error(result)
            except Exception:
                _LOG.debug("could not read an error from a %s result", op.op.name, exc_info=True)
        if error is not None:
            record_error(span, error)
            if self.events is not None:
                self.events.emit(self, span, op, error)
        elif op.on_result is not None and span.is_recording():
            try:
                span.set_attributes(op.on_result(self.keys, result, op.client))
            except Exception:
                _LOG.debug("could not read attributes from a %s result", op.op.name, exc_info=True)
        span.end(end_time)
        self.measure(op, error, messages, nbytes, end_time)

    def measure(
        self, op: Operation, error: BaseException | None, messages: int, nbytes: int | None, end_time: int | None = None
    ) -> None:
        """Record the metrics of an ended operation (none when ``op.metric_attrs`` is ``None``: no SDK meter)."""
        if self.metrics is not None and op.metric_attrs is not None:
            try:
                seconds = ((end_time or now()) - op.started) / 1e9
                nbytes = op.body_size if nbytes is None else nbytes
                self.metrics.record(op, op.metric_attrs or {}, seconds, error, messages, nbytes)
            except Exception:
                _LOG.debug("could not record metrics for %s", op.op.name, exc_info=True)

    def received(self, op: Operation, msg: Any, start_time: int) -> Awaitable[None] | None:
        """Record a receive span for a message handed to the application (started at ``start_time``):
        in the caller's current context, with a link to the message's creation context (read from
        ``op.headers``: the family's view of the message's headers).

        Returns ``None`` when the span has ended, or - with a ``consume_hook`` to call - an awaitable
        that calls it and ends the span (not a coroutine function: only the hook needs a coroutine,
        about 1.5 µs per message in-process on nats-core)."""
        headers = op.headers
        ctx = self.producer_context(headers, op.subject, msg.data) if self.envelopes else propagation.extract(headers)
        span = self.start(op, links=creation_links(ctx), start_time=start_time)
        hook = self.config.consume_hook
        if hook is not None and span.is_recording():
            return self._hooked(hook, span, op, msg)
        if op.metric_attrs is None:
            span.end()  # (no metrics to record, and a receive has no result)
        else:
            self.finish(span, op)
        return None

    async def _hooked(self, hook: Hook, span: Span, op: Operation, msg: Any) -> None:
        try:
            await call_hook(hook, span, msg)
        finally:
            self.finish(span, op)


def record_error(span: Span, exc: BaseException) -> None:
    """Record ``exc`` on ``span``: exception event, ERROR status, ``error.type``."""
    if not span.is_recording():
        return
    try:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.set_attribute(names.ERROR_TYPE, type(exc).__qualname__)
    except Exception:
        _LOG.debug("could not record an exception on a span", exc_info=True)


def _restore(tokens: tuple[Any, Any]) -> None:
    """Undo :meth:`Recorder._make_current`."""
    ACTIVE.reset(tokens[1])
    propagation.detach(tokens[0])
