"""The NATS servers inside the application's traces: spans from nats-server message tracing (ADR-41).

With an account's ``msg_trace { dest: "otel.trace" }`` (nats-server 2.11+), every server a message with a
sampled ``traceparent`` passes through publishes a JSON trace event on ``otel.trace``.
:class:`ServerTraceBridge` subscribes to them and records one span per server traversal in the
producer's trace::

    from opentelemetry.instrumentation.nats.server_trace import ServerTraceBridge

    bridge = ServerTraceBridge(nc, "otel.trace", tracer_provider=tracer_provider)
    await bridge.start()
    ...
    await bridge.stop()

The console script ``opentelemetry-nats-server-trace`` runs a bridge as a process of its own. Needs the
OpenTelemetry SDK: ``pip install 'opentelemetry-instrumentation-nats[server-trace]'``.
"""

from __future__ import annotations

try:
    from opentelemetry.sdk.trace import TracerProvider as _SdkTracerProvider  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "opentelemetry.instrumentation.nats.server_trace needs the OpenTelemetry SDK: "
        "pip install 'opentelemetry-instrumentation-nats[server-trace]'"
    ) from exc

from opentelemetry.instrumentation.nats.server_trace.bridge import ServerTraceBridge

__all__ = ["ServerTraceBridge"]
