"""The one place that starts and ends spans, injects and extracts context, and calls hooks.

Patch functions describe a nats-py call as an :class:`Operation` and hand it to
:meth:`Recorder.run` (a call with a span around it) or :meth:`Recorder.received` (a message handed
to the application by ``next_msg``/``async for``).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any
from weakref import ref

from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Link, NoOpTracer, ProxyTracer, Span, SpanKind, Status, StatusCode

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.nats import attributes, names, propagation
from opentelemetry.instrumentation.nats.attributes import Attrs
from opentelemetry.instrumentation.nats.config import Hook, NatsConfig
from opentelemetry.instrumentation.nats.destinations import ClientDestinations, Destinations
from opentelemetry.instrumentation.nats.metrics import NatsMetrics, metric_attribute_keys
from opentelemetry.instrumentation.nats.names import Op

_LOG = logging.getLogger(__name__)

try:  # what is_instrumentation_enabled() reads (tests/test_fast_paths.py checks that enabled() agrees)
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
    from opentelemetry.instrumentation.utils import _SUPPRESS_INSTRUMENTATION_KEY_PLAIN

    _SUPPRESS_KEYS: tuple[str, str] | None = (_SUPPRESS_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY_PLAIN)
except ImportError:  # pragma: no cover - another opentelemetry-instrumentation: ask it
    _SUPPRESS_KEYS = None

# The instrumented operation whose nats-py internals are running in this task. Nested nats-py
# calls (the publish inside ``request``, ``respond`` …) see it, make no span of their own, and
# inject the operation's context instead.
ACTIVE: ContextVar[Operation | None] = ContextVar("opentelemetry_nats_active", default=None)

_ROOT = Context()  # the parent of a root span


class _Installed:
    recorder: Recorder | None = None


def install(recorder: Recorder | None) -> None:
    """Make ``recorder`` the one the patch functions use (``None``: pass everything through)."""
    _Installed.recorder = recorder


def installed() -> Recorder | None:
    return _Installed.recorder


def enabled() -> bool:
    """``is_instrumentation_enabled()``; fast path: an empty current context suppresses nothing, and
    otherwise the two suppression keys are read from the current context directly."""
    ctx = otel_context.get_current()
    if not ctx:
        return True
    if _SUPPRESS_KEYS is None:
        return is_instrumentation_enabled()
    return not (ctx.get(_SUPPRESS_KEYS[0]) or ctx.get(_SUPPRESS_KEYS[1]))


def entry() -> Recorder | None:
    """The recorder to use at a wrapper's entry, or ``None`` when the call must pass through:
    not instrumented, instrumentation suppressed, or inside another instrumented operation."""
    rec = _Installed.recorder
    if rec is None or ACTIVE.get() is not None or not enabled():
        return None
    return rec


@dataclass(slots=True)  # fast path: slots make the one-per-message record cheaper to build
class Operation:
    """One user-visible NATS operation, as the patch functions saw it.

    Fast path: the per-message wrappers pass the leading fields positionally (keyword arguments
    cost more per message), so the fields they use come first; keep this order."""

    op: Op
    kind: SpanKind
    client: Any
    subject: str
    body_size: int | None = None
    reply_to: str | None = None
    headers: Any = None
    hook_args: tuple[Any, ...] = ()
    sid: Any = None
    template: str | None = None
    queue: str | None = None
    extra: Attrs | None = None  # operation-specific attributes (JetStream metadata, micro endpoint …)
    inject: bool = True
    name_dest: str | None = None  # destination shown in the span name instead of the subject
    on_result: Callable[[names.Keys, Any], Attrs] | None = None  # attributes read from the call's result
    started: int = 0  # time_ns() when the operation started (set by the recorder)
    metric_attrs: Attrs | None = None  # cached low-cardinality metric attributes (set by the recorder)
    context: Context | None = None  # what its internals inject when its span is not current (see run)


# Marks nats-py internals that make no spans and inject nothing: the internals of an excluded
# operation, nats.micro's own setup and verb handlers …
INTERNAL = Operation(names.PROCESS, SpanKind.INTERNAL, None, "", inject=False)


async def untraced(wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Await ``wrapped`` as nats-py internals: nested nats-py calls make no spans and inject nothing
    (and subscriptions made inside keep their callbacks unwrapped)."""
    token = ACTIVE.set(INTERNAL)
    try:
        return await wrapped(*args, **kwargs)
    finally:
        ACTIVE.reset(token)


class _ClientState(ClientDestinations):
    """Per-connection cache: connection attributes and per-subject span name + attributes (see
    :class:`~.destinations.ClientDestinations`).

    Rebuilt when the client's server INFO or current server changes (reconnects, failover)."""

    __slots__ = ("inbox", "info", "server")

    def __init__(self, client: Any, keys: names.Keys) -> None:
        super().__init__(attributes.connection_attributes(keys, client))
        self.info = getattr(client, "_server_info", None)
        self.server = getattr(client, "_current_server", None)
        self.inbox = attributes.inbox_prefix(client)


def _noop_tracer(tracer: trace.Tracer) -> bool:
    """True when ``tracer`` is the API's no-op tracer, or the global proxy tracer before a tracer
    provider is set (no SDK): its spans record nothing and only carry their parent's context."""
    if isinstance(tracer, ProxyTracer):
        tracer = getattr(tracer, "_tracer", tracer)  # the real tracer once a provider is set
    return isinstance(tracer, NoOpTracer)


class Recorder:
    """Starts/ends spans for :class:`Operation` records."""

    def __init__(self, tracer: trace.Tracer, config: NatsConfig, metrics: NatsMetrics | None = None) -> None:
        self.tracer = tracer
        self.config = config
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
        self._clients: dict[int, tuple[ref[Any], _ClientState]] = {}  # id(client) → (client, its state)
        # fast path: with no excluded_subjects configured, excluded() needs no pattern set lookup
        # (hot wrappers test ``rec.excluding is not None`` before calling it)
        self.excluding = config.excluded_subjects if config.excluded_subjects else None
        self._captures = bool(config.captured_headers)
        self._envelopes = bool(config.envelope_subjects)
        self._hooks = any((config.publish_hook, config.consume_hook, config.request_hook, config.response_hook))
        self._link_mode = config.link_mode
        self.live = False  # an SDK tracer or meter was seen: idle() is False from then on (no call needed)
        self._measuring = False  # an SDK meter was seen: measuring() is True from then on
        # a meter that may record later: the global proxy meter before a meter provider is set
        self._proxy_meter = metrics.meter if metrics is not None and not metrics.noop and metrics.idle() else None
        self.measuring()

    def measuring(self) -> bool:
        """True when metrics are recorded: a meter from an SDK (cached once True, like :meth:`idle`)."""
        if self._measuring:
            return True
        metrics = self.metrics
        if metrics is None or metrics.noop:
            return False
        # a global proxy meter records only once a meter provider is set (see NatsMetrics.idle)
        self._measuring = getattr(metrics.meter, "_real_meter", False) is not None
        return self._measuring

    def idle(self) -> bool:
        """True while nothing can be recorded: no SDK tracer and no SDK meter (the API's no-op).

        Fast path: a span would then only carry its parent's context, so wrappers just propagate
        the current context and skip attributes, spans and metrics. Once a real tracer or meter
        shows up (a provider set later) it stays, so the answer is cached as soon as it is False."""
        if self.live:
            return False
        if _noop_tracer(self.tracer) and not self.measuring():
            return True
        self.live = True
        return False

    # --- attributes ------------------------------------------------------------------------

    def _state(self, client: Any) -> _ClientState:
        # fast path: a plain dict keyed by id() with a weak reference to check the client (a
        # WeakKeyDictionary lookup makes a new weak reference per call)
        key = id(client)
        entry = self._clients.get(key)
        if (
            entry is not None
            and entry[0]() is client
            and entry[1].info is getattr(client, "_server_info", None)
            and entry[1].server is getattr(client, "_current_server", None)
        ):
            return entry[1]
        state = _ClientState(client, self.keys)
        try:
            self._clients[key] = (ref(client, partial(self._forget, key)), state)
        except TypeError:  # not weak-referenceable: not cached
            return state
        if self.metrics is not None:
            self.metrics.track(client)
        return state

    def _forget(self, key: int, gone: ref[Any]) -> None:
        """A client was garbage-collected: drop its state (unless the id is in use again)."""
        entry = self._clients.get(key)
        if entry is not None and entry[0] is gone:
            del self._clients[key]

    def describe(self, op: Operation) -> tuple[str, Attrs, Attrs]:
        """Span name, span attributes and metric attributes of ``op``.

        Everything but the per-message attributes comes from a bounded per-subject cache (built by
        :meth:`.destinations.Destinations.entry` on a miss)."""
        state = self._state(op.client)
        subject = op.subject
        key: tuple[Any, ...] = (op.op, subject, op.template, op.queue, op.name_dest)
        # fast path: temporary subjects (a new inbox per request, an ack subject per message) and the
        # subjects a wildcard subscription receives (named by the subscription) share one cache
        # entry; only their destination name is added per message (so is the name of other subjects
        # that do not name the span: see destinations.py). A reply almost always goes to an inbox,
        # so that is tested first; other subjects are looked up first.
        cached = None if op.op is names.RESPOND else state.recent.get(key)
        if cached is None:
            temporary = subject.startswith(state.inbox) or subject.startswith(names.JS_ACK_PREFIX)
            if temporary or op.template is not None:
                key = (op.op, temporary, op.template, op.queue, op.name_dest)  # (no subject is a bool)
                cached = state.recent.get(key)
            elif op.op is names.RESPOND:
                cached = state.recent.get(key)
            if cached is None:
                cached = state.recall(key) or self.destinations.entry(state, key, op, temporary)
        name, attrs, metric_attrs, per_message = cached
        attrs = dict(attrs)
        if per_message and subject:
            for k in self.keys.subject:
                attrs[k] = subject
        if op.body_size is not None:
            attrs[names.BODY_SIZE] = op.body_size
        if op.reply_to:
            attrs[names.NATS_REPLY_TO] = op.reply_to
        headers = op.headers
        # fast path: without captured_headers, a headers dict matters only when it has a Nats-Msg-Id
        if headers and (self._captures or type(headers) is not dict or attributes.MSG_ID_HEADER in headers):
            attrs.update(attributes.header_attributes(headers, self.config.captured_headers))
        if op.sid is not None:
            metrics = self.metrics
            dropped = metrics.sub_dropped if metrics is not None and metrics.any_dropped else None
            attributes.subscription_attributes(op.client, op.sid, dropped, attrs)
        if op.extra:
            attrs.update(op.extra)
        return name, attrs, metric_attrs

    # --- propagation -----------------------------------------------------------------------

    def inject(
        self, client: Any, payload: Any, headers: Any, span_current: bool = False, context: Context | None = None
    ) -> Any:
        """Headers for an outgoing message carrying the current context, or ``context``, (see
        :func:`propagation.inject`).

        ``span_current``: the caller just made a span current (or gives its ``context``), so the
        context is not empty."""
        try:
            if not span_current and propagation.nothing_to_inject():  # fast path: no context (no SDK, no span)
                return headers
            size = len(payload) if payload is not None else 0
            # fast path: nats-py keeps its INFO in a dict and max_payload as an int (no getter calls)
            info = getattr(client, "_server_info", None)
            if type(info) is not dict:
                info = attributes.server_info(client)
            limit = getattr(client, "_max_payload", None)
            if type(limit) is not int:
                limit = attributes.max_payload(client)
            out, skipped = propagation.inject(headers, size, info, limit, context)
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
        """The producer context a message carries: its headers, else (for ``envelope_subjects``) a seed
        JSON envelope in its payload; an empty context when there is none."""
        ctx = propagation.extract(headers)
        if self._envelopes and not propagation.has_span(ctx) and subject in self.config.envelope_subjects:
            env_ctx, _ = propagation.unwrap_envelope(data)
            if env_ctx is not None:
                ctx = env_ctx
        return ctx

    def consumer_parent(
        self, headers: Any, subject: str, data: Any, idle: bool = False
    ) -> tuple[Context, list[Link] | None]:
        """Parent context and links of a process span for a message (see :meth:`producer_context`):
        a child of the producer's context with a link to it; in ``link`` mode a root with the link.

        ``idle``: no SDK, the span records nothing (no links are built)."""
        # (fast path: without envelope_subjects the producer context is just the headers' one)
        ctx = self.producer_context(headers, subject, data) if self._envelopes else propagation.extract(headers)
        links = None if idle else creation_links(ctx)
        if self._link_mode:
            return _ROOT, links
        return ctx, links

    def settle_parent(self, msg: Any) -> tuple[Context | None, list[Link] | None]:
        """Parent and links of a settle span (ack …) for ``msg``: the current span when there is one,
        else the message's creation context (an ack outside any span joins the producer's trace);
        a link to the creation context either way. ``(None, None)`` while nothing records (no SDK)."""
        if not self.live and self.idle():
            return None, None
        try:
            producer = self.producer_context(msg.headers, msg.subject, msg.data)
        except Exception:
            _LOG.debug("could not read the creation context of a settled message", exc_info=True)
            return None, None
        if trace.get_current_span().get_span_context().is_valid:
            return None, creation_links(producer)
        return producer, creation_links(producer)

    # --- spans -----------------------------------------------------------------------------

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
        parent: Context | None = None,
        links: list[Link] | None = None,
        inject: bool = False,
    ) -> Any:
        """Run ``wrapped(*args, **kwargs)`` inside the span of ``op``; exceptions are recorded and re-raised.

        With ``inject``, ``args`` are ``Client.publish``'s ``(subject, payload, reply, headers)``: the
        message goes out with headers carrying the span's context (see :meth:`inject`)."""
        span = self.start(op, parent, links)
        if not self._hooks and op.kind is not SpanKind.CONSUMER and op.kind is not SpanKind.SERVER:
            # fast path: only nats-py internals run inside a producer/client operation (no hook, no
            # application code), so its span is not made current (no context attach/detach): a
            # plain publish injects the span's context itself, and the internals of the others
            # (the publish inside request, respond, JetStream publish …) inject ``op.context``
            ctx = trace.set_span_in_context(span, parent)
            try:
                if inject:  # nothing instrumented inside a plain publish: not even the ACTIVE marker
                    subject, payload, reply, headers = args
                    headers = self.inject(op.client, payload, headers, True, ctx)
                    result = await wrapped(subject, payload, reply, headers)
                else:
                    op.context = ctx
                    active = ACTIVE.set(op)
                    try:
                        result = await wrapped(*args, **kwargs)
                    finally:
                        ACTIVE.reset(active)
            except BaseException as exc:
                self.finish(span, op, error=exc)
                raise
            # fast path: nothing to add (no metrics; no result attributes, or an unsampled span): just end it
            if op.metric_attrs is None and (op.on_result is None or not span.is_recording()):
                span.end()
            else:
                self.finish(span, op, result)
            return result
        try:
            # fast path: call()'s body inlined (one coroutine frame less per message)
            token = otel_context.attach(trace.set_span_in_context(span, parent))
            active = ACTIVE.set(op if op.kind is not SpanKind.CONSUMER and op.kind is not SpanKind.SERVER else None)
            try:
                # fast path: no hook lookup or hook coroutine per message when no hook is configured
                if self._hooks and op.hook_args and span.is_recording():
                    await call_hook(self._hook_for(op), span, *op.hook_args)
                if inject:
                    subject, payload, reply, headers = args
                    args = (subject, payload, reply, self.inject(op.client, payload, headers, True))
                result = await wrapped(*args, **kwargs)
            finally:
                ACTIVE.reset(active)
                otel_context.detach(token)
        except BaseException as exc:
            self.finish(span, op, error=exc)
            raise
        if op.on_result is None and op.metric_attrs is None:  # fast path: nothing to add: just end the span
            span.end()
            return result
        try:
            if op.op is names.REQUEST and self.config.response_hook is not None and span.is_recording():
                await call_hook(self.config.response_hook, span, result)
        finally:
            self.finish(span, op, result)
        return result

    async def call(
        self,
        span: Span,
        op: Operation,
        wrapped: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        parent: Context | None = None,
    ) -> Any:
        """Await ``wrapped`` with ``span`` current and ``op`` marking nats-py internals (the span stays open)."""
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        active = ACTIVE.set(op if op.kind is not SpanKind.CONSUMER and op.kind is not SpanKind.SERVER else None)
        try:
            if self._hooks and op.hook_args and span.is_recording():
                await call_hook(self._hook_for(op), span, *op.hook_args)
            return await wrapped(*args, **kwargs)
        finally:
            ACTIVE.reset(active)
            otel_context.detach(token)

    def start(
        self,
        op: Operation,
        parent: Context | None = None,
        links: list[Link] | None = None,
        start_time: int | None = None,
    ) -> Span:
        """Start the span of ``op`` (not made current); ``op.started`` is the start time."""
        if not self.live and self.idle():  # fast path: no SDK - a no-op span carrying the parent's context
            op.metric_attrs = None  # (no attributes, and no metrics either: finish() records none)
            return self.tracer.start_span(op.op.name, context=parent, kind=op.kind)
        op.started = start = start_time or time.time_ns()
        name, attrs, metric_attrs = self.describe(op)
        # fast path: no metric attributes (and so no metrics in finish()) while the meter is a no-op;
        # a global proxy meter is a plain attribute check, no call, until a meter provider is set
        proxy = self._proxy_meter
        measuring = self._measuring or (
            proxy is not None and getattr(proxy, "_real_meter", None) is not None and self.measuring()
        )
        op.metric_attrs = metric_attrs if measuring else None
        # (positional: Tracer.start_span's parameter order; cheaper than keywords per message)
        return self.tracer.start_span(name, parent, op.kind, attrs, links, start)

    def finish(
        self,
        span: Span,
        op: Operation,
        result: Any = None,
        error: BaseException | None = None,
        messages: int = 1,
        nbytes: int | None = None,
    ) -> None:
        """End the span of ``op`` with the call's result or error, and record its metrics."""
        if error is not None:
            record_error(span, error)
        elif op.on_result is not None and span.is_recording():
            try:
                span.set_attributes(op.on_result(self.keys, result))
            except Exception:
                _LOG.debug("could not read attributes from a %s result", op.op.name, exc_info=True)
        span.end()
        self._measure(op, error, messages, nbytes)

    def _measure(self, op: Operation, error: BaseException | None, messages: int, nbytes: int | None) -> None:
        """Record the metrics of an ended operation (none when ``op.metric_attrs`` is ``None``: no SDK meter)."""
        if self.metrics is not None and op.metric_attrs is not None:
            try:
                seconds = (time.time_ns() - op.started) / 1e9
                nbytes = op.body_size if nbytes is None else nbytes
                self.metrics.record(op, op.metric_attrs or {}, seconds, error, messages, nbytes)
            except Exception:
                _LOG.debug("could not record metrics for %s", op.op.name, exc_info=True)

    def fetched(self, op: Operation, start_time: int, msgs: Any = None, error: BaseException | None = None) -> None:
        """Record a ``fetch`` that already happened: its links (one per message) are known only now."""
        msgs = msgs or []
        links: list[Link] = []
        for msg in msgs:
            links += creation_links(self.producer_context(msg.headers, msg.subject, msg.data)) or ()
        span = self.start(op, links=links, start_time=start_time)
        self.finish(span, op, msgs, error, messages=len(msgs), nbytes=sum(len(m.data) for m in msgs))
        if self.metrics is not None:
            for msg in msgs:
                meta = attributes.jetstream_message_attributes(msg.reply)
                if meta:
                    self.metrics.jetstream_message(meta, op.metric_attrs or {})

    def fetched_nothing(self, op: Operation, start_time: int, cancelled: bool) -> None:
        """Record a ``fetch`` that returned no messages (its ``TimeoutError``, the normal "no messages"
        answer), or that was cancelled while it waited (a consumer shutting down): never an error, and
        no span unless ``empty_fetch_spans`` is on. Metrics: an empty fetch is recorded (a batch of
        none); a cancelled one is not (it did not complete)."""
        if self.config.empty_fetch_spans:
            span = self.start(op, start_time=start_time)
            if cancelled:
                op.metric_attrs = None
            self.finish(span, op, (), messages=0, nbytes=0)
        elif not cancelled and self.measuring():
            op.started = start_time
            op.metric_attrs = self.describe(op)[2]
            self._measure(op, None, 0, 0)

    async def received(self, op: Operation, msg: Any, start_time: int) -> None:
        """Record a receive span for a message handed to the application (started at ``start_time``):
        in the caller's current context, with a link to the message's creation context."""
        links = creation_links(self.producer_context(msg.headers, msg.subject, msg.data))
        span = self.start(op, None, links, start_time)
        if span.is_recording() and self.config.consume_hook is not None:
            await call_hook(self.config.consume_hook, span, msg)
        self.finish(span, op)


def creation_links(ctx: Context) -> list[Link] | None:
    """A link to the span context in ``ctx`` (a message's creation context), or ``None`` when it has none."""
    span_ctx = trace.get_current_span(ctx).get_span_context()
    return [Link(span_ctx)] if span_ctx.is_valid else None


def caller_links(headers: Any) -> list[Link] | None:
    """A link to the creation context the caller already put in outgoing ``headers`` (what the
    configured propagator writes), else ``None``. Such headers are sent unchanged (semconv: a
    creation context SHOULD NOT be modified) and the send span is CLIENT, linked to it."""
    span_ctx = propagation.carried_context(headers)
    return [Link(span_ctx)] if span_ctx is not None else None


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


async def call_hook(hook: Hook | None, *args: Any) -> None:
    """Call a user hook (plain or coroutine function); its exceptions are logged and swallowed."""
    if hook is None:
        return
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        _LOG.exception("OpenTelemetry NATS hook %r raised; ignored", hook)


def now() -> int:
    return time.time_ns()
