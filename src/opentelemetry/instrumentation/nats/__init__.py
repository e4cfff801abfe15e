"""OpenTelemetry instrumentation for NATS: nats-py and the next-generation nats-core family.

Usage:

    from opentelemetry.instrumentation.nats import NatsInstrumentor

    NatsInstrumentor().instrument()

or run the application under ``opentelemetry-instrument``. The documentation's configuration page
(docs/configuration.md) lists every option and environment variable.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.context import Context
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.metrics import get_meter

from opentelemetry import trace
from opentelemetry.instrumentation.nats import families, names, propagation
from opentelemetry.instrumentation.nats.config import NatsConfig
from opentelemetry.instrumentation.nats.envelope import unwrap_envelope, wrap_envelope
from opentelemetry.instrumentation.nats.exception_events import ExceptionEvents
from opentelemetry.instrumentation.nats.metrics import NatsMetrics
from opentelemetry.instrumentation.nats.names import SCHEMA_URL
from opentelemetry.instrumentation.nats.operation import install, installed
from opentelemetry.instrumentation.nats.package import _instruments
from opentelemetry.instrumentation.nats.patching import undo_changes
from opentelemetry.instrumentation.nats.recorder import Recorder
from opentelemetry.instrumentation.nats.streams import CONFIGS
from opentelemetry.instrumentation.nats.version import __version__

_LOG = logging.getLogger(__name__)

__all__ = ["NatsInstrumentor", "__version__", "message_context", "unwrap_envelope", "wrap_envelope"]


def message_context(msg: Any) -> Context:
    """The producer context a received message carries: its headers, else (on ``envelope_subjects``)
    a JSON envelope ``{"traceparent", "tracestate", "data"}`` in its payload.

    Use it to parent the application's own processing span, for instance around a message that
    ``fetch`` returned:

        with tracer.start_as_current_span("handle", context=message_context(msg)):
            ...

    It holds the message's baggage too, which a callback's current context keeps aside (what the
    callback sends carries it on). Returns an empty context (→ a root span) when the message
    carries none.
    """
    headers = getattr(msg, "headers", None)
    rec = installed()
    if rec is not None:
        return rec.producer_context(headers, getattr(msg, "subject", ""), getattr(msg, "data", None))
    return propagation.extract(headers)


class NatsInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces nats-py and the nats-core family, whichever is installed (both when both are).

    ``instrument(**options)`` patches the clients and records through the given (or the global)
    tracer, meter and logger providers; ``uninstrument()`` restores the clients exactly. Options
    are keywords of ``instrument()`` or, when not given, environment variables; the documentation's
    configuration page (docs/configuration.md) lists them. ``opentelemetry-instrument`` loads this
    class through the ``nats`` entry point of the ``opentelemetry_instrumentor`` group.

        NatsInstrumentor().instrument(subject_templates=["orders.*.created"])
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """The requirements of the client families found: the installed ones in a supported version,
        else the installed ones (so that the conflict is reported), else nats-py's. Either family
        satisfies the dependency check."""
        found = tuple(f.requirement for f in families.instrumented())
        return found or _instruments

    def _instrument(self, **kwargs: Any) -> None:
        config = NatsConfig.from_options(kwargs)
        tracer = trace.get_tracer(
            __name__, __version__, tracer_provider=kwargs.get("tracer_provider"), schema_url=SCHEMA_URL
        )
        meter = get_meter(__name__, __version__, meter_provider=kwargs.get("meter_provider"), schema_url=SCHEMA_URL)
        events = ExceptionEvents.create(kwargs.get("logger_provider"), __name__) if config.exception_events else None
        install(Recorder(tracer, config, NatsMetrics(meter, config.mode, names.KEYS[config.mode]), events=events))
        found = families.instrumented()
        if not found:
            _LOG.warning("neither nats-py nor nats-core is installed: nothing to instrument")
        for family in found:
            for patch in family.patches:
                try:
                    patch.apply()
                except (AttributeError, ImportError):  # not in this release of the client
                    _LOG.debug("%s has no %s.%s; not instrumented", family.name, patch.module, patch.attribute)

    def _uninstrument(self, **kwargs: Any) -> None:
        rec = installed()
        if rec is not None and rec.metrics is not None:
            rec.metrics.shutdown()
        install(None)
        CONFIGS.clear()
        for family in families.FAMILIES:
            for patch in family.patches:
                patch.remove()
        undo_changes()  # (subscriptions made while instrumented: their own callbacks again)
