"""Exception events (the ``exception_events`` option): the semantic conventions' log-based events
``messaging.{send,receive,process,settle}.exception`` for failed operations, emitted through the
OpenTelemetry Logs API in the context of the operation's span (the log record carries its trace id
and span id).

Each event: severity WARN (13) for send, receive and settle, ERROR (17) for process (the
application's handler raised); no body; attributes ``exception.type`` (fully qualified),
``exception.message``, ``exception.stacktrace``, plus ``error.type`` as on the span and the
operation's low-cardinality attributes (those its metrics carry: messaging system, operation name
and type, destination or template, server address and port, consumer group). Key-value and
object-store operations have no messaging operation type: no event (their spans still record the
error).

Cost: nothing unless an operation fails and the option is on (the recorder holds ``None`` otherwise).
An exception while emitting is logged at debug level and never reaches the application.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import traceback
from collections.abc import Callable
from time import time_ns
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span, set_span_in_context

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.attributes import Attrs
from opentelemetry.instrumentation.nats.operation import Operation
from opentelemetry.instrumentation.nats.version import __version__

if TYPE_CHECKING:
    from opentelemetry.instrumentation.nats.recorder import Recorder

_LOG = logging.getLogger(__name__)

# emit(event_name, severity_number, severity_text, span, exception, attributes)
Emit = Callable[[str, int, str, Span, BaseException, Attrs], None]


def exception_attributes(exc: BaseException) -> Attrs:
    """``exception.*`` attributes, written as the OpenTelemetry SDK writes them (on span events and,
    from opentelemetry-sdk 1.42, on log records given the exception)."""
    cls = type(exc)
    module = cls.__module__
    return {
        names.EXCEPTION_TYPE: f"{module}.{cls.__qualname__}" if module and module != "builtins" else cls.__qualname__,
        names.EXCEPTION_MESSAGE: str(exc),
        names.EXCEPTION_STACKTRACE: "".join(traceback.format_exception(cls, exc, exc.__traceback__)),
    }


def logs_emitter(logger_provider: Any, scope: str, schema_url: str) -> Emit | None:
    """How to emit a log record with an event name on the installed opentelemetry-api, or ``None``
    (logged) when it has no usable Logs API.

    The one place that uses the Logs API, which OpenTelemetry Python still ships under private names
    (``opentelemetry._logs``; ``opentelemetry.sdk._logs``) and whose ``emit`` changed:

    - 1.38 and newer: ``Logger.emit(event_name=…, context=…, …)``; from 1.42 also ``exception=…``
      (the SDK then writes the ``exception.*`` attributes itself).
    - 1.30 to 1.37: only ``Logger.emit(record)``. An API ``LogRecord`` has no resource, so (as the
      SDK's own event logger of those releases did) the SDK's ``LogRecord`` is built with the
      logger's resource, when the SDK is installed. The event name is the record's ``event_name``
      from 1.35, an ``event.name`` attribute before (what the Events API of those releases wrote).

    When a release renames or removes these names, the import or a signature check here fails:
    exception events are then off, with a warning; spans, metrics and the application carry on.
    """
    try:
        from opentelemetry import _logs

        if "event_name" in inspect.signature(_logs.Logger.emit).parameters:
            return _keyword_emitter(_logs, logger_provider, scope, schema_url)
        return _record_emitter(_logs, logger_provider, scope, schema_url)
    except Exception:  # pragma: no cover - an opentelemetry-api without the names above
        _LOG.warning("exception_events: this opentelemetry-api has no usable Logs API; no events", exc_info=True)
        return None


def _keyword_emitter(logs: Any, logger_provider: Any, scope: str, schema_url: str) -> Emit:
    logger = logs.get_logger(scope, __version__, logger_provider, schema_url=schema_url)
    takes_exception = "exception" in inspect.signature(logs.Logger.emit).parameters

    def emit(name: str, severity: int, text: str, span: Span, exc: BaseException, attrs: Attrs) -> None:
        if takes_exception:
            extra: dict[str, Any] = {"exception": exc}
        else:
            extra, attrs = {}, {**exception_attributes(exc), **attrs}
        logger.emit(
            timestamp=time_ns(),
            context=set_span_in_context(span),
            severity_number=logs.SeverityNumber(severity),
            severity_text=text,
            attributes=attrs,
            event_name=name,
            **extra,
        )

    return emit


def _record_emitter(logs: Any, logger_provider: Any, scope: str, schema_url: str) -> Emit:
    try:  # (the SDK of these releases; later ones have no LogRecord here, and do not get here)
        record_type = importlib.import_module("opentelemetry.sdk._logs").LogRecord
    except (ImportError, AttributeError):  # no SDK: an API record (other Logs API implementations take those)
        record_type = logs.LogRecord
    params = inspect.signature(record_type.__init__).parameters

    def emit(name: str, severity: int, text: str, span: Span, exc: BaseException, attrs: Attrs) -> None:
        # looked up per event: a global logger provider set after instrument() is found, and its
        # logger's resource is the one the record needs
        logger = logs.get_logger(scope, __version__, logger_provider, schema_url=schema_url)
        attrs = {**exception_attributes(exc), **attrs}
        fields: dict[str, Any] = {}
        if "context" in params:
            fields["context"] = set_span_in_context(span)
        else:
            ctx = span.get_span_context()
            fields.update(trace_id=ctx.trace_id, span_id=ctx.span_id, trace_flags=ctx.trace_flags)
        if "event_name" in params:
            fields["event_name"] = name
        else:
            attrs[names.EVENT_NAME_ATTRIBUTE] = name
        if "resource" in params:
            fields["resource"] = getattr(logger, "resource", None)
        logger.emit(
            record_type(
                timestamp=time_ns(),
                severity_number=logs.SeverityNumber(severity),
                severity_text=text,
                attributes=attrs,
                **fields,
            )
        )

    return emit


class ExceptionEvents:
    """Emits the exception event of a failed operation (see the module docstring)."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit

    @classmethod
    def create(cls, logger_provider: Any, scope: str, schema_url: str = names.SCHEMA_URL) -> ExceptionEvents | None:
        emit = logs_emitter(logger_provider, scope, schema_url)
        return cls(emit) if emit is not None else None

    def emit(self, rec: Recorder, span: Span, op: Operation, exc: BaseException, error_type: str | None = None) -> None:
        """The event for ``op`` that failed with ``exc`` (``error_type``: the span's ``error.type``
        when it is not the exception's class name), in ``span``'s context; never raises."""
        try:
            event = names.EXCEPTION_EVENTS.get(op.op.type or "")
            if event is None:
                return
            attrs = dict(op.metric_attrs if op.metric_attrs is not None else rec.describe(op)[2])
            attrs[names.ERROR_TYPE] = error_type or type(exc).__qualname__
            self._emit(*event, span, exc, attrs)
        except Exception:
            _LOG.debug("could not emit a %s exception event", op.op.type, exc_info=True)
