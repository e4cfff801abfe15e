"""Arbitrary headers, trace context, subjects and payloads from an uninstrumented producer.

An uninstrumented publisher (``suppress_instrumentation``) sends whatever hypothesis makes up; an
instrumented callback subscription and an instrumented ``next_msg`` consumer receive it. The consumer
never sees an exception from the instrumentation, and each consumer span is a child of the remote
producer exactly when the message carries a valid W3C ``traceparent`` (judged here independently of
the OpenTelemetry propagator), else a root.

One event loop, server and pair of connections serve every example (module-scoped harness).
"""

from __future__ import annotations

import asyncio
import re
import string
from collections.abc import Iterator
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind

from opentelemetry import trace
from opentelemetry.instrumentation.nats import message_context
from tests.helpers import Telemetry
from tests.natsserver import NatsServer
from tests.reliability.support import SpanLedger, captured_logs, describe_records, raised_in_instrumentation

# --- an independent W3C Trace Context validator ------------------------------------------------

_HEX = "0123456789abcdef"
_TP = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(.*)", re.DOTALL)


def w3c_parent(value: str) -> tuple[int, int, bool] | None:
    """``(trace_id, parent_id, sampled)`` of a valid W3C ``traceparent`` (surrounding blanks tolerated), else
    ``None``.

    Version ``00`` is exactly 55 characters; a later version (not ``ff``) may continue with ``-…``."""
    m = _TP.fullmatch(value.strip(" \t"))
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if rest and (version == "00" or not rest.startswith("-")):
        return None
    return int(trace_id, 16), int(parent_id, 16), bool(int(flags, 16) & 1)


def test_w3c_validator() -> None:
    tid, sid = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    assert w3c_parent(f"00-{tid}-{sid}-01") == (int(tid, 16), int(sid, 16), True)
    assert w3c_parent(f" 00-{tid}-{sid}-00 ") == (int(tid, 16), int(sid, 16), False)
    assert w3c_parent(f"cc-{tid}-{sid}-ff-future") == (int(tid, 16), int(sid, 16), True)
    assert w3c_parent(f"00-{tid}-{sid}-fe") == (int(tid, 16), int(sid, 16), False)
    for bad in (
        f"00-{tid}-{sid}-01-x",
        f"ff-{tid}-{sid}-01",
        f"00-{'0' * 32}-{sid}-01",
        f"00-{tid}-{'0' * 16}-01",
        f"00-{tid.upper()}-{sid}-01",
        f"00-{tid}-{sid}-1",
        f"cc-{tid}-{sid}-01x",
        "",
    ):
        assert w3c_parent(bad) is None, bad


# --- strategies ----------------------------------------------------------------------------------

_TRACE_KEYS = {"traceparent", "tracestate", "baggage"}
_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))  # header values: printable ASCII, no CR/LF
_KEY_CHARS = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters  # what nats-py accepts in a key


def _hexes(n: int, nonzero: bool = True) -> st.SearchStrategy[str]:
    s = st.text(_HEX, min_size=n, max_size=n)
    return s.filter(lambda x: x != "0" * n) if nonzero else s


valid_traceparent = st.one_of(
    st.builds(lambda t, s, f: f"00-{t}-{s}-{f}", _hexes(32), _hexes(16), _hexes(2, nonzero=False)),
    st.builds(
        lambda v, t, s, f, rest: f"{v}-{t}-{s}-{f}{rest}",
        st.sampled_from(["01", "7f", "cc", "fe"]),
        _hexes(32),
        _hexes(16),
        _hexes(2, nonzero=False),
        st.one_of(st.just(""), st.text(_PRINTABLE, max_size=20).map(lambda x: "-" + x.strip())),
    ),
)


def _mutate(tp: str, how: str) -> str:
    return {
        "upper": tp.upper(),
        "zero_trace": tp[:3] + "0" * 32 + tp[35:],
        "zero_span": tp[:36] + "0" * 16 + tp[52:],
        "version_ff": "ff" + tp[2:],
        "v00_suffix": "00" + tp[2:55] + "-extra",
        "truncated": tp[:40],
        "doubled": tp + tp,
        "oversized": "00-" + "a" * 4000,
        "oversized_valid_prefix": "00" + tp[2:55] + "-" + "x" * 2000,
        "no_dashes": tp.replace("-", ""),
    }[how]


malformed_traceparent = st.one_of(
    st.text(_PRINTABLE, max_size=80),
    st.builds(
        _mutate,
        valid_traceparent,
        st.sampled_from(
            [
                "upper",
                "zero_trace",
                "zero_span",
                "version_ff",
                "v00_suffix",
                "truncated",
                "doubled",
                "oversized",
                "oversized_valid_prefix",
                "no_dashes",
            ]
        ),
    ),
)

_member_key = st.text(string.ascii_lowercase + string.digits + "_-*/@", min_size=1, max_size=12)
tracestate = st.one_of(
    st.lists(
        st.builds(lambda k, v: f"{k}={v}", _member_key, st.text(string.ascii_letters, max_size=10)), max_size=5
    ).map(",".join),
    st.text(_PRINTABLE, max_size=100),
    st.just("k=v," * 2000),  # oversized
    st.just(",".join(f"k{i}=v" for i in range(40))),  # more members than allowed
)
baggage = st.one_of(
    st.lists(
        st.builds(lambda k, v: f"{k}={v}", _member_key, st.text(string.ascii_letters, max_size=10)), max_size=5
    ).map(",".join),
    st.text(_PRINTABLE, max_size=100),
    st.just("k=" + "v" * 9000),  # over the W3C size limit
    st.just(",".join(f"k{i}=v" for i in range(200))),  # over the member limit
    st.just("k=%zz%%,=,;;;=;"),  # broken percent-encoding and properties
)

app_headers = st.dictionaries(
    st.text(_KEY_CHARS, min_size=1, max_size=20).filter(lambda k: k.lower() not in _TRACE_KEYS),
    st.text(_PRINTABLE, max_size=40).map(str.strip),
    max_size=6,
)
_token = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters=".*>\x85"),
    min_size=1,
    max_size=12,
)
subjects = st.one_of(
    st.lists(_token, min_size=1, max_size=4).map(lambda ts: "fz." + ".".join(ts)),
    st.sampled_from(["fz.$JS.ACK.x", "fz._INBOX.abc", "fz.a-b_c~d", "fz." + "long" * 60]),
)
payloads = st.one_of(
    st.just(b""),
    st.binary(max_size=100),
    st.sampled_from([64 * 1024, 700 * 1024]).map(lambda n: bytes(range(256)) * (n // 256)),
)


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str] | None, str | None]:
    """(subject, payload, headers, the traceparent sent or None)."""
    subject = draw(subjects)
    payload = draw(payloads)
    if draw(st.booleans()) and draw(st.booleans()):
        return subject, payload, None, None  # no headers at all
    headers = dict(draw(app_headers))
    tp = None
    if draw(st.booleans()):
        tp = draw(st.one_of(valid_traceparent, malformed_traceparent))
        headers[draw(st.sampled_from(["traceparent", "Traceparent", "TRACEPARENT", "TraceParent"]))] = tp
    if draw(st.booleans()):
        headers[draw(st.sampled_from(["tracestate", "Tracestate"]))] = draw(tracestate)
    if draw(st.booleans()):
        headers[draw(st.sampled_from(["baggage", "Baggage"]))] = draw(baggage)
    return subject, payload, headers, tp


_TP_OK = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"

# --- the harness -------------------------------------------------------------------------------


class Harness:
    """An instrumented consumer and an uninstrumented producer on one event loop, for every example."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop_errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, ctx: self.loop_errors.append(ctx))
        self.telemetry = Telemetry()
        self.ledger = SpanLedger()
        self.telemetry.tracer_provider.add_span_processor(self.ledger)
        self.telemetry.instrument()
        self.errors: list[Exception] = []
        self.loop.run_until_complete(self._setup(url))

    async def _setup(self, url: str) -> None:
        async def error_cb(exc: Exception) -> None:
            self.errors.append(exc)

        self.got: asyncio.Queue[Any] = asyncio.Queue()

        async def handler(msg: Any) -> None:
            span = trace.get_current_span()
            await self.got.put((msg, (span.get_span_context(), span.is_recording())))

        self.consumer = await nats.connect(url, error_cb=error_cb)
        self.producer = await nats.connect(url, error_cb=error_cb)
        await self.consumer.subscribe("fz.>", cb=handler)
        self.sub = await self.consumer.subscribe("fz.>")
        await self.consumer.flush()

    def exchange(
        self, subject: str, payload: bytes, headers: dict[str, str] | None, spans: int, instrumented: bool = False
    ) -> tuple[Any, Any, Any, list[Any]]:
        """Publish (uninstrumented unless ``instrumented``); return both deliveries, the callback's current
        span, the spans ended."""
        return self.loop.run_until_complete(self._exchange(subject, payload, headers, spans, instrumented))

    async def _reset(self) -> None:
        """Forget what an earlier (failed) example may have left behind."""
        while not self.got.empty():
            self.got.get_nowait()
        while self.sub._pending_queue.qsize():
            await self.sub.next_msg()
        self.telemetry.clear()

    async def _exchange(
        self, subject: str, payload: bytes, headers: dict[str, str] | None, spans: int, instrumented: bool
    ) -> tuple[Any, Any, Any, list[Any]]:
        await self._reset()
        if instrumented:
            await self.producer.publish(subject, payload, headers=headers)
        else:
            with suppress_instrumentation():
                await self.producer.publish(subject, payload, headers=headers)
        await self.producer.flush()
        cb_msg, cb_span = await asyncio.wait_for(self.got.get(), 5)
        next_msg = await self.sub.next_msg(timeout=5)
        deadline = self.loop.time() + 5
        while len(self.telemetry.exporter.get_finished_spans()) < spans and self.loop.time() < deadline:
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.005)  # spurious extra spans would show up too
        return cb_msg, cb_span, next_msg, self.telemetry.spans()

    def close(self) -> None:
        async def _close() -> None:
            await self.consumer.close()
            await self.producer.close()

        self.loop.run_until_complete(_close())
        self.loop.close()
        self.telemetry.uninstrument()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    srv = NatsServer().start()
    h = Harness(srv.url)
    with captured_logs() as logs:
        h.logs = logs  # type: ignore[attr-defined]
        yield h
    h.close()
    srv.cleanup()


def _header(headers: Any, name: str) -> str | None:
    for k, v in (headers or {}).items():
        if k.lower() == name:
            return str(v)
    return None


# Each example talks to a real server: fewer examples, no deadline, no example database.
_REAL_SERVER_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


@_REAL_SERVER_SETTINGS
@given(messages())
@example(("fz.valid", b"x", {"traceparent": _TP_OK + "-01"}, _TP_OK + "-01"))  # child
@example(("fz.unsampled", b"x", {"Traceparent": _TP_OK + "-00"}, _TP_OK + "-00"))  # child, not recorded
@example(("fz.upper", b"", {"traceparent": _TP_OK.upper() + "-01"}, _TP_OK.upper() + "-01"))  # root
@example(("fz.long", b"", {"traceparent": _TP_OK + "-01-" + "x" * 600}, _TP_OK + "-01-" + "x" * 600))  # root
@example(("fz.none", b"", None, None))  # root
def test_arbitrary_input_never_breaks_the_consumer(
    harness: Harness, message: tuple[str, bytes, dict[str, str] | None, str | None]
) -> None:
    subject, payload, headers, sent_tp = message
    sent_headers = None if headers is None else dict(headers)
    parent = w3c_parent(sent_tp) if sent_tp is not None else None
    # a remote parent that is not sampled: the process span (its child) is not recorded; the receive
    # span (a root here: no current span in the caller) always is
    recorded = parent is None or parent[2]
    cb_msg, cb_span, next_msg, spans = harness.exchange(subject, payload, headers, 2 if recorded else 1)

    assert headers == sent_headers  # nothing touched the producer's dict
    for msg in (cb_msg, next_msg):
        assert (msg.subject, msg.data) == (subject, payload)
    received_tp = _header(cb_msg.headers, "traceparent")
    assert received_tp == (sent_tp.strip() if sent_tp is not None else None)  # the consumer got what was sent

    # the application's callback ran inside the process span, parented as the input allows
    current, was_recording = cb_span
    assert current.is_valid
    if parent is None:
        assert was_recording
    else:
        assert current.trace_id == parent[0]
        assert was_recording is parent[2]
    if not recorded:
        assert [(s.name, s.kind) for s in spans] == [("receive fz.>", SpanKind.CLIENT)]
    else:
        assert sorted((s.name, s.kind) for s in spans) == [
            ("process fz.>", SpanKind.CONSUMER),
            ("receive fz.>", SpanKind.CLIENT),
        ]
        assert next(s for s in spans if s.name == "process fz.>").context == current
    for span in spans:
        attrs = dict(span.attributes or {})
        assert attrs["messaging.destination.name"] == subject
        assert attrs["messaging.message.body.size"] == len(payload)
        assert not any(k.startswith("messaging.nats.message.header.") for k in attrs)
        links = [(link.context.trace_id, link.context.span_id) for link in span.links]
        assert links == ([parent[:2]] if parent else []), (span.name, received_tp)
        if parent is None or span.kind == SpanKind.CLIENT:  # a receive span: in the caller's (empty) context
            assert span.parent is None, (span.name, received_tp)
        else:
            assert span.parent is not None and span.parent.is_remote, (span.name, received_tp)
            assert (span.context.trace_id, span.parent.span_id) == parent[:2]
    producer = trace.get_current_span(message_context(cb_msg)).get_span_context()
    assert (producer.trace_id, producer.span_id) == (parent[:2] if parent else (0, 0))

    assert harness.errors == [], [e for e in harness.errors if raised_in_instrumentation(e)]
    assert harness.loop_errors == []
    assert describe_records(harness.logs) == []  # type: ignore[attr-defined]
    harness.ledger.assert_balanced()


@_REAL_SERVER_SETTINGS
@given(messages())
@example(("fz.keep", b"x", {"traceparent": _TP_OK + "-01", "X-App": "1"}, _TP_OK + "-01"))  # kept
@example(("fz.keepun", b"x", {"Traceparent": _TP_OK + "-00", "baggage": "k=v"}, _TP_OK + "-00"))  # kept
@example(("fz.upper", b"", {"traceparent": _TP_OK.upper() + "-01"}, _TP_OK.upper() + "-01"))  # replaced
@example(("fz.state", b"", {"tracestate": "a=b"}, None))  # ours added
@example(("fz.none", b"", None, None))  # ours added
def test_instrumented_publish_keeps_exactly_a_valid_caller_context(
    harness: Harness, message: tuple[str, bytes, dict[str, str] | None, str | None]
) -> None:
    """Whatever the caller's headers, an instrumented publish never fails; the message goes out exactly
    as an uninstrumented one when its ``traceparent`` is a valid W3C one (the caller's creation context:
    a CLIENT span linked to it), else with the publish span's ``traceparent`` instead (a PRODUCER span)."""
    subject, payload, headers, sent_tp = message
    sent_headers = None if headers is None else dict(headers)
    parent = w3c_parent(sent_tp) if sent_tp is not None else None
    kept = parent is not None
    processed = not kept or parent[2]  # the process span is recorded when its parent is sampled
    plain, _, _, _ = harness.exchange(subject, payload, headers, 2 if processed else 1)
    traced, _, _, spans = harness.exchange(subject, payload, headers, 3 if processed else 2, instrumented=True)

    assert headers == sent_headers  # nothing touched the producer's dict
    assert (traced.subject, traced.data) == (subject, payload)
    (publish,) = [s for s in spans if (s.attributes or {}).get("messaging.operation.type") == "send"]
    assert publish.parent is None  # no current span in the publishing code
    links = [(link.context.trace_id, link.context.span_id) for link in publish.links]
    if kept:
        assert traced.headers == plain.headers  # byte for byte what an uninstrumented publish sends
        assert (publish.kind, links) == (SpanKind.CLIENT, [parent[:2]])
    else:
        span_ctx = publish.context
        ours = f"00-{span_ctx.trace_id:032x}-{span_ctx.span_id:016x}-{span_ctx.trace_flags:02x}"

        def others(h: Any) -> dict[str, str]:
            return {k: v for k, v in (h or {}).items() if k.lower() != "traceparent"}

        assert (_header(traced.headers, "traceparent"), others(traced.headers)) == (ours, others(plain.headers))
        assert (publish.kind, links) == (SpanKind.PRODUCER, [])
    assert len(spans) == (3 if processed else 2)

    assert harness.errors == [], [e for e in harness.errors if raised_in_instrumentation(e)]
    assert harness.loop_errors == []
    assert describe_records(harness.logs) == []  # type: ignore[attr-defined]
    harness.ledger.assert_balanced()
