"""High-cardinality subjects: ``subject_templates``, the ``max_destinations`` limit, bounded caches."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.trace import SpanKind

from opentelemetry.instrumentation.nats import NatsInstrumentor, destinations, names
from opentelemetry.instrumentation.nats.config import NatsConfig
from opentelemetry.instrumentation.nats.destinations import Templates
from opentelemetry.instrumentation.nats.natspy.access import ACCESS as NATS_PY_ACCESS
from opentelemetry.instrumentation.nats.operation import installed
from opentelemetry.instrumentation.nats.subjects import Generations, SubjectSet, matches
from tests.helpers import by_name, conn_attrs, synced, wait_spans
from tests.test_metrics import base, metrics, points

Series = dict[tuple[tuple[str, Any], ...], Any]


def series(telemetry: Any, name: str) -> Series:
    """``{sorted attribute items: value (sums) or count (histograms)}`` of one metric."""
    metric = metrics(telemetry).get(name)
    if metric is None:
        return {}
    return {key(p.attributes): getattr(p, "value", getattr(p, "count", None)) for p in points(metric)}


def key(attrs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(attrs.items()))


def send(server: Any, op_name: str = "publish", **extra: Any) -> dict[str, Any]:
    """Metric attributes of a send operation in current mode (plus ``extra``)."""
    return {**base(server, "send", op_name), **extra}


DEST = "messaging.destination.name"
TEMPLATE = "messaging.destination.template"


# --- configuration ------------------------------------------------------------------------------


def test_defaults_and_environment_variables() -> None:
    cfg = NatsConfig.from_options({}, env={})
    assert (cfg.subject_templates.patterns, cfg.max_destinations) == ((), 100)
    env = {
        "OTEL_PYTHON_NATS_SUBJECT_TEMPLATES": " orders.*.created, users.> ,,",
        "OTEL_PYTHON_NATS_MAX_DESTINATIONS": " 7 ",
    }
    cfg = NatsConfig.from_options({}, env=env)
    assert (cfg.subject_templates.patterns, cfg.max_destinations) == (("orders.*.created", "users.>"), 7)
    # options beat the environment variables (an empty list too); 0 is allowed
    cfg = NatsConfig.from_options({"subject_templates": [], "max_destinations": 0}, env=env)
    assert (cfg.subject_templates.patterns, cfg.max_destinations) == ((), 0)
    cfg = NatsConfig.from_options({"subject_templates": "a.*", "max_destinations": "12"}, env={})
    assert (cfg.subject_templates.patterns, cfg.max_destinations) == (("a.*",), 12)


@pytest.mark.parametrize(
    ("options", "env", "message"),
    [
        ({"subject_templates": ["orders..created"]}, {}, "subject_templates: 'orders..created' is not a valid"),
        ({"subject_templates": ["orders.>.created"]}, {}, "'>' is allowed only as the last token"),
        ({"subject_templates": ["orders.id*"]}, {}, "wildcards '*' and '>' must be whole tokens"),
        ({"subject_templates": [3]}, {}, "subject_templates: expected strings, got 3"),
        ({"subject_templates": 3}, {}, "subject_templates: expected a list of NATS subject patterns"),
        (
            {},
            {"OTEL_PYTHON_NATS_SUBJECT_TEMPLATES": "ok.*,bad one"},
            "subject_templates (from OTEL_PYTHON_NATS_SUBJECT_TEMPLATES): 'bad one' is not a valid",
        ),
        ({"max_destinations": -1}, {}, "max_destinations: expected a whole number ≥ 0, got -1"),
        ({"max_destinations": 1.5}, {}, "max_destinations: expected a whole number ≥ 0, got 1.5"),
        ({"max_destinations": True}, {}, "max_destinations: expected a whole number ≥ 0, got True"),
        ({"max_destinations": "many"}, {}, "max_destinations: expected a whole number ≥ 0, got 'many'"),
        (
            {},
            {"OTEL_PYTHON_NATS_MAX_DESTINATIONS": "ten"},
            "max_destinations (from OTEL_PYTHON_NATS_MAX_DESTINATIONS): expected a whole number ≥ 0, got 'ten'",
        ),
    ],
)
def test_bad_values_name_the_option(options: dict[str, Any], env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        NatsConfig.from_options(options, env=env)
    assert message in str(excinfo.value)


def test_bad_template_fails_instrument_and_patches_nothing() -> None:
    import nats.aio.client

    original = nats.aio.client.Client.publish
    with pytest.raises(ValueError, match=r"subject_templates: 'a\.\*x' is not a valid NATS subject pattern"):
        NatsInstrumentor().instrument(subject_templates=["ok.*", "a.*x"])
    assert nats.aio.client.Client.publish is original
    assert installed() is None


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("orders.1.created", "orders.*.created"),  # the first of two matching patterns
        ("orders.1.deleted", "orders.>"),
        ("orders.1.items.2", "orders.>"),
        ("orders", ">"),  # 'orders.>' needs a token after 'orders'
        ("users.9", "*.9"),
        ("users.9.x", ">"),
        ("x", ">"),
    ],
)
def test_first_matching_template_wins(subject: str, expected: str | None) -> None:
    templates = Templates(["orders.*.created", "orders.>", "*.9", ">"])
    assert templates.first(subject) == expected
    assert Templates(["a.b"]).first(subject) is None
    assert Templates(["orders.>"]).first("orders") is None
    assert Templates(["orders.*"]).first("orders.1.created") is None


_TOKENS = st.sampled_from(["a", "b", "orders", "1", "x-y", "$JS", "_INBOX"])
_SUBJECTS = st.lists(_TOKENS, min_size=1, max_size=5).map(".".join)
_PATTERNS = st.lists(st.sampled_from(["a", "b", "1", "*"]), min_size=0, max_size=4).flatmap(
    lambda head: st.sampled_from([".".join(head), ".".join([*head, ">"])]).filter(bool)
)


@given(st.lists(_PATTERNS, min_size=1, max_size=4), _SUBJECTS)
def test_templates_agree_with_nats_wildcard_matching(patterns: list[str], subject: str) -> None:
    expected = next((p for p in patterns if matches(p, subject)), None)
    assert Templates(patterns).first(subject) == expected


# --- templates on every operation -------------------------------------------------------------


async def test_templates_name_publish_request_respond_process_and_receive(
    make_telemetry: Any, server: Any, connect: Any
) -> None:
    tel = make_telemetry(subject_templates=["orders.*.created", "orders.>", "svc.*.get", "replies.*"])
    nc = await connect(server.url)
    served = asyncio.Event()

    async def respond(msg: Any) -> None:
        await msg.respond(b"ok")
        served.set()

    await nc.subscribe("svc.7.get", cb=respond)  # non-wildcard subscriptions get the template
    await nc.subscribe("orders.5.created", cb=respond)
    receiver = await nc.subscribe("orders.6.created")
    await synced(nc)
    await nc.publish("orders.1.created", b"abc")  # first match: orders.*.created, not orders.>
    await nc.publish("orders.1.deleted", b"d")
    await nc.request("svc.7.get", b"q", timeout=5)
    await nc.publish("orders.5.created", b"r", reply="replies.5")  # respond to a plain subject
    await asyncio.wait_for(served.wait(), 5)
    await nc.publish("orders.6.created", b"n")
    await receiver.next_msg(timeout=5)
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
        "messaging.system.name": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        DEST: "orders.1.created",
        TEMPLATE: "orders.*.created",
        "messaging.message.body.size": 3,
        **conn_attrs(nc),
    }
    assert (
        by_name(spans, "publish orders.>").attributes[DEST],
        by_name(spans, "publish orders.>").attributes[TEMPLATE],
    ) == (
        "orders.1.deleted",
        "orders.>",
    )
    request = by_name(spans, "request svc.*.get")
    assert (request.kind, request.attributes[DEST], request.attributes[TEMPLATE]) == (
        SpanKind.CLIENT,
        "svc.7.get",
        "svc.*.get",
    )
    served_request = by_name(spans, "process svc.*.get")
    assert (served_request.kind, served_request.attributes[DEST], served_request.attributes[TEMPLATE]) == (
        SpanKind.SERVER,
        "svc.7.get",
        "svc.*.get",
    )
    processed = by_name(spans, "process orders.*.created")
    assert (processed.attributes[DEST], processed.attributes[TEMPLATE]) == ("orders.5.created", "orders.*.created")
    reply = by_name(spans, "publish replies.*")
    assert (reply.kind, reply.attributes[DEST], reply.attributes[TEMPLATE]) == (
        SpanKind.PRODUCER,
        "replies.5",
        "replies.*",
    )
    received = by_name(spans, "receive orders.*.created")
    assert (received.attributes[DEST], received.attributes[TEMPLATE]) == ("orders.6.created", "orders.*.created")

    # metrics: the template instead of the destination name
    sent = series(tel, "messaging.client.sent.messages")
    assert sent == {
        key(send(server, **{TEMPLATE: "orders.*.created"})): 3,
        key(send(server, **{TEMPLATE: "orders.>"})): 1,
        key(send(server, "request", **{TEMPLATE: "svc.*.get"})): 1,
        key(send(server, **{TEMPLATE: "replies.*"})): 1,
        key(send(server)): 1,  # the reply to the inbox
    }
    consumed = series(tel, "messaging.client.consumed.messages")
    consumer = {"messaging.system.name": "nats", "server.address": "127.0.0.1", "server.port": server.port}
    process = {**consumer, "messaging.operation.type": "process", "messaging.operation.name": "process"}
    receive = {**consumer, "messaging.operation.type": "receive", "messaging.operation.name": "receive"}
    assert consumed == {
        key({**process, TEMPLATE: "svc.*.get"}): 1,
        key({**process, TEMPLATE: "orders.*.created"}): 1,
        key({**receive, TEMPLATE: "orders.*.created"}): 1,
    }
    pending = series(tel, "messaging.nats.subscription.pending.messages")
    # (the two subscriptions on orders.*.created subjects are one series)
    assert sorted(dict(k)[TEMPLATE] for k in pending) == ["orders.*.created", "svc.*.get"]
    assert not any(DEST in dict(k) for k in pending)


async def test_wildcard_subscription_keeps_its_own_subject_as_template(
    make_telemetry: Any, server: Any, connect: Any
) -> None:
    tel = make_telemetry(subject_templates=["orders.*.created"])
    nc = await connect(server.url)
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        done.set()

    await nc.subscribe("orders.>", cb=handler)
    await synced(nc)
    await nc.publish("orders.8.created", b"x")
    await asyncio.wait_for(done.wait(), 5)
    publish, process = await wait_spans(tel, 2)
    assert (publish.name, process.name) == ("publish orders.*.created", "process orders.>")
    assert (process.attributes[DEST], process.attributes[TEMPLATE]) == ("orders.8.created", "orders.>")
    # a wildcard subscription's metrics carry its subject as the template, not each subject
    (consumed,) = series(tel, "messaging.client.consumed.messages")
    assert dict(consumed) == {
        "messaging.system.name": "nats",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        TEMPLATE: "orders.>",
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }


async def test_templates_name_jetstream_publish_and_push_consumer(
    make_telemetry: Any, js_server: Any, connect: Any
) -> None:
    tel = make_telemetry(subject_templates=["tplj.*.created"])
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = f"TPL_{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=["tplj.>"])
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        done.set()

    await js.subscribe("tplj.>", cb=handler, stream=stream)  # push: a non-wildcard deliver subject
    tel.clear()
    puback = await js.publish("tplj.3.created", b"js")
    await asyncio.wait_for(done.wait(), 5)
    spans = await wait_spans(tel, 3)
    assert sorted(s.name for s in spans) == [f"ack {stream}", "process tplj.*.created", "publish tplj.*.created"]
    publish, process = by_name(spans, "publish tplj.*.created"), by_name(spans, "process tplj.*.created")
    ack = by_name(spans, f"ack {stream}")  # (named after its stream; the template is an attribute)
    assert (ack.attributes[DEST], ack.attributes[TEMPLATE]) == ("tplj.3.created", "tplj.*.created")
    assert dict(publish.attributes) == {
        "messaging.system.name": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        DEST: "tplj.3.created",
        TEMPLATE: "tplj.*.created",
        "messaging.message.body.size": 2,
        "messaging.nats.jetstream.subject": "tplj.3.created",
        "messaging.nats.jetstream.stream": stream,
        "messaging.nats.jetstream.sequence": puback.seq,
        "messaging.nats.jetstream.duplicate": False,
        "messaging.nats.jetstream.duplicate_window": "2m0s",  # (the stream this connection created)
        **conn_attrs(nc),
    }
    assert (process.attributes[DEST], process.attributes[TEMPLATE]) == ("tplj.3.created", "tplj.*.created")


async def test_legacy_mode_writes_the_template_under_the_semconv_key(
    make_telemetry: Any, server: Any, connect: Any
) -> None:
    tel = make_telemetry(semconv="legacy", subject_templates=["orders.*.created"])
    nc = await connect(server.url)
    await nc.publish("orders.4.created", b"xy")
    (span,) = await wait_spans(tel, 1)
    assert span.name == "publish orders.*.created"
    assert dict(span.attributes) == {
        "messaging.system": "nats",
        "messaging.operation": "publish",
        DEST: "orders.4.created",
        "messaging.nats.subject": "orders.4.created",
        TEMPLATE: "orders.*.created",
        "messaging.message.body.size": 2,
        **conn_attrs(nc, "legacy"),
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


# --- the limit of distinct destination names --------------------------------------------------


async def test_past_the_limit_new_subjects_leave_names_and_metrics(
    make_telemetry: Any, server: Any, connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    tel = make_telemetry(max_destinations=2, subject_templates=["tpl.*"])
    nc = await connect(server.url)
    got: list[str] = []
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        got.append(msg.subject)
        if len(got) == 2:
            done.set()

    await nc.subscribe("lim.sub", cb=handler)  # named when the first message arrives: past the limit
    await synced(nc)
    with caplog.at_level(logging.WARNING, logger="opentelemetry.instrumentation.nats"):
        for subject in ("lim.a", "lim.b", "lim.c", "lim.a", "lim.d", "tpl.1", "lim.b", "lim.sub", "lim.sub"):
            await nc.publish(subject, b"12")
        await asyncio.wait_for(done.wait(), 5)
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
        "messaging.system.name": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        DEST: "lim.c",
        "messaging.message.body.size": 2,
        **conn_attrs(nc),
    }
    processed = [s for s in spans if s.kind == SpanKind.CONSUMER]
    assert [(s.name, s.attributes[DEST]) for s in processed] == [("process", "lim.sub"), ("process", "lim.sub")]
    assert series(tel, "messaging.client.sent.messages") == {
        key(send(server, **{DEST: "lim.a"})): 2,
        key(send(server, **{DEST: "lim.b"})): 2,
        key(send(server, **{TEMPLATE: "tpl.*"})): 1,
        key(send(server)): 4,  # lim.c, lim.d and lim.sub twice: no destination
    }
    durations = series(tel, "messaging.client.operation.duration")
    assert sorted(durations.values()) == [1, 2, 2, 4] and len(durations) == 4
    (consumed,) = series(tel, "messaging.client.consumed.messages").items()
    assert consumed == (
        key(
            {
                "messaging.system.name": "nats",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "server.address": "127.0.0.1",
                "server.port": server.port,
            }
        ),
        2,
    )
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
    server: Any, connect: Any, monkeypatch: pytest.MonkeyPatch, make_telemetry: Any
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_NATS_MAX_DESTINATIONS", "1")
    tel = make_telemetry()
    a, b = await connect(server.url), await connect(server.url)
    await a.publish("env.one", b"")
    await b.publish("env.two", b"")  # another connection: the limit is the instrumentation's
    await b.publish("env.one", b"")
    spans = await wait_spans(tel, 3)
    assert [s.name for s in spans] == ["publish env.one", "publish", "publish env.one"]


async def test_zero_destinations_names_only_templates(make_telemetry: Any, server: Any, connect: Any) -> None:
    tel = make_telemetry(max_destinations=0, subject_templates=["keep.*"])
    nc = await connect(server.url)
    await nc.publish("drop.me", b"")
    await nc.publish("keep.me", b"")
    spans = await wait_spans(tel, 2)
    assert [s.name for s in spans] == ["publish", "publish keep.*"]


async def test_settle_spans_keep_their_stream_past_the_limit(make_telemetry: Any, js_server: Any, connect: Any) -> None:
    tel = make_telemetry(max_destinations=0)
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = f"LIM_{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=["limjs.>"])
    await js.publish("limjs.1", b"x")
    psub = await js.pull_subscribe("limjs.>", durable="d", stream=stream)
    (msg,) = await psub.fetch(1, timeout=5)
    await msg.ack_sync()
    spans = await wait_spans(tel, 3)
    assert [s.name for s in spans] == ["publish", f"fetch {stream}", f"ack {stream}"]
    acks = series(tel, "messaging.client.operation.duration")
    fetch_key = {
        "messaging.system.name": "nats",
        "messaging.operation.type": "receive",
        "messaging.operation.name": "fetch",
        DEST: stream,  # a stream name: low cardinality, always shown
        "server.address": "127.0.0.1",
        "server.port": js_server.port,
    }
    ack_key = {**fetch_key, "messaging.operation.type": "settle", "messaging.operation.name": "ack"}
    del ack_key[DEST]  # the message's subject: past the limit
    assert acks == {key(send(js_server)): 1, key(fetch_key): 1, key(ack_key): 1}


# --- bounded caches -----------------------------------------------------------------------------


def test_generations_turn_over_without_clearing() -> None:
    cache: Generations[str, int] = Generations(3)
    for i, k in enumerate("abc"):
        cache.remember(k, i)
    cache.remember("d", 3)  # full: a, b, c become the older generation
    assert (cache.recent, cache.older) == ({"d": 3}, {"a": 0, "b": 1, "c": 2})
    assert cache.recall("b") == 1  # found in the older generation: moved back
    assert cache.recall("zz") is None
    assert (cache.recent, cache.older) == ({"d": 3, "b": 1}, {"a": 0, "c": 2})
    for k in "efg":
        cache.remember(k, 0)
    assert (cache.recent, cache.older) == ({"f": 0, "g": 0}, {"d": 3, "b": 1, "e": 0})
    assert cache.size() == 5


def test_subject_set_cache_is_bounded_and_answers_stay_right() -> None:
    excluded = SubjectSet(["health.>"])
    for i in range(3 * SubjectSet._MAX_CACHE):
        assert (f"health.{i}" in excluded, f"orders.{i}" in excluded) == (True, False)
        assert "health.check" in excluded
        assert excluded.size() <= 2 * SubjectSet._MAX_CACHE
    assert excluded.recent.get("health.check") is True  # in use: survived every turnover


async def test_per_subject_cache_is_bounded_and_keeps_entries_in_use(
    make_telemetry: Any, server: Any, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(destinations, "CACHE_SIZE", 8)
    tel = make_telemetry(max_destinations=1000)
    nc = await connect(server.url)
    await nc.publish("hot.subject", b"")
    rec = installed()
    assert rec is not None
    state = rec.clients.state(nc, NATS_PY_ACCESS)
    hot_key = (names.PUBLISH, "hot.subject", None, None, None)
    hot_entry = state.recent[hot_key]
    for i in range(100):
        await nc.publish(f"cold.{i}", b"")
        await nc.publish("hot.subject", b"")
        assert state.size() <= 16 and len(state.recent) <= 8
        # never rebuilt: no clear-all, the entry in use moves between generations
        assert (state.recent.get(hot_key) or state.older.get(hot_key)) is hot_entry
    assert state.shapes.size() == 1  # every publish here has the same shape
    spans = await wait_spans(tel, 201)
    assert [s.name for s in spans[-3:]] == ["publish hot.subject", "publish cold.99", "publish hot.subject"]


async def test_subjects_past_the_limit_are_not_cached_one_by_one(
    make_telemetry: Any, server: Any, connect: Any
) -> None:
    tel = make_telemetry(max_destinations=2, subject_templates=["tpl.*"])
    nc = await connect(server.url)
    for subject in ("a", "b", *(f"id.{i}" for i in range(50)), "tpl.1", "a", "id.7"):
        await nc.publish(subject, b"")
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
    rec = installed()
    assert rec is not None
    state = rec.clients.state(nc, NATS_PY_ACCESS)
    # the named subjects and the templated one; the 50 past the limit share their shape's entry
    assert sorted(key[1] for key in state.recent) == ["a", "b", "tpl.1"]


async def test_wildcard_subscription_subjects_share_one_cache_entry(
    make_telemetry: Any, server: Any, connect: Any
) -> None:
    tel = make_telemetry()
    nc, sc = await connect(server.url), await connect(server.url)
    got: list[str] = []
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        got.append(msg.subject)
        if len(got) == 50:
            done.set()

    await sc.subscribe("wild.*", cb=handler)
    await synced(sc)
    for i in range(50):
        await nc.publish(f"wild.{i}", b"")
    await asyncio.wait_for(done.wait(), 5)
    spans = await wait_spans(tel, 100)
    processed = [s for s in spans if s.kind == SpanKind.CONSUMER]
    assert [(s.name, s.attributes[DEST]) for s in processed] == [("process wild.*", f"wild.{i}") for i in range(50)]
    rec = installed()
    assert rec is not None
    state = rec.clients.state(sc, NATS_PY_ACCESS)
    assert (state.size(), list(state.recent)) == (1, [(names.PROCESS, False, "wild.*", None, None)])
