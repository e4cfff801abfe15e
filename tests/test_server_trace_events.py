"""Trace-event parsing, span planning and ``ServerTraceBridge.handle`` without a server: the documents
are shaped like the ones real servers publish (see tests/test_server_trace.py for those)."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

from opentelemetry.instrumentation.nats.server_trace import ServerTraceBridge, bridge, events, spans
from opentelemetry.instrumentation.nats.server_trace.events import InvalidEvent, parse, parse_timestamp
from tests.helpers import Telemetry
from tests.trace_topology import node, tree

TRACE = 0x0AF7651916CD43DD8448EB211C80319C
PUBLISHER = 0xB7AD6B7169203331
TP = f"00-{TRACE:032x}-{PUBLISHER:016x}-01"


def doc(
    server: str = "n1", hop: str | None = None, kind: int = 0, steps: list[Any] | None = None, **request: Any
) -> dict[str, Any]:
    headers: dict[str, list[str]] = {"traceparent": [TP]}
    if hop is not None:
        headers["Nats-Trace-Hop"] = [hop]
    return {
        "server": {
            "name": server,
            "host": "127.0.0.1",
            "id": f"ID-{server}",
            "ver": "2.15.1",
            "cluster": "c",
            "time": "2026-01-02T03:04:05.000300Z",
        },
        "request": {"header": headers, "msgsize": 87, **request},
        "events": [
            {
                "type": "in",
                "ts": "2026-01-02T03:04:05.0001Z",
                "kind": kind,
                "cid": 7,
                "name": "up",
                "acc": "APP",
                "subj": "orders.new",
            },
            *(steps or []),
        ],
    }


def egress(
    hop: Any = "", kind: Any = 1, name: Any = "n2", ts: str = "2026-01-02T03:04:05.0002Z", **more: Any
) -> dict[str, Any]:
    return {"type": "eg", "ts": ts, "kind": kind, "cid": 3, "name": name, **({"hop": hop} if hop else {}), **more}


def raw(d: Any) -> bytes:
    return json.dumps(d).encode()


# --- parsing -------------------------------------------------------------------------------------


def test_timestamps_are_nanoseconds_since_the_epoch() -> None:
    assert parse_timestamp("2026-12-02T17:26:29.112504198Z") == 1796232389_112504198
    assert parse_timestamp("2026-12-02T18:26:29.112504198+01:00") == 1796232389_112504198
    assert parse_timestamp("2026-12-02T16:56:29.5-00:30") == 1796232389_500000000
    assert parse_timestamp("2026-12-02T17:26:29Z") == 1796232389_000000000
    for bad in ("", "2026-13-02T17:26:29Z", "2026-12-02 17:26:29Z", "2026-12-02T17:26:29", "x", 5, None):
        assert parse_timestamp(bad) is None


def test_a_traversal_is_parsed_into_typed_records() -> None:
    steps = [
        {"type": "sm", "ts": "2026-01-02T03:04:05.00011Z", "to": "orders.mapped"},
        {"type": "si", "ts": "2026-01-02T03:04:05.00012Z", "acc": "SVC", "from": "a", "to": "b"},
        {"type": "se", "ts": "2026-01-02T03:04:05.00013Z", "acc": "OTHER", "to": "c"},
        {
            "type": "js",
            "ts": "2026-01-02T03:04:05.00014Z",
            "stream": "S",
            "subject": "orders.mapped",
            "nointerest": True,
        },
        egress(kind=0, name="consumer", sub="orders.*", queue="q", acc="SVC"),
    ]
    event = parse(raw(doc(steps=steps)))
    t0 = 1767323045_000000000
    assert event.server == events.Server("ID-n1", "n1", "2.15.1", "c", "", t0 + 300_000)
    assert event.ingress == events.Ingress(t0 + 100_000, 0, 7, "up", "APP", "orders.new", "")
    assert event.steps == (
        events.SubjectMapping(t0 + 110_000, "orders.mapped"),
        events.ServiceImport(t0 + 120_000, "SVC", "a", "b"),
        events.StreamExport(t0 + 130_000, "OTHER", "c"),
        events.JetStream(t0 + 140_000, "S", "orders.mapped", True, ""),
        events.Egress(t0 + 200_000, 0, 3, "consumer", "", "SVC", "orders.*", "q", ""),
    )
    assert (event.msg_size, event.skipped, event.hop, event.header("TRACEPARENT")) == (87, (), "", TP)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "invalid_json"),
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'"text"', "invalid_json"),
        (b"[" * 100_000, "invalid_json"),
        (raw({"events": []}), "invalid_event"),
        (raw({**doc(), "server": {"name": "no id"}}), "invalid_event"),
        (raw({**doc(), "server": "n1"}), "invalid_event"),
        (raw({**doc(), "events": []}), "invalid_event"),
        (raw({**doc(), "events": {"type": "in"}}), "invalid_event"),
        (raw({**doc(), "events": [egress()]}), "invalid_event"),
        (raw({**doc(), "events": [{"type": "in", "ts": "yesterday"}]}), "invalid_event"),
    ],
)
def test_unusable_documents_are_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse(payload)
    assert err.value.reason == reason


def test_compressed_events() -> None:
    assert parse(gzip.compress(raw(doc())), "gzip").server.id == "ID-n1"
    with pytest.raises(InvalidEvent) as err:
        parse(b"not gzip", "gzip")
    assert err.value.reason == "invalid_json"
    with pytest.raises(InvalidEvent) as err:  # a gzip bomb is not inflated past the limit
        parse(gzip.compress(b" " * (events.MAX_DECOMPRESSED + 1)), "gzip")
    assert err.value.reason == "invalid_json"
    with pytest.raises(InvalidEvent) as err:
        parse(raw(doc()), "snappy")
    assert err.value.reason == "unsupported_encoding"
    assert parse(raw(doc()), "identity").server.id == "ID-n1"


def test_unknown_and_broken_entries_are_skipped_and_the_rest_kept() -> None:
    steps = [
        {"type": "zz", "ts": "2026-01-02T03:04:05Z"},
        "eg",
        {"type": "eg"},
        {"type": "sm", "ts": 1},
        egress(kind=0),
    ]
    event = parse(raw(doc(steps=steps)))
    assert event.skipped == ("unknown_type", "invalid_entry", "invalid_entry", "invalid_entry")
    assert [type(s).__name__ for s in event.steps] == ["Egress"]


def test_fields_of_the_wrong_type_are_treated_as_absent() -> None:
    d = doc(steps=[egress(kind="route", cid=-1, name=5, hop=["1"])])
    d["events"][0].update(kind=True, cid="7", acc=None)
    d["request"] = {"header": {"traceparent": TP, "X": [1, "ok"], "Y": {"no": 1}}, "msgsize": "87"}
    event = parse(raw(d))
    assert event.ingress == events.Ingress(event.ingress.ts, None, None, "up", "", "orders.new", "")
    assert event.steps == (events.Egress(event.steps[0].ts, None, None, "", "", "", "", "", ""),)
    assert (dict(event.headers), event.msg_size) == ({"traceparent": (TP,), "X": ("ok",)}, None)


def test_the_hop_header_counts_only_on_server_connections() -> None:
    assert parse(raw(doc(hop="1.2", kind=1))).hop == "1.2"  # from a route
    assert parse(raw(doc(hop="1.2", kind=4))).hop == "1.2"  # from a leaf node
    assert parse(raw(doc(hop="3", kind=0))).hop == ""  # a client re-published headers it received
    unknown = doc(hop="1", kind=1)
    del unknown["events"][0]["kind"]
    assert parse(raw(unknown)).hop == "1"  # no kind: the header decides


# --- planning --------------------------------------------------------------------------------------


def test_span_ids_chain_hops_to_the_publisher() -> None:
    first = spans.plan(parse(raw(doc())))
    second = spans.plan(parse(raw(doc(hop="1", kind=1))))
    third = spans.plan(parse(raw(doc(hop="1.1", kind=1))))
    assert first.parent_span_id == PUBLISHER
    assert first.span_id == spans.span_id(TRACE, PUBLISHER, "")
    assert second.parent_span_id == first.span_id
    assert third.parent_span_id == second.span_id
    assert len({first.span_id, second.span_id, third.span_id, PUBLISHER}) == 4
    assert spans.span_id(TRACE, PUBLISHER + 1, "") != first.span_id  # another message, another span


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('Permissions Violation for Publish to "x"', "publish_permission_violation"),
        ("maximum payload exceeded", "max_payload_exceeded"),
        ("Not delivered because subscription denies this subject", "subscription_denied"),
        ("Not delivered because fast producer not stalled and consumer is slow", "slow_consumer"),
        (
            "Message delivered but remote does not support message tracing so no trace event generated from there",
            "remote_without_tracing",
        ),
        ("something new", "_OTHER"),
    ],
)
def test_error_types(text: str, kind: str) -> None:
    assert spans.error_type(text) == kind


def test_a_jetstream_error_without_a_known_type() -> None:
    assert spans.error_type("maximum messages exceeded", jetstream=True) == "jetstream_error"


# --- the bridge (no server: events are handed to handle()) -----------------------------------------


class Pipeline(Telemetry):
    """An SDK pipeline (nats-py not instrumented) and a bridge reporting to it."""

    def __init__(self) -> None:
        super().__init__()
        self.bridge = ServerTraceBridge(None, "otel.trace", self.tracer_provider, meter_provider=self.meter_provider)

    def counts(self) -> dict[tuple[str, str | None], int]:
        out: dict[tuple[str, str | None], int] = {}
        data = self.metric_reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                assert sm.scope.name == "opentelemetry.instrumentation.nats.server_trace"
                for m in sm.metrics:
                    for p in m.data.data_points:
                        reason: Any = (p.attributes or {}).get("error.type")
                        out[m.name, reason] = int(p.value)  # type: ignore[union-attr]
        return out


def test_malformed_and_unknown_events_are_counted_never_raised() -> None:
    p = Pipeline()
    for payload in (b"nope", raw({"events": []}), raw(doc()), raw(doc(steps=[{"type": "zz", "ts": "x"}]))):
        p.bridge.handle(payload)
    p.bridge.handle(raw(doc()), "snappy")
    assert p.counts() == {
        ("messaging.nats.server_trace.skipped", "invalid_json"): 1,
        ("messaging.nats.server_trace.skipped", "invalid_event"): 1,
        ("messaging.nats.server_trace.skipped", "unknown_type"): 1,
        ("messaging.nats.server_trace.skipped", "unsupported_encoding"): 1,
        ("messaging.nats.server_trace.events", None): 2,
    }
    assert len(p.exporter.get_finished_spans()) == 2


def test_hops_find_their_parents_whatever_order_the_events_arrive_in() -> None:
    documents = [
        doc("n1", steps=[egress("1", name="n2"), egress("2", name="n3")]),
        doc("n2", hop="1", kind=1, steps=[egress("1.1", kind=2, name="g1")]),
        doc("n3", hop="2", kind=1, steps=[egress(kind=0, name="c")]),
        doc("g1", hop="1.1", kind=2, steps=[egress(kind=0, name="c")]),
    ]
    expected = [
        node(
            "traverse orders.new CONSUMER @n1",
            node("traverse orders.new CONSUMER @n2", node("traverse orders.new CONSUMER @g1")),
            node("traverse orders.new CONSUMER @n3"),
        )
    ]
    for order in itertools.permutations(documents):
        p = Pipeline()
        for d in order:
            p.bridge.handle(raw(d))
        finished = list(p.exporter.get_finished_spans())
        assert tree(finished) == expected
        root = next(s for s in finished if s.resource.attributes["service.instance.id"] == "ID-n1")
        assert root.parent is not None and (root.parent.span_id, root.parent.is_remote) == (PUBLISHER, True)
        assert {s.context.trace_id for s in finished} == {TRACE}


def test_span_of_one_traversal() -> None:
    p = Pipeline()
    steps = [egress(kind=0, name="consumer", sub="orders.*", error="Not delivered because client is closed")]
    p.bridge.handle(raw(doc(steps=steps)))
    (span,) = p.exporter.get_finished_spans()
    assert (span.name, span.kind) == ("traverse orders.new", SpanKind.CONSUMER)
    assert (span.start_time, span.end_time) == (1767323045_000100000, 1767323045_000300000)  # ingress → sent
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, steps[0]["error"])
    assert dict(span.attributes or {}) == {
        "messaging.system.name": "nats",
        "messaging.destination.name": "orders.new",
        "messaging.message.envelope.size": 87,
        "messaging.nats.server.id": "ID-n1",
        "messaging.nats.server.name": "n1",
        "messaging.nats.server.version": "2.15.1",
        "messaging.nats.cluster.name": "c",
        "messaging.nats.account": "APP",
        "messaging.nats.server.ingress.kind": "client",
        "messaging.nats.server.ingress.name": "up",
        "messaging.nats.server.ingress.cid": 7,
        "messaging.nats.server.egress.count": 1,
        "error.type": "client_closed",
        "messaging.nats.server.error": steps[0]["error"],
    }
    assert {k: v for k, v in span.resource.attributes.items() if k.startswith("service.")} == {
        "service.name": "nats-server",
        "service.instance.id": "ID-n1",
        "service.version": "2.15.1",
    }
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "opentelemetry.instrumentation.nats.server_trace"


def test_without_traceparent_each_event_is_a_trace_of_its_own() -> None:
    p = Pipeline()
    for hop, kind in (("", 0), ("1", 1)):
        d = doc(hop=hop or None, kind=kind)
        d["request"]["header"] = {"Nats-Trace-Dest": ["otel.trace"], **({"Nats-Trace-Hop": [hop]} if hop else {})}
        p.bridge.handle(raw(d))
    first, second = p.exporter.get_finished_spans()
    assert first.parent is None and second.parent is None
    assert first.context.trace_id != second.context.trace_id


def test_an_inbox_subject_is_left_out_of_the_name() -> None:
    p = Pipeline()
    d = doc()
    d["events"][0]["subj"] = "_INBOX.abc.def"
    p.bridge.handle(raw(d))
    (span,) = p.exporter.get_finished_spans()
    assert span.name == "traverse"
    assert span.attributes["messaging.destination.temporary"] is True  # type: ignore[index]


def test_per_server_providers_are_bounded_and_share_the_processors() -> None:
    p = Pipeline()
    for i in range(bridge.MAX_SERVERS + 10):
        p.bridge.handle(raw(doc(f"s{i}")))
    assert len(p.bridge._tracers) == bridge.MAX_SERVERS
    assert len(p.exporter.get_finished_spans()) == bridge.MAX_SERVERS + 10


def test_a_provider_without_the_sdk_is_tolerated(caplog: pytest.LogCaptureFixture) -> None:
    b = ServerTraceBridge(None, "otel.trace", NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
    with caplog.at_level(logging.WARNING):
        b.handle(raw(doc()))
    assert not caplog.records


def test_the_subject_is_required() -> None:
    with pytest.raises(ValueError, match="subject"):
        ServerTraceBridge(None, "")
