"""Context propagation through NATS headers, and the seed's JSON envelope."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import get_current_span

from opentelemetry import propagate

_LOG = logging.getLogger(__name__)
_EMPTY = Context()

# "NATS/1.0\r\n" + final "\r\n"; each header adds "key: value\r\n".
_HEADER_BLOCK_OVERHEAD = 12
_HEADER_LINE_OVERHEAD = 4

SKIP_NO_HEADERS = "no_header_support"
SKIP_MAX_PAYLOAD = "max_payload"


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads NATS headers case-insensitively; tolerates ``None`` and non-string values."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            for k, v in carrier.items():
                if isinstance(k, str) and k.lower() == lowered:
                    value = v
                    break
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [k for k in carrier if isinstance(k, str)]


_GETTER = _HeaderGetter()


def extract(headers: Any) -> Context:
    """The context carried by message headers; an empty context (→ root span) when there is none."""
    if not headers or not isinstance(headers, Mapping):
        return _EMPTY
    try:
        return propagate.extract(headers, context=_EMPTY, getter=_GETTER)
    except Exception:  # a third-party propagator failing on odd input
        _LOG.debug("could not extract context from NATS headers", exc_info=True)
        return _EMPTY


def has_span(ctx: Context) -> bool:
    return get_current_span(ctx).get_span_context().is_valid


def _header_block_size(headers: Mapping[str, str]) -> int:
    size = _HEADER_BLOCK_OVERHEAD
    for k, v in headers.items():
        size += len(str(k).encode()) + len(str(v).encode()) + _HEADER_LINE_OVERHEAD
    return size


def inject(
    headers: dict[str, str] | None, payload_size: int, server_info: Mapping[str, Any], max_payload: int
) -> tuple[dict[str, str] | None, str | None]:
    """Headers to send: a copy of ``headers`` with the current context injected.

    Returns ``(headers, skip_reason)``. The caller's dict is never mutated. Nothing is injected
    (and the caller's headers are returned as they are) when the propagator writes nothing, when
    the server does not support headers, or when the headers would push the message over
    ``max_payload``; the latter two return a skip reason.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return headers, None
    if not server_info.get("headers"):
        return headers, SKIP_NO_HEADERS
    if headers:
        out = {k: v for k, v in headers.items() if not (isinstance(k, str) and k.lower() in carrier)}
        out.update(carrier)
    else:
        out = carrier
    if payload_size + _header_block_size(out) > max_payload:
        return headers, SKIP_MAX_PAYLOAD
    return out, None


# --- the seed's JSON envelope (seed §5.1) ------------------------------------------------------


def wrap_envelope(data: Any, context: Context | None = None) -> bytes:
    """Encode ``data`` in the seed's envelope ``{"traceparent", "tracestate", "data"}`` (JSON bytes).

    ``context`` defaults to the current one. ``data`` must be JSON-serialisable; bytes are decoded
    as UTF-8.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data).decode()
    envelope: dict[str, Any] = {k: carrier[k] for k in ("traceparent", "tracestate") if k in carrier}
    envelope["data"] = data
    return json.dumps(envelope).encode()


def unwrap_envelope(payload: Any) -> tuple[Context | None, Any]:
    """Decode a seed envelope: ``(context, data)``.

    A payload that is not an envelope (not JSON, not an object, no ``traceparent``) gives
    ``(None, payload)``; this never raises.
    """
    try:
        obj = json.loads(payload)
    except (TypeError, ValueError):
        return None, payload
    if not isinstance(obj, dict) or not isinstance(obj.get("traceparent"), str):
        return None, payload
    carrier = {k: obj[k] for k in ("traceparent", "tracestate") if isinstance(obj.get(k), str)}
    ctx = extract(carrier)
    return (ctx if has_span(ctx) else None), obj.get("data")
