"""Every private OpenTelemetry API/SDK name this package uses: why, and what happens without it.

The per-message paths read OpenTelemetry's own state directly where the public call costs as much
as the instrumented NATS call itself. Each name below is read defensively at import (or on first
use): when a release renames or removes it, the public API takes over (slower, same behaviour),
except where a section says otherwise. The tests run on the oldest (1.30) and the newest supported
opentelemetry-api/-sdk releases, which checks each fast path against the public behaviour.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from time import time_ns
from typing import Any

from opentelemetry.context import Context, attach, detach, get_current
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import NoOpTracer, ProxyTracer, Span, set_span_in_context

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

# --- the current context: the runtime context's context variable ----------------------------------
# ``get_current()``/``attach()``/``detach()`` go through two layers of calls to a ContextVar of the
# default runtime context (``contextvars_context``). Reading, setting and resetting that variable
# directly gives the same contexts. Without it (another runtime context, a renamed attribute): the
# public functions.

_RUNTIME: Any = getattr(otel_context, "_RUNTIME_CONTEXT", None)
_VAR: Any = getattr(_RUNTIME, "_current_context", None) if type(_RUNTIME) is ContextVarsRuntimeContext else None
CONTEXT_VAR: ContextVar[Context] | None = _VAR if isinstance(_VAR, ContextVar) else None

current_context: Callable[[], Context] = CONTEXT_VAR.get if CONTEXT_VAR is not None else get_current


def attach_context(ctx: Context) -> Any:
    """``opentelemetry.context.attach(ctx)``."""
    return CONTEXT_VAR.set(ctx) if CONTEXT_VAR is not None else attach(ctx)


def detach_context(token: Any) -> None:
    """``opentelemetry.context.detach(token)`` (which logs what it cannot reset)."""
    try:
        CONTEXT_VAR.reset(token)  # type: ignore[union-attr]
    except Exception:
        detach(token)


# --- context keys ----------------------------------------------------------------------------------
# SPAN_KEY: the key ``set_span_in_context`` stores the span under. A context holding a span is built
# as a plain ``Context({SPAN_KEY: span})`` (one dict, no call). Without it: ``set_span_in_context``.
# BAGGAGE_KEY: tells whether a context has baggage before asking the baggage propagator to write it,
# and moves a processed message's baggage out of a callback's current context (see
# propagation.callback_context). Without it: the propagator is always asked, and the message's
# baggage stays in the callback's current context (FastStream's CurrentBaggage cannot remove entries
# from what an @publisher forwards then).
# SUPPRESS_KEYS: what ``is_instrumentation_enabled()`` reads, checked without its call per message
# (only in a non-empty context). Without them: ``is_instrumentation_enabled()``.

SPAN_KEY: str | None
try:
    from opentelemetry.trace.propagation import _SPAN_KEY as SPAN_KEY
except ImportError:  # pragma: no cover - depends on the installed opentelemetry-api
    SPAN_KEY = None

BAGGAGE_KEY: str | None
try:
    from opentelemetry.baggage import _BAGGAGE_KEY as BAGGAGE_KEY
except ImportError:  # pragma: no cover
    BAGGAGE_KEY = None

SUPPRESS_KEYS: tuple[str, str] | None
try:
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
    from opentelemetry.instrumentation.utils import _SUPPRESS_INSTRUMENTATION_KEY_PLAIN

    SUPPRESS_KEYS = (_SUPPRESS_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY_PLAIN)
except ImportError:  # pragma: no cover
    SUPPRESS_KEYS = None


def context_with_span(span: Span, parent: Context, baggage_to: str | None = None) -> Context:
    """``set_span_in_context(span, parent)``; with ``baggage_to``, the baggage moved under that key
    (see :func:`baggage_moved`)."""
    if SPAN_KEY is None:  # pragma: no cover
        ctx = set_span_in_context(span, parent)
        return ctx if baggage_to is None else baggage_moved(ctx, baggage_to)
    values = dict(parent)
    values[SPAN_KEY] = span
    if baggage_to is not None and BAGGAGE_KEY in values:  # (None never is: the keys are strings)
        moved = values.pop(BAGGAGE_KEY)
        if moved:
            values[baggage_to] = moved
    return Context(values)


def baggage_moved(ctx: Context, to: str) -> Context:
    """``ctx`` with its baggage moved under the key ``to``, where the baggage API does not see it
    (``ctx`` itself when it has none, or when the baggage key is unknown)."""
    if BAGGAGE_KEY not in ctx:
        return ctx
    values = dict(ctx)
    moved = values.pop(BAGGAGE_KEY)  # type: ignore[arg-type]
    if moved:
        values[to] = moved
    return Context(values)


def context_with_baggage(ctx: Context, entries: Mapping[str, object]) -> Context:
    """``ctx`` with exactly ``entries`` as its baggage (what ``set_baggage`` builds, in one step)."""
    if BAGGAGE_KEY is None:  # pragma: no cover - nothing is ever moved then (baggage_moved)
        return ctx
    values = dict(ctx)
    values[BAGGAGE_KEY] = dict(entries)
    return Context(values)


def span_context(span: Span) -> Context:
    """``set_span_in_context(span)`` in an empty context."""
    return Context({SPAN_KEY: span}) if SPAN_KEY is not None else set_span_in_context(span, Context())


def has_baggage(ctx: Context) -> bool:
    """True when ``ctx`` may hold baggage (always, when the key is unknown)."""
    return BAGGAGE_KEY is None or bool(ctx.get(BAGGAGE_KEY))


def suppressed(ctx: Context) -> bool:
    """True when instrumentation is suppressed in ``ctx`` (the current context)."""
    if SUPPRESS_KEYS is None:  # pragma: no cover
        return not is_instrumentation_enabled()
    return bool(ctx.get(SUPPRESS_KEYS[0]) or ctx.get(SUPPRESS_KEYS[1]))


# --- the propagators of a composite propagator ----------------------------------------------------
# The global propagator (a CompositePropagator by default) is asked what it would write only when it
# is not the stock W3C pair (trace context and baggage), whose output propagation.py writes itself.
# Its parts are in ``_propagators``. Without it: ``None``, every propagator is asked as usual.


def propagator_parts(textmap: TextMapPropagator) -> Sequence[TextMapPropagator] | None:
    """The propagators ``textmap`` consists of (itself, unless it is a composite), else ``None``."""
    if not isinstance(textmap, CompositePropagator):
        return [textmap]
    found = getattr(textmap, "_propagators", None)
    return found if isinstance(found, (list, tuple)) else None


# --- is an SDK there? ------------------------------------------------------------------------------
# Without an SDK every span is the API's no-op span and every instrument a no-op, so the wrappers
# only propagate context (recorder.py's idle path). The global proxy tracer and meter resolve to an
# SDK once a provider is set; until then their ``_real_tracer``/``_real_meter`` is None and the
# API's ``_TRACER_PROVIDER`` global is unset. Without these names: a proxy counts as an SDK
# (everything is recorded as usual, through the proxy; only the no-SDK shortcut is lost, and with it
# the gate that lets a no-SDK publish skip its wrapper: quiet_check returns None then).


def meter_resolved(meter: Any) -> bool:
    """False while ``meter`` is the global proxy meter and no meter provider is set."""
    return getattr(meter, "_real_meter", False) is not None


def no_sdk_probe(tracer: Any, proxy_meter: Any) -> Callable[[], bool] | None:
    """A cheap check that is True while neither ``tracer`` nor ``proxy_meter`` (a global proxy meter
    with no provider yet, or ``None``) has an SDK behind it; ``None`` when ``tracer`` is neither the
    API's no-op tracer nor the global proxy tracer (then ask :func:`tracer_is_noop`)."""
    return _no_sdk_check(tracer, proxy_meter, None)


def quiet_check(tracer: Any, proxy_meter: Any, is_stock: Callable[[Any], bool]) -> Callable[[], bool] | None:
    """:func:`no_sdk_probe`'s check that is also False while the current context is not empty or
    ``is_stock(global textmap propagator)`` is False (asked when the global propagator changes): in one
    call, for the no-SDK publish (sending.publish_gate). ``None`` where :func:`no_sdk_probe` is."""
    return _no_sdk_check(tracer, proxy_meter, is_stock)


def _no_sdk_check(tracer: Any, proxy_meter: Any, is_stock: Callable[[Any], bool] | None) -> Callable[[], bool] | None:
    proxied = isinstance(tracer, ProxyTracer) and hasattr(tracer, "_real_tracer") and hasattr(trace, "_TRACER_PROVIDER")
    if not proxied and type(tracer) is not NoOpTracer:
        return None
    if proxy_meter is not None and not hasattr(proxy_meter, "_real_meter"):
        return None
    proxy = tracer if proxied else None
    if is_stock is None:

        def probe() -> bool:
            return (proxy is None or (proxy._real_tracer is None and trace._TRACER_PROVIDER is None)) and (
                proxy_meter is None or proxy_meter._real_meter is None
            )

        return probe

    get_textmap, current = propagate.get_global_textmap, current_context
    seen: object = None  # the global propagator last asked about
    stock = False  # is_stock(seen)

    def quiet() -> bool:
        # (probe()'s condition written out again, not called: 80 against 115 ns per no-SDK publish)
        nonlocal seen, stock
        if current() or not (
            (proxy is None or (proxy._real_tracer is None and trace._TRACER_PROVIDER is None))
            and (proxy_meter is None or proxy_meter._real_meter is None)
        ):
            return False
        textmap = get_textmap()
        if textmap is not seen:
            seen, stock = textmap, is_stock(textmap)
        return stock

    return quiet


def tracer_is_noop(tracer: Any) -> bool:
    """True when ``tracer`` is the API's no-op tracer, or the global proxy tracer still delegating to one."""
    if isinstance(tracer, ProxyTracer):
        tracer = getattr(tracer, "_tracer", tracer)
    return isinstance(tracer, NoOpTracer)


# --- the server trace bridge: sharing the application's SDK pipeline ------------------------------
# Server spans are recorded through one SDK TracerProvider per server (its resource is the server)
# that shares the application's span processors and limits: the SDK provider's
# ``_active_span_processor`` and ``_span_limits``. Without them the bridge records through the
# application's provider itself (server spans then carry the application's resource).


def shared_pipeline(provider: Any) -> tuple[Any, Any] | None:
    """``(span processor, span limits)`` of an SDK ``TracerProvider``, else ``None``."""
    processor = getattr(provider, "_active_span_processor", None)
    if processor is None:
        return None
    return processor, getattr(provider, "_span_limits", None)


# --- the Logs API: exception events ----------------------------------------------------------------
# Exception events (exception_events.py) are log records with an event name, emitted through the
# Logs API, which OpenTelemetry Python still ships under private names (``opentelemetry._logs``,
# and ``opentelemetry.sdk._logs`` for the SDK's record) and whose ``Logger.emit`` changed:
# - 1.38 and newer: ``emit(event_name=…, context=…, …)``; from 1.42 also ``exception=…`` (the SDK
#   then writes the ``exception.*`` attributes itself).
# - 1.30 to 1.37: only ``emit(record)``. An API ``LogRecord`` has no resource, so (as the SDK's own
#   event logger of those releases did) the SDK's ``LogRecord`` is built with the logger's resource,
#   when the SDK is installed. The event name is the record's ``event_name`` from 1.35, an
#   ``event.name`` attribute before (what the Events API of those releases wrote).
# The variant is chosen once, from the signatures, in ``instrument()``. When a release renames or
# removes these names, the import or a signature check fails: exception events are off, with a
# warning (see exception_events.py); spans, metrics and the application are unaffected.

# emit(event_name, severity_number, severity_text, span, attributes, exception)
LogEmit = Callable[[str, int, str, Span, dict[str, Any], BaseException], None]
EVENT_NAME_ATTRIBUTE = "event.name"  # the event name where a record has no field for it (< 1.35)


def logs_emitter(logger_provider: Any, scope: str, version: str, schema_url: str) -> tuple[LogEmit, bool]:
    """How to emit an event on the installed Logs API, and whether it takes the exception itself
    (else the caller writes the ``exception.*`` attributes); raises when there is no usable one."""
    from opentelemetry import _logs

    if "event_name" not in inspect.signature(_logs.Logger.emit).parameters:
        return _record_emitter(_logs, logger_provider, scope, version, schema_url), False
    logger = _logs.get_logger(scope, version, logger_provider, schema_url=schema_url)
    takes_exception = "exception" in inspect.signature(_logs.Logger.emit).parameters

    def emit(name: str, severity: int, text: str, span: Span, attrs: dict[str, Any], exc: BaseException) -> None:
        extra: dict[str, Any] = {"exception": exc} if takes_exception else {}
        logger.emit(
            timestamp=time_ns(),
            context=set_span_in_context(span),
            severity_number=_logs.SeverityNumber(severity),
            severity_text=text,
            attributes=attrs,
            event_name=name,
            **extra,
        )

    return emit, takes_exception


def _record_emitter(logs: Any, logger_provider: Any, scope: str, version: str, schema_url: str) -> LogEmit:
    try:  # (the SDK of these releases; later ones have no LogRecord here, and do not get here)
        record_type = importlib.import_module("opentelemetry.sdk._logs").LogRecord
    except (ImportError, AttributeError):  # no SDK: an API record (other Logs API implementations take those)
        record_type = logs.LogRecord
    params = inspect.signature(record_type.__init__).parameters

    def emit(name: str, severity: int, text: str, span: Span, attrs: dict[str, Any], exc: BaseException) -> None:
        # looked up per event: a global logger provider set after instrument() is found, and its
        # logger's resource is the one the record needs
        logger = logs.get_logger(scope, version, logger_provider, schema_url=schema_url)
        fields: dict[str, Any] = {}
        if "context" in params:
            fields["context"] = set_span_in_context(span)
        else:
            ctx = span.get_span_context()
            fields.update(trace_id=ctx.trace_id, span_id=ctx.span_id, trace_flags=ctx.trace_flags)
        if "event_name" in params:
            fields["event_name"] = name
        else:
            attrs = {**attrs, EVENT_NAME_ATTRIBUTE: name}
        if "resource" in params:
            fields["resource"] = getattr(logger, "resource", None)
        severity_number = logs.SeverityNumber(severity)
        record = record_type(
            timestamp=time_ns(), severity_number=severity_number, severity_text=text, attributes=attrs, **fields
        )
        logger.emit(record)

    return emit
