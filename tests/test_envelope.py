"""The JSON envelope ``{"traceparent", "tracestate", "data"}``: the wrap/unwrap helpers (interop with
services that carry the trace context in it, on each client family: tests/matrix/test_envelope.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState, get_current_span

from opentelemetry import trace
from opentelemetry.instrumentation.nats import unwrap_envelope, wrap_envelope

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _context(tracestate: TraceState | None = None) -> Any:
    span_ctx = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1), trace_state=tracestate)
    return trace.set_span_in_context(NonRecordingSpan(span_ctx))


def _span_context(ctx: Any) -> SpanContext:
    return get_current_span(ctx).get_span_context()


# --- helpers ---------------------------------------------------------------------------------------


def test_wrap_envelope_writes_the_seed_form() -> None:
    payload = wrap_envelope({"order": 7}, _context(TraceState([("vendor", "value")])))
    assert json.loads(payload) == {"traceparent": TRACEPARENT, "tracestate": "vendor=value", "data": {"order": 7}}
    assert json.loads(wrap_envelope(b"text", _context())) == {"traceparent": TRACEPARENT, "data": "text"}


def test_wrap_envelope_uses_the_current_context_by_default(telemetry: Any) -> None:
    with telemetry.tracer_provider.get_tracer("t").start_as_current_span("outer") as span:
        payload = wrap_envelope([1, 2])
    ctx, data = unwrap_envelope(payload)
    assert data == [1, 2]
    assert ctx is not None
    assert (_span_context(ctx).trace_id, _span_context(ctx).span_id) == (
        span.get_span_context().trace_id,
        span.get_span_context().span_id,
    )
    assert _span_context(ctx).is_remote


def test_wrap_envelope_without_a_span_has_only_data() -> None:
    payload = wrap_envelope({"a": 1}, context=trace.set_span_in_context(trace.INVALID_SPAN))
    assert json.loads(payload) == {"data": {"a": 1}}
    assert unwrap_envelope(payload) == (None, {"a": 1})


def test_wrap_envelope_rejects_data_that_is_not_json() -> None:
    with pytest.raises(TypeError):
        wrap_envelope(object(), _context())


def test_unwrap_envelope_round_trip_with_tracestate() -> None:
    ctx, data = unwrap_envelope(wrap_envelope({"k": "v"}, _context(TraceState([("vendor", "value")]))))
    assert data == {"k": "v"}
    assert ctx is not None
    span_ctx = _span_context(ctx)
    assert (span_ctx.trace_id, span_ctx.span_id, span_ctx.trace_state.get("vendor")) == (TRACE_ID, SPAN_ID, "value")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "data": ',  # truncated
        b"{not json}",
        b"{\xff\xfe}",  # not UTF-8
        b"plain text",
        b"\x00\x01binary",
        b"",
        b"[1, 2]",
        b'"a string"',
        b"42",
        b"null",
        b'{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}',  # no data
        b'{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "data": 1, "id": 2}',
        b'{"payload": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}',
        b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # nested too deeply for the JSON decoder
        None,
        12,
        {"traceparent": TRACEPARENT, "data": 1},  # not a payload at all
    ],
)
def test_unwrap_envelope_of_a_non_envelope_is_no_context_and_the_payload(payload: Any) -> None:
    ctx, data = unwrap_envelope(payload)
    assert ctx is None
    assert data is payload


@pytest.mark.parametrize(
    ("payload", "data"),
    [
        (b'{"data": {"x": 1}}', {"x": 1}),  # no traceparent
        (b'{"traceparent": null, "tracestate": null, "data": 1}', 1),  # hand-written code without a span
        (b'{"traceparent": "garbage", "data": "d"}', "d"),
        (b'{"traceparent": "00-00000000000000000000000000000000-0000000000000000-01", "data": 3}', 3),
        (b'{"traceparent": 5, "data": null}', None),
        ('{"traceparent": "00-xyz", "data": [1]}', [1]),  # str payloads work too
    ],
)
def test_unwrap_envelope_without_a_valid_context_gives_the_data(payload: Any, data: Any) -> None:
    assert unwrap_envelope(payload) == (None, data)


def test_unwrap_envelope_accepts_whitespace_and_str() -> None:
    text = "  \n " + json.dumps({"traceparent": TRACEPARENT, "tracestate": None, "data": {"id": 1}})
    for payload in (text, text.encode(), bytearray(text.encode()), memoryview(text.encode())):
        ctx, data = unwrap_envelope(payload)
        assert data == {"id": 1}
        assert ctx is not None and (_span_context(ctx).trace_id, _span_context(ctx).span_id) == (TRACE_ID, SPAN_ID)
