"""The JSON envelope ``{"traceparent", "tracestate", "data"}``: the trace context carried inside the
payload instead of in NATS headers, as hand-written instrumentation often does. ``wrap_envelope`` /
``unwrap_envelope`` are public (``opentelemetry.instrumentation.nats``); the ``envelope_subjects``
option reads the context of consumed messages from it.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from opentelemetry.instrumentation.nats.propagation import has_span

_EMPTY = Context()
_W3C = TraceContextTextMapPropagator()  # the envelope's fields are W3C Trace Context by definition


def wrap_envelope(data: Any, context: Context | None = None) -> bytes:
    """Encode ``data`` in a JSON envelope ``{"traceparent", "tracestate", "data"}`` (JSON bytes).

    This is the format of hand-written instrumentation that carries the trace context inside the
    payload instead of in NATS headers; use it to keep such consumers working while they migrate.

    The envelope's fields are W3C Trace Context whatever propagator is configured globally.
    ``context`` defaults to the current one; without a valid span the envelope has only ``data``.
    ``data`` must be JSON-serialisable (``TypeError`` otherwise); bytes are decoded as UTF-8.
    """
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=context)
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data).decode()
    envelope: dict[str, Any] = {k: carrier[k] for k in ("traceparent", "tracestate") if k in carrier}
    envelope["data"] = data
    return json.dumps(envelope).encode()


_ENVELOPE_KEYS = frozenset(("traceparent", "tracestate", "data"))


def unwrap_envelope(payload: Any) -> tuple[Context | None, Any]:
    """Decode a JSON envelope ``{"traceparent", "tracestate", "data"}``: ``(context, data)``.

    An envelope is a JSON object with a ``data`` member and no members other than ``traceparent``,
    ``tracestate`` and ``data``. Its context is the one ``traceparent``/``tracestate`` carry, ``None``
    when they are missing or malformed. A payload that is not an envelope (not JSON, not an object,
    no ``data``, other members) gives ``(None, payload)``. This never raises.
    """
    try:
        if isinstance(payload, (bytes, bytearray, memoryview)):
            head = bytes(payload[:64]).lstrip()
            if head and not head.startswith(b"{"):  # cheap: most payloads are not envelopes
                return None, payload
            obj = json.loads(bytes(payload))
        elif isinstance(payload, str):
            obj = json.loads(payload)
        else:
            return None, payload
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deeply
        return None, payload
    if not isinstance(obj, dict) or "data" not in obj or not _ENVELOPE_KEYS.issuperset(obj):
        return None, payload
    carrier = {k: obj[k] for k in ("traceparent", "tracestate") if isinstance(obj.get(k), str)}
    try:
        ctx = _W3C.extract(carrier, context=_EMPTY) if "traceparent" in carrier else _EMPTY
    except Exception:
        return None, obj["data"]
    return (ctx if has_span(ctx) else None), obj["data"]
