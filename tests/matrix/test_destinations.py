"""High-cardinality subjects on each client family: ``subject_templates`` name every operation, the
``max_destinations`` limit, the bounded per-subject caches. (How the options are read and validated,
and the template matching itself: tests/test_destinations.py.)"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind

from opentelemetry.instrumentation.nats import destinations, names
from opentelemetry.instrumentation.nats.operation import installed
from opentelemetry.instrumentation.nats.recorder import Recorder
from tests.families import Conn, Family
from tests.families_js import jetstream
from tests.helpers import Telemetry, by_name, wait_spans
from tests.matrix.expect import PUBLISH, wait_for
from tests.matrix.test_lifecycle_metrics import base_metric, metrics, points
from tests.natsserver import NatsServer

DEST = "messaging.destination.name"
TEMPLATE = "messaging.destination.template"

Series = dict[tuple[tuple[str, Any], ...], Any]


def series(telemetry: Telemetry, name: str) -> Series:
    """``{sorted attribute items: value (sums) or count (histograms)}`` of one metric."""
    metric = metrics(telemetry).get(name)
    if metric is None:
        return {}
    return {key(p.attributes): getattr(p, "value", getattr(p, "count", None)) for p in points(metric)}


def key(attrs: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(attrs.items()))


def send(conn: Conn, op_name: str = "publish", **extra: Any) -> dict[str, Any]:
    """Metric attributes of a send operation in current mode (plus ``extra``)."""
    return {**base_metric(conn, "send", op_name), **extra}


# --- templates on every operation ------------------------------------------------------------------


async def test_templates_name_publish_request_reply_process_and_receive(
    make_telemetry: Any, server: NatsServer, family: Family
) -> None:
    tel = make_telemetry(subject_templates=["orders.*.created", "orders.>", "svc.*.get", "replies.*"])
    conn = await family.connect(server)
    await conn.on("svc.7.get", lambda msg: b"ok")  # non-wildcard subscriptions get the template
    await conn.on("orders.5.created", lambda msg: b"ok")
    receiver = await conn.subscribe("orders.6.created")
    await conn.publish("orders.1.created", b"abc")  # first match: orders.*.created, not orders.>
    await conn.publish("orders.1.deleted", b"d")
    await conn.request("svc.7.get", b"q")
    await conn.publish("orders.5.created", b"r", reply="replies.5")  # a reply to a plain subject
    await conn.publish("orders.6.created", b"n")
    await conn.next_message(receiver)
    await conn.settled()
    spans = await wait_spans(tel, 10)
    assert sorted(s.name for s in spans) == [
        "process orders.*.created",
        "process svc.*.get",
        "publish",  # the reply to the request's inbox: temporary, no destination
        "publish orders.*.created",
        "publish orders.*.created",
        "publish orders.*.created",
        "publish orders.>",
        "publish replies.*",
        "receive orders.*.created",
        "request svc.*.get",
    ]
    first = next(s for s in spans if s.name == "publish orders.*.created")
    assert first.kind == SpanKind.PRODUCER
    assert dict(first.attributes) == {
        **PUBLISH,
        DEST: "orders.1.created",
        TEMPLATE: "orders.*.created",
        "messaging.message.body.size": 3,
        **family.conn_attrs(conn),
    }

    def named(name: str) -> tuple[SpanKind, Any, Any]:
        span = by_name(spans, name)
        return span.kind, span.attributes[DEST], span.attributes[TEMPLATE]

    assert named("publish orders.>") == (SpanKind.PRODUCER, "orders.1.deleted", "orders.>")
    assert named("request svc.*.get") == (SpanKind.CLIENT, "svc.7.get", "svc.*.get")
    assert named("process svc.*.get") == (SpanKind.SERVER, "svc.7.get", "svc.*.get")
    assert named("process orders.*.created") == (SpanKind.SERVER, "orders.5.created", "orders.*.created")
    assert named("publish replies.*") == (SpanKind.PRODUCER, "replies.5", "replies.*")
    assert named("receive orders.*.created") == (SpanKind.CLIENT, "orders.6.created", "orders.*.created")

    # metrics: the template instead of the destination name
    assert series(tel, "messaging.client.sent.messages") == {
        key(send(conn, **{TEMPLATE: "orders.*.created"})): 3,
        key(send(conn, **{TEMPLATE: "orders.>"})): 1,
        key(send(conn, "request", **{TEMPLATE: "svc.*.get"})): 1,
        key(send(conn, **{TEMPLATE: "replies.*"})): 1,
        key(send(conn)): 1,  # the reply to the inbox
    }
    process, receive = base_metric(conn, "process", "process"), base_metric(conn, "receive", "receive")
    assert series(tel, "messaging.client.consumed.messages") == {
        key({**process, TEMPLATE: "svc.*.get"}): 1,
        key({**process, TEMPLATE: "orders.*.created"}): 1,
        key({**receive, TEMPLATE: "orders.*.created"}): 1,
    }
    pending = series(tel, "messaging.nats.subscription.pending.messages")
    # (the subscriptions on orders.*.created subjects are one series)
    assert sorted(dict(k)[TEMPLATE] for k in pending) == ["orders.*.created", "svc.*.get"]
    assert not any(DEST in dict(k) for k in pending)


async def test_wildcard_subscription_keeps_its_own_subject_as_template(
    make_telemetry: Any, server: NatsServer, family: Family
) -> None:
    tel = make_telemetry(subject_templates=["orders.*.created"])
    conn = await family.connect(server)
    await conn.on("orders.>", lambda msg: None)
    await conn.publish("orders.8.created", b"x")
    publish, process = await wait_spans(tel, 2)
    assert (publish.name, process.name) == ("publish orders.*.created", "process orders.>")
    assert (process.attributes[DEST], process.attributes[TEMPLATE]) == ("orders.8.created", "orders.>")
    # a wildcard subscription's metrics carry its subject as the template, not each subject
    assert series(tel, "messaging.client.consumed.messages") == {
        key({**base_metric(conn, "process", "process"), TEMPLATE: "orders.>"}): 1
    }


async def test_legacy_mode_writes_the_template_under_the_semconv_key(
    make_telemetry: Any, server: NatsServer, family: Family
) -> None:
    tel = make_telemetry(semconv="legacy", subject_templates=["orders.*.created"])
    conn = await family.connect(server)
    await conn.publish("orders.4.created", b"xy")
    (span,) = await wait_spans(tel, 1)
    assert span.name == "publish orders.*.created"
    assert dict(span.attributes) == {
        "messaging.system": "nats",
        "messaging.operation": "publish",
        DEST: "orders.4.created",
        "messaging.nats.subject": "orders.4.created",
        TEMPLATE: "orders.*.created",
        "messaging.message.body.size": 2,
        **family.conn_attrs(conn, "legacy"),
    }
    assert series(tel, "messaging.nats.publish.messages") == {
        key(
            {
                "messaging.system": "nats",
                "messaging.operation": "publish",
                TEMPLATE: "orders.*.created",
                "net.peer.name": "127.0.0.1",
                "net.peer.port": server.port,
            }
        ): 1
    }


async def test_templates_name_jetstream_publish_and_settle(
    make_telemetry: Any, js_server: NatsServer, family: Family
) -> None:
    stream = f"TPL_{uuid.uuid4().hex[:8]}"
    tel = make_telemetry(subject_templates=[f"{stream}.*.created"])
    conn = await family.connect(js_server)
    js = jetstream(conn)
    await js.add_stream(stream, [f"{stream}.>"])
    consumer = await js.pull_consumer(stream, "d", f"{stream}.>")
    tel.clear()
    ack = await js.publish(f"{stream}.3.created", b"js")
    with suppress_instrumentation():
        (msg,) = await js.fetch(consumer, 1)
    await js.settle(msg, "ack")
    publish, settle = await wait_spans(tel, 2)
    assert (publish.name, settle.name) == (f"publish {stream}.*.created", f"ack {stream}")  # (a settle: its stream)
    assert dict(publish.attributes) == {
        **PUBLISH,
        DEST: f"{stream}.3.created",
        TEMPLATE: f"{stream}.*.created",
        "messaging.message.body.size": 2,
        "messaging.nats.jetstream.subject": f"{stream}.3.created",
        "messaging.nats.jetstream.stream": stream,
        "messaging.nats.jetstream.sequence": js.sequence(ack),
        "messaging.nats.jetstream.duplicate": False,
        "messaging.nats.jetstream.duplicate_window": "2m0s",  # (the stream this connection created)
        **family.conn_attrs(conn),
    }
    assert (settle.attributes[DEST], settle.attributes[TEMPLATE]) == (f"{stream}.3.created", f"{stream}.*.created")


# --- the limit of distinct destination names -------------------------------------------------------


async def test_past_the_limit_new_subjects_leave_names_and_metrics(
    make_telemetry: Any, server: NatsServer, family: Family, caplog: pytest.LogCaptureFixture
) -> None:
    tel = make_telemetry(max_destinations=2, subject_templates=["tpl.*"])
    conn = await family.connect(server)
    got: list[Any] = []
    await conn.on("lim.sub", got.append)  # named when the first message arrives: past the limit
    with caplog.at_level(logging.WARNING, logger="opentelemetry.instrumentation.nats"):
        for subject in ("lim.a", "lim.b", "lim.c", "lim.a", "lim.d", "tpl.1", "lim.b", "lim.sub", "lim.sub"):
            await conn.publish(subject, b"12")
        await wait_for(lambda: len(got) == 2)
        spans = await wait_spans(tel, 11)
    producer = [s for s in spans if s.kind == SpanKind.PRODUCER]
    assert [(s.name, s.attributes[DEST]) for s in producer] == [
        ("publish lim.a", "lim.a"),
        ("publish lim.b", "lim.b"),
        ("publish", "lim.c"),  # the third distinct subject: past the limit of 2
        ("publish lim.a", "lim.a"),  # seen before: keeps its name
        ("publish", "lim.d"),
        ("publish tpl.*", "tpl.1"),  # templated: named by its template past the limit
        ("publish lim.b", "lim.b"),
        ("publish", "lim.sub"),
        ("publish", "lim.sub"),
    ]
    assert dict(producer[2].attributes) == {
        **PUBLISH,
        DEST: "lim.c",
        "messaging.message.body.size": 2,
        **family.conn_attrs(conn),
    }
    processed = [s for s in spans if s.kind == SpanKind.CONSUMER]
    assert [(s.name, s.attributes[DEST]) for s in processed] == [("process", "lim.sub"), ("process", "lim.sub")]
    assert series(tel, "messaging.client.sent.messages") == {
        key(send(conn, **{DEST: "lim.a"})): 2,
        key(send(conn, **{DEST: "lim.b"})): 2,
        key(send(conn, **{TEMPLATE: "tpl.*"})): 1,
        key(send(conn)): 4,  # lim.c, lim.d and lim.sub twice: no destination
    }
    durations = series(tel, "messaging.client.operation.duration")
    assert sorted(durations.values()) == [1, 2, 2, 4] and len(durations) == 4
    assert series(tel, "messaging.client.consumed.messages") == {key(base_metric(conn, "process", "process")): 2}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "NATS instrumentation: 2 distinct destination names reached (max_destinations). Subjects not seen "
        "before, such as 'lim.c', are left out of span names and metric attributes from now on (spans keep "
        "messaging.destination.name). Name high-cardinality subjects with subject_templates "
        "(OTEL_PYTHON_NATS_SUBJECT_TEMPLATES, for example 'orders.*.created'), or raise max_destinations "
        "(OTEL_PYTHON_NATS_MAX_DESTINATIONS)."
    ]
    assert warnings[0].name == "opentelemetry.instrumentation.nats.destinations"


async def test_limit_from_the_environment_counts_across_connections(
    make_telemetry: Any, server: NatsServer, family: Family, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_NATS_MAX_DESTINATIONS", "1")
    tel = make_telemetry()
    a, b = await family.connect(server), await family.connect(server)
    await a.publish("env.one", b"")
    await b.publish("env.two", b"")  # another connection: the limit is the instrumentation's
    await b.publish("env.one", b"")
    spans = await wait_spans(tel, 3)
    assert [s.name for s in spans] == ["publish env.one", "publish", "publish env.one"]


async def test_zero_destinations_names_only_templates(make_telemetry: Any, server: NatsServer, family: Family) -> None:
    tel = make_telemetry(max_destinations=0, subject_templates=["keep.*"])
    conn = await family.connect(server)
    await conn.publish("drop.me", b"")
    await conn.publish("keep.me", b"")
    spans = await wait_spans(tel, 2)
    assert [s.name for s in spans] == ["publish", "publish keep.*"]


async def test_settle_spans_keep_their_stream_past_the_limit(
    make_telemetry: Any, js_server: NatsServer, family: Family
) -> None:
    tel = make_telemetry(max_destinations=0)
    conn = await family.connect(js_server)
    js = jetstream(conn)
    stream = f"LIM_{uuid.uuid4().hex[:8]}"
    await js.add_stream(stream, [f"{stream}.>"])
    await js.publish(f"{stream}.1", b"x")
    consumer = await js.pull_consumer(stream, "d", f"{stream}.>")
    (msg,) = await js.fetch(consumer, 1)
    await js.settle(msg, "ack_sync")
    spans = await wait_spans(tel, 3)
    assert [s.name for s in spans] == ["publish", f"fetch {stream}", f"ack {stream}"]
    fetch_key = {**base_metric(conn, "receive", "fetch"), DEST: stream}  # a stream name: low cardinality
    ack_key = base_metric(conn, "settle", "ack")  # the message's subject: past the limit
    assert series(tel, "messaging.client.operation.duration") == {
        key(send(conn)): 1,
        key(fetch_key): 1,
        key(ack_key): 1,
    }


# --- bounded caches --------------------------------------------------------------------------------


def _state(family: Family, conn: Conn) -> Any:
    """The instrumentation's per-client state of ``conn``."""
    rec = installed()
    assert rec is not None
    return rec.clients.state(conn.native, family.access())


async def test_per_subject_cache_is_bounded_and_keeps_entries_in_use(
    make_telemetry: Any, server: NatsServer, family: Family, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(destinations, "CACHE_SIZE", 8)
    tel = make_telemetry(max_destinations=1000)
    conn = await family.connect(server)
    await conn.publish("hot.subject", b"")
    state = _state(family, conn)
    hot_key = (names.PUBLISH, "hot.subject", None, None, None)
    hot_entry = state.recent[hot_key]
    for i in range(100):
        await conn.publish(f"cold.{i}", b"")
        await conn.publish("hot.subject", b"")
        assert state.size() <= 16 and len(state.recent) <= 8
        # never rebuilt: no clear-all, the entry in use moves between generations
        assert (state.recent.get(hot_key) or state.older.get(hot_key)) is hot_entry
    assert state.shapes.size() == 1  # every publish here has the same shape
    spans = await wait_spans(tel, 201)
    assert [s.name for s in spans[-3:]] == ["publish hot.subject", "publish cold.99", "publish hot.subject"]


async def test_subjects_past_the_limit_are_not_cached_one_by_one(
    make_telemetry: Any, server: NatsServer, family: Family
) -> None:
    tel = make_telemetry(max_destinations=2, subject_templates=["tpl.*"])
    conn = await family.connect(server)
    # (nats-server 2.15 sends nats-core an INFO after connecting: a new ServerInfo starts a new
    # per-client state, so let it arrive before the traffic whose state is read below)
    await conn.synced()
    for subject in ("a", "b", *(f"id.{i}" for i in range(50)), "tpl.1", "a", "id.7"):
        await conn.publish(subject, b"")
    spans = await wait_spans(tel, 55)
    assert [(s.name, s.attributes[DEST]) for s in spans[:3] + spans[-4:]] == [
        ("publish a", "a"),
        ("publish b", "b"),
        ("publish", "id.0"),
        ("publish", "id.49"),
        ("publish tpl.*", "tpl.1"),
        ("publish a", "a"),
        ("publish", "id.7"),
    ]
    # the named subjects and the templated one; the 50 past the limit share their shape's entry
    assert sorted(k[1] for k in _state(family, conn).recent) == ["a", "b", "tpl.1"]


@pytest.mark.parametrize("path", ["fast", "full"])
async def test_subjects_past_the_limit_take_the_cached_path(
    make_telemetry: Any, server: NatsServer, family: Family, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the limit is reached and their shape built, publishes to subjects past it take the cached
    publish path (its shape's entry) and make the spans of the full path; a hook that does nothing
    takes every publish the full path."""
    tel = make_telemetry(metrics=False, max_destinations=1, publish_hook=(lambda *a: None) if path == "full" else None)
    full_path = []
    run = Recorder.run
    monkeypatch.setattr(Recorder, "run", lambda rec, *args, **kw: full_path.append(1) or run(rec, *args, **kw))
    conn = await family.connect(server)
    await conn.synced()
    subjects = ["a", *(f"id.{i}" for i in range(4)), "a"]
    for subject in subjects:
        await conn.publish(subject, b"xy")
    spans = await wait_spans(tel, 6)
    assert [s.name for s in spans] == ["publish a", *["publish"] * 4, "publish a"]
    for span, subject in zip(spans, subjects, strict=True):
        assert span.kind == SpanKind.PRODUCER
        assert dict(span.attributes) == {
            **PUBLISH,
            DEST: subject,
            "messaging.message.body.size": 2,
            **family.conn_attrs(conn),
        }
    # fast: the first publish to "a" and the first past the limit (which builds the shape)
    assert len(full_path) == (6 if path == "full" else 2)


async def test_wildcard_subscription_subjects_share_one_cache_entry(
    make_telemetry: Any, server: NatsServer, family: Family
) -> None:
    tel = make_telemetry()
    pub, sub = await family.connect(server), await family.connect(server)
    got: list[Any] = []
    await sub.on("wild.*", got.append)
    for i in range(50):
        await pub.publish(f"wild.{i}", b"")
    await wait_for(lambda: len(got) == 50)
    spans = await wait_spans(tel, 100)
    processed = [s for s in spans if s.kind == SpanKind.CONSUMER]
    assert [(s.name, s.attributes[DEST]) for s in processed] == [("process wild.*", f"wild.{i}") for i in range(50)]
    state = _state(family, sub)
    assert (state.size(), list(state.recent)) == (1, [(names.PROCESS, False, "wild.*", None, None)])
