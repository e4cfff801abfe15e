"""Every private OpenTelemetry API/SDK name this package uses: why, and what happens without it.

The per-message paths read OpenTelemetry's own state directly where the public call costs as much
as the instrumented NATS call itself. Each name below is read defensively at import (or on first
use): when a release renames or removes it, the public API takes over (slower, same behaviour),
except where a section says otherwise. The tests run on the oldest (1.30) and the newest supported
opentelemetry-api/-sdk releases, which checks each fast path against the public behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

from opentelemetry.context import Context, attach, detach, get_current
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import NoOpTracer, ProxyTracer, Span, set_span_in_context

from opentelemetry import context as otel_context
from opentelemetry import trace

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
# BAGGAGE_KEY: tells whether a context has baggage before asking the baggage propagator to write it.
# Without it: the propagator is always asked.
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


def context_with_span(span: Span, parent: Context) -> Context:
    """``set_span_in_context(span, parent)``."""
    if SPAN_KEY is None:  # pragma: no cover
        return set_span_in_context(span, parent)
    values = dict(parent)
    values[SPAN_KEY] = span
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
# (everything is recorded as usual, through the proxy; only the no-SDK shortcut is lost).


def meter_resolved(meter: Any) -> bool:
    """False while ``meter`` is the global proxy meter and no meter provider is set."""
    return getattr(meter, "_real_meter", False) is not None


def no_sdk_probe(tracer: Any, proxy_meter: Any) -> Callable[[], bool] | None:
    """A cheap check that is True while neither ``tracer`` nor ``proxy_meter`` (a global proxy meter
    with no provider yet, or ``None``) has an SDK behind it; ``None`` when ``tracer`` is neither the
    API's no-op tracer nor the global proxy tracer (then ask :func:`tracer_is_noop`)."""
    proxied = isinstance(tracer, ProxyTracer) and hasattr(tracer, "_real_tracer") and hasattr(trace, "_TRACER_PROVIDER")
    if not proxied and type(tracer) is not NoOpTracer:
        return None
    if proxy_meter is not None and not hasattr(proxy_meter, "_real_meter"):
        return None
    proxy = tracer if proxied else None

    def probe() -> bool:
        return (proxy is None or (proxy._real_tracer is None and trace._TRACER_PROVIDER is None)) and (
            proxy_meter is None or proxy_meter._real_meter is None
        )

    return probe


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
