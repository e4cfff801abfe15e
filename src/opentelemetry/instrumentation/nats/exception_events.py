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
An exception while emitting is logged at debug level and never reaches the application. How a record
is emitted on each opentelemetry-api release (the Logs API's names are private): otel_private.py.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span

from opentelemetry.instrumentation.nats import names, otel_private
from opentelemetry.instrumentation.nats.attributes import Attrs
from opentelemetry.instrumentation.nats.operation import Operation
from opentelemetry.instrumentation.nats.version import __version__

if TYPE_CHECKING:
    from opentelemetry.instrumentation.nats.recorder import Recorder

_LOG = logging.getLogger(__name__)


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


class ExceptionEvents:
    """Emits the exception event of a failed operation (see the module docstring)."""

    def __init__(self, emit: otel_private.LogEmit, takes_exception: bool) -> None:
        self._emit = emit
        self._takes_exception = takes_exception  # the Logs API writes the exception.* attributes

    @classmethod
    def create(cls, logger_provider: Any, scope: str, schema_url: str = names.SCHEMA_URL) -> ExceptionEvents | None:
        """The events' emitter on the installed Logs API (see otel_private.py); ``None``, with a
        warning, when there is no usable one."""
        try:
            return cls(*otel_private.logs_emitter(logger_provider, scope, __version__, schema_url))
        except Exception:  # pragma: no cover - an opentelemetry-api without the Logs API's names
            _LOG.warning("exception_events: this opentelemetry-api has no usable Logs API; no events", exc_info=True)
            return None

    def emit(self, rec: Recorder, span: Span, op: Operation, exc: BaseException, error_type: str | None = None) -> None:
        """The event for ``op`` that failed with ``exc`` (``error_type``: the span's ``error.type``
        when it is not the exception's class name), in ``span``'s context; never raises."""
        try:
            event = names.EXCEPTION_EVENTS.get(op.op.type or "")
            if event is None:
                return
            attrs = dict(op.metric_attrs if op.metric_attrs is not None else rec.describe(op)[2])
            attrs[names.ERROR_TYPE] = error_type or type(exc).__qualname__
            if not self._takes_exception:
                attrs = {**exception_attributes(exc), **attrs}
            self._emit(*event, span, attrs, exc)
        except Exception:
            _LOG.debug("could not emit a %s exception event", op.op.type, exc_info=True)
